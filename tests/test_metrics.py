"""Segmentation scores against mmseg's `IoUMetric` (intersect_and_union,
total_area_to_metrics, compute_metrics), accumulated over a whole set."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_ann.losses import SegmentationCrossEntropy
from keras_ann.metrics import SegmentationIoU, confusion_matrix, format_table, metrics_from_confusion
from testing_utils import require

NUM_CLASSES = 6
NAMES = ["road", "sidewalk", "building", "wall", "fence", "pole"]


def _batches(num_classes=NUM_CLASSES, label_classes=4, pred_classes=5, seed=0, stray=None):
    """Four batches of (labels, predictions, logits), 2 images of 12x16 each.

    Labels use classes `[0, label_classes)`, predictions `[0, pred_classes)`:
    with the defaults, class 4 is predicted but never labelled (IoU 0, Acc
    nan) and class 5 is neither (IoU and Acc nan). Each batch favours
    another class, so per-batch scores vary; ~15% of the pixels are 255.
    """
    rng = np.random.default_rng(seed)
    batches = []
    for b in range(4):
        p = np.full(label_classes, 1.0)
        p[b % label_classes] = 6.0
        labels = rng.choice(label_classes, size=(2, 12, 16), p=p / p.sum())
        noise = rng.integers(0, pred_classes, size=labels.shape)
        preds = np.where(rng.random(labels.shape) < 0.6 + 0.1 * b, labels, noise)
        labels = np.where(rng.random(labels.shape) < 0.15, 255, labels)
        if stray is not None:
            labels[0, 0, :3] = stray
        logits = np.eye(num_classes, dtype="float32")[preds] * 2.0
        logits += rng.uniform(0.0, 0.5, size=logits.shape).astype("float32")
        batches.append((labels.astype("int32"), preds.astype("int32"), logits))
    return batches


@pytest.fixture(scope="module")
def iou_metric():
    require("torch")
    require("mmseg")
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference"))
    import mmseg_ann

    mmseg_ann.install_mmcv_ops_stub()
    from mmseg.evaluation.metrics.iou_metric import IoUMetric

    return IoUMetric


def _mmseg_areas(IoUMetric, batches, num_classes=NUM_CLASSES, ignore_index=255):
    """mmseg's per-image `intersect_and_union` results."""
    import torch

    results = []
    for labels, preds, _ in batches:
        for label, pred in zip(labels, preds):
            results.append(
                IoUMetric.intersect_and_union(
                    torch.from_numpy(pred.astype(np.int64)), torch.from_numpy(label.astype(np.int64)),
                    num_classes, ignore_index,
                )
            )
    return results


def _mmseg_scores(IoUMetric, batches, num_classes=NUM_CLASSES, ignore_index=255):
    """What mmseg's `compute_metrics` computes, in percent, unrounded."""
    totals = [sum(r) for r in zip(*_mmseg_areas(IoUMetric, batches, num_classes, ignore_index))]
    scores = IoUMetric.total_area_to_metrics(*totals, metrics=["mIoU"])
    return dict(
        IoU=np.asarray(scores["IoU"]) * 100, Acc=np.asarray(scores["Acc"]) * 100, aAcc=float(scores["aAcc"]) * 100,
        mIoU=float(np.nanmean(scores["IoU"])) * 100, mAcc=float(np.nanmean(scores["Acc"])) * 100,
    )


def _assert_scores_equal(got, want, rtol=1e-6):
    for key in ("IoU", "Acc"):
        np.testing.assert_array_equal(np.isnan(got[key]), np.isnan(want[key]), err_msg=key)
        np.testing.assert_allclose(got[key], want[key], rtol=rtol, err_msg=key)
    for key in ("aAcc", "mIoU", "mAcc"):
        assert got[key] == pytest.approx(want[key], rel=rtol), key


def _accumulate(batches, **kwargs):
    metric = SegmentationIoU(NUM_CLASSES, **kwargs)
    for labels, _, logits in batches:
        metric.update_state(labels, logits)
    return metric


# ---------------------------------------------------------------- against mmseg


