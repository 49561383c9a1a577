"""`keras-ann analyze curves|confusion|browse|flops` (`keras_ann.analysis`)."""

import os

from keras_ann.cli.arguments import Pair, Parser, output_file, positive_int
from keras_ann.cli.options import (
    MODEL_HELP, add_dataset_args, add_test_args, dataset_keys, evaluation_data, test_protocol,
)  # fmt: skip


def add_parser(subparsers):
    analyze = subparsers.add_parser(
        "analyze", help="curves of runs, a model's confusion matrix, a contact sheet of labels, multiply-adds per part"
    )
    kinds = analyze.add_subparsers(dest="analysis", required=True, parser_class=Parser)

    curves = kinds.add_parser(
        "curves", help="loss, learning rate and validation mIoU against iterations of runs (their log.jsonl)"
    )
    curves.add_argument("work_dirs", nargs="+", metavar="WORK_DIR", help="keras-ann train work directories")
    curves.add_argument("--output", type=output_file, default="outputs/curves.png", help="the PNG to write")
    curves.set_defaults(func=_curves)

    confusion = kinds.add_parser(
        "confusion", help="the row-normalised confusion matrix of a model on a split, as a PNG and a CSV"
    )
    confusion.add_argument("model", help=MODEL_HELP)
    add_dataset_args(confusion, training=False)
    confusion.add_argument("--data-root", required=True)
    confusion.add_argument("--split", default="val")
    confusion.add_argument("--steps", type=positive_int, help="the first N images only (default: all)")
    confusion.add_argument(
        "--output", type=output_file, default="outputs/confusion.png",
        help="the picture; the CSV (class names, rows summing to 1, pixels per class) goes beside it as .csv",
    )
    add_test_args(confusion)
    confusion.set_defaults(func=_confusion)

    browse = kinds.add_parser(
        "browse", help="a contact sheet of images beside their labels as training decodes them, with a legend"
    )
    browse.add_argument("--data-root", required=True)
    add_dataset_args(browse, training=False)
    browse.add_argument("--split", default="train")
    browse.add_argument("--count", type=positive_int, default=8, help="images shown (the first ones)")
    browse.add_argument("--height", type=positive_int, default=160, help="panel height in pixels")
    browse.add_argument("--columns", type=positive_int, default=2, help="image/label pairs per row")
    browse.add_argument("--output", type=output_file, default="outputs/browse.png", help="the PNG to write")
    browse.set_defaults(func=_browse)

    flops = kinds.add_parser(
        "flops", help="multiply-adds and parameters of the backbone, AFNB, APNB, the rest of the head, the aux head"
    )
    flops.add_argument("model", help="a preset name, a backbone name (e.g. resnet50_d8) or a .keras/.pth file")
    flops.add_argument("--input-size", type=positive_int, nargs=2, action=Pair, metavar=("H", "W"), required=True)
    flops.add_argument("--num-classes", type=positive_int, help="classes (default: the model's; 19 for a backbone)")
    flops.set_defaults(func=_flops)


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
    from keras_ann.presets import load_model

    model = load_model(args.model, inference=True)
    dataset, protocol, config = evaluation_data(args, model, test_protocol(model, args))
    steps = min(args.steps or len(dataset), len(dataset))
    print(f"testing {protocol.mode} on {config.name} {args.split}, {steps} images")
    results = evaluate_dataset(model, dataset.raw_dataset().batch(1), protocol, steps=steps, verbose=2)
    stem = args.output[: -len(".png")] if args.output.lower().endswith(".png") else args.output
    png, csv_path = stem + ".png", stem + ".csv"
    os.makedirs(os.path.dirname(os.path.abspath(png)), exist_ok=True)
    title = f"{os.path.basename(args.model)} on {config.name} {args.split} (rows: ground truth, sum to 1)"
    try:
        write_confusion(results["confusion"], protocol.class_names or dataset.class_names, csv_path, png, title=title)
        print(f"wrote {png} and {csv_path}")
    except ImportError as error:  # the CSV is written before the picture
        print(f"wrote {csv_path}; not {png}: {error}")


def _browse(args):
    from keras_ann.analysis import contact_sheet
    from keras_ann.data.configs import build_dataset, get_data_config
    from keras_ann.recipes import dataset_options

    keys = dataset_keys(args, with_classes=False)
    options = dict(dataset_options(keys), **({"num_classes": args.num_classes} if args.num_classes else {}))
    data = keys.get("data", "folder")
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


def _flops(args):
    from keras_ann.analysis import architecture_model, count_macs, format_macs

    try:
        model = architecture_model(args.model, args.num_classes)
    except FileNotFoundError as error:  # not a name: before anything is built
        raise SystemExit(f"keras-ann analyze flops: error: {error}")
    h, w = args.input_size
    counts = count_macs(model, (h, w))
    print(format_macs(counts, title=f"{args.model}, {model.num_classes} classes, one {h}x{w} image"))
    print("counted: convolutions, dense layers and the attention's matrix products (1 multiply-add = 2 FLOPs); "
          "not batch norm, activations, pooling, resizing, softmax")  # fmt: skip
