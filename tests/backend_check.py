"""Run keras-ann under the backend in KERAS_BACKEND; used by test_backends.

Usage: python backend_check.py WEIGHTS.weights.h5 IMAGES.npy OUT_DIR

Loads the weights saved by the TensorFlow test into a fresh resnet18_d8
ANNSegmenter, writes its logits and the outputs of AFNB/APNB on fixed
inputs, then trains two steps with fit() and writes the losses, and
trains one step without recomputation and one with it for all but the last
stage (recomputed segments and plain ones in one training call), from the
same weights, and writes the largest difference of their weights and
moving statistics after it.
"""

import os
import sys

import keras
import numpy as np

import keras_ann


def main(weights, images_path, out_dir):
    images = np.load(images_path)
    model = keras_ann.ANNSegmenter(backbone="resnet18_d8", num_classes=4, align_corners=True)
    model.load_weights(weights)
    np.save(os.path.join(out_dir, "logits.npy"), np.asarray(model.predict(images, verbose=0)))

    rng = np.random.default_rng(0)
    low = rng.normal(size=(1, 9, 11, 16)).astype("float32")
    high = rng.normal(size=(1, 9, 11, 32)).astype("float32")
    afnb = keras_ann.AFNB(8, 32)
    apnb = keras_ann.APNB(8, 32, query_scales=(1, 2))
    afnb([low, high])
    apnb(high)
    for layer in (afnb, apnb):
        layer.set_weights([rng.normal(0, 0.2, w.shape).astype("float32") + (w.path.endswith("variance") * 2) for w in layer.weights])
    np.save(os.path.join(out_dir, "afnb.npy"), keras.ops.convert_to_numpy(afnb([low, high])))
    np.save(os.path.join(out_dir, "apnb.npy"), keras.ops.convert_to_numpy(apnb(high)))

    labels = (images.mean(-1) > 127).astype("int32")
    model.compile()
    history = model.fit(images, labels, epochs=2, batch_size=2, verbose=0)
    np.save(os.path.join(out_dir, "losses.npy"), np.asarray(history.history["loss"]))
    np.save(os.path.join(out_dir, "remat.npy"), _remat_difference(weights, images, labels))
    print("backend", keras.backend.backend(), "ok")


def _remat_difference(weights, images, labels):
    """`[largest |difference|, largest |value|]` over the weights and moving
    statistics of two models after one training step from `weights`, the
    second recomputing the activations of its backbone's stem and first
    three stages (stage 4 runs as it is)."""
    trained = []
    for remat in (False, ("stem", "stage1", "stage2", "stage3")):
        backbone = keras_ann.ResNetBackbone.from_name("resnet18_d8", remat=remat)
        # No dropout: the two models' dropout generators would differ.
        model = keras_ann.ANNSegmenter(backbone=backbone, num_classes=4, align_corners=True, dropout=0.0)
        model.load_weights(weights)
        model.compile(optimizer=keras_ann.optimizers.TorchSGD(0.01, momentum=0.9))
        model.train_on_batch(images, labels)
        trained.append([keras.ops.convert_to_numpy(w) for w in model.weights])
    difference = max(float(np.abs(a - b).max()) for a, b in zip(*trained))
    return np.array([difference, max(float(np.abs(a).max()) for a in trained[0])])


if __name__ == "__main__":
    main(*sys.argv[1:])