def test_equals_mmseg_iou_metric_over_several_batches(iou_metric):
    batches = _batches()
    want = _mmseg_scores(iou_metric, batches)
    # The data has what it should: a predicted-only and an absent class.
    assert want["IoU"][4] == 0 and np.isnan(want["Acc"][4]) and np.isnan(want["IoU"][5])

    metric = _accumulate(batches)
    got = metric.all_metrics()
    _assert_scores_equal(got, want)
    assert float(metric.result()) == pytest.approx(want["mIoU"], rel=1e-6)
    np.testing.assert_allclose(metric.per_class_iou(), want["IoU"], rtol=1e-6)
    np.testing.assert_allclose(metric.per_class_accuracy(), want["Acc"], rtol=1e-6)

    # The numpy path (used by `evaluate_dataset`) gives the same.
    total = sum(confusion_matrix(labels, preds, NUM_CLASSES) for labels, preds, _ in batches)
    np.testing.assert_array_equal(total, metric.confusion_matrix())
    _assert_scores_equal(metrics_from_confusion(total), want)

    # And the per-class areas are mmseg's.
    areas = [sum(r).numpy() for r in zip(*_mmseg_areas(iou_metric, batches))]
    for key, area in zip(("area_intersect", "area_union", "area_pred_label", "area_label"), areas):
        np.testing.assert_array_equal(got[key], area, err_msg=key)


def test_rounded_summary_equals_mmseg_compute_metrics(iou_metric):
    """`IoUMetric.compute_metrics` (percent, 2 decimals) and our table agree."""
    batches = _batches()
    metric = iou_metric(iou_metrics=["mIoU"])
    metric.dataset_meta = dict(classes=NAMES)
    want = metric.compute_metrics(_mmseg_areas(iou_metric, batches))
    got = _accumulate(batches).all_metrics()
    table = format_table(got, NAMES)
    summary = table.split("Summary:")[1].splitlines()[4]
    assert summary.split("|")[1:4] == [f" {want[k]:.2f} " for k in ("aAcc", "mIoU", "mAcc")]


def test_per_batch_averaging_differs(iou_metric):
    """Averaging per-batch mIoU (what a per-batch metric would report) is not
    the reference's number."""
    batches = _batches()
    accumulated = _mmseg_scores(iou_metric, batches)["mIoU"]
    per_batch = [_mmseg_scores(iou_metric, [batch])["mIoU"] for batch in batches]
    assert float(_accumulate(batches).result()) == pytest.approx(accumulated, rel=1e-6)
    assert abs(np.mean(per_batch) - accumulated) > 1.0  # percentage points

    # Our metric with a reset after every batch reproduces the per-batch
    # numbers, so the difference is the accumulation alone.
    metric = SegmentationIoU(NUM_CLASSES)
    ours = []
    for labels, _, logits in batches:
        metric.reset_state()
        metric.update_state(labels, logits)
        ours.append(float(metric.result()))
    np.testing.assert_allclose(ours, per_batch, rtol=1e-6)


def test_ignore_index(iou_metric):
    batches = _batches()
    reference = _accumulate(batches).confusion_matrix()
    # Predictions at ignored pixels change nothing.
    rng = np.random.default_rng(1)
    shuffled = []
    for labels, preds, logits in batches:
        logits = np.where((labels == 255)[..., None], rng.normal(size=logits.shape), logits).astype("float32")
        shuffled.append((labels, preds, logits))
    np.testing.assert_array_equal(_accumulate(shuffled).confusion_matrix(), reference)

    # Another ignore value: class 2's pixels left out (255 becomes a stray
    # label, counted in the prediction areas only, as mmseg does).
    want = _mmseg_scores(iou_metric, batches, ignore_index=2)
    metric = _accumulate(batches, ignore_index=2)
    _assert_scores_equal(metric.all_metrics(), want)
    assert metric.confusion_matrix()[2].sum() == 0 and np.isnan(want["Acc"][2])

    # A hand-checked example.
    metric = SegmentationIoU(3, ignore_index=255)
    labels = np.array([[[0, 0, 1, 255], [1, 2, 2, 255]]])
    preds = np.array([[[0, 1, 1, 2], [1, 2, 0, 0]]])
    metric.update_state(labels, np.eye(3, dtype="float32")[preds])
    np.testing.assert_array_equal(metric.confusion_matrix(), [[1, 1, 0], [0, 2, 0], [1, 0, 1]])
    scores = metric.all_metrics()
    np.testing.assert_allclose(scores["IoU"], [100 / 3, 200 / 3, 50])  # percent
    np.testing.assert_allclose(scores["Acc"], [50, 100, 50])
    assert scores["aAcc"] == pytest.approx(400 / 6)


