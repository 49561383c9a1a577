"""`keras-ann analyze`: curves, confusion, browse and flops.

The command line only: the arguments are parsed here, the work is done by
`keras_ann.analysis`, and `keras_ann.cli.build_parser` adds this
sub-command with `add_analyze_parser`.
"""

import os

from keras_ann import cli


def _curves(args):
    from keras_ann.analysis import plot_curves

    points = plot_curves(args.work_dirs, args.output)
    for label, series in points.items():
        loss, miou = series["loss"], series["val_mIoU"]
        last = f"iteration {loss[-1][0]}, loss {loss[-1][1]:.4f}" if loss else "no loss logged"
        best = f", best val mIoU {max(v for _, v in miou):.2f} (iteration {max(miou, key=lambda p: p[1])[0]})" if miou else ""
        print(f"{label}: {last}{best}")
    print(f"wrote {args.output}")


def _confusion(args):
    from keras_ann.analysis import write_confusion
    from keras_ann.evaluation import evaluate_dataset

    model = cli._load_model(args.model, inference=True)
    protocol = cli._test_protocol(model, args)
    dataset, protocol, config = cli._evaluation_data(args, model, protocol)
    steps = min(args.steps or len(dataset), len(dataset))
    print(f"testing {protocol.mode} on {config.name} {args.split}, {steps} images")
    results = evaluate_dataset(model, dataset.raw_dataset().batch(1), protocol, steps=steps, verbose=2)
    names = protocol.class_names or dataset.class_names
    output = args.output
    stem = output[: -len(".png")] if output.lower().endswith(".png") else output
    png, csv_path = stem + ".png", stem + ".csv"
    os.makedirs(os.path.dirname(os.path.abspath(png)), exist_ok=True)
    title = f"{os.path.basename(args.model)} on {config.name} {args.split} (rows: ground truth, sum to 1)"
    try:
        write_confusion(results["confusion"], names, csv_path, png, title=title)
        print(f"wrote {png} and {csv_path}")
    except ImportError as error:  # the CSV is written before the picture
        print(f"wrote {csv_path}; not {png}: {error}")


def _browse(args):
    from keras_ann.analysis import contact_sheet
    from keras_ann.data.configs import build_dataset, get_data_config
    from keras_ann.recipes import dataset_options

    changes = cli._dataset_changes(args, with_classes=False)
    options = dataset_options(changes)
    if args.num_classes:
        options["num_classes"] = args.num_classes
    data = changes.get("data", "folder")
    if get_data_config(data).classes is None and "num_classes" not in options:
        raise SystemExit(
            "keras-ann analyze browse: error: --dataset folder needs --num-classes K "
            f"(`keras-ann inspect {args.data_root}` suggests it from the labels)"
        )
    dataset = build_dataset(data, args.data_root, args.split, **options)
    sheet = contact_sheet(dataset, count=args.count, height=args.height, columns=args.columns)
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    sheet.save(args.output)
    shown = min(args.count, len(dataset))
    print(f"wrote {args.output}: the first {shown} of {len(dataset)} {dataset.name} images beside their labels "
          f"as training reads them ({sheet.size[0]}x{sheet.size[1]} pixels)")  # fmt: skip


def _flops_model(args):
    """An `ANNSegmenter` of the named architecture: a preset's or a
    backbone name's without downloading weights, or a model file."""
    import keras_ann
    from keras_ann.backbones.resnet import BACKBONE_NAMES
    from keras_ann.presets import PRESETS

    if args.model in PRESETS:
        config = PRESETS[args.model].model_config()
        if args.num_classes is not None:
            config["num_classes"] = args.num_classes
        return keras_ann.ANNSegmenter(**config)
    if args.model in BACKBONE_NAMES:
        return keras_ann.ANNSegmenter(backbone=args.model, num_classes=args.num_classes or 19)
    if not os.path.exists(args.model):
        raise SystemExit(
            f"keras-ann analyze flops: error: {args.model} is no preset (`keras-ann presets`), backbone name "
            f"({', '.join(BACKBONE_NAMES)}) or model file"
        )
    overrides = {} if args.num_classes is None else {"num_classes": args.num_classes}
    return cli._load_model(args.model, **overrides)


