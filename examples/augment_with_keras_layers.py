"""Train ANNSegmenter on dicts augmented by Keras 3 preprocessing layers.

Keras 3's image augmentation layers (and KerasHub's pipelines) pass
`{"images": ..., "segmentation_masks": ...}` dicts and transform the masks
with the images. `ANNSegmenter.fit()`, `evaluate()` and `predict()` take
such dicts (arrays or a `tf.data.Dataset` of them) directly.

Images are RGB in 0..255 (the model normalises them itself; float images
all in [0, 1] get a warning). Masks hold class indices, 255 = ignored,
shape `(H, W)` or `(H, W, 1)`; one-hot masks are refused.

Run: `python examples/augment_with_keras_layers.py [--size 64] [--steps 2]`.
"""

import argparse

import keras
import numpy as np
import tensorflow as tf

import keras_ann


def synthetic_pairs(count, size, num_classes, seed=0):
    """Blocky label maps and images whose colour follows the label."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, (count, size // 8, size // 8))
    labels = labels.repeat(8, axis=1).repeat(8, axis=2).astype("int32")
    colours = rng.uniform(0, 255, (num_classes, 3))
    images = (colours[labels] + rng.normal(0, 10, labels.shape + (3,))).clip(0, 255).astype("float32")
    return images, labels[..., None]


def main(size=64, steps=2, num_classes=3):
    images, masks = synthetic_pairs(8, size, num_classes)
    augment = keras.Sequential(
        [keras.layers.RandomFlip("horizontal", seed=1), keras.layers.RandomTranslation(0.1, 0.1, seed=2)]
    )

    def augmented(element):
        out = augment(element, training=True)
        # Nearest-neighbour transforms of the masks can leave fill values:
        # make sure they stay integer class indices.
        return {"images": out["images"], "segmentation_masks": tf.cast(out["segmentation_masks"], "int32")}

    train = (
        tf.data.Dataset.from_tensor_slices({"images": images, "segmentation_masks": masks})
        .batch(4)
        .map(augmented)
        .repeat()
    )
    val = tf.data.Dataset.from_tensor_slices({"images": images, "segmentation_masks": masks}).batch(4)

    backbone = keras_ann.ResNetBackbone(depth=18, output_stride=8, stem_channels=16, base_channels=16)
    model = keras_ann.ANNSegmenter(backbone=backbone, num_classes=num_classes)
    model.compile()  # SegmentationCrossEntropy, SegmentationIoU and PixelAccuracy
    history = model.fit(train, steps_per_epoch=steps, epochs=1, validation_data=val, verbose=0)
    for key, values in history.history.items():
        print(f"{key}: {values[-1]:.4f}")
    labels = model.predict_labels(images[:2])
    print("predicted label maps:", labels.shape)
    return history


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=2)
    args = parser.parse_args()
    main(args.size, args.steps)
