"""The `keras-ann` command line.

Arguments are checked by the parser (`type=`) before anything is loaded or
trained; a bad one ends the command with argparse's usage line and
`keras-ann <cmd>: error: <what is wrong>` (exit 2). An error of the run
itself (bad data, a bad file, a full disk) prints one line
`keras-ann <cmd>: error: <message>` and exits with 1; set
`KERAS_ANN_DEBUG=1` to see the traceback as well.
"""

import argparse
import glob
import os
import re
import sys

# --------------------------------------------------------------------------
# Argument types: each raises `argparse.ArgumentTypeError`, which `_Parser`
# prints as `keras-ann <cmd>: error: --flag <message>`.
# --------------------------------------------------------------------------


def _int(text):
    try:
        return int(text)
    except ValueError:
        return text  # a str: refused as "not an integer" by the caller's check


def _checked(check, text):
    try:
        return check(text)
    except ValueError as error:
        # "`name` must be ..." -> "must be ..."; `_Parser` prefixes the flag.
        raise argparse.ArgumentTypeError(re.sub(r"^`[^`]*` ", "", str(error)).rstrip("."))


def positive_int(text):
    """`type=` for counts: an integer >= 1 (`keras_ann.checks.check_positive_int`)."""
    from keras_ann.checks import check_positive_int

    return _checked(lambda t: check_positive_int(_int(t), "value"), text)


def remat_parts(text):
    """`type=` for `--remat PARTS`: the backbone's parts to recompute,
    comma-separated (`keras_ann.backbones.resnet.remat_setting`)."""
    from keras_ann.backbones.resnet import SEGMENTS, remat_setting

    try:
        return remat_setting(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"takes the parts of the backbone to recompute, comma-separated, from {', '.join(SEGMENTS)}; "
            f"got {text!r}. Write --remat alone (all of them) or --remat=stem,stage1"
        ) from None


def non_negative_int(text):
    """`type=` for an integer >= 0 (seeds, warm-up runs)."""
    from keras_ann.checks import check_positive_int

    return _checked(lambda t: check_positive_int(_int(t), "value", allow_zero=True), text)


def class_count(text):
    """`type=` for a dataset's `--num-classes`: 1..256 (labels are 8-bit
    images: class ids 0..255)."""
    value = positive_int(text)
    if value > 256:
        raise argparse.ArgumentTypeError(f"must be at most 256 (labels are 8-bit images: class ids 0..255), got {value}")
    return value


def label_value(text):
    """`type=` for `--ignore-index`: a label value 0..255 (labels are 8-bit
    images)."""
    value = non_negative_int(text)
    if value > 255:
        raise argparse.ArgumentTypeError(f"must be a label value 0..255 (labels are 8-bit images), got {value}")
    return value


def positive_float(text):
    """`type=` for a finite number > 0 (seconds, learning rates)."""
    import math

    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


class _Pair(argparse.Action):
    """`nargs=2` of `positive_int` values -> an `(h, w)` tuple
    (`keras_ann.checks.check_pair`)."""

    def __call__(self, parser, namespace, values, option_string=None):
        from keras_ann.checks import check_pair

        try:
            setattr(namespace, self.dest, check_pair(values, self.dest))
        except ValueError as error:
            parser.error(f"{option_string or self.dest} {re.sub(r'^`[^`]*` ', '', str(error)).rstrip('.')}")


def _nearest_existing(path):
    path = os.path.abspath(path)
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def _check_creatable(path):
    """The nearest existing ancestor of `path` must be a writable directory."""
    parent = _nearest_existing(os.path.dirname(os.path.abspath(path)))
    if not os.path.isdir(parent):
        raise argparse.ArgumentTypeError(f"cannot be created: {parent} is a file, not a directory (got {path})")
    if not os.access(parent, os.W_OK):
        raise argparse.ArgumentTypeError(f"cannot be created: {parent} is not writable (got {path})")


def output_dir(path):
    """`type=` for a directory to write into: an existing writable directory,
    or one that can be created."""
    if os.path.exists(path):
        if not os.path.isdir(path):
            raise argparse.ArgumentTypeError(f"must be a directory, but {path} is a file")
        if not os.access(path, os.W_OK):
            raise argparse.ArgumentTypeError(f"must be writable, but {path} is not")
        return path
    _check_creatable(path)
    return path


def output_file(path):
    """`type=` for a file to write: not a directory, in a writable directory
    (existing or creatable)."""
    if os.path.isdir(path):
        raise argparse.ArgumentTypeError(f"must be a file name, but {path} is a directory")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise argparse.ArgumentTypeError(f"must be writable, but {path} is not")
    _check_creatable(path)
    return path


def output_path(path):
    """`type=` for a file or directory to write: its folder must be writable
    (existing or creatable)."""
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise argparse.ArgumentTypeError(f"must be writable, but {path} is not")
    _check_creatable(path)
    return path


class _Parser(argparse.ArgumentParser):
    """argparse, with the messages of our `type=` functions as
    `--flag must be ..., got ...` (argparse says `argument --flag: ...`)."""

    def error(self, message):
        message = re.sub(r"^argument ([^\s:]+)(?:/[^\s:]+)?: (must|cannot|takes) ", r"\1 \2 ", message)
        super().error(message)


# The demo's validation scenes: the same for every --seed.
_DEMO_VAL_SEED = 2019


