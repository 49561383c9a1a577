"""The `keras-ann` command line."""

import argparse
import os
import sys
import time


def _demo(args):
    """Train a small ANN on generated scenes for about a minute and score it."""
    import numpy as np

    import keras
    import keras_ann
    from keras_ann.data.synthetic import SYNTHETIC_CLASSES, SYNTHETIC_PALETTE, make_scenes
    from keras_ann.evaluation import evaluate_dataset
    from keras_ann.optimizers import TorchSGD
    from keras_ann.schedules import PolyDecay
    from keras_ann.visualization import colorize, side_by_side

    keras.utils.set_random_seed(args.seed)
    size = args.size
    print(f"generating {args.train_images} training and {args.val_images} validation scenes ({size}x{size}) ...")
    train_x, train_y = make_scenes(args.train_images, size, size, seed=args.seed)
    val_x, val_y = make_scenes(args.val_images, size, size, seed=args.seed + 1)
    backbone = keras_ann.ResNetBackbone(depth=18, output_stride=8, stem_channels=32, base_channels=32)
    model = keras_ann.ANNSegmenter(
        backbone, num_classes=len(SYNTHETIC_CLASSES), head_channels=128, project_channels=64, auxiliary_channels=64
    )
    params = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    print(f"ANN (ResNet-18-D8, half width, AFNB + APNB), {params:,} trainable parameters")
    optimizer = TorchSGD(PolyDecay(args.lr, decay_steps=args.iterations, power=0.9, end_learning_rate=1e-4))
    model.compile(optimizer=optimizer)
    budget = _TimeBudget(args.seconds)
    steps_per_epoch = 10
    import tensorflow as tf

    # An endless shuffled stream: iteration-based training, as the recipes.
    train_ds = (
        tf.data.Dataset.from_tensor_slices((train_x, train_y))
        .shuffle(len(train_x), seed=args.seed)
        .repeat()
        .batch(args.batch_size, drop_remainder=True)
    )
    model.fit(
        train_ds,
        epochs=args.iterations // steps_per_epoch,
        steps_per_epoch=steps_per_epoch,
        callbacks=[budget],
        verbose=2,
    )
    print(f"trained {budget.iterations} iterations in {budget.elapsed:.0f} s")
    results = evaluate_dataset(
        model,
        ((val_x[i : i + 8], val_y[i : i + 8]) for i in range(0, len(val_x), 8)),
        class_names=SYNTHETIC_CLASSES,
        verbose=0,
    )
    from keras_ann.metrics import format_table

    print(format_table(results, SYNTHETIC_CLASSES))
    labels = model.predict_labels(val_x[:4])
    rows = []
    for image, truth, pred in zip(val_x[:4], val_y[:4], labels):
        rows.append(np.concatenate([image.astype(np.uint8), colorize(truth, SYNTHETIC_PALETTE), colorize(pred, SYNTHETIC_PALETTE)], 1))
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    grid = np.concatenate(rows, 0).repeat(3, axis=0).repeat(3, axis=1)  # 3x, nearest
    side_by_side([grid], ["image | ground truth | prediction"]).save(args.output)
    print(f"wrote {args.output}")