def test_stray_labels_as_mmseg(iou_metric):
    """A label outside [0, num_classes) that is not the ignore value: mmseg's
    histograms drop it from the label areas but keep its prediction."""
    batches = _batches(stray=9)
    metric = _accumulate(batches)
    _assert_scores_equal(metric.all_metrics(), _mmseg_scores(iou_metric, batches))
    labels, preds, _ = batches[0]
    with pytest.raises(ValueError, match="labels must be in"):
        confusion_matrix(labels, preds, NUM_CLASSES)
    with pytest.raises(ValueError, match="predictions must be in"):
        confusion_matrix([[0, 1]], [[0, 6]], NUM_CLASSES)
    with pytest.raises(ValueError, match="same shape"):
        confusion_matrix([[0, 1]], [[0]], NUM_CLASSES)


def test_equals_keras_mean_iou_when_every_class_is_present():
    batches = _batches(label_classes=NUM_CLASSES, pred_classes=NUM_CLASSES)
    ours = _accumulate(batches)
    assert (ours.all_metrics()["area_label"] > 0).all()
    keras_miou = keras.metrics.MeanIoU(NUM_CLASSES, ignore_class=255, sparse_y_pred=False)
    for labels, _, logits in batches:
        keras_miou.update_state(labels, logits)
    assert float(ours.result()) == pytest.approx(100 * float(keras_miou.result()), rel=1e-6)  # ours in percent


# ---------------------------------------------------------------- the table


def test_format_table():
    scores = _accumulate(_batches()).all_metrics()
    table = format_table(scores, NAMES)
    lines = table.splitlines()
    assert lines[0] == "per class results:" and "Summary:" in lines
    for name, iou, acc in zip(NAMES, scores["IoU"], scores["Acc"]):
        row = next(line for line in lines if f" {name} " in line)
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells == [name, "nan" if np.isnan(iou) else f"{iou:.2f}", "nan" if np.isnan(acc) else f"{acc:.2f}"]
    assert "|  fence   |  0.00 |  nan  |" in table  # predicted, never labelled
    assert "|   pole   |  nan  |  nan  |" in table  # absent
    summary = lines[-2]
    assert summary == "| " + " | ".join(f"{scores[k]:.2f}" for k in ("aAcc", "mIoU", "mAcc")) + " |"

    # Without names: the indices.
    assert "|   5   |" in format_table(scores)
    with pytest.raises(ValueError, match="class names"):
        format_table(scores, NAMES[:3])
    # The metric's own table uses its class names.
    metric = _accumulate(_batches(), class_names=NAMES)
    assert metric.table() == table


def test_table_layout_is_prettytable_s():
    """Same layout as mmseg's PrettyTable printout, cell for cell."""
    prettytable = require("prettytable")
    scores = _accumulate(_batches()).all_metrics()
    ours = format_table(scores, NAMES).splitlines()
    classes = prettytable.PrettyTable()
    rows = [line for line in ours[4 : 4 + NUM_CLASSES]]
    cells = [[c.strip() for c in row.strip("|").split("|")] for row in rows]
    for i, key in enumerate(("Class", "IoU", "Acc")):
        classes.add_column(key, [c[i] for c in cells])
    assert "\n".join(ours[1 : 5 + NUM_CLASSES]) == classes.get_string()
    summary = prettytable.PrettyTable()
    for key, value in zip(("aAcc", "mIoU", "mAcc"), ours[-2].strip("|").split("|")):
        summary.add_column(key, [value.strip()])
    assert "\n".join(ours[-5:]) == summary.get_string()


# ------------------------------------------------- Keras integration