def _demo(args):
    """Train a small ANN on generated scenes for about a minute and score it."""
    import numpy as np

    import keras
    import keras_ann
    from keras_ann.callbacks import TimeBudget
    from keras_ann.data.synthetic import SYNTHETIC_CLASSES, SYNTHETIC_PALETTE, make_scenes
    from keras_ann.evaluation import evaluate_dataset
    from keras_ann.metrics import format_table
    from keras_ann.optimizers import TorchSGD
    from keras_ann.schedules import PolyDecay
    from keras_ann.test_protocol import TestProtocol
    from keras_ann.visualization import segmentation_figure

    keras.utils.set_random_seed(args.seed)
    size = args.size
    print(f"generating {args.train_images} training and {args.val_images} validation scenes ({size}x{size}) ...")
    train_x, train_y = make_scenes(args.train_images, size, size, seed=args.seed)
    # One fixed validation set, whatever --seed: scores of runs compare.
    val_x, val_y = make_scenes(args.val_images, size, size, seed=_DEMO_VAL_SEED)
    backbone = keras_ann.ResNetBackbone(depth=18, output_stride=8, stem_channels=32, base_channels=32)
    model = keras_ann.ANNSegmenter(
        backbone, num_classes=len(SYNTHETIC_CLASSES), head_channels=128, project_channels=64, auxiliary_channels=64,
        test_protocol=TestProtocol(class_names=SYNTHETIC_CLASSES, palette=SYNTHETIC_PALETTE),
    )
    params = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    print(f"ANN (ResNet-18-D8, half width, AFNB + APNB), {params:,} trainable parameters")
    optimizer = TorchSGD(PolyDecay(args.lr, decay_steps=args.iterations, power=0.9, end_learning_rate=1e-4))
    model.compile(optimizer=optimizer, metrics=[])
    budget = TimeBudget(args.seconds)
    # Epochs only pace the log: the largest divisor of the iterations up to
    # 25, so that `--iterations 5` trains 5.
    steps_per_epoch = max(d for d in range(1, 26) if args.iterations % d == 0)
    import tensorflow as tf

    # An endless shuffled stream: iteration-based training, as the recipes.
    train_ds = (
        tf.data.Dataset.from_tensor_slices((train_x, train_y))
        .shuffle(len(train_x), seed=args.seed)
        .repeat()
        .batch(args.batch_size, drop_remainder=True)
    )
    # Keras's own epoch line would claim a whole epoch when the budget
    # stops one early: the demo prints the iterations it really trained.
    progress = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: print(
            f"iteration {budget.iterations}/{args.iterations} - loss {logs['loss']:.4f} - {budget.elapsed:.0f} s"
        )
    )
    model.fit(
        train_ds,
        epochs=args.iterations // steps_per_epoch,
        steps_per_epoch=steps_per_epoch,
        callbacks=[budget, progress],
        verbose=0,
    )
    print(f"trained {budget.iterations} of {args.iterations} iterations in {budget.elapsed:.0f} s")
    results = evaluate_dataset(model, [(val_x[i : i + 8], val_y[i : i + 8]) for i in range(0, len(val_x), 8)], verbose=0)
    print(f"validation: {len(val_x)} scenes")
    print(format_table(results, SYNTHETIC_CLASSES))
    shown = min(4, len(val_x))
    labels = model.predict_labels(val_x[:shown])
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    zoom = max(1, 192 // size)  # panels of about 192 pixels
    figure = segmentation_figure(val_x[:shown], labels, val_y[:shown], SYNTHETIC_PALETTE, SYNTHETIC_CLASSES, zoom=zoom)
    figure.save(args.output)
    print(f"wrote {args.output}")


def _convert(args):
    import numpy as np

    import keras_ann

    overrides = {}
    if args.align_corners is not None:
        overrides["align_corners"] = args.align_corners == "true"
    if args.num_classes is not None:
        overrides["num_classes"] = args.num_classes
    model = keras_ann.ANNSegmenter.from_preset(args.checkpoint, **overrides)
    model.save(args.output)
    params = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    print(
        f"converted {args.checkpoint} -> {args.output}: {model.backbone.name} "
        f"resnet{model.backbone.depth}_d{model.backbone.output_stride}, "
        f"{model.num_classes} classes, {params:,} trainable parameters"
    )


def _presets(args):
    from keras_ann.presets import PRESETS

    print(f"{'name':42} {'crop':>9} {'iters':>7} {'mIoU':>6} {'ms+flip':>7} test")
    for p in PRESETS.values():
        crop = f"{p.crop_size[0]}x{p.crop_size[1]}"
        print(f"{p.name:42} {crop:>9} {p.iterations:>7} {p.miou:6.2f} {p.miou_ms_flip:7.2f} {p.test_mode}")


def _recipes(args):
    from keras_ann.recipes import RECIPES

    print(f"{'name':42} {'data':19} {'backbone':13} {'init':8} {'crop':>9} {'batch':>5} {'iters':>6} {'lr':>5} test")
    for r in RECIPES.values():
        crop = f"{r.crop_size[0]}x{r.crop_size[1]}"
        init = "ImageNet" if r.backbone_init else "scratch"
        test = f"{r.test_mode} " + ("x".join(map(str, r.test_scale)) if r.test_scale else "native size")
        print(
            f"{r.name:42} {r.data:19} {r.backbone:13} {init:8} {crop:>9} {r.total_batch:>5} {r.iterations:>6} "
            f"{r.lr:>5g} {test}"
        )


def _load_model(spec, inference=False, **overrides):
    """The model of a preset, `.pth` or `.keras` file; for inference
    (`evaluate`, `predict`) with its batch norm folded into the
    convolutions (`fold_batch_norm`: the same logits up to round-off,
    faster)."""
    import keras_ann

    model = keras_ann.ANNSegmenter.from_preset(spec, **overrides)
    return keras_ann.fold_batch_norm(model) if inference else model


def _export(args):
    from keras_ann.export import export_model, validate_arguments

    options = dict(
        format=args.format,
        output=args.outputs,
        input_size=args.input_size,
        batch_size=args.batch_size,
        opset=args.opset,
    )
    try:
        # Before loading the model, which may download a preset.
        validate_arguments(args.output, **options)
        if args.quantize:
            calibration = _calibration_files(args)
    except (ValueError, ImportError) as error:
        raise SystemExit(f"keras-ann export: error: {error}")
    overrides = {} if args.num_classes is None else {"num_classes": args.num_classes}
    model = _load_model(args.model, **overrides)
    if not args.quantize:
        print(export_model(model, args.output, **options).summary())
        return
    import tempfile

    from keras_ann.quantize import quantize_onnx

    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_model(model, os.path.join(tmp, "float32.onnx"), **options)
        images = (_calibration_image(path, args.input_size) for path in calibration)
        quantize_onnx(fp32.path, args.output, images, method=args.calibration_method)
    size = os.path.getsize(args.output) / 2**20
    print(
        f"wrote {args.output} (onnx, int8 convolutions, {size:.1f} MB; float32 {fp32.size_bytes / 2**20:.1f} MB), "
        f"calibrated on {len(calibration)} images ({args.calibration_method})"
    )


def _calibration_files(args):
    """The calibration images of `export --quantize int8`, checked before
    the model is loaded."""
    if args.format != "onnx":
        raise ValueError("--quantize int8 needs --format onnx.")
    if args.input_size is None:
        raise ValueError("--quantize int8 needs a fixed --input-size H W (the calibration images are resized to it).")
    if not args.calibration:
        raise ValueError("--quantize int8 needs --calibration IMAGES (files, directories or globs; 8 to 32 images).")
    return _image_paths(args.calibration)[: args.calibration_count]


def _calibration_image(path, size):
    import numpy as np
    from PIL import Image

    from keras_ann.data.io import read_image

    image = Image.fromarray(read_image(path))
    return np.asarray(image.resize((size[1], size[0]), Image.BILINEAR), np.float32)


def _rgb(text):
    """`type=` for one colour `R,G,B` (0..255 each)."""
    try:
        colour = tuple(int(v) for v in text.split(","))
    except ValueError:
        colour = ()
    if len(colour) != 3 or not all(0 <= v <= 255 for v in colour):
        raise argparse.ArgumentTypeError(f"must be colours R,G,B with values 0..255, got {text}")
    return colour


def _colour_or_dataset(text):
    """`type=` for `--palette`: a colour `R,G,B`, or the name of a dataset
    whose palette to use (`camvid`, `cityscapes`, ...)."""
    from keras_ann.data.metainfo import METAINFO

    if text in METAINFO:
        return text
    try:
        return _rgb(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"must be colours R,G,B (one per class) or a dataset name ({', '.join(sorted(METAINFO))}), got {text}"
        ) from None


def _palette(values):
    """The colours of `--palette` values: R,G,B triples, or one dataset name."""
    if values is None:
        return None
    names = [v for v in values if isinstance(v, str)]
    if not names:
        return values
    if len(values) > 1:
        raise SystemExit(f"keras-ann: error: --palette takes R,G,B colours or one dataset name, got {' '.join(map(str, values))}")
    from keras_ann.visualization import dataset_palette

    return [tuple(int(c) for c in colour) for colour in dataset_palette(names[0])]


def _label_pair(text):
    """`type=` for `RAW:NEW` label values (0..255), several comma-separated."""
    pairs = []
    for item in text.split(","):
        old, sep, new = item.partition(":")
        try:
            pair = (int(old), int(new))
        except ValueError:
            pair = None
        if not sep or pair is None or not all(0 <= v <= 255 for v in pair):
            raise argparse.ArgumentTypeError(f"must be RAW:NEW label values in 0..255 (e.g. 255:1), got {text}")
        pairs.append(pair)
    return pairs


def _class_names(text):
    names = [n.strip() for n in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(f"must be comma-separated class names (e.g. sky,road,car), got {text!r}")
    if len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"must name each class once (the scores are keyed by name), got {text!r}")
    return names


def _split_pattern(text):
    """`type=` for `--split-file`: `{split}` its only field."""
    from keras_ann.data.configs import split_file_path

    try:
        split_file_path(text, "train")
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must hold {{split}} and no other {{...}} field, e.g. 'splits/{{split}}.txt', got {text!r}"
        ) from None
    return text


