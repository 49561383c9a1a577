"""`keras-ann inspect`: what train would do with a dataset
(`keras_ann.data.inspect.inspect_dataset`)."""

from keras_ann.cli.options import add_dataset_args, dataset_keys


def add_parser(subparsers):
    inspect = subparsers.add_parser(
        "inspect",
        help="what train would do with a dataset, before any training: image sizes, label values and their "
        "encoding, the scale, and the flags to give",
    )
    inspect.add_argument("data_root", help="the dataset root (for --dataset folder: ROOT/img_dir/<split>/, ...)")
    add_dataset_args(inspect, training=False)
    inspect.add_argument("--split", default="train")
    inspect.set_defaults(func=run)


def run(args):
    from keras_ann.data.inspect import inspect_dataset
    from keras_ann.recipes import dataset_options

    keys = dataset_keys(args, with_classes=False)
    options = dict(dataset_options(keys), **({"num_classes": args.num_classes} if args.num_classes else {}))
    data = keys.get("data", "folder")
    crop = None  # own data: train's choice from the image size (keras_ann.data.defaults), else the config's
    report = inspect_dataset(data, args.data_root, args.split, crop_size=crop, **options)
    print("\n".join(report.summary()))
    print(f"train with: keras-ann train --dataset {data} --data-root {args.data_root} "
          f"{' '.join(report.flags())} --work-dir runs/own")  # fmt: skip
