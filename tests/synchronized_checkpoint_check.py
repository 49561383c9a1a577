"""A checkpoint of a two-replica TensorFlow run, loaded on every backend;
used by test_synchronized_checkpoints.py.

Usage:
    python synchronized_checkpoint_check.py save DIR   (TensorFlow: MirroredStrategy
        over two logical CPUs, synchronised batch norm, one fit step, saves
        DIR/model.keras, DIR/images.npy and DIR/logits_tensorflow.npy)
    python synchronized_checkpoint_check.py load DIR   (KERAS_BACKEND: loads
        DIR/model.keras, writes DIR/logits_<backend>.npy)
"""

import json
import os
import sys


def save(directory):
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
    )
    import keras
    import numpy as np

    import keras_ann

    keras.utils.set_random_seed(3)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        model = keras_ann.ANNSegmenter(
            "resnet18_d8", num_classes=3, head_channels=16, project_channels=8, auxiliary_channels=8
        )
        count = keras_ann.layers.set_synchronized_batch_norm(model)
        model.compile()
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (4, 40, 48, 3)).astype("float32")
    labels = rng.integers(0, 3, (4, 40, 48))
    model.fit(images, labels, batch_size=4, epochs=1, verbose=0)
    path = os.path.join(directory, "model.keras")
    model.save(path)
    np.save(os.path.join(directory, "images.npy"), images)
    np.save(os.path.join(directory, "logits_tensorflow.npy"), model.predict(images, verbose=0))
    bn = model.backbone.get_layer("stem_bn1")
    print(json.dumps({
        "replicas": strategy.num_replicas_in_sync,
        "batch_norms": count,
        "synchronized": bool(bn.synchronized),
    }))


def load(directory):
    import keras
    import numpy as np

    import keras_ann  # noqa: F401 (registers the classes for load_model)

    model = keras.saving.load_model(os.path.join(directory, "model.keras"))
    images = np.load(os.path.join(directory, "images.npy"))
    backend = keras.backend.backend()
    np.save(os.path.join(directory, f"logits_{backend}.npy"), model.predict(images, verbose=0))
    print(json.dumps({"backend": backend, "synchronized": bool(model.backbone.get_layer("stem_bn1").synchronized)}))


if __name__ == "__main__":
    {"save": save, "load": load}[sys.argv[1]](sys.argv[2])
