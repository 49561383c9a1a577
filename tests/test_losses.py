"""SegmentationCrossEntropy against the reference's formula."""

import numpy as np
import pytest

import keras_ann


def _log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


@pytest.fixture
def batch(rng):
    logits = rng.normal(0, 2, (2, 5, 7, 4)).astype("float32")
    labels = rng.integers(0, 4, (2, 5, 7))
    labels[0, :2] = 255
    labels[1, 3, 4:] = 255
    return labels, logits


def _per_pixel(labels, logits, class_weight=None):
    logp = _log_softmax(logits.astype(np.float64))
    valid = labels != 255
    safe = np.where(valid, labels, 0)
    loss = -np.take_along_axis(logp, safe[..., None], -1)[..., 0]
    weight = valid.astype(np.float64)
    if class_weight is not None:
        weight = weight * np.asarray(class_weight)[safe]
    return loss * weight, valid


def test_mean_over_all_pixels_ignored_included(batch):
    labels, logits = batch
    per_pixel, valid = _per_pixel(labels, logits)
    want = per_pixel.sum() / labels.size  # the reference: avg_non_ignore=False
    got = float(keras_ann.SegmentationCrossEntropy()(labels, logits))
    assert got == pytest.approx(want, rel=1e-6)
    # ... which is not the mean over labelled pixels only.
    assert abs(got - per_pixel.sum() / valid.sum()) > 1e-3


def test_mean_over_labelled_pixels_option(batch):
    labels, logits = batch
    per_pixel, valid = _per_pixel(labels, logits)
    got = float(keras_ann.SegmentationCrossEntropy(avg_non_ignore=True)(labels, logits))
    assert got == pytest.approx(per_pixel.sum() / valid.sum(), rel=1e-6)


def test_class_weights(batch):
    labels, logits = batch
    weights = [0.5, 1.0, 2.0, 3.0]
    per_pixel, _ = _per_pixel(labels, logits, weights)
    got = float(keras_ann.SegmentationCrossEntropy(class_weight=weights)(labels, logits))
    assert got == pytest.approx(per_pixel.sum() / labels.size, rel=1e-6)


def test_equals_torch_cross_entropy(batch):
    from testing_utils import require

    torch = require("torch")
    labels, logits = batch
    ref = torch.nn.functional.cross_entropy(
        torch.from_numpy(logits).permute(0, 3, 1, 2), torch.from_numpy(labels).long(),
        ignore_index=255, reduction="none",
    ).mean()  # mmseg: weight_reduce_loss(reduction="mean", avg_factor=None)
    assert float(keras_ann.SegmentationCrossEntropy()(labels, logits)) == pytest.approx(float(ref), rel=1e-6)


def test_logits_are_resized_to_the_labels(rng):
    labels = rng.integers(0, 3, (1, 16, 16))
    small = rng.normal(size=(1, 4, 4, 3)).astype("float32")
    big = np.asarray(keras_ann.ops.bilinear_resize(small, (16, 16)))
    loss = keras_ann.SegmentationCrossEntropy()
    assert float(loss(labels, small)) == pytest.approx(float(loss(labels, big)), rel=1e-6)


def test_bad_shapes_raise(rng):
    with pytest.raises(ValueError, match=r"labels \(2, 5\)"):
        keras_ann.SegmentationCrossEntropy()(np.zeros((2, 5)), np.zeros((2, 5, 5, 3), "float32"))
