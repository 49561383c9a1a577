"""Train a few iterations under the JAX backend with
keras.distribution.DataParallel over two CPU devices; used by
test_distributed.py (run with KERAS_BACKEND=jax and
XLA_FLAGS=--xla_force_host_platform_device_count=2).

Usage: python jax_data_parallel_check.py DATA_ROOT WORK_DIR
"""

import json
import sys

import jax
import keras

from keras_ann import training


def main(data_root, work_dir):
    model, history = training.train(
        "ann_r18_d8_camvid_cpu", data_root, work_dir, iterations=2, batch_size=4, crop_size=(64, 64),
        scale=(120, 90), eval_interval=2, eval_steps=1, verbose=0,
    )
    distribution = keras.distribution.distribution()
    print(json.dumps({
        "backend": keras.backend.backend(),
        "devices": len(jax.devices()),
        "distribution": type(distribution).__name__,
        "iterations": int(keras.ops.convert_to_numpy(model.optimizer.iterations)),
        "loss": history.history["loss"],
    }))


if __name__ == "__main__":
    main(*sys.argv[1:])
