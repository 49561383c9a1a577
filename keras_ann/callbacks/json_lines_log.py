"""A callback writing one JSON object per checkpoint interval to `log.jsonl`."""

import json
import math
import os
import time

import keras
import numpy as np

__all__ = ["JsonLinesLog"]


def _number(value):
    value = float(value)
    return value if math.isfinite(value) else None


class JsonLinesLog(keras.callbacks.Callback):
    """Append a line of JSON to `filepath` at the end of every epoch (one
    checkpoint interval of `train()`): `epoch`, `iteration`, `time` (Unix
    time of the line, for curves over wall time), `lr` (the optimiser's
    learning rate now), every value of the logs (`loss`,
    `decode_loss`, `aux_loss`, `val_mIoU`, ...; NaN written as `null`) and,
    after an evaluation by `evaluation` (a `MeanIoUEvaluation` placed before
    this callback), `"IoU"` and `"Acc"`: per-class scores in %, by class
    name when it has them.

    Appends, so a resumed run continues the same file; read it with
    `[json.loads(line) for line in open(path)]` or `pandas.read_json(path,
    lines=True)`.

    Args:
        filepath: e.g. `work_dir/log.jsonl`.
        evaluation: optional `MeanIoUEvaluation` whose per-class scores go
            to the log.
    """

    def __init__(self, filepath, evaluation=None):
        super().__init__()
        self.filepath = filepath
        self.evaluation = evaluation
        self._seen = 0

    def on_train_begin(self, logs=None):
        self._seen = len(self.evaluation.history) if self.evaluation is not None else 0

    def on_epoch_end(self, epoch, logs=None):
        optimizer = self.model.optimizer
        record = {
            "epoch": epoch + 1,
            "iteration": int(keras.ops.convert_to_numpy(optimizer.iterations)),
            "time": round(time.time(), 3),
            "lr": _number(keras.ops.convert_to_numpy(optimizer.learning_rate)),
        }
        record.update({key: _number(value) for key, value in (logs or {}).items() if np.ndim(value) == 0})
        if self.evaluation is not None and len(self.evaluation.history) > self._seen:
            self._seen = len(self.evaluation.history)
            results = self.evaluation.history[-1]
            names = self.evaluation.class_names or [str(i) for i in range(len(results["IoU"]))]
            for key in ("IoU", "Acc"):
                record[key] = {name: _number(v) for name, v in zip(names, results[key])}
        directory = os.path.dirname(os.path.abspath(self.filepath))
        os.makedirs(directory, exist_ok=True)
        with open(self.filepath, "a") as f:
            f.write(json.dumps(record) + "\n")