class _TimeBudget:
    """Keras callback stopping `fit()` once a time budget is spent."""

    def __new__(cls, seconds):
        import keras

        class TimeBudget(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.iterations = 0
                self.elapsed = 0.0

            def on_train_begin(self, logs=None):
                self.start = time.perf_counter()

            def on_train_batch_end(self, batch, logs=None):
                self.iterations += 1
                self.elapsed = time.perf_counter() - self.start
                if self.elapsed > seconds:
                    self.model.stop_training = True

        return TimeBudget()


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


def _load_model(spec, **overrides):
    import keras_ann

    return keras_ann.ANNSegmenter.from_preset(spec, **overrides)


def _export(args):
    from keras_ann.export import export_model, validate_arguments

    options = dict(
        format=args.format,
        output=args.output_kind,
        input_size=args.input_size,
        batch_size=args.batch_size,
        opset=args.opset,
    )
    try:
        # Before loading the model, which may download a preset.
        validate_arguments(args.output, **options)
    except (ValueError, ImportError) as error:
        raise SystemExit(f"keras-ann export: error: {error}")
    overrides = {} if args.num_classes is None else {"num_classes": args.num_classes}
    model = _load_model(args.model, **overrides)
    print(export_model(model, args.output, **options).summary())


def _recipe(args):
    """The recipe of `keras-ann train`, with the flags applied."""
    from keras_ann.recipes import get_recipe
    from keras_ann.weights.imagenet import requested_backbone_init

    changes = dict(
        iterations=args.iterations,
        total_batch=args.batch_size,
        val_interval=args.eval_interval,
        crop_size=tuple(args.crop_size) if args.crop_size else None,
        scale=tuple(args.scale) if args.scale else None,
    )
    try:
        recipe = get_recipe(args.recipe).replace(**{k: v for k, v in changes.items() if v is not None})
    except ValueError as error:
        raise SystemExit(f"keras-ann train: error: {error}")
    return requested_backbone_init(recipe, args.imagenet)


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
    from keras_ann.training import train

    model, history = train(
        recipe,
        args.data_root,
        args.work_dir,
        precision=args.precision,
        checkpoint_interval=args.checkpoint_interval,
        # The recipe holds the choice; "none" only to say so in the log.
        imagenet_checkpoint="none" if (args.imagenet or "").lower() == "none" else None,
        seed=args.seed,
        eval_steps=args.eval_steps,
    )
    print(f"finished; checkpoint: {os.path.join(args.work_dir, 'latest.keras')}")


def _test_protocol(model, args):
    """How to test `model`: the flags, else the model's own test
    configuration (presets and `train()` store the reference's), else
    whole-image inference at the data's test scale.

    Returns:
        dict with `mode`, `crop_size`, `stride`, `test_scale`, `data`,
        `class_names` and `palette` (`None` where unknown).
    """
    saved = dict(getattr(model, "test_config", None) or {})
    mode = args.mode or saved.get("mode") or "whole"
    own_window = mode == saved.get("mode")  # the model's window belongs to its mode

    def pair(flag, key, use_saved=True):
        if flag:
            return tuple(flag)
        value = saved.get(key) if use_saved else None
        return tuple(value) if value else None

    names = saved.get("class_names")
    palette = saved.get("palette")
    fits = names is not None and len(names) == model.num_classes
    return {
        "mode": mode,
        "crop_size": pair(args.crop, "crop_size", own_window),
        "stride": pair(args.stride, "stride", own_window),
        "test_scale": pair(args.test_scale, "test_scale"),
        "data": getattr(args, "dataset", None) or saved.get("data"),
        "class_names": tuple(names) if fits else None,
        "palette": [tuple(c) for c in palette] if fits and palette else None,
    }


def _evaluate(args):
    from keras_ann.data.configs import build_dataset, get_data_config
    from keras_ann.evaluation import evaluate_dataset

    model = _load_model(args.model)
    protocol = _test_protocol(model, args)
    if protocol["data"] is None:
        raise SystemExit(
            f"keras-ann evaluate: error: --dataset is required: {args.model} carries no test configuration "
            "naming its data."
        )
    config = get_data_config(protocol["data"])
    options = {"num_classes": model.num_classes, "class_names": protocol["class_names"]} if config.classes is None else {}
    dataset = build_dataset(config, args.data_root, args.split, **options)
    names = protocol["class_names"]
    if names is None:
        names = dataset.class_names if len(dataset.class_names) == model.num_classes else None
    # Multi-scale testing rescales the original image (as the reference's
    # TTA pipeline); single-scale testing uses the test resize.
    pairs = dataset.raw_dataset().batch(1) if args.ms_flip else dataset.eval_dataset(scale=protocol["test_scale"])
    print(
        f"testing {protocol['mode']}"
        + (f" {protocol['crop_size']} / {protocol['stride']}" if protocol["mode"] == "slide" else "")
        + f" at scale {protocol['test_scale'] or dataset.test_scale} on {config.name} {args.split}"
    )
    evaluate_dataset(
        model,
        pairs,
        image_resize="cv2" if args.ms_flip else "bilinear",
        mode=protocol["mode"],
        crop_size=protocol["crop_size"],
        stride=protocol["stride"],
        multiscale=args.ms_flip,
        class_names=names,
        steps=args.steps,
        verbose=2,
    )


def _benchmark(args):
    import json

    from keras_ann.benchmark import format_results, resolve_spec, run_benchmark

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
        )
    except ValueError as error:
        raise SystemExit(f"keras-ann benchmark: error: {error}")
    if args.dry_run:
        h, w = spec.input_size
        line = f"{spec.model}: {spec.model_config}, inference {spec.batch_size}x{h}x{w} {spec.precision}"
        if spec.train:
            th, tw = spec.train_size
            line += f", training {spec.train_batch_size}x{th}x{tw}"
        print(line)
        return
    result = run_benchmark(spec, verbose=True)
    print(format_results([result]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


def _predict_labels(model, image, protocol):
    """The reference's test of one image: keep-ratio resize to the test
    scale, whole or sliding-window logits, resized back, argmax."""
    import numpy as np

    from keras_ann import inference
    from keras_ann.data.transforms import test_transform
    from keras_ann.ops import bilinear_resize

    height, width = image.shape[:2]
    resized = np.asarray(test_transform(image.astype(np.uint8), protocol["test_scale"]))
    scores = inference.predict_logits(
        model, resized[None], mode=protocol["mode"], crop_size=protocol["crop_size"], stride=protocol["stride"]
    )
    if tuple(scores.shape[1:3]) != (height, width):
        scores = bilinear_resize(scores, (height, width), getattr(model, "align_corners", False))
    return np.asarray(scores).argmax(-1)[0]


def _predict(args):
    import numpy as np
    from PIL import Image

    from keras_ann.data.metainfo import METAINFO
    from keras_ann.visualization import dataset_palette, default_palette, overlay, side_by_side

    model = _load_model(args.model)
    protocol = _test_protocol(model, args)
    os.makedirs(args.output_dir, exist_ok=True)
    dataset = args.palette
    palette = protocol["palette"] if dataset is None else None
    if dataset is None and palette is None:  # the dataset whose class count the model has, if unique
        matches = [name for name, info in METAINFO.items() if len(info["classes"]) == model.num_classes]
        dataset = matches[0] if len(matches) == 1 else None
    if dataset is not None:
        palette = dataset_palette(dataset)
        if len(palette) < model.num_classes:
            raise SystemExit(
                f"keras-ann predict: error: the {dataset} palette has {len(palette)} colours "
                f"but the model predicts {model.num_classes} classes."
            )
    elif palette is None:
        palette = default_palette(model.num_classes)
    for path in args.images:
        image = np.asarray(Image.open(path).convert("RGB"), np.float32)
        labels = _predict_labels(model, image, protocol)
        stem = os.path.splitext(os.path.basename(path))[0]
        Image.fromarray(labels.astype(np.uint8)).save(os.path.join(args.output_dir, f"{stem}_labels.png"))
        blended = overlay(image, labels, palette, alpha=0.5)
        side_by_side([image.astype(np.uint8), blended]).save(os.path.join(args.output_dir, f"{stem}_overlay.png"))
        print(f"{path}: wrote {stem}_labels.png and {stem}_overlay.png")


def build_parser():
    from keras_ann.data.configs import DATA_CONFIGS

    parser = argparse.ArgumentParser(
        prog="keras-ann",
        description="Asymmetric Non-local Networks for semantic segmentation (Keras 3).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo", help="train a small ANN on generated scenes (about a minute on a CPU), score it, write a PNG"
    )
    demo.add_argument("--seconds", type=float, default=60.0, help="training time budget")
    demo.add_argument("--iterations", type=int, default=200, help="iterations of the poly schedule")
    demo.add_argument("--batch-size", type=int, default=8)
    demo.add_argument("--lr", type=float, default=0.05)
    demo.add_argument("--size", type=int, default=64)
    demo.add_argument("--train-images", type=int, default=512)
    demo.add_argument("--val-images", type=int, default=48)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--output", default="outputs/demo.png")
    demo.set_defaults(func=_demo)

    convert = sub.add_parser(
        "convert", help="convert a reference (mmsegmentation) ANN .pth file or a preset to .keras"
    )
    convert.add_argument("checkpoint", help="a .pth file or a preset name")
    convert.add_argument("output", help="the .keras file to write")
    convert.add_argument("--align-corners", choices=("true", "false"))
    convert.add_argument("--num-classes", type=int)
    convert.set_defaults(func=_convert)

    train = sub.add_parser("train", help="train a recipe (resumes from --work-dir)")
    train.add_argument("recipe", help="a recipe name, e.g. ann_r50_d8_cityscapes_512x1024_40k")
    train.add_argument("--data-root", help="the dataset root (required unless --print-config)")
    train.add_argument("--work-dir", help="checkpoints, logs and the resume state (required unless --print-config)")
    train.add_argument(
        "--print-config", action="store_true",
        help="print the fully resolved recipe (after the other flags) as JSON and exit; reads no data",
    )
    train.add_argument("--precision", default="float32", choices=("float32", "mixed_float16", "mixed_bfloat16"))
    train.add_argument("--iterations", type=int)
    train.add_argument("--batch-size", type=int, help="total batch over all devices")
    train.add_argument("--eval-interval", type=int)
    train.add_argument("--eval-steps", type=int, help="evaluate on this many images only")
    train.add_argument("--crop-size", type=int, nargs=2, metavar=("H", "W"))
    train.add_argument("--scale", type=int, nargs=2, metavar=("LONG", "SHORT"), help="RandomResize and test Resize scale")
    train.add_argument(
        "--checkpoint-interval",
        type=int,
        help="save the resume state every N iterations (divides --eval-interval); a killed run loses at most N",
    )
    train.add_argument(
        "--imagenet", metavar="PATH|URL|none",
        help="ImageNet ResNet-V1c checkpoint for the backbone (default: the recipe's, downloaded once; "
        "'none': from scratch)",
    )
    train.add_argument("--seed", type=int, default=0)
    train.set_defaults(func=_train)

    def add_inference_args(p):
        p.add_argument(
            "--mode", choices=("whole", "slide"),
            help="default: the model's test configuration (the reference's for presets), else whole",
        )
        p.add_argument("--crop", type=int, nargs=2, metavar=("H", "W"), help="slide window (default: the model's)")
        p.add_argument("--stride", type=int, nargs=2, metavar=("H", "W"), help="slide stride (default: the model's)")
        p.add_argument(
            "--test-scale", type=int, nargs=2, metavar=("LONG", "SHORT"),
            help="keep-ratio resize before inference (default: the model's, else the dataset's)",
        )

    evaluate = sub.add_parser("evaluate", help="mIoU of a model on a dataset split")
    evaluate.add_argument("model", help="a .keras file, a reference .pth, or a preset name")
    evaluate.add_argument(
        "--dataset", choices=tuple(DATA_CONFIGS) + ("pascal_voc",),
        help="the data config (default: the model's, e.g. a preset's)",
    )
    evaluate.add_argument("--data-root", required=True)
    evaluate.add_argument("--split", default="val")
    evaluate.add_argument("--ms-flip", action="store_true", help="multi-scale + flip test")
    evaluate.add_argument("--steps", type=int, help="evaluate this many images only")
    add_inference_args(evaluate)
    evaluate.set_defaults(func=_evaluate)

    predict = sub.add_parser("predict", help="segment images and write label maps and overlays")
    predict.add_argument("model", help="a .keras file, a reference .pth, or a preset name")
    predict.add_argument("images", nargs="+")
    predict.add_argument("--output-dir", default="outputs/predictions")
    predict.add_argument(
        "--palette",
        choices=("cityscapes", "ade20k", "pascal_voc", "camvid"),
        help="colours of the overlay (default: the dataset with the model's number of classes, else generated)",
    )
    add_inference_args(predict)
    predict.set_defaults(func=_predict)

    benchmark = sub.add_parser(
        "benchmark", help="inference fps, training step time and peak memory of a preset or backbone"
    )
    benchmark.add_argument("model", help="a preset name (see `keras-ann presets`) or a backbone name, e.g. resnet50_d8")
    benchmark.add_argument("--num-classes", type=int, help="classes (required with a backbone name)")
    benchmark.add_argument(
        "--input-size", type=int, nargs=2, metavar=("H", "W"),
        help="inference image size (default: the preset's test window or crop)",
    )
    benchmark.add_argument("--batch-size", type=int, default=1, help="inference batch")
    benchmark.add_argument("--precision", default="float32", choices=("float32", "mixed_float16", "mixed_bfloat16"))
    benchmark.add_argument("--runs", type=int, default=5, help="timed runs per phase (median reported)")
    benchmark.add_argument("--warmup", type=int, default=1, help="untimed runs first")
    benchmark.add_argument(
        "--train", action=argparse.BooleanOptionalAction, default=True,
        help="also time training steps with the recipe's loss and optimiser",
    )
    benchmark.add_argument(
        "--train-size", type=int, nargs=2, metavar=("H", "W"), help="training crop (default: the preset's)"
    )
    benchmark.add_argument(
        "--train-batch-size", type=int, help="images per training step (default: the recipe's images per GPU)"
    )
    benchmark.add_argument(
        "--jit-compile", action=argparse.BooleanOptionalAction, default=None,
        help="XLA compilation (default: Keras's choice; JAX always compiles)",
    )
    benchmark.add_argument("--json", help="also write the full results to this JSON file")
    benchmark.add_argument("--dry-run", action="store_true", help="check the arguments and print the plan only")
    benchmark.set_defaults(func=_benchmark)

    export = sub.add_parser(
        "export", help="write a self-contained SavedModel, TFLite or ONNX model (raw RGB in, logits or labels out)"
    )
    export.add_argument("model", help="a .keras file, a reference .pth, or a preset name")
    export.add_argument("output", help="the directory (saved_model) or file (.tflite, .onnx) to write")
    export.add_argument("--format", default="saved_model", choices=("saved_model", "tflite", "onnx"))
    export.add_argument(
        "--output", dest="output_kind", default="logits", choices=("logits", "labels"),
        help="logits (batch, H, W, classes) or int32 label maps (batch, H, W)",
    )
    export.add_argument(
        "--input-size", type=int, nargs=2, metavar=("H", "W"),
        help="fixed image size (required for tflite; default: any size)",
    )
    export.add_argument("--batch-size", type=int, help="fixed batch size (default: any; tflite: 1)")
    export.add_argument("--num-classes", type=int, help="replace the classifier (new, untrained weights)")
    export.add_argument("--opset", type=int, help="ONNX opset (default: tf2onnx's)")
    export.set_defaults(func=_export)

    presets = sub.add_parser("presets", help="list the released reference models")
    presets.set_defaults(func=_presets)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    args.func(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
