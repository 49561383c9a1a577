"""`keras-ann convert`: a reference `.pth` file or a preset to `.keras`."""

from keras_ann.cli.arguments import output_file, positive_int


def add_parser(subparsers):
    convert = subparsers.add_parser(
        "convert", help="convert a reference (mmsegmentation) ANN .pth file or a preset to .keras"
    )
    convert.add_argument("checkpoint", help="a .pth file or a preset name")
    convert.add_argument("output", type=output_file, help="the .keras file to write")
    convert.add_argument("--align-corners", choices=("true", "false"))
    convert.add_argument("--num-classes", type=positive_int)
    convert.set_defaults(func=run)


def run(args):
    import numpy as np

    from keras_ann.presets import load_model

    overrides = {} if args.align_corners is None else {"align_corners": args.align_corners == "true"}
    if args.num_classes is not None:
        overrides["num_classes"] = args.num_classes
    model = load_model(args.checkpoint, **overrides)
    model.save(args.output)
    params = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    print(
        f"converted {args.checkpoint} -> {args.output}: {model.backbone.name} "
        f"resnet{model.backbone.depth}_d{model.backbone.output_stride}, "
        f"{model.num_classes} classes, {params:,} trainable parameters"
    )
