"""The flag groups that several commands share, each defined once: the
dataset flags (`train`, `inspect`, `evaluate`, `predict`, `analyze
confusion|browse`) and the test flags (`evaluate`, `predict`, `analyze
confusion`), with the recipe keys their values are (`dataset_keys`) and
the model's test protocol they change (`test_protocol`).
"""

from keras_ann.cli.arguments import (
    Pair, class_count, class_names, colour_or_dataset, label_pairs, label_value, positive_int, rgb, split_pattern,
)  # fmt: skip


MODEL_HELP = (
    "a .keras file, a reference .pth, a preset name, a preset directory, or a hub handle "
    "(hf://OWNER/NAME, kaggle://OWNER/MODEL/keras/VARIANT)"
)


def command(args):
    """`keras-ann <cmd>` (`keras-ann analyze <kind>`), as errors name it."""
    return f"keras-ann {args.command}" + (f" {args.analysis}" if getattr(args, "analysis", None) else "")


def add_dataset_args(parser, training):
    """The data config, folder layout, classes and label encoding flags."""
    from keras_ann.data.configs import DATA_CONFIGS

    parser.add_argument(
        "--dataset", choices=tuple(DATA_CONFIGS) + ("pascal_voc",),
        help="the data config: 'folder' for your own images and masks (ROOT/IMG_DIR/<split>/, "
        "ROOT/ANN_DIR/<split>/, as mmseg's custom dataset); default: "
        + ("the recipe's" if training else "the model's, e.g. a preset's"),
    )
    folder = parser.add_argument_group("folder dataset (--dataset folder)")
    folder.add_argument("--img-dir", help="image directory under --data-root (default img_dir)")
    folder.add_argument("--ann-dir", help="label directory under --data-root (default ann_dir)")
    folder.add_argument("--img-suffix", help="image name ending after the stem (default: any image extension)")
    folder.add_argument("--ann-suffix", help="label name ending after the stem (default .png)")
    folder.add_argument(
        "--split-file", type=split_pattern, metavar="PATTERN",
        help="files of stems per split instead of split sub-directories, relative to --data-root, "
        "with {split} in the name, e.g. 'splits/{split}.txt'",
    )
    folder.add_argument(
        "--num-classes", type=class_count,
        help="number of classes (required for folder)" if training
        else "the model's number of classes (another is refused; inspect: default what the labels suggest)",
    )
    if training:
        folder.add_argument("--train-split", help="training split (default train); several joined by commas, e.g. train,val")
        folder.add_argument("--val-split", help="evaluation split (default val)")
    folder.add_argument("--classes", type=class_names, metavar="A,B,C", help="class names")
    folder.add_argument(
        "--palette", dest="class_palette", type=colour_or_dataset, nargs="+", action="extend", metavar="R,G,B",
        help="colour of each class (for overlays), or a dataset name whose colours to use (e.g. camvid)",
    )
    labels = parser.add_argument_group("label encoding")
    labels.add_argument(
        "--reduce-zero-label", action="store_true", help="label 0 is void: ignored, k becomes k-1 (mmseg's)"
    )
    labels.add_argument("--ignore-index", type=label_value, help="the ignored label value (default 255)")
    labels.add_argument(
        "--label-map", type=label_pairs, nargs="+", action="extend", metavar="RAW:NEW",
        help="map label values, e.g. 255:1 for 0/255 binary masks, 11:255 for a void value 11 (repeated flags "
        "add up; a raw value mapped twice is refused)",
    )
    labels.add_argument(
        "--label-palette", type=rgb, nargs="+", action="extend", metavar="R,G,B",
        help="labels are RGB colour masks: the colour of class 0, 1, ...",
    )
    labels.add_argument(
        "--ignore-colour", type=rgb, nargs="+", action="extend", metavar="R,G,B",
        help="with --label-palette: a colour of void pixels, ignored in training and scoring (repeat for more)",
    )


