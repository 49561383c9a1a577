"""Sliding-window segmentation of one image of any size, in bands of rows.

`slide_inference` keeps the logits of the whole image, `(H, W, classes)`
floats: 3.3 GiB for a 9000x9000 image and 11 classes. The windows of
mmseg's grid are visited row of windows by row of windows (its own order),
so once a row of windows has been added, every image row above the next
row of windows has all its windows: its sums and counts are final. Here
only the logits of the rows not yet finished are kept (at most one window
high, `crop_h x W x classes`), and each finished band is divided by its
counts, turned into labels (argmax) and written out at once, to a NumPy
array or a `np.memmap`. Peak memory is the image, its labels (one byte a
pixel for up to 256 classes) and one band: it does not grow with the
image's height, and the windows are run in bounded batches.

The labels are exactly slide mode's (`slide_inference` then argmax): the
same windows, their logits added in the same order to the same zeros,
divided by the same counts (a pixel's count is its number of window rows
times its number of window columns) and the same argmax, given the same
windows per model call (`batch_size`).
"""

import numpy as np

from keras_ann.checks import INFERENCE_VALUES_PER_PIXEL, check_images, check_pair, check_positive_int
from keras_ann.inference import _float_dtype, _grid, _run_model

__all__ = ["label_dtype", "segment_tiled", "window_batch_size"]

# Default bytes of network activations per model call (windows are run in
# batches that fit it, at least one window).
WINDOW_BATCH_BYTES = 512 << 20


def label_dtype(num_classes):
    """The smallest unsigned dtype holding labels `0..num_classes - 1`
    (and 255 as ignore for up to 255 classes): `uint8` up to 256 classes,
    else `uint16` (else `int32`).

    Example:

    >>> label_dtype(19), label_dtype(1000)
    (dtype('uint8'), dtype('uint16'))
    """
    num_classes = check_positive_int(num_classes, "num_classes")
    for dtype in (np.uint8, np.uint16):
        if num_classes - 1 <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    return np.dtype(np.int32)


def window_batch_size(crop, columns):
    """Windows per model call by default: a row of windows (`columns`), or
    fewer so that the network's activations (`INFERENCE_VALUES_PER_PIXEL`
    float32 values a pixel) stay within `WINDOW_BATCH_BYTES`, at least one.

    Example:

    >>> window_batch_size((512, 512), 27), window_batch_size((64, 64), 5)
    (3, 5)
    """
    per_window = crop[0] * crop[1] * INFERENCE_VALUES_PER_PIXEL * 4
    return max(1, min(int(columns), WINDOW_BATCH_BYTES // per_window))


def segment_tiled(model, image, crop, stride, batch_size=None, out=None):
    """Labels of one image of any size by mmseg's sliding window, keeping
    only a band of rows of logits at a time (see the module's docstring).

    Equal to `np.argmax(slide_inference(model, image[None], crop, stride,
    batch_size)[0], -1)` with the same `batch_size`, in memory that does not
    grow with the image's height: the image, the labels, and a
    `min(crop_h, H) x W x classes` band.

    Args:
        model: a Keras model mapping `(n, h, w, 3)` images to logits at the
            input size (`ANNSegmenter`).
        image: one `(H, W, 3)` RGB image (NumPy array, `uint8` or float;
            pixel values as the model expects).
        crop: int or `(h, w)`, the window.
        stride: int or `(h, w)`, the window's step.
        batch_size: windows per model call. Defaults to
            `window_batch_size(crop, columns of windows)`.
        out: optional `(H, W)` integer array (e.g. a `np.memmap`) the
            labels are written into, band by band. Defaults to a new array
            of `label_dtype(classes)`.

    Returns:
        `out`, the `(H, W)` labels.

    Raises:
        ValueError: a bad argument, `out` of another shape or too small a
            dtype for the classes, or a `stride` leaving pixels in no
            window.

    Example:

    >>> import numpy as np
    >>> from keras_ann import ANNSegmenter
    >>> from keras_ann.inference import slide_inference
    >>> model = ANNSegmenter(backbone="resnet18_d8", num_classes=3)
    >>> image = np.random.default_rng(0).integers(0, 256, (70, 90, 3)).astype("uint8")
    >>> labels = segment_tiled(model, image, crop=32, stride=21, batch_size=4)
    >>> labels.shape, labels.dtype.name
    ((70, 90), 'uint8')
    >>> logits = slide_inference(model, image[None], 32, 21, batch_size=4)
    >>> bool((labels == logits[0].argmax(-1)).all())
    True
    """
    image = np.asarray(image)
    check_images(image[None], "image")
    crop, stride = check_pair(crop, "crop"), check_pair(stride, "stride")
    height, width = image.shape[:2]
    rows, cols = _grid(height, crop[0], stride[0]), _grid(width, crop[1], stride[1])
    batch_size = (
        window_batch_size(crop, len(cols)) if batch_size is None else check_positive_int(batch_size, "batch_size")
    )
    if out is not None and tuple(out.shape) != (height, width):
        raise ValueError(f"`out` must have the image's shape {(height, width)}, got {tuple(out.shape)}.")
    dtype = _float_dtype(model)
    row_count, col_count = np.zeros(height, dtype), np.zeros(width, dtype)
    for y1, y2 in rows:
        row_count[y1:y2] += 1
    for x1, x2 in cols:
        col_count[x1:x2] += 1
    if row_count.min() == 0 or col_count.min() == 0:
        raise ValueError(  # slide_inference's message (mmseg asserts the same)
            f"`stride` {tuple(stride)} larger than `crop_size` {tuple(crop)} leaves "
            f"pixels of the {height}x{width} images in no window."
        )
    band_h = rows[0][1] - rows[0][0]  # every window is min(crop, size) high
    band = None  # logit sums of image rows [top, top + band_h)
    top = 0
    windows = [(r, y1, y2, x1, x2) for r, (y1, y2) in enumerate(rows) for x1, x2 in cols]
    for start in range(0, len(windows), batch_size):
        chunk = windows[start : start + batch_size]
        logits = _run_model(model, np.stack([image[y1:y2, x1:x2] for _, y1, y2, x1, x2 in chunk]), dtype)
        if band is None:
            band = np.zeros((band_h, width, logits.shape[-1]), dtype)
            out = _label_output(out, (height, width), logits.shape[-1])
        for (r, y1, y2, x1, x2), window_logits in zip(chunk, logits):
            band[y1 - top : y2 - top, x1:x2] += window_logits
            if x2 == width and r + 1 < len(rows):  # the last window of a row of windows
                top = _flush(band, top, rows[r + 1][0], row_count, col_count, out)
    _flush(band, top, height, row_count, col_count, out)
    return out


def _label_output(out, shape, num_classes):
    if out is None:
        return np.empty(shape, label_dtype(num_classes))
    kind = np.dtype(out.dtype)
    if kind.kind not in "iu" or num_classes - 1 > np.iinfo(kind).max:
        raise ValueError(
            f"`out` of dtype {kind} cannot hold the labels of {num_classes} classes; use {label_dtype(num_classes)}."
        )
    return out


def _flush(band, top, end, row_count, col_count, out):
    """Writes the finished image rows `[top, end)` of `band` (sums of the
    rows from `top`) to `out` as labels, moves the unfinished rows up, and
    returns the new top `end`."""
    done = end - top
    if done <= 0:
        return top
    count = row_count[top:end, None, None] * col_count[None, :, None]  # slide's count, exactly
    out[top:end] = np.argmax(band[:done] / count, axis=-1)
    band[: len(band) - done] = band[done:]
    band[len(band) - done :] = 0
    return end
