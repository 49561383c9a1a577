"""`keras-ann convert`: a reference `.pth` file or a preset to `.keras`,
or (`--preset`) any model to a preset directory
(`keras_ann.presets.convert_to_preset`)."""

import os

from keras_ann.cli.arguments import Parser, output_path, positive_int


def add_parser(subparsers):
    convert = subparsers.add_parser(
        "convert",
        help="convert a reference (mmsegmentation) ANN .pth file or a preset to .keras, or (--preset) any model to a "
        "preset directory",
    )
    convert.add_argument("checkpoint", help="a .pth file or a preset name (with --preset: any model)")
    convert.add_argument("output", type=output_path, help="the .keras file to write (with --preset: the directory)")
    convert.add_argument(
        "--preset", nargs="?", const=True, metavar="NAME",
        help="write a preset directory (KerasHub's layout: config.json, metadata.json, model.weights.h5, README.md); "
        "a reference .pth gets its recipe, protocol and published scores (NAME: which of `keras-ann presets` it is, "
        "when its file name and SHA-256 do not say)",
    )
    convert.add_argument("--align-corners", choices=("true", "false"))
    convert.add_argument("--num-classes", type=positive_int)
    convert.set_defaults(func=run)


def run(args):
    import numpy as np

    from keras_ann.presets import load_model

    overrides = {} if args.align_corners is None else {"align_corners": args.align_corners == "true"}
    if args.num_classes is not None:
        overrides["num_classes"] = args.num_classes
    if args.preset:
        return _to_preset(args, overrides)
    if os.path.isdir(args.output):
        Parser(prog="keras-ann convert").error(f"output must be a file name, but {args.output} is a directory")
    model = load_model(args.checkpoint, **overrides)
    model.save(args.output)
    params = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    print(
        f"converted {args.checkpoint} -> {args.output}: {model.backbone.name} "
        f"resnet{model.backbone.depth}_d{model.backbone.output_stride}, "
        f"{model.num_classes} classes, {params:,} trainable parameters"
    )


def _to_preset(args, overrides):
    from keras_ann.presets import convert_to_preset

    name = None if args.preset is True else args.preset
    model, metadata = convert_to_preset(args.checkpoint, args.output, name, **overrides)
    reference = metadata.get("reference")
    provenance = metadata.get("provenance") or {}
    print(
        f"wrote the preset directory {args.output}: {metadata['backbone']}, {model.num_classes} classes, "
        f"{metadata['parameter_count']:,} parameters"
        + (f"; reference model {reference['name']} (published mIoU {reference['published']['mIoU']:.2f})" if reference else "")
        + (f"; {len(provenance['keys_mapped'])} keys mapped from {provenance['source_file']}" if provenance else "")
    )
    if provenance.get("matches_published") is False:
        print(f"note: {provenance['source_file']} is not the published file (its SHA-256 differs): the published scores are not its own")
    if provenance and reference is None:
        print("note: not one of the released reference models by name or SHA-256: no recipe or published scores "
              "(name it with --preset NAME, see keras-ann presets)")  # fmt: skip
