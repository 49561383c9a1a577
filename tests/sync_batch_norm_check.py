"""Synchronised `TorchBatchNormalization` under tf.distribute.MirroredStrategy
on two logical CPU devices: the moving statistics are those of the whole
global batch, with the unbiased variance over all replicas' values (as
PyTorch's `SyncBatchNorm`); used by test_train_step_parity.py.

Usage: python sync_batch_norm_check.py  (prints one JSON line)
"""

import json

import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)

from keras_ann.layers import TorchBatchNormalization  # noqa: E402


def main():
    rng = np.random.default_rng(0)
    x = rng.normal(1.0, 3.0, (4, 3, 5, 2))  # two images per replica
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        bn = TorchBatchNormalization(
            momentum=0.9, epsilon=1e-5, synchronized=True, dtype="float64"
        )
        bn.build((None, 3, 5, 2))

    @tf.function
    def step(inputs):
        return bn(inputs, training=True, statistics_updates=2)

    dataset = tf.data.Dataset.from_tensor_slices(x).batch(4)
    dataset = strategy.experimental_distribute_dataset(dataset)
    for batch in dataset:
        strategy.run(step, args=(batch,))
    n = x.shape[0] * x.shape[1] * x.shape[2]
    mean = x.mean(axis=(0, 1, 2))
    unbiased = x.var(axis=(0, 1, 2)) * n / (n - 1)
    want_mean, want_var = np.zeros(2), np.ones(2)
    for _ in range(2):
        want_mean = 0.9 * want_mean + 0.1 * mean
        want_var = 0.9 * want_var + 0.1 * unbiased
    replicas = [np.asarray(v) for v in strategy.experimental_local_results(bn.moving_variance)]
    print(json.dumps({
        "replicas": strategy.num_replicas_in_sync,
        "mean_error": float(np.abs(np.asarray(bn.moving_mean) - want_mean).max()),
        "variance_error": max(float(np.abs(r - want_var).max()) for r in replicas),
    }))


if __name__ == "__main__":
    main()
