"""Huge images (`keras_ann.tiled_inference`, `keras_ann.inference.segment`):
sliding-window labels in bands of rows equal slide mode's exactly, a test
resize goes back to the image in bands, memory does not grow with the
image, and what cannot fit is refused before anything is allocated."""

import tracemalloc

import keras
import numpy as np
import pytest

from testing_utils import pointwise_model

import keras_ann
from keras_ann import checks, inference, tiled_inference
from keras_ann.ops import bilinear_resize
from keras_ann.test_protocol import TestProtocol


@pytest.fixture(scope="module")
def small_model():
    keras.utils.set_random_seed(7)
    return keras_ann.ANNSegmenter(
        backbone="resnet18_d8", num_classes=5, head_channels=16, project_channels=8, auxiliary_head=False
    )


def _image(height, width, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3)).astype(np.uint8)


@pytest.mark.parametrize(
    "size,crop,stride,batch_size",
    [
        ((70, 90), (32, 32), (21, 21), 4),  # not multiples of the stride; batches across rows of windows
        ((64, 96), (32, 32), (32, 32), 3),  # windows side by side
        ((50, 41), (32, 40), (20, 13), 1),  # rectangular windows, last ones shifted back
        ((20, 25), (32, 32), (21, 21), 2),  # smaller than the window: used whole
        ((24, 100), (32, 32), (21, 21), 5),  # shorter than the window only
    ],
)
def test_tiled_labels_equal_slide_mode_exactly(small_model, size, crop, stride, batch_size):
    image = _image(*size)
    logits = inference.slide_inference(small_model, image[None], crop, stride, batch_size=batch_size)
    want = np.argmax(logits[0], axis=-1)
    got = tiled_inference.segment_tiled(small_model, image, crop, stride, batch_size=batch_size)
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, want)
    # segment() takes the tiled path for slide mode at the image's size.
    protocol = TestProtocol(mode="slide", crop=crop, stride=stride)
    labels = inference.segment(small_model, image[None], protocol, batch_size=batch_size)
    np.testing.assert_array_equal(labels[0], want)


def test_tiled_labels_go_to_a_memmap(small_model, tmp_path):
    image = _image(45, 60, seed=3)
    out = np.lib.format.open_memmap(tmp_path / "labels.npy", mode="w+", dtype=np.uint16, shape=(45, 60))
    tiled_inference.segment_tiled(small_model, image, 32, 21, batch_size=2, out=out)
    out.flush()
    want = np.argmax(inference.slide_inference(small_model, image[None], 32, 21, batch_size=2)[0], -1)
    np.testing.assert_array_equal(np.load(tmp_path / "labels.npy"), want)


def test_a_test_resize_goes_back_to_the_image_in_bands(small_model, monkeypatch):
    image = _image(60, 75, seed=4)
    protocol = TestProtocol(mode="slide", crop=(32, 32), stride=(21, 21), scale=(50, 40))
    size = keras_ann.resizing.rescale_size(60, 75, (50, 40))
    resized = inference.resize_image_cv2(image[None], size)
    logits = inference.slide_inference(small_model, resized, (32, 32), (21, 21))
    want = np.argmax(np.asarray(bilinear_resize(logits, (60, 75), False))[0], -1)
    monkeypatch.setattr(inference, "_RESIZE_BAND_BYTES", 7 * 75 * 5 * 4)  # bands of 7 rows
    np.testing.assert_array_equal(inference.segment(small_model, image[None], protocol)[0], want)


def test_segment_streams_a_huge_image_in_tiles_in_bounded_memory():
    """A 3000x3000 image, 4 classes: its logits would be 144 MB of floats
    (slide mode holds them, and their average, whole); tiled, the most
    memory NumPy holds at once (the labels, a band of 128 rows, 4 windows)
    stays under a quarter of that."""
    model = pointwise_model()
    image = _image(3000, 3000, seed=5)
    protocol = TestProtocol(mode="slide", crop=(128, 128), stride=(96, 96))
    whole_logits_bytes = 3000 * 3000 * 4 * 4
    tracemalloc.start()
    try:
        labels = inference.segment(model, image[None], protocol, batch_size=4, dtype="uint8")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert labels.shape == (1, 3000, 3000) and labels.dtype == np.uint8
    assert peak < whole_logits_bytes / 4, f"peak {peak / 1e6:.0f} MB"
    # The same labels as slide mode on a corner small enough for both.
    corner = image[:500, :700]
    want = np.argmax(inference.slide_inference(model, corner[None], 128, 96, batch_size=3)[0], -1)
    got = inference.segment(model, corner[None], protocol, batch_size=3)[0]
    np.testing.assert_array_equal(got, want)


class _Unusable(keras.Model):
    """A model that must not be run (the refusal comes first)."""

    num_classes = 19

    def call(self, x):
        raise AssertionError("the model ran")


@pytest.mark.parametrize(
    "protocol,match",
    [
        (TestProtocol(mode="slide", crop=(512, 512), stride=(341, 341)), r"in tiles needs about .*split the image"),
        (TestProtocol(), r"use --mode slide --crop H W --stride H W"),
        (TestProtocol(mode="slide", crop=(512, 512), stride=(341, 341), flip=True), r"leave out --ms-flip"),
        (TestProtocol(scale=(20000, 20000)), r"lower --test-scale"),
    ],
)
def test_sizes_that_cannot_fit_are_refused_before_allocation(monkeypatch, protocol, match):
    monkeypatch.setattr(checks, "available_memory_bytes", lambda: 20 << 20)  # 20 MB
    image = np.zeros((1, 3000, 3000, 3), np.uint8)
    tracemalloc.start()
    try:
        with pytest.raises(checks.MemoryBudgetError, match=match) as raised:
            inference.segment(_Unusable(), image, protocol)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "3000x3000" in str(raised.value) or "20000x20000" in str(raised.value)
    assert peak < 1e6  # nothing of the image's size was made


def test_a_wide_image_names_the_window_flag():
    with pytest.raises(checks.MemoryBudgetError, match=r"lower --crop \(the logits of a band one window high"):
        checks.check_inference_memory(
            2048, 400000, 150, window=(2048, 2048), stride=(1024, 1024), tiled=True, label_bytes=1, budget=8e9
        )


def test_labels_that_do_not_fit_the_output_dtype_are_refused(small_model):
    with pytest.raises(ValueError, match=r"`out` of dtype int8 cannot hold the labels of 200 classes; use uint8"):
        tiled_inference.segment_tiled(
            pointwise_model(200), _image(20, 20), 16, 8, out=np.zeros((20, 20), np.int8)
        )
    with pytest.raises(ValueError, match=r"`dtype` must be an integer dtype holding 5 classes"):
        inference.segment(small_model, _image(20, 20)[None], dtype="float32")
