"""Train a few iterations under tf.distribute.MirroredStrategy on two
logical CPU devices (synchronised batch norm), with recomputation
(`remat=True`: synchronised batch norm inside recomputed blocks; the
plain path is tested by test_optimizers' MirroredStrategy fit); used by
test_distributed.py.

Usage: python distributed_check.py DATA_ROOT WORK_DIR
"""

import json
import sys

import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)

from keras_ann import training  # noqa: E402


def main(data_root, work_dir):
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    model, history = training.train(
        "ann_r18_d8_camvid_cpu", data_root, work_dir, iterations=4, batch_size=4, crop_size=(64, 64),
        scale=(120, 90), eval_interval=4, eval_steps=2, strategy=strategy, verbose=0,
        remat=True,
    )
    bn = model.backbone.get_layer("stage1_block1_bn1")
    print(json.dumps({
        "replicas": strategy.num_replicas_in_sync,
        "synchronized": bool(bn.synchronized),
        "remat": bool(model.backbone.remat),
        "iterations": int(model.optimizer.iterations.numpy()),
        "loss": history.history["loss"],
    }))


if __name__ == "__main__":
    main(*sys.argv[1:])
