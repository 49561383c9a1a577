"""What a training run leaves behind: best checkpoint, JSON-lines log, and
the user's callbacks (issue 14 item 4)."""

import json
import math
import os
import time

import keras
import numpy as np
import pytest

import keras_ann
from keras_ann.callbacks import BestCheckpoint, JsonLinesLog, Snapshots
from keras_ann.callbacks.unevaluated import hide_unevaluated
from testing_utils import camvid_subset, read_events


class Recorder(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.logs = []

    def on_epoch_end(self, epoch, logs=None):
        self.logs.append(dict(logs or {}))


def test_train_writes_best_checkpoint_and_log_and_runs_user_callbacks(tmp_path):
    from keras_ann import training

    root = camvid_subset(tmp_path, 2)
    work = str(tmp_path / "run")
    recorder = Recorder()
    stop = keras.callbacks.EarlyStopping(monitor="val_mIoU", mode="max", patience=10)
    model, history = training.train(
        "ann_r18_d8_camvid_cpu", root, work, iterations=4, batch_size=2, crop_size=(32, 32),
        scale=(64, 48), eval_interval=2, checkpoint_interval=1, eval_steps=1, seed=0, verbose=0,
        imagenet_checkpoint="none", callbacks=[recorder, stop], keep_snapshots=1,
    )  # fmt: skip
    # User callbacks run after keras-ann's: they see the evaluation and both losses.
    assert len(recorder.logs) == 4
    # Intervals without an evaluation: hidden from user callbacks, NaN in the history.
    assert "val_mIoU" not in recorder.logs[0] and np.isfinite(recorder.logs[1]["val_mIoU"])
    assert math.isnan(history.history["val_mIoU"][0]) and len(history.history["val_mIoU"]) == 4
    assert {"loss", "decode_loss", "aux_loss"} <= set(recorder.logs[0])
    assert stop.model is model

    with open(os.path.join(work, "log.jsonl")) as f:
        lines = [json.loads(line) for line in f]
    assert [line["iteration"] for line in lines] == [1, 2, 3, 4]
    for line in lines:
        assert line["loss"] == pytest.approx(line["decode_loss"] + line["aux_loss"], rel=1e-5)
        assert line["lr"] > 0
    assert lines[0]["val_mIoU"] is None and "IoU" not in lines[0]
    assert set(lines[1]["IoU"]) == set(model.test_protocol.class_names)
    assert lines[1]["val_mIoU"] == pytest.approx(recorder.logs[1]["val_mIoU"])
    assert os.path.exists(os.path.join(work, "history.csv"))
    # TensorBoard: at each evaluation (iterations 2 and 4) the per-class
    # IoU and the first validation image with its ground truth and prediction.
    events = read_events(os.path.join(work, "logs", "validation"))
    assert [step for step, _ in events["val/predictions"]] == [2, 4]
    iou_tags = {tag for tag in events if tag.startswith("val/IoU/")}
    assert iou_tags and iou_tags <= {f"val/IoU/{name}" for name in model.test_protocol.class_names}
    for tag in iou_tags:
        assert {step for step, _ in events[tag]} <= {2, 4}
    # One snapshot per evaluation (iterations 2 and 4), the newest kept.
    assert sorted(n for n in os.listdir(work) if n.startswith("iter_")) == ["iter_4.keras"]

    scores = history.history["val_mIoU"]
    best = max(s for s in scores if np.isfinite(s))
    with open(os.path.join(work, "best_mIoU.keras.json")) as f:
        state = json.load(f)
    assert state["best"] == pytest.approx(best)
    assert state["iteration"] in (2, 4)
    assert stop.best == pytest.approx(best)  # NaN intervals never count as the best
    assert isinstance(keras.saving.load_model(os.path.join(work, "best_mIoU.keras")), keras_ann.ANNSegmenter)


class _Model:
    """Stands in for a model in unit tests of the callbacks: an optimiser
    with an iteration count and learning rate, and `save`."""

    def __init__(self, iteration=7, learning_rate=0.01):
        self.optimizer = keras.optimizers.SGD(learning_rate)
        self.optimizer.iterations.assign(iteration)
        self.saved = []

    def save(self, path):
        with open(path, "w") as f:
            f.write("model")
        self.saved.append(path)


def test_best_checkpoint_keeps_the_best_across_a_restart(tmp_path):
    path = str(tmp_path / "best_mIoU.keras")
    first = BestCheckpoint(path)
    first.set_model(_Model(iteration=10))
    first.on_epoch_end(0, {"val_mIoU": float("nan")})
    assert not os.path.exists(path)
    first.on_epoch_end(1, {"val_mIoU": 40.0})
    first.on_epoch_end(2, {"val_mIoU": 30.0})
    assert first.best == 40.0 and len(first.model.saved) == 1
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".tmp")]

    # A resumed run (a new callback on the same path) keeps the best score.
    resumed = BestCheckpoint(path)
    resumed.set_model(_Model(iteration=20))
    assert resumed.best == 40.0 and resumed.best_iteration == 10
    resumed.on_epoch_end(3, {"val_mIoU": 35.0})
    assert resumed.model.saved == []
    resumed.on_epoch_end(4, {"val_mIoU": 45.0})
    with open(path + ".json") as f:
        assert json.load(f) == {"monitor": "val_mIoU", "best": 45.0, "iteration": 20}


