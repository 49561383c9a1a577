"""The `keras-ann` command line."""

import argparse
import os
import sys


def _demo(args):
    """Train a small ANN on generated scenes for about a minute and score it."""
    import numpy as np

    import keras
    import keras_ann
    from keras_ann.callbacks import TimeBudget
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
    budget = TimeBudget(args.seconds)
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


def _train(args):
    from keras_ann.training import ResumeError, WorkDirError, train

    try:
        _, history = _train_run(args, train)
    except (ResumeError, WorkDirError) as error:
        raise SystemExit(f"keras-ann train: error: {error}")
    print(f"finished; checkpoint: {os.path.join(args.work_dir, 'latest.keras')}")


def _train_run(args, train):
    return train(
        args.recipe,
        args.data_root,
        args.work_dir,
        precision=args.precision,
        iterations=args.iterations,
        batch_size=args.batch_size,
        eval_interval=args.eval_interval,
        crop_size=tuple(args.crop_size) if args.crop_size else None,
        scale=tuple(args.scale) if args.scale else None,
        checkpoint_interval=args.checkpoint_interval,
        imagenet_checkpoint=args.imagenet,
        seed=args.seed,
        eval_steps=args.eval_steps,
        allow_changes=args.allow_changes,
        restart=args.restart,
    )


def _dataset_for(args):
    from keras_ann import data

    root = args.data_root
    if args.dataset == "cityscapes":
        return data.Cityscapes(root, args.split, test_scale=(2048, 1024))
    if args.dataset == "ade20k":
        return data.ADE20K(root, args.split, test_scale=(2048, 512))
    if args.dataset == "pascal_voc":
        return data.PascalVOC(root, args.split, test_scale=(2048, 512))
    return data.camvid(root, args.split)


def _evaluate(args):
    from keras_ann.evaluation import evaluate_dataset

    model = _load_model(args.model)
    dataset = _dataset_for(args)
    # Multi-scale testing rescales the original image (as the reference's
    # TTA pipeline); single-scale testing uses the dataset's test resize.
    pairs = dataset.raw_dataset().batch(1) if args.ms_flip else dataset.eval_dataset()
    evaluate_dataset(
        model,
        pairs,
        image_resize="cv2" if args.ms_flip else "bilinear",
        mode=args.mode,
        crop_size=tuple(args.crop) if args.crop else None,
        stride=tuple(args.stride) if args.stride else None,
        multiscale=args.ms_flip,
        class_names=dataset.class_names,
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


def _predict(args):
    import numpy as np
    from PIL import Image

    from keras_ann import inference
    from keras_ann.data.metainfo import METAINFO
    from keras_ann.visualization import dataset_palette, default_palette, overlay, side_by_side

    model = _load_model(args.model)
    os.makedirs(args.output_dir, exist_ok=True)
    dataset = args.palette
    if dataset is None:  # the dataset whose class count the model has, if unique
        matches = [name for name, info in METAINFO.items() if len(info["classes"]) == model.num_classes]
        dataset = matches[0] if len(matches) == 1 else None
    if dataset is not None:
        palette = dataset_palette(dataset)
        if len(palette) < model.num_classes:
            raise SystemExit(
                f"keras-ann predict: error: the {dataset} palette has {len(palette)} colours "
                f"but the model predicts {model.num_classes} classes."
            )
    else:
        palette = default_palette(model.num_classes)
    for path in args.images:
        image = np.asarray(Image.open(path).convert("RGB"), np.float32)
        labels = inference.predict_labels(
            model,
            image[None],
            mode=args.mode,
            crop_size=tuple(args.crop) if args.crop else None,
            stride=tuple(args.stride) if args.stride else None,
        )[0]
        stem = os.path.splitext(os.path.basename(path))[0]
        Image.fromarray(labels.astype(np.uint8)).save(os.path.join(args.output_dir, f"{stem}_labels.png"))
        blended = overlay(image, labels, palette, alpha=0.5)
        side_by_side([image.astype(np.uint8), blended]).save(os.path.join(args.output_dir, f"{stem}_overlay.png"))
        print(f"{path}: wrote {stem}_labels.png and {stem}_overlay.png")


def build_parser():
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
    train.add_argument("--data-root", required=True)
    train.add_argument("--work-dir", required=True)
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
    train.add_argument("--imagenet", help="ImageNet ResNet-V1c .pth for the backbone")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument(
        "--allow-changes", action="store_true", help="resume although the settings differ from the run's recipe.json"
    )
    train.add_argument(
        "--restart", action="store_true", help="start over from iteration 0, replacing the work dir's state and history"
    )
    train.set_defaults(func=_train)

    def add_inference_args(p):
        p.add_argument("--mode", default="whole", choices=("whole", "slide"))
        p.add_argument("--crop", type=int, nargs=2, metavar=("H", "W"))
        p.add_argument("--stride", type=int, nargs=2, metavar=("H", "W"))

    evaluate = sub.add_parser("evaluate", help="mIoU of a model on a dataset split")
    evaluate.add_argument("model", help="a .keras file, a reference .pth, or a preset name")
    evaluate.add_argument("--dataset", required=True, choices=("cityscapes", "ade20k", "pascal_voc", "camvid"))
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
