"""The `keras-ann` command line."""

import argparse
import os
import sys
import time


def _demo(args):
    import numpy as np

    import keras_ann
    from keras_ann.visualization import colorize, default_palette, side_by_side

    rng = np.random.default_rng(args.seed)
    height, width = args.size
    # A generated road-like scene: sky, buildings, road and a few objects.
    image = np.zeros((height, width, 3), np.float32)
    image[: height // 3] = (110, 160, 220)
    image[height // 3 : 2 * height // 3] = (120, 110, 100)
    image[2 * height // 3 :] = (70, 70, 75)
    for _ in range(6):
        y, x = rng.integers(0, height - 8), rng.integers(0, width - 8)
        h, w = rng.integers(4, height // 4 + 5), rng.integers(4, width // 4 + 5)
        image[y : y + h, x : x + w] = rng.uniform(0, 255, 3)
    image = np.clip(image + rng.normal(0, 8, image.shape), 0, 255).astype(np.float32)

    model = keras_ann.ANNSegmenter(backbone=args.backbone, num_classes=args.num_classes)
    model.predict(image[None], verbose=0)  # build and trace
    start = time.perf_counter()
    logits = model.predict(image[None], verbose=0)
    elapsed = time.perf_counter() - start
    labels = keras_ann.logits_to_labels(logits)[0]
    params = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    print(f"ANN {args.backbone}, {args.num_classes} classes, {params:,} trainable parameters")
    print(f"forward pass on a generated {height}x{width} image: {elapsed:.2f} s, logits {logits.shape}")
    counts = np.bincount(labels.ravel(), minlength=args.num_classes)
    print("predicted pixels per class (untrained weights):", counts.tolist())
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    palette = default_palette(args.num_classes)
    side_by_side([image.astype(np.uint8), colorize(labels, palette)], ["image", "prediction"]).save(args.output)
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


def build_parser():
    parser = argparse.ArgumentParser(
        prog="keras-ann",
        description="Asymmetric Non-local Networks for semantic segmentation (Keras 3).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run ANN on a generated image and write a PNG")
    demo.add_argument("--backbone", default="resnet18_d8")
    demo.add_argument("--num-classes", type=int, default=11)
    demo.add_argument("--size", type=int, nargs=2, default=(256, 512), metavar=("H", "W"))
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

    presets = sub.add_parser("presets", help="list the released reference models")
    presets.set_defaults(func=_presets)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    args.func(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