def test_json_lines_log_appends_and_writes_nan_as_null(tmp_path):
    path = str(tmp_path / "log.jsonl")
    start = time.time()
    for epoch in range(2):  # two runs (a resume) append to one file
        log = JsonLinesLog(path)
        log.set_model(_Model(iteration=epoch + 1, learning_rate=0.5))
        log.on_train_begin()
        log.on_epoch_end(epoch, {"loss": 1.5, "val_mIoU": float("nan")})
    with open(path) as f:
        lines = [json.loads(line) for line in f]
    times = [line.pop("time") for line in lines]
    assert start - 1 <= times[0] <= times[1] <= time.time() + 1
    assert lines == [
        {"epoch": 1, "iteration": 1, "lr": 0.5, "loss": 1.5, "val_mIoU": None},
        {"epoch": 2, "iteration": 2, "lr": 0.5, "loss": 1.5, "val_mIoU": None},
    ]


def test_snapshots_keep_the_newest_across_a_restart(tmp_path):
    directory = str(tmp_path)
    model = _Model()
    callback = Snapshots(directory, keep=2, every_n_epochs=2)
    callback.set_model(model)
    for epoch in range(6):
        model.optimizer.iterations.assign((epoch + 1) * 10)
        callback.on_epoch_end(epoch, {})
    assert sorted(os.listdir(directory)) == ["iter_40.keras", "iter_60.keras"]
    resumed = Snapshots(directory, keep=2, every_n_epochs=2)  # a resumed run
    resumed.set_model(model)
    model.optimizer.iterations.assign(80)
    resumed.on_epoch_end(7, {})
    assert [os.path.basename(p) for p in resumed.snapshots()] == ["iter_60.keras", "iter_80.keras"]
    with pytest.raises(ValueError, match="keep-snapshots"):
        Snapshots(directory, keep=0)


def test_early_stopping_on_val_miou_skips_intervals_without_evaluation():
    stop = keras.callbacks.EarlyStopping(monitor="val_mIoU", mode="max", patience=1)
    model = _Model()
    model.stop_training = False
    callbacks = hide_unevaluated([stop])
    for callback in callbacks:
        callback.set_model(model)
        callback.on_train_begin()
    seen = []
    for epoch, score in enumerate([float("nan"), 40.0, float("nan"), 50.0, float("nan")]):
        logs = {"loss": 1.0, "val_mIoU": score}
        for callback in callbacks:
            callback.on_epoch_end(epoch, logs)
        seen.append(logs["val_mIoU"])
    assert stop.best == 50.0 and not model.stop_training  # a first NaN is not the best
    assert math.isnan(seen[0]) and seen[1] == 40.0  # restored for the History
