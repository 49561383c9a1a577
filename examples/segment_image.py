"""Segment one image with an ANN model and save a colour overlay.

    python examples/segment_image.py IMAGE.jpg --backbone resnet18_d8 --num-classes 19 --output out.png
    python examples/segment_image.py IMAGE.jpg --weights model.keras

Without `--weights` the model has random (untrained) weights: useful to
check the installation and timing, not the prediction.
"""

import argparse
import time

import numpy as np
from PIL import Image

import keras_ann
from keras_ann.visualization import colorize, default_palette, overlay, side_by_side


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image")
    parser.add_argument("--weights", help="a .keras file saved from an ANNSegmenter")
    parser.add_argument("--backbone", default="resnet18_d8")
    parser.add_argument("--num-classes", type=int, default=19)
    parser.add_argument("--output", default="segmentation.png")
    args = parser.parse_args()

    image = np.asarray(Image.open(args.image).convert("RGB"), np.float32)
    if args.weights:
        model = keras_ann.ANNSegmenter.from_preset(args.weights)  # checked before Keras opens it
    else:
        model = keras_ann.ANNSegmenter(backbone=args.backbone, num_classes=args.num_classes)
    start = time.perf_counter()
    labels = model.predict_labels(image[None])[0]
    print(f"{image.shape[1]}x{image.shape[0]} image segmented in {time.perf_counter() - start:.2f} s")
    palette = default_palette(model.num_classes)
    panels = [image.astype(np.uint8), colorize(labels, palette), overlay(image, labels, palette)]
    side_by_side(panels, ["image", "labels", "overlay"]).save(args.output)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
