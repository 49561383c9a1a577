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
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    args.func(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
