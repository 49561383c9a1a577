"""One worker of a two-process MultiWorkerMirroredStrategy run on localhost;
used by test_distributed.py.

Usage: python multi_worker_check.py INDEX PORT0,PORT1 DATA_ROOT WORK_DIR REPORT [LINGER]

`TF_CONFIG` is set before TensorFlow starts, so `train()` picks the
strategy itself (`default_strategy()`), as on a real cluster. The worker
writes a JSON report to the file REPORT, then stays LINGER seconds more
(default 0) before exiting: a worker that outlives the chief would then
see the chief's coordination service gone, unless the chief waits for it.
"""

import json
import os
import sys
import time

index, ports, data_root, work_dir, report = int(sys.argv[1]), sys.argv[2].split(","), *sys.argv[3:6]
linger = float(sys.argv[6]) if len(sys.argv) > 6 else 0.0
os.environ["TF_CONFIG"] = json.dumps(
    {"cluster": {"worker": [f"localhost:{p}" for p in ports]}, "task": {"type": "worker", "index": index}}
)

import numpy as np  # noqa: E402

from keras_ann import training  # noqa: E402


def main():
    model, history = training.train(
        "ann_r18_d8_camvid_cpu", data_root, work_dir, iterations=4, batch_size=4, crop_size=(64, 64),
        scale=(120, 90), eval_interval=4, checkpoint_interval=2, eval_steps=2, verbose=0,
    )  # fmt: skip
    bn = model.backbone.get_layer("stage1_block1_bn1")
    values = {
        "strategy": type(model.distribute_strategy).__name__,
        "replicas": model.distribute_strategy.num_replicas_in_sync,
        "synchronized": bool(bn.synchronized),
        "iterations": int(model.optimizer.iterations.numpy()),
        "loss": [float(v) for v in history.history["loss"]],
        "val_mIoU": history.history["val_mIoU"][-1],
        "weights": float(sum(np.abs(w.astype(np.float64)).sum() for w in model.get_weights())),
    }  # fmt: skip
    with open(report + ".tmp", "w") as f:
        json.dump(values, f)
    os.replace(report + ".tmp", report)
    time.sleep(linger)


if __name__ == "__main__":
    main()
