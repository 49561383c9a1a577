"""Run keras-ann under the backend in KERAS_BACKEND; used by test_backends.

Usage: python backend_check.py WEIGHTS.weights.h5 IMAGES.npy OUT_DIR

Loads the weights saved by the TensorFlow test into a fresh resnet18_d8
ANNSegmenter, writes its logits and the outputs of AFNB/APNB on fixed
inputs, then trains two steps with fit() and writes the losses.
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
    print("backend", keras.backend.backend(), "ok")


if __name__ == "__main__":
    main(*sys.argv[1:])