def _dataset_changes(args, with_classes=True):
    """The recipe keys of the dataset flags that are given."""
    changes = dict(
        data=args.dataset,
        img_dir=args.img_dir,
        ann_dir=args.ann_dir,
        img_suffix=args.img_suffix,
        ann_suffix=args.ann_suffix,
        split_file=args.split_file,
        class_names=args.classes,
        palette=_palette(args.class_palette),
        reduce_zero_label=True if args.reduce_zero_label else None,
        ignore_index=args.ignore_index,
        label_map=[pair for pairs in args.label_map for pair in pairs] if args.label_map else None,
        label_palette=args.label_palette,
    )
    if with_classes:
        changes.update(
            num_classes=args.num_classes, train_split=args.train_split, val_split=args.val_split
        )
    return {key: value for key, value in changes.items() if value is not None}


def _recipe(args):
    """The recipe of `keras-ann train`: the named recipe or recipe file (or
    the default base recipe for `--dataset`), then the dataset flags, the
    schedule flags, `--from-preset`, `--loss` and last `--set`."""
    from keras_ann.recipes import DEFAULT_RECIPE, apply_settings, load_recipe, replace_data
    from keras_ann.weights.imagenet import requested_backbone_init

    if args.recipe is None and args.dataset is None:
        raise SystemExit(
            "keras-ann train: error: name a recipe or a recipe file (see `keras-ann train --help`), "
            "or give --dataset (e.g. --dataset folder: your own data on the default recipe "
            f"{DEFAULT_RECIPE})"
        )
    changes = dict(
        iterations=args.iterations,
        total_batch=args.batch_size,
        val_interval=args.eval_interval,
        crop_size=tuple(args.crop_size) if args.crop_size else None,
        scale=tuple(args.scale) if args.scale else None,
        load_from=args.from_preset,
    )
    changes = {k: v for k, v in changes.items() if v is not None}
    try:
        recipe = load_recipe(args.recipe or DEFAULT_RECIPE)
        data = _dataset_changes(args)
        if data.get("data", recipe.data) == "folder" and recipe.data != "folder" and "num_classes" not in data:
            raise ValueError("--dataset folder needs --num-classes K (the number of classes of your labels).")
        recipe = replace_data(recipe, **data)
        if args.loss:
            from keras_ann.losses.combined import parse_loss_option

            changes["loss"] = parse_loss_option(args.loss)
        recipe = recipe.replace(**changes)
        recipe = requested_backbone_init(recipe, args.imagenet)
        if args.set:
            recipe = apply_settings(recipe, args.set)
        scale_set = args.scale or any(s.split("=")[0].strip() in ("scale", "train_scale", "test_scale") for s in args.set or [])
        if recipe.data == "folder" and args.recipe is None and not scale_set and args.data_root:
            say = (lambda line: print(line, file=sys.stderr)) if args.print_config else print  # JSON on stdout
            recipe = _scale_from_data(recipe, args.data_root, say)
    except (ValueError, OSError) as error:
        raise SystemExit(f"keras-ann train: error: {error}")
    return recipe


def _scale_from_data(recipe, data_root, say):
    """The own-data recipe at the training images' own size
    (`keras_ann.data.inspect.data_scale`), its crop within it; says so."""
    from keras_ann.data.inspect import MAX_LONG_SIDE, dataset_scale

    options = dict(recipe.data_options(), num_classes=recipe.num_classes)
    scale, sizes = dataset_scale(recipe.data, data_root, recipe.train_split, **options)
    crop = tuple(min(side, scale[1]) for side in recipe.crop_size)
    (h, w), n = sizes.most_common(1)[0]
    shrunk = f", shrunk to {MAX_LONG_SIDE} px on the long side" if scale[0] < max(h, w) else ""
    say(f"scale: {scale[0]}x{scale[1]} (long x short: the training images' own size, most often {w}x{h}{shrunk}; "
          f"--scale LONG SHORT changes it), crop {crop[0]}x{crop[1]}")  # fmt: skip
    return recipe.replace(train_scale=scale, test_scale=scale, crop_size=crop)