def test_compiled_evaluate_and_resized_logits():
    """In `evaluate()` (a compiled graph), batch after batch, and with logits
    smaller than the labels (resized bilinearly first, as the reference)."""
    from keras_ann.ops import bilinear_resize

    batches = _batches()
    labels = np.concatenate([b[0] for b in batches])
    logits = np.concatenate([b[2] for b in batches])
    model = keras.Sequential([keras.Input((12, 16, NUM_CLASSES)), keras.layers.Identity()])
    model.compile(loss=SegmentationCrossEntropy(), metrics=[SegmentationIoU(NUM_CLASSES, name="miou")])
    result = model.evaluate(logits, labels, batch_size=2, return_dict=True, verbose=0)
    assert result["miou"] == pytest.approx(float(_accumulate(batches).result()), rel=1e-6)

    small = logits[:, ::2, ::2]
    resized = np.asarray(bilinear_resize(small, (12, 16), True))
    metric = SegmentationIoU(NUM_CLASSES, align_corners=True)
    metric.update_state(labels, small)
    np.testing.assert_array_equal(
        metric.confusion_matrix(), confusion_matrix(labels, resized.argmax(-1), NUM_CLASSES)
    )
    with pytest.raises(ValueError, match="6 classes"):
        metric.update_state(labels, logits[..., :4])


def test_config_round_trip_and_reset():
    metric = SegmentationIoU(19, ignore_index=254, class_names=[f"c{i}" for i in range(19)], align_corners=True, name="x")
    config = metric.get_config()
    assert SegmentationIoU.from_config(config).get_config() == config
    restored = keras.metrics.deserialize(keras.metrics.serialize(metric))
    assert isinstance(restored, SegmentationIoU) and restored.get_config() == config

    metric = _accumulate(_batches())
    assert metric.confusion_matrix().sum() > 0
    metric.reset_state()
    assert metric.confusion_matrix().sum() == 0 and np.isnan(float(metric.result()))
    with pytest.raises(ValueError, match="class names"):
        SegmentationIoU(3, class_names=["a"])


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_other_backends(backend, tmp_path):
    """The same scores from a jitted `evaluate()` on JAX and on PyTorch."""
    require(backend)
    out = str(tmp_path / "scores.npz")
    env = dict(os.environ, KERAS_BACKEND=backend, CUDA_VISIBLE_DEVICES="", JAX_PLATFORMS="cpu")
    result = subprocess.run(
        [sys.executable, os.path.abspath(__file__), out], env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    saved = np.load(out)
    assert str(saved["backend"]) == backend
    batches = _batches()
    total = sum(confusion_matrix(labels, preds, NUM_CLASSES) for labels, preds, _ in batches)
    np.testing.assert_array_equal(saved["confusion"], total)
    assert float(saved["miou"]) == pytest.approx(metrics_from_confusion(total)["mIoU"], rel=1e-6)


if __name__ == "__main__":
    batches = _batches()
    labels = np.concatenate([b[0] for b in batches])
    logits = np.concatenate([b[2] for b in batches])
    metric = SegmentationIoU(NUM_CLASSES, name="miou")
    model = keras.Sequential([keras.Input((12, 16, NUM_CLASSES)), keras.layers.Identity()])
    model.compile(loss=SegmentationCrossEntropy(), metrics=[metric])  # jitted on JAX
    result = model.evaluate(logits, labels, batch_size=2, return_dict=True, verbose=0)
    np.savez(
        sys.argv[1], backend=np.array(keras.config.backend()), miou=result["miou"], confusion=metric.confusion_matrix()
    )


def test_evaluate_dataset_refuses_steps_that_score_nothing():
    from keras_ann.evaluation import evaluate_dataset

    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(2, 1)(inputs))
    batch = (np.zeros((1, 4, 4, 3), np.float32), np.zeros((1, 4, 4), np.int32))
    assert evaluate_dataset(model, [batch, batch], num_classes=2, steps=1, verbose=0)["confusion"].sum() == 16
    for steps in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="`steps` must be a positive integer"):
            evaluate_dataset(model, [batch], num_classes=2, steps=steps, verbose=0)
    with pytest.raises(ValueError, match="the dataset yielded no batch"):
        evaluate_dataset(model, [], num_classes=2, verbose=0)