def _flops(args):
    from keras_ann.analysis import count_macs, format_macs

    model = _flops_model(args)
    h, w = args.input_size
    counts = count_macs(model, (h, w))
    print(format_macs(counts, title=f"{args.model}, {model.num_classes} classes, one {h}x{w} image"))
    print("counted: convolutions, dense layers and the attention's matrix products (1 multiply-add = 2 FLOPs); "
          "not batch norm, activations, pooling, resizing, softmax")  # fmt: skip


def add_analyze_parser(sub, add_dataset_args, add_inference_args):
    """Adds `analyze` and its sub-commands to `keras-ann`'s sub-parsers.

    Args:
        sub: the sub-parsers of `keras-ann`.
        add_dataset_args: `build_parser`'s function adding the data flags.
        add_inference_args: `build_parser`'s function adding the test flags.
    """
    analyze = sub.add_parser(
        "analyze", help="curves of runs, a model's confusion matrix, a contact sheet of labels, multiply-adds per part"
    )
    kinds = analyze.add_subparsers(dest="analysis", required=True, parser_class=cli._Parser)

    curves = kinds.add_parser(
        "curves", help="loss, learning rate and validation mIoU against iterations of runs (their log.jsonl)"
    )
    curves.add_argument("work_dirs", nargs="+", metavar="WORK_DIR", help="keras-ann train work directories")
    curves.add_argument("--output", type=cli.output_file, default="outputs/curves.png", help="the PNG to write")
    curves.set_defaults(func=_curves)

    confusion = kinds.add_parser(
        "confusion", help="the row-normalised confusion matrix of a model on a split, as a PNG and a CSV"
    )
    confusion.add_argument("model", help="a .keras file, a reference .pth, or a preset name")
    add_dataset_args(confusion, training=False)
    confusion.add_argument("--data-root", required=True)
    confusion.add_argument("--split", default="val")
    confusion.add_argument("--steps", type=cli.positive_int, help="the first N images only (default: all)")
    confusion.add_argument(
        "--output", type=cli.output_file, default="outputs/confusion.png",
        help="the picture; the CSV (class names, rows summing to 1, pixels per class) goes beside it as .csv",
    )
    add_inference_args(confusion)
    confusion.set_defaults(func=_confusion)

    browse = kinds.add_parser(
        "browse", help="a contact sheet of images beside their labels as training decodes them, with a legend"
    )
    browse.add_argument("--data-root", required=True)
    add_dataset_args(browse, training=False)
    browse.add_argument("--split", default="train")
    browse.add_argument("--count", type=cli.positive_int, default=8, help="images shown (the first ones)")
    browse.add_argument("--height", type=cli.positive_int, default=160, help="panel height in pixels")
    browse.add_argument("--columns", type=cli.positive_int, default=2, help="image/label pairs per row")
    browse.add_argument("--output", type=cli.output_file, default="outputs/browse.png", help="the PNG to write")
    browse.set_defaults(func=_browse)

    flops = kinds.add_parser(
        "flops", help="multiply-adds and parameters of the backbone, AFNB, APNB, the rest of the head, the aux head"
    )
    flops.add_argument("model", help="a preset name, a backbone name (e.g. resnet50_d8) or a .keras/.pth file")
    flops.add_argument(
        "--input-size", type=cli.positive_int, nargs=2, action=cli._Pair, metavar=("H", "W"), required=True
    )
    flops.add_argument("--num-classes", type=cli.positive_int, help="classes (default: the model's; 19 for a backbone)")
    flops.set_defaults(func=_flops)