def _train(args):
    import json

    recipe = _recipe(args)
    if args.print_config:
        print(json.dumps(recipe.to_config(), indent=2))
        return
    missing = [flag for flag, value in (("--data-root", args.data_root), ("--work-dir", args.work_dir)) if not value]
    if missing:
        raise SystemExit(
            f"keras-ann train: error: the following arguments are required: {', '.join(missing)} "
            "(only --print-config runs without them)"
        )
    from keras_ann.training import ResumeError, WorkDirError, train

    try:
        train(
            recipe,
            args.data_root,
            args.work_dir,
            precision=args.precision,
            remat=args.remat,
            checkpoint_interval=args.checkpoint_interval,
            keep_snapshots=args.keep_snapshots,
            # The recipe holds the choice; "none" only to say so in the log.
            imagenet_checkpoint="none" if (args.imagenet or "").lower() == "none" else None,
            seed=args.seed,
            eval_steps=args.eval_steps,
            allow_changes=args.allow_changes,
            restart=args.restart,
        )
    except (ResumeError, WorkDirError) as error:
        raise SystemExit(f"keras-ann train: error: {error}")
    print(f"finished; checkpoint: {os.path.join(args.work_dir, 'latest.keras')}")


def _test_protocol(model, args):
    """The model's `TestProtocol` with the fields the flags give replaced:
    the test flags (`--mode`, `--crop`, `--stride`, `--test-scale`,
    `--ms-flip`) and the data flags (`--dataset`, `--classes`, `--palette`,
    `--label-map`, `--reduce-zero-label`, `--ignore-index`,
    `--label-palette`)."""
    from keras_ann.inference import TTA_RATIOS

    data = _dataset_changes(args, with_classes=False)
    if isinstance((args.class_palette or [None])[0], str):  # a dataset's colours: the first num_classes
        data["palette"] = data["palette"][: model.num_classes]
    try:
        protocol = model.test_protocol.replace(
            mode=args.mode, crop=args.crop, stride=args.stride, scale=args.test_scale,
            ratios=TTA_RATIOS if getattr(args, "ms_flip", False) else None,
            flip=True if getattr(args, "ms_flip", False) else None,
            data=data.get("data"), class_names=data.get("class_names"), palette=data.get("palette"),
            label_map=data.get("label_map"), reduce_zero_label=data.get("reduce_zero_label"),
            ignore_index=data.get("ignore_index"), label_palette=data.get("label_palette"),
        )  # fmt: skip
    except ValueError as error:
        raise SystemExit(f"keras-ann {args.command}: error: {error}")
    if args.num_classes is not None and args.num_classes != model.num_classes:
        raise SystemExit(
            f"keras-ann {args.command}: error: --num-classes {args.num_classes} contradicts {args.model}, which "
            f"predicts {model.num_classes} classes; leave the flag out (or fine-tune with keras-ann train "
            f"--from-preset {args.model} --num-classes {args.num_classes})"
        )
    if protocol.class_names is not None and len(protocol.class_names) != model.num_classes:
        raise SystemExit(
            f"keras-ann {args.command}: error: --classes names {len(protocol.class_names)} classes but "
            f"{args.model} predicts {model.num_classes}"
        )
    return protocol


def _evaluation_data(args, model, protocol):
    """The dataset of `evaluate` (and `analyze confusion`): the split of
    the model's data config (or `--dataset`) with its label encoding,
    scanned as `train` scans it; and the protocol with the dataset's class
    names where it had none."""
    from keras_ann.data.configs import build_dataset, get_data_config
    from keras_ann.data.label_scan import check_dataset_labels
    from keras_ann.recipes import dataset_options

    command = f"keras-ann {args.command}" + (f" {args.analysis}" if getattr(args, "analysis", None) else "")
    if protocol.data is None:
        raise SystemExit(
            f"{command}: error: --dataset is required: {args.model} carries no test protocol naming its data."
        )
    config = get_data_config(protocol.data)
    layout = {key: getattr(args, key) for key in ("img_dir", "ann_dir", "img_suffix", "ann_suffix", "split_file")}
    options = dataset_options({**protocol.data_contract(), **layout})
    if config.classes is None:  # folder: the model's classes and label encoding, the flags' layout
        options.update(num_classes=model.num_classes)
    else:
        folder_only = [key for key in _dataset_changes(args, with_classes=False)
                       if key not in ("data", "reduce_zero_label", "ignore_index")]  # fmt: skip
        if folder_only:
            flags = ", ".join("--" + key.replace("_", "-") for key in folder_only)
            raise SystemExit(f"{command}: error: {flags} only apply to --dataset folder (the data is {config.name})")
        if config.num_classes != model.num_classes:
            raise SystemExit(
                f"{command}: error: {args.model} predicts {model.num_classes} classes but {config.name} "
                f"has {config.num_classes}; evaluate it on the data it was trained for (--dataset folder with its layout)"
            )
        options = {key: options[key] for key in ("reduce_zero_label", "ignore_index") if key in options}
    dataset = build_dataset(config, args.data_root, args.split, **options)
    check_dataset_labels(dataset, before="scoring")  # the label scan of `train`
    if protocol.class_names is None and len(dataset.class_names) == model.num_classes:
        protocol = protocol.replace(class_names=dataset.class_names)
    return dataset, protocol, config


def _evaluate(args):
    from keras_ann.evaluation import evaluate_dataset

    model = _load_model(args.model, inference=True)
    protocol = _test_protocol(model, args)
    dataset, protocol, config = _evaluation_data(args, model, protocol)
    window = f" {protocol.crop} / {protocol.stride}" if protocol.mode == "slide" else ""
    scales = f"ms+flip {list(protocol.ratios)}" if protocol.multiscale else f"at scale {protocol.scale or dataset.test_scale}"
    print(f"testing {protocol.mode}{window} {scales} on {config.name} {args.split}")
    pairs = dataset.raw_dataset().batch(1)
    evaluate_dataset(model, pairs, protocol, steps=min(args.steps or len(dataset), len(dataset)), verbose=2)