def add_test_args(parser):
    """The test protocol flags: mode, window and test scale."""
    parser.add_argument(
        "--mode", choices=("whole", "slide"),
        help="default: the model's test configuration (the reference's for presets), else whole",
    )
    parser.add_argument(
        "--crop", type=positive_int, nargs=2, action=Pair, metavar=("H", "W"),
        help="slide window (default: the model's)",
    )
    parser.add_argument(
        "--stride", type=positive_int, nargs=2, action=Pair, metavar=("H", "W"),
        help="slide stride (default: the model's)",
    )
    parser.add_argument(
        "--test-scale", type=positive_int, nargs=2, action=Pair, metavar=("LONG", "SHORT"),
        help="keep-ratio resize before inference (default: the model's, else the dataset's)",
    )


def _palette(values, num_classes=None):
    """The colours of `--palette` values: R,G,B triples, or one dataset
    name (its first `num_classes` colours)."""
    if values is None:
        return None
    names = [v for v in values if isinstance(v, str)]
    if not names:
        return values
    if len(values) > 1:
        raise SystemExit(f"keras-ann: error: --palette takes R,G,B colours or one dataset name, got {' '.join(map(str, values))}")
    from keras_ann.visualization import dataset_palette

    return [tuple(int(c) for c in colour) for colour in dataset_palette(names[0])][:num_classes]


def dataset_keys(args, with_classes=True, num_classes=None):
    """The recipe keys of the dataset flags that are given (a dataset's
    palette cut to `num_classes` colours)."""
    keys = dict(
        data=args.dataset,
        img_dir=args.img_dir,
        ann_dir=args.ann_dir,
        img_suffix=args.img_suffix,
        ann_suffix=args.ann_suffix,
        split_file=args.split_file,
        class_names=args.classes,
        palette=_palette(args.class_palette, num_classes),
        reduce_zero_label=True if args.reduce_zero_label else None,
        ignore_index=args.ignore_index,
        label_map=[pair for pairs in args.label_map for pair in pairs] if args.label_map else None,
        label_palette=args.label_palette,
    )
    if args.ignore_colour:
        from keras_ann.recipes import with_ignore_colours

        keys["label_palette"], keys["label_map"] = with_ignore_colours(
            args.label_palette, keys["label_map"], args.ignore_colour,
            255 if args.ignore_index is None else args.ignore_index,
        )
    if with_classes:
        keys.update(num_classes=args.num_classes, train_split=args.train_split, val_split=args.val_split)
    return {key: value for key, value in keys.items() if value is not None}


def test_protocol(model, args):
    """The model's `TestProtocol` with the fields the test and dataset
    flags give replaced (`TestProtocol.with_overrides`)."""
    from keras_ann.test_protocol import FIELDS

    data = dataset_keys(args, with_classes=False, num_classes=model.num_classes)
    if args.num_classes is not None and args.num_classes != model.num_classes:
        raise SystemExit(
            f"keras-ann {args.command}: error: --num-classes {args.num_classes} contradicts {args.model}, which "
            f"predicts {model.num_classes} classes; leave the flag out (or fine-tune with keras-ann train "
            f"--from-preset {args.model} --num-classes {args.num_classes})"
        )
    try:
        return model.test_protocol.with_overrides(
            model.num_classes, args.model, ms_flip=getattr(args, "ms_flip", False),
            mode=args.mode, crop=args.crop, stride=args.stride, scale=args.test_scale,
            **{key: value for key, value in data.items() if key in FIELDS},  # not the folder layout
        )  # fmt: skip
    except ValueError as error:
        raise SystemExit(f"keras-ann {args.command}: error: {error}")


def evaluation_data(args, model, protocol):
    """`keras_ann.evaluation.evaluation_dataset` of the flags: its
    refusals before any data is read end the command."""
    from keras_ann.evaluation import check_evaluation_data, evaluation_dataset

    layout = {key: getattr(args, key) for key in ("img_dir", "ann_dir", "img_suffix", "ann_suffix", "split_file")}
    where = dict(model=args.model, layout=layout, given=list(dataset_keys(args, with_classes=False)))
    try:
        check_evaluation_data(protocol, model.num_classes, **where)
    except ValueError as error:
        raise SystemExit(f"{command(args)}: error: {error}")
    return evaluation_dataset(protocol, model.num_classes, args.data_root, args.split, **where)