def _inspect(args):
    from keras_ann.data.inspect import inspect_dataset
    from keras_ann.recipes import DEFAULT_RECIPE, dataset_options, get_recipe

    changes = _dataset_changes(args, with_classes=False)
    options = dataset_options(changes)
    if args.num_classes:
        options["num_classes"] = args.num_classes
    data = changes.get("data", "folder")
    crop = get_recipe(DEFAULT_RECIPE).crop_size if data == "folder" else None  # train's own-data default
    report = inspect_dataset(data, args.data_root, args.split, crop_size=crop, **options)
    print("\n".join(report.summary()))
    print(f"train with: keras-ann train --dataset {data} --data-root {args.data_root} "
          f"{' '.join(report.flags())} --work-dir runs/own")  # fmt: skip


def _benchmark(args):
    import json

    from keras_ann.benchmark import check_benchmark_memory, format_results, resolve_spec, run_benchmark

    try:
        spec = resolve_spec(
            args.model,
            num_classes=args.num_classes,
            input_size=args.input_size,
            batch_size=args.batch_size,
            precision=args.precision,
            runs=args.runs,
            warmup=args.warmup,
            train=args.train,
            train_size=args.train_size,
            train_batch_size=args.train_batch_size,
            jit_compile=args.jit_compile,
            fold_batch_norm=args.fold_batch_norm,
            remat=args.remat,
        )
        check_benchmark_memory(spec)
    except ValueError as error:
        raise SystemExit(f"keras-ann benchmark: error: {error}")
    if args.dry_run:
        h, w = spec.input_size
        line = f"{spec.model}: {spec.model_config}, inference {spec.batch_size}x{h}x{w} {spec.precision}"
        if spec.train:
            th, tw = spec.train_size
            line += f", training {spec.train_batch_size}x{th}x{tw}"
            if spec.remat:
                line += " with remat" + ("" if spec.remat is True else " of " + ",".join(spec.remat))
        print(line)
        return
    result = run_benchmark(spec, verbose=True)
    print(format_results([result]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


def _image_paths(specs):
    """Image files from files, directories (their images, recursively) and
    glob patterns, in order, each file once; `ValueError` for a spec that
    names nothing."""
    from keras_ann.data.io import IMAGE_EXTENSIONS
    from keras_ann.file_lists import glob_files

    paths, seen = [], set()
    for spec in specs:
        if os.path.isdir(spec):
            found = sorted(
                os.path.join(root, name)
                for root, _, names in os.walk(spec)
                for name in names
                if name.lower().endswith(IMAGE_EXTENSIONS)
            )
            what = f"directory {spec} holds no image ({', '.join(IMAGE_EXTENSIONS)})"
        elif os.path.exists(spec):
            found, what = [spec], None
        elif glob.has_magic(spec):
            found = glob_files(spec)  # `**` without walking link loops
            what = f"no file matches {spec}"
        else:
            raise ValueError(f"no such file, directory or pattern: {spec}")
        if not found:
            raise ValueError(what)
        for path in found:
            key = os.path.realpath(path)
            if key not in seen:
                seen.add(key)
                paths.append(path)
    return paths


def _output_names(paths):
    """Distinct output stems (`keras_ann.file_lists.output_names`)."""
    from keras_ann.file_lists import output_names

    return output_names(paths)


def _predict(args):
    import numpy as np

    from keras_ann.data.io import read_image
    from keras_ann.data.metainfo import METAINFO
    from keras_ann.file_lists import refuse_overwriting_inputs
    from keras_ann.inference import segment
    from keras_ann.visualization import dataset_palette, default_palette, overlay_figure, save_label_map

    paths = _image_paths(args.images)  # before loading the model
    if args.format == "cityscapes":
        return _predict_cityscapes(args, paths)
    names = _output_names(paths)
    refuse_overwriting_inputs(paths, names, args.output_dir)  # before loading the model
    model = _load_model(args.model, inference=True)
    protocol = _test_protocol(model, args)
    os.makedirs(args.output_dir, exist_ok=True)
    palette = protocol.palette  # --palette, else the model's
    if palette is None:  # the dataset whose class count the model has, if unique, else generated
        matches = [name for name, info in METAINFO.items() if len(info["classes"]) == model.num_classes]
        palette = dataset_palette(matches[0]) if len(matches) == 1 else default_palette(model.num_classes)
    if len(palette) < model.num_classes:
        raise SystemExit(
            f"keras-ann predict: error: --palette has {len(palette)} colours but the model predicts "
            f"{model.num_classes} classes."
        )
    from keras_ann.data.errors import DatasetError

    unreadable = []
    for path, name in zip(paths, names):
        # As the training loader reads images: EXIF orientation applied,
        # 16-bit images scaled to 8 bits, a clear error for a bad file,
        # which is named and skipped (the first one stopped the run).
        try:
            image = read_image(path)
        except (DatasetError, OSError, ValueError) as error:
            print(f"keras-ann predict: error: {error}", file=sys.stderr)
            unreadable.append(path)
            continue
        labels = segment(model, image[None], protocol)[0]
        out = os.path.join(args.output_dir, name)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        save_label_map(labels, f"{out}_labels.png", palette)
        overlay_figure(image, labels, palette, protocol.class_names).save(f"{out}_overlay.png")
        print(f"{path}: wrote {out}_labels.png and {out}_overlay.png")
    if unreadable:
        raise SystemExit(
            f"keras-ann predict: error: {len(unreadable)} of {len(paths)} images could not be read (named above); "
            f"the other {len(paths) - len(unreadable)} were written to {args.output_dir}"
        )


_CITYSCAPES_NAME = re.compile(r"^\w+_\d{6}_\d{6}_leftImg8bit\.png$")


def _predict_cityscapes(args, paths):
    """`predict --format cityscapes`: for each `<city>_<seq>_<frame>_leftImg8bit.png`
    a PNG of the same name in `--output-dir` whose values are Cityscapes
    label ids (cityscapesScripts' and mmseg's `format_only` convention),
    nothing else."""
    from PIL import Image

    from keras_ann.data.cityscapes import train_ids_to_label_ids
    from keras_ann.data.io import read_image
    from keras_ann.inference import segment

    command = "keras-ann predict --format cityscapes"
    outputs, seen = [], {}
    for path in paths:  # before loading the model
        name = os.path.basename(path)
        if not _CITYSCAPES_NAME.match(name):
            raise SystemExit(
                f"{command}: error: {path} is not named <city>_<seq>_<frame>_leftImg8bit.png, the name the test "
                "server matches results by; give the leftImg8bit images of the Cityscapes layout"
            )
        if name in seen:
            raise SystemExit(f"{command}: error: {seen[name]} and {path} have the same name; give each image once")
        seen[name] = path
        out = os.path.join(args.output_dir, name)
        if os.path.exists(out) and os.path.samefile(out, path):
            raise SystemExit(f"{command}: error: the result for {path} would replace it; give another --output-dir")
        outputs.append(out)
    model = _load_model(args.model, inference=True)
    if model.num_classes != 19:
        raise SystemExit(
            f"{command}: error: {args.model} predicts {model.num_classes} classes, not the 19 Cityscapes train ids; "
            "give a model trained on Cityscapes"
        )
    protocol = _test_protocol(model, args)
    os.makedirs(args.output_dir, exist_ok=True)
    for path, out in zip(paths, outputs):
        labels = segment(model, read_image(path)[None], protocol)[0]
        Image.fromarray(train_ids_to_label_ids(labels)).save(out)
        print(f"{path}: wrote {out} (Cityscapes label ids)")


def build_parser():
    from keras_ann.precision import CHOICES as PRECISION_CHOICES
    from keras_ann.data.configs import DATA_CONFIGS

    parser = _Parser(
        prog="keras-ann",
        description="Asymmetric Non-local Networks for semantic segmentation (Keras 3).",
    )
    parser.add_argument(
        "--verbose", action="store_true",
        help="also show the start-up log lines of TensorFlow's C++ libraries (hidden by default)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        help="train a small ANN on generated scenes (under a minute and a half on 2 CPU cores), score it, write a PNG",
    )
    demo.add_argument(
        "--seconds", type=positive_float, default=90.0,
        help="training time budget: training stops there, done or not",
    )
    demo.add_argument("--iterations", type=positive_int, default=400, help="iterations of the poly schedule")
    demo.add_argument("--batch-size", type=positive_int, default=8)
    demo.add_argument(
        "--lr", type=positive_float, default=0.1, help="initial learning rate (SGD, momentum 0.9)"
    )
    demo.add_argument("--size", type=positive_int, default=64, help="scene height and width in pixels")
    demo.add_argument("--train-images", type=positive_int, default=512, help="training scenes")
    demo.add_argument("--val-images", type=positive_int, default=48, help="validation scenes (a fixed set)")
    demo.add_argument(
        "--seed", type=non_negative_int, default=0, help="seed of the training scenes and the weights"
    )
    demo.add_argument(
        "--output", type=output_file, default="outputs/demo.png",
        help="the figure: image, ground truth, prediction",
    )
    demo.set_defaults(func=_demo)

    convert = sub.add_parser(
        "convert", help="convert a reference (mmsegmentation) ANN .pth file or a preset to .keras"
    )
    convert.add_argument("checkpoint", help="a .pth file or a preset name")
    convert.add_argument("output", type=output_file, help="the .keras file to write")
    convert.add_argument("--align-corners", choices=("true", "false"))
    convert.add_argument("--num-classes", type=positive_int)
    convert.set_defaults(func=_convert)

    def add_dataset_args(p, training):
        p.add_argument(
            "--dataset", choices=tuple(DATA_CONFIGS) + ("pascal_voc",),
            help="the data config: 'folder' for your own images and masks (ROOT/IMG_DIR/<split>/, "
            "ROOT/ANN_DIR/<split>/, as mmseg's custom dataset); default: "
            + ("the recipe's" if training else "the model's, e.g. a preset's"),
        )
        folder = p.add_argument_group("folder dataset (--dataset folder)")
        folder.add_argument("--img-dir", help="image directory under --data-root (default img_dir)")
        folder.add_argument("--ann-dir", help="label directory under --data-root (default ann_dir)")
        folder.add_argument("--img-suffix", help="image name ending after the stem (default: any image extension)")
        folder.add_argument("--ann-suffix", help="label name ending after the stem (default .png)")
        folder.add_argument(
            "--split-file", type=_split_pattern, metavar="PATTERN",
            help="files of stems per split instead of split sub-directories, relative to --data-root, "
            "with {split} in the name, e.g. 'splits/{split}.txt'",
        )
        folder.add_argument(
            "--num-classes", type=class_count,
            help="number of classes (required for folder)" if training
            else "the model's number of classes (another is refused; inspect: default what the labels suggest)",
        )
        if training:
            folder.add_argument("--train-split", help="training split (default train)")
            folder.add_argument("--val-split", help="evaluation split (default val)")
        folder.add_argument("--classes", type=_class_names, metavar="A,B,C", help="class names")
        folder.add_argument(
            "--palette", dest="class_palette", type=_colour_or_dataset, nargs="+", action="extend", metavar="R,G,B",
            help="colour of each class (for overlays), or a dataset name whose colours to use (e.g. camvid)",
        )
        labels = p.add_argument_group("label encoding")
        labels.add_argument(
            "--reduce-zero-label", action="store_true", help="label 0 is void: ignored, k becomes k-1 (mmseg's)"
        )
        labels.add_argument(
            "--ignore-index", type=label_value, help="the ignored label value (default 255)"
        )
        labels.add_argument(
            "--label-map", type=_label_pair, nargs="+", action="extend", metavar="RAW:NEW",
            help="map label values, e.g. 255:1 for 0/255 binary masks, 11:255 for a void value 11 (repeated flags "
            "add up; a raw value mapped twice is refused)",
        )
        labels.add_argument(
            "--label-palette", type=_rgb, nargs="+", action="extend", metavar="R,G,B",
            help="labels are RGB colour masks: the colour of class 0, 1, ...",
        )

    train = sub.add_parser(
        "train",
        help="train a recipe, a recipe file, or your own data (--dataset folder); resumes from --work-dir",
    )
    train.add_argument(
        "recipe", nargs="?",
        help="a recipe name (e.g. ann_r50_d8_cityscapes_512x1024_40k) or a recipe file (.json, as "
        "--print-config prints); default with --dataset: ann_r18_d8_camvid_cpu",
    )
    train.add_argument("--data-root", help="the dataset root (required unless --print-config)")
    train.add_argument(
        "--work-dir", type=output_dir,
        help="checkpoints, logs and the resume state (required unless --print-config)",
    )
    train.add_argument(
        "--print-config", action="store_true",
        help="print the fully resolved recipe (after the other flags) as JSON and exit; reads no data",
    )
    train.add_argument(
        "--precision", default="auto", choices=PRECISION_CHOICES,
        help="auto (default): bfloat16 where the CPU or GPU runs it natively, else float32",
    )
    train.add_argument(
        "--remat", nargs="?", const=True, default=False, type=remat_parts, metavar="PARTS",
        help="recompute the backbone's activations in the backward pass (mmseg's with_cp): much less memory, "
        "a slower step; PARTS (comma-separated, from stem, stage1..stage4; default all) picks where, e.g. "
        "--remat=stem,stage1 for the large, cheap high-resolution ones",
    )
    train.add_argument("--iterations", type=positive_int)
    train.add_argument("--batch-size", type=positive_int, help="total batch over all devices")
    train.add_argument("--eval-interval", type=positive_int)
    train.add_argument(
        "--eval-steps", type=positive_int,
        help="evaluate on the first N validation images only (default: all; as evaluate --steps)",
    )
    train.add_argument("--crop-size", type=positive_int, nargs=2, action=_Pair, metavar=("H", "W"))
    train.add_argument(
        "--scale", type=positive_int, nargs=2, action=_Pair, metavar=("LONG", "SHORT"),
        help="RandomResize and test Resize scale",
    )
    train.add_argument(
        "--checkpoint-interval",
        type=positive_int,
        help="save the resume state every N iterations (divides --eval-interval); a killed run loses at most N",
    )
    train.add_argument(
        "--keep-snapshots", type=positive_int, metavar="N",
        help="save iter_<N>.keras at every evaluation, keeping the newest N (default: none)",
    )
    train.add_argument(
        "--imagenet", metavar="PATH|URL|none",
        help="ImageNet ResNet-V1c checkpoint for the backbone (default: the recipe's, downloaded once; "
        "'none': from scratch)",
    )
    train.add_argument(
        "--from-preset", metavar="NAME|PATH",
        help="fine-tune a released model (see `keras-ann presets`) or a .keras/.pth file; "
        "the classifiers are new when --num-classes differs (recipe key load_from)",
    )
    train.add_argument(
        "--loss", metavar="NAME[:WEIGHT],...",
        help="the heads' losses, summed (recipe key loss), e.g. --loss CrossEntropy:1,Dice:3; names: "
        "CrossEntropy, Dice, Focal, Lovasz, Tversky, OHEM (their defaults; other arguments with "
        "--set loss=[{...}]); default: the recipe's (cross-entropy)",
    )
    train.add_argument(
        "--set", action="append", metavar="KEY=VALUE",
        help="override a recipe key (the keys of --print-config), value as JSON where possible, "
        "e.g. --set lr=0.005 --set crop_size=[256,256]; applied last",
    )
    train.add_argument("--seed", type=non_negative_int, default=0)
    train.add_argument(
        "--allow-changes", action="store_true", help="resume although the settings differ from the run's recipe.json"
    )
    train.add_argument(
        "--restart", action="store_true",
        help="start over from iteration 0, replacing the work dir's state, history, models and snapshots: once the "
        "data is checked they move to WORK_DIR/.previous-<time>/, removed at the new run's first checkpoint",
    )
    add_dataset_args(train, training=True)
    train.set_defaults(func=_train)

    def add_inference_args(p):
        p.add_argument(
            "--mode", choices=("whole", "slide"),
            help="default: the model's test configuration (the reference's for presets), else whole",
        )
        p.add_argument(
            "--crop", type=positive_int, nargs=2, action=_Pair, metavar=("H", "W"),
            help="slide window (default: the model's)",
        )
        p.add_argument(
            "--stride", type=positive_int, nargs=2, action=_Pair, metavar=("H", "W"),
            help="slide stride (default: the model's)",
        )
        p.add_argument(
            "--test-scale", type=positive_int, nargs=2, action=_Pair, metavar=("LONG", "SHORT"),
            help="keep-ratio resize before inference (default: the model's, else the dataset's)",
        )

    inspect = sub.add_parser(
        "inspect",
        help="what train would do with a dataset, before any training: image sizes, label values and their "
        "encoding, the scale, and the flags to give",
    )
    inspect.add_argument("data_root", help="the dataset root (for --dataset folder: ROOT/img_dir/<split>/, ...)")
    add_dataset_args(inspect, training=False)
    inspect.add_argument("--split", default="train")
    inspect.set_defaults(func=_inspect)

    evaluate = sub.add_parser("evaluate", help="mIoU of a model on a dataset split")
    evaluate.add_argument("model", help="a .keras file, a reference .pth, or a preset name")
    add_dataset_args(evaluate, training=False)
    evaluate.add_argument("--data-root", required=True)
    evaluate.add_argument("--split", default="val")
    evaluate.add_argument("--ms-flip", action="store_true", help="multi-scale + flip test")
    evaluate.add_argument(
        "--steps", type=positive_int,
        help="evaluate on the first N images only (default: all; as train --eval-steps)",
    )
    add_inference_args(evaluate)
    evaluate.set_defaults(func=_evaluate)

    predict = sub.add_parser("predict", help="segment images and write label maps and overlays")
    predict.add_argument("model", help="a .keras file, a reference .pth, or a preset name")
    predict.add_argument(
        "images", nargs="+",
        help="image files, directories (their images, recursively) or glob patterns such as 'photos/*.jpg'",
    )
    predict.add_argument(
        "--output-dir", type=output_dir, default="outputs/predictions",
        help="where <name>_labels.png and <name>_overlay.png go; inputs keep their directories "
        "relative to the inputs' common folder, so a/x.jpg and b/x.jpg do not overwrite each other, and "
        "every input gets its own name (x.jpg, x.png: x_jpg, x_png). A run whose output would replace one "
        "of its inputs (e.g. an earlier x_labels.png among the images) is refused before the model loads: "
        "give another --output-dir; outputs written by this run are never read as inputs",
    )
    predict.add_argument(
        "--format", choices=("overlay", "cityscapes"), default="overlay",
        help="overlay (default): <name>_labels.png and <name>_overlay.png as above; cityscapes: the test server's "
        "submission, for each <city>_<seq>_<frame>_leftImg8bit.png a PNG of that name directly in --output-dir "
        "holding Cityscapes label ids (7, 8, 11, ..., 33), nothing else (a 19-class model)",
    )
    add_dataset_args(predict, training=False)
    add_inference_args(predict)
    predict.set_defaults(func=_predict)

    benchmark = sub.add_parser(
        "benchmark", help="inference fps, training step time and peak memory of a preset or backbone"
    )
    benchmark.add_argument("model", help="a preset name (see `keras-ann presets`) or a backbone name, e.g. resnet50_d8")
    benchmark.add_argument("--num-classes", type=positive_int, help="classes (required with a backbone name)")
    benchmark.add_argument(
        "--input-size", type=positive_int, nargs=2, action=_Pair, metavar=("H", "W"),
        help="inference image size (default: the preset's test window or crop)",
    )
    benchmark.add_argument("--batch-size", type=positive_int, default=1, help="inference batch")
    benchmark.add_argument(
        "--precision", default="auto", choices=PRECISION_CHOICES,
        help="auto (default): bfloat16 where the CPU or GPU runs it natively, else float32",
    )
    benchmark.add_argument("--runs", type=positive_int, default=5, help="timed runs per phase (median reported)")
    benchmark.add_argument("--warmup", type=non_negative_int, default=1, help="untimed runs first")
    benchmark.add_argument(
        "--train", action=argparse.BooleanOptionalAction, default=True,
        help="also time training steps with the recipe's loss and optimiser",
    )
    benchmark.add_argument(
        "--train-size", type=positive_int, nargs=2, action=_Pair, metavar=("H", "W"),
        help="training crop (default: the preset's)",
    )
    benchmark.add_argument(
        "--train-batch-size", type=positive_int, help="images per training step (default: the recipe's images per GPU)"
    )
    benchmark.add_argument(
        "--jit-compile", action=argparse.BooleanOptionalAction, default=None,
        help="XLA compilation (default: Keras's choice; JAX always compiles)",
    )
    benchmark.add_argument(
        "--fold-batch-norm", action=argparse.BooleanOptionalAction, default=True,
        help="time inference with the batch norm folded into the convolutions, as predict/evaluate/export run it "
        "(default: on)",
    )
    benchmark.add_argument(
        "--remat", nargs="?", const=True, default=False, type=remat_parts, metavar="PARTS",
        help="time training with recomputation, as `train --remat [PARTS]` (less memory, a slower step)",
    )
    benchmark.add_argument("--json", type=output_file, help="also write the full results to this JSON file")
    benchmark.add_argument("--dry-run", action="store_true", help="check the arguments and print the plan only")
    benchmark.set_defaults(func=_benchmark)

    export = sub.add_parser(
        "export", help="write a self-contained SavedModel, TFLite, ONNX or OpenVINO model (raw RGB in, logits or labels "
        "out) from the Keras backend in KERAS_BACKEND"
    )
    export.add_argument("model", help="a .keras file, a reference .pth, or a preset name")
    export.add_argument(
        "output", type=output_path, help="the directory (saved_model) or file (.tflite, .onnx, openvino's .xml) to write"
    )
    export.add_argument(
        "--format", default="saved_model", choices=("saved_model", "tflite", "onnx", "openvino"),
        help="saved_model: TensorFlow or JAX backend; tflite: TensorFlow; onnx, openvino: TensorFlow or PyTorch",
    )
    export.add_argument(
        "--outputs", default="logits", choices=("logits", "labels"),
        help="what the exported model returns: logits (batch, H, W, classes) or int32 label maps (batch, H, W); "
        "the positional OUTPUT is where it is written",
    )
    export.add_argument(
        "--input-size", type=positive_int, nargs=2, action=_Pair, metavar=("H", "W"),
        help="fixed image size (required for tflite and on JAX; default: any size)",
    )
    export.add_argument("--batch-size", type=positive_int, help="fixed batch size (default: any; tflite: 1)")
    export.add_argument("--num-classes", type=positive_int, help="replace the classifier (new, untrained weights)")
    export.add_argument("--opset", type=positive_int, help="ONNX opset (default: the exporter's)")
    export.add_argument(
        "--quantize", choices=("int8",),
        help="int8 convolutions by ONNX Runtime's post-training quantisation (onnx, fixed --input-size)",
    )
    export.add_argument(
        "--calibration", nargs="+", metavar="IMAGES",
        help="images to calibrate the int8 ranges on: files, directories or globs",
    )
    export.add_argument(
        "--calibration-count", type=positive_int, default=16, help="use at most this many (default 16)"
    )
    export.add_argument("--calibration-method", default="minmax", choices=("minmax", "entropy", "percentile"))
    export.set_defaults(func=_export)

    presets = sub.add_parser("presets", help="list the released reference models")
    presets.set_defaults(func=_presets)

    recipes = sub.add_parser("recipes", help="list the training recipes (`keras-ann train RECIPE`)")
    recipes.set_defaults(func=_recipes)

    from keras_ann.cli_analyze import add_analyze_parser

    add_analyze_parser(sub, add_dataset_args, add_inference_args)
    return parser


# Errors of the run that are the user's to fix: one line, no traceback.
_DOMAIN_ERRORS = (ValueError, OSError, ImportError, FloatingPointError)


def _pipeline_error(error):
    """The message of an error raised inside a `tf.data` pipeline, or None.

    A `DatasetError` raised by a `tf.numpy_function` load reaches Python as
    a TensorFlow `OpError` ("Graph execution error: ...") whose text holds
    the original message after `DatasetError: `; other op errors give
    their first line of substance.
    """
    try:
        from tensorflow.errors import OpError
    except ImportError:  # pragma: no cover - TensorFlow is a dependency
        return None
    if not isinstance(error, OpError):
        return None
    text = str(getattr(error, "message", "") or error)
    match = re.search(r"DatasetError: (.*?)\]?\s*$", text, re.MULTILINE)
    if match:
        return match.group(1)
    lines = [
        line.strip() for line in text.splitlines()
        if line.strip() and not line.strip().startswith(("Graph execution error", "Detected at node", "<stack", "[["))
    ]
    return f"{type(error).__name__}: {lines[0] if lines else text.strip()}"


def main(argv=None):
    """Runs `keras-ann`; returns the exit status.

    Args:
        argv: the arguments (default: the process's command line).

    An error of the run prints `keras-ann <cmd>: error: <message>` on stderr
    (with the traceback too when `KERAS_ANN_DEBUG=1`) and gives status 1.
    Run as the process's own command line (`argv=None`), the process then
    ends at once (`os._exit` after flushing): Python's normal shutdown
    destroys a failed `tf.data` iterator while holding the GIL and would
    wait forever for the pipeline's `tf.numpy_function` loads, which need it.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
        return 0
    except Exception as error:  # noqa: BLE001 - reported below, then the process ends
        message = _pipeline_error(error)
        if message is None and isinstance(error, _DOMAIN_ERRORS):
            message = str(error) or type(error).__name__
        if message is None or os.environ.get("KERAS_ANN_DEBUG", "") not in ("", "0"):
            import traceback

            traceback.print_exc()
        if message is not None:
            print(f"{parser.prog} {args.command}: error: {message}", file=sys.stderr)
        if argv is None:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(1)
        return 1


if __name__ == "__main__":
    sys.exit(main())
