"""Test-time inference modes of mmsegmentation 1.2.2: whole image, sliding
window, and multi-scale + flip ("ms+flip") test-time augmentation.

* `slide_inference`: `EncoderDecoder.slide_inference`. A grid of
  `h_grids = max(H - crop_h + stride_h - 1, 0) // stride_h + 1` by `w_grids`
  windows (likewise), the last ones shifted back inside the image
  (`y1 = max(min(y1 + crop_h, H) - crop_h, 0)`), so every window has the size
  `(min(crop_h, H), min(crop_w, W))`; an image smaller than the crop is
  predicted whole, without padding. The logits of each window are added in
  place (in the reference's window order) and divided by the number of
  windows covering each pixel.
* `multiscale_flip_inference`: mmseg's `tta_pipeline` (`Resize(scale_factor=
  r, keep_ratio=True)` for each ratio, `RandomFlip(prob=0.)` and
  `RandomFlip(prob=1.)`) with `SegTTAModel.merge_preds`: every pass is
  predicted (whole or slide), its logits flipped back, resized to the input
  size (bilinear, the model's `align_corners`, as
  `BaseSegmentor.postprocess_result`), turned into probabilities with a
  softmax over classes, and the probabilities are averaged.
* `segment(model, images, protocol)`: **the one way to get labels**: the
  reference's test of raw images as a `TestProtocol` says (test resize,
  whole / slide / ms+flip, logits resized back to the image, argmax); used
  by `ANNSegmenter.predict_labels`, `evaluate_dataset`, the evaluation
  callback and `keras-ann evaluate` / `predict`.
* `predict_logits` / `predict_labels`: the modes with keyword arguments.

Everything here uses `keras.ops` and NumPy only, so it runs on every Keras
backend. Results are NumPy arrays.
"""

import keras
import numpy as np
from keras import ops

from keras_ann.checks import check_images, check_inference_memory, check_pair, check_positive_int
from keras_ann.ops import bilinear_interpolation_matrix, bilinear_resize, separable_product
from keras_ann.resizing import rescale_size, resize_linear
from keras_ann.test_protocol import TestProtocol

__all__ = [
    "TTA_RATIOS",
    "segment",
    "multiscale_flip_inference",
    "predict_labels",
    "predict_logits",
    "resize_image_cv2",
    "slide_inference",
]

# `img_ratios` of mmseg's `configs/_base_/datasets/{cityscapes,ade20k}.py`.
TTA_RATIOS = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)

_MODES = ("whole", "slide")
_IMAGE_RESIZES = ("bilinear", "cv2")


# --------------------------------------------------------------------------
# Argument checking
# --------------------------------------------------------------------------


def _check_images(images, name="images"):
    """(N, H, W, 3) images as a NumPy array (dtype kept)."""
    check_images(images, name)
    if isinstance(images, np.ndarray):
        return images  # not copied (a 9000x9000 image is 243 MB)
    return np.asarray(ops.convert_to_numpy(images))


def _check_mode(mode, crop_size, stride):
    if mode not in _MODES:
        raise ValueError(f"`mode` must be one of {_MODES}, got {mode!r}.")
    if mode == "slide":
        if crop_size is None or stride is None:
            raise ValueError(
                "`mode='slide'` needs `crop_size` and `stride`, got "
                f"crop_size={crop_size!r}, stride={stride!r}."
            )
        return check_pair(crop_size, "crop_size"), check_pair(stride, "stride")
    if crop_size is not None or stride is not None:
        raise ValueError(
            "`crop_size` and `stride` are only used with `mode='slide'`; got "
            f"mode={mode!r}, crop_size={crop_size!r}, stride={stride!r}."
        )
    return None, None


def _check_batch_size(batch_size):
    return None if batch_size is None else check_positive_int(batch_size, "batch_size")


def _check_ratios(ratios):
    message = f"`ratios` must be a non-empty sequence of positive numbers, got {ratios!r}."
    try:
        ratios = tuple(float(r) for r in ratios)
    except (TypeError, ValueError):
        raise ValueError(message) from None
    if not ratios or not all(r > 0 and np.isfinite(r) for r in ratios):
        raise ValueError(message)
    return ratios


# --------------------------------------------------------------------------
# Running the model
# --------------------------------------------------------------------------


def _float_dtype(model):
    """float64 for float64 models, else float32 (the images' and logits' dtype)."""
    try:
        dtype = keras.backend.standardize_dtype(model.inputs[0].dtype)
    except (AttributeError, IndexError, TypeError, ValueError):
        return "float32"
    return "float64" if dtype == "float64" else "float32"


def _run_model(model, images, dtype):
    """Logits `(n, h, w, C)` of a batch, as a NumPy array of `dtype`."""
    x = np.asarray(images, dtype)
    strategy = getattr(model, "distribute_strategy", None)
    replicated = getattr(strategy, "num_replicas_in_sync", 1) > 1
    # Under a tf.distribute strategy predict_on_batch splits the batch over
    # the replicas (a single image does not split); a direct call does not.
    if hasattr(model, "predict_on_batch") and not replicated:
        logits = model.predict_on_batch(x)
    else:
        logits = model(x, training=False)
    logits = np.asarray(ops.convert_to_numpy(logits))
    if logits.ndim != 4 or logits.shape[:3] != x.shape[:3]:
        raise ValueError(
            "The model must return logits (batch, height, width, num_classes) at the "
            f"size of its input: input {x.shape} gave output {logits.shape}."
        )
    return logits.astype(dtype, copy=False)


def _whole(model, images, batch_size, dtype):
    n = images.shape[0]
    step = batch_size or n
    parts = [_run_model(model, images[i : i + step], dtype) for i in range(0, n, step)]
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)


def _grid(size, crop, stride):
    """mmseg's window starts and ends along one axis."""
    grids = max(size - crop + stride - 1, 0) // stride + 1
    windows = []
    for i in range(grids):
        end = min(i * stride + crop, size)
        windows.append((max(end - crop, 0), end))
    return windows


def _slide(model, images, crop_size, stride, batch_size, dtype):
    n, height, width, _ = images.shape
    rows = _grid(height, crop_size[0], stride[0])
    cols = _grid(width, crop_size[1], stride[1])
    windows = [(y1, y2, x1, x2) for y1, y2 in rows for x1, x2 in cols]
    # Every window has the same size, so the crops of all images are run in
    # batches: (image, window) pairs, image-major, windows in mmseg's order.
    jobs = [(i, w) for i in range(n) for w in windows]
    step = batch_size or len(windows)
    preds = None
    count = np.zeros((height, width, 1), dtype)
    for y1, y2, x1, x2 in windows:
        count[y1:y2, x1:x2] += 1
    if count.min() == 0:
        # mmseg asserts the same (`(count_mat == 0).sum() == 0`).
        raise ValueError(
            f"`stride` {tuple(stride)} larger than `crop_size` {tuple(crop_size)} leaves "
            f"pixels of the {height}x{width} images in no window."
        )
    for start in range(0, len(jobs), step):
        chunk = jobs[start : start + step]
        crops = np.stack([images[i, y1:y2, x1:x2] for i, (y1, y2, x1, x2) in chunk])
        logits = _run_model(model, crops, dtype)
        if preds is None:
            preds = np.zeros((n, height, width, logits.shape[-1]), dtype)
        # Accumulated per image in window order: the reference's sums.
        for (i, (y1, y2, x1, x2)), crop_logits in zip(chunk, logits):
            preds[i, y1:y2, x1:x2] += crop_logits
    return preds / count


def slide_inference(model, images, crop_size, stride, batch_size=None):
    """Sliding-window logits, as mmsegmentation's `slide_inference`.

    The image is covered by a grid of `crop_size` windows `stride` apart:
    `h_grids = max(H - crop_h + stride_h - 1, 0) // stride_h + 1` rows (and
    likewise columns), the last row and column shifted back to end at the
    image border. Each window is predicted on its own (the model resizes its
    logits to the window), the logits are added in place, and each pixel is
    divided by the number of windows that cover it. An image smaller than
    the crop along an axis is used whole along that axis (no padding), as in
    the reference. All windows have the same size, so they are predicted in
    batches.

    Args:
        model: a Keras model mapping `(n, h, w, 3)` RGB images to logits
            `(n, h, w, num_classes)` at the input size, e.g. an
            `ANNSegmenter`.
        images: `(batch, H, W, 3)` RGB images (array or tensor; pixel values
            as the model expects, [0, 255] for `ANNSegmenter`).
        crop_size: int or `(crop_h, crop_w)`, the window size (the
            reference's `test_cfg.crop_size`, e.g. `(769, 769)`).
        stride: int or `(stride_h, stride_w)` (the reference's
            `test_cfg.stride`, e.g. `(513, 513)`).
        batch_size: int, the number of windows per model call. Defaults to
            all windows of one image.

    Returns:
        A NumPy array `(batch, H, W, num_classes)` of logits, float32
        (float64 for float64 models). `argmax(-1)` gives the labels.

    Example:

    >>> import numpy as np
    >>> from keras_ann import ANNSegmenter
    >>> model = ANNSegmenter(backbone="resnet18_d8", num_classes=3)
    >>> images = np.random.uniform(0, 255, (1, 50, 70, 3))
    >>> slide_inference(model, images, (33, 33), (21, 21)).shape  # 2 x 3 windows
    (1, 50, 70, 3)
    """
    images = _check_images(images)
    crop_size = check_pair(crop_size, "crop_size")
    stride = check_pair(stride, "stride")
    batch_size = _check_batch_size(batch_size)
    return _slide(model, images, crop_size, stride, batch_size, _float_dtype(model))


def predict_logits(model, images, mode="whole", crop_size=None, stride=None, batch_size=None):
    """Logits at the input size, predicted whole or by sliding window.

    Args:
        model: a Keras model mapping `(n, h, w, 3)` RGB images to logits
            `(n, h, w, num_classes)` at the input size (`ANNSegmenter`).
        images: `(batch, H, W, 3)` RGB images (array or tensor).
        mode: `"whole"` (the reference's `test_cfg.mode='whole'`: one
            forward pass per image) or `"slide"` (see `slide_inference`).
        crop_size: int or `(h, w)`, the window of `mode="slide"`.
        stride: int or `(h, w)`, the window stride of `mode="slide"`.
        batch_size: int, images (`"whole"`) or windows (`"slide"`) per model
            call. Defaults to the whole batch (`"whole"`) or to all windows of
            one image (`"slide"`).

    Returns:
        A NumPy array `(batch, H, W, num_classes)` of logits, float32
        (float64 for float64 models).

    Example:

    >>> import keras, numpy as np
    >>> inputs = keras.Input((None, None, 3))
    >>> model = keras.Model(inputs, keras.layers.Conv2D(4, 1)(inputs))
    >>> images = np.zeros((2, 30, 50, 3), "float32")
    >>> predict_logits(model, images, mode="slide", crop_size=(20, 20), stride=15).shape
    (2, 30, 50, 4)
    """
    images = _check_images(images)
    crop_size, stride = _check_mode(mode, crop_size, stride)
    batch_size = _check_batch_size(batch_size)
    dtype = _float_dtype(model)
    if mode == "slide":
        return _slide(model, images, crop_size, stride, batch_size, dtype)
    return _whole(model, images, batch_size, dtype)


# --------------------------------------------------------------------------
# Multi-scale + flip
# --------------------------------------------------------------------------


def resize_image_cv2(images, size):
    """`cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)` for
    `uint8` images, in NumPy.

    The resize mmcv (and so mmseg's `Resize`) applies to the `uint8` images
    `LoadImageFromFile` reads: half-pixel sampling as PyTorch's
    `align_corners=False`, but with OpenCV's 11-bit fixed-point weights and
    the rounding of its vectorised vertical pass, rounded to `uint8`
    (bit-identical to `cv2.resize`): `keras_ann.resizing.resize_linear`,
    the code the training pipeline runs as TensorFlow ops.

    Args:
        images: `(batch, H, W, C)` `uint8` array.
        size: `(height, width)` of the output.

    Returns:
        A `(batch, height, width, C)` `uint8` NumPy array.

    Example:

    >>> import numpy as np
    >>> x = np.arange(16, dtype=np.uint8).reshape(1, 4, 4, 1) * 10
    >>> resize_image_cv2(x, (2, 2))[0, :, :, 0].tolist()
    [[25, 45], [105, 125]]
    """
    images = np.asarray(ops.convert_to_numpy(images))
    if images.ndim != 4:
        raise ValueError(f"`images` must be (batch, height, width, channels), got {images.shape}.")
    if images.dtype != np.uint8:
        raise ValueError(f"`images` must be uint8 for the OpenCV resize, got {images.dtype}.")
    out_h, out_w = check_pair(size, "size")
    n, in_h, in_w, c = images.shape
    if (in_h, in_w) == (out_h, out_w):
        return images.copy()
    # One resize of the batch folded into the channels (channels are
    # resized independently).
    folded = images.transpose(1, 2, 0, 3).reshape(in_h, in_w, n * c)
    out = resize_linear(folded, (out_h, out_w))
    return np.ascontiguousarray(out.reshape(out_h, out_w, n, c).transpose(2, 0, 1, 3))


def _resize_for_tta(images, size, image_resize, dtype):
    if image_resize == "cv2":
        return resize_image_cv2(images, size).astype(dtype)
    x = images.astype(dtype, copy=False)
    if tuple(size) == tuple(images.shape[1:3]):
        return x
    resized = bilinear_resize(ops.convert_to_tensor(x), size, align_corners=False)
    return np.asarray(ops.convert_to_numpy(resized))


def multiscale_flip_inference(
    model,
    images,
    ratios=TTA_RATIOS,
    flip=True,
    mode="whole",
    crop_size=None,
    stride=None,
    batch_size=None,
    image_resize="bilinear",
):
    """Class probabilities averaged over scales and flips (mmseg's TTA).

    The reference's `tta_pipeline` and `SegTTAModel`: for each ratio in
    `ratios` (outer loop) the image is resized as mmcv's
    `Resize(scale_factor=ratio, keep_ratio=True)` (see
    `keras_ann.resizing.rescale_size`),
    then predicted as it is and, with `flip`, flipped horizontally (inner
    loop). Each pass is predicted with `mode` (`"whole"` or `"slide"`), its
    logits are flipped back, resized to the input size (bilinear, the
    model's `align_corners`), and turned into probabilities by a softmax
    over classes; the result is the mean of all passes' probabilities.

    Args:
        model: a Keras model mapping `(n, h, w, 3)` RGB images to logits
            `(n, h, w, num_classes)` at the input size (`ANNSegmenter`), with
            `num_classes >= 2`. Its `align_corners` attribute (default
            `False`) is used to resize the logits back.
        images: `(batch, H, W, 3)` RGB images (array or tensor).
        ratios: positive floats, the scales. Defaults to the reference's
            `(0.5, 0.75, 1.0, 1.25, 1.5, 1.75)`.
        flip: bool, also predict the horizontally flipped images.
        mode: `"whole"` or `"slide"`, how each pass is predicted.
        crop_size: int or `(h, w)`, the window of `mode="slide"`.
        stride: int or `(h, w)`, the window stride of `mode="slide"`.
        batch_size: as in `predict_logits`.
        image_resize: how the images are rescaled.
            `"bilinear"` (default): `keras_ann.ops.bilinear_resize` with
            `align_corners=False` on float images (PyTorch's
            `F.interpolate(mode="bilinear")`), for any pixel values. It
            samples the same positions as the reference's OpenCV resize but
            keeps fractional pixel values, where OpenCV uses 11-bit weights
            and rounds to `uint8`: resized pixels differ by up to about one
            grey level, so the probabilities differ slightly from the
            reference's (not at round-off level).
            `"cv2"`: `resize_image_cv2`, bit-identical to OpenCV; `images`
            must be `uint8` or hold integers in [0, 255]. This reproduces
            the reference's pipeline (which reads images as `uint8`) up to
            float round-off, but resizes in NumPy on the host.

    Returns:
        A NumPy array `(batch, H, W, num_classes)` of averaged
        probabilities, float32 (float64 for float64 models); `argmax(-1)`
        gives the labels (`predict_labels` does both).

    Example:

    >>> import keras, numpy as np
    >>> inputs = keras.Input((None, None, 3))
    >>> model = keras.Model(inputs, keras.layers.Conv2D(4, 1)(inputs))
    >>> images = np.zeros((1, 30, 50, 3), "float32")
    >>> probs = multiscale_flip_inference(model, images, ratios=(0.5, 1.0))
    >>> probs.shape, bool(np.allclose(probs.sum(-1), 1.0))
    ((1, 30, 50, 4), True)
    """
    images = _check_images(images)
    ratios = _check_ratios(ratios)
    crop_size, stride = _check_mode(mode, crop_size, stride)
    batch_size = _check_batch_size(batch_size)
    if image_resize not in _IMAGE_RESIZES:
        raise ValueError(f"`image_resize` must be one of {_IMAGE_RESIZES}, got {image_resize!r}.")
    if image_resize == "cv2" and images.dtype != np.uint8:
        integral = np.all((images >= 0) & (images <= 255) & (images == np.round(images)))
        if not integral:
            raise ValueError(
                "`image_resize='cv2'` needs uint8 `images` (or integer values in [0, 255]), "
                f"got {images.dtype} images of shape {images.shape} with other values; use "
                "`image_resize='bilinear'` for such images."
            )
        images = images.astype(np.uint8)
    dtype = _float_dtype(model)
    align_corners = bool(getattr(model, "align_corners", False))
    height, width = images.shape[1:3]

    def predict(x):
        if mode == "slide":
            return _slide(model, x, crop_size, stride, batch_size, dtype)
        return _whole(model, x, batch_size, dtype)

    total = None
    passes = 0
    for ratio in ratios:
        size = rescale_size(height, width, ratio)
        if min(size) < 1:
            raise ValueError(
                f"`ratios` entry {ratio} rescales images of size {(height, width)} to {size}."
            )
        resized = _resize_for_tta(images, size, image_resize, dtype)
        for flipped in (False, True) if flip else (False,):
            x = resized[:, :, ::-1] if flipped else resized
            logits = predict(np.ascontiguousarray(x))
            if logits.shape[-1] < 2:
                raise ValueError(
                    "`multiscale_flip_inference` averages softmax probabilities and needs "
                    f"num_classes >= 2, got logits of shape {logits.shape}."
                )
            if flipped:
                logits = logits[:, :, ::-1]
            # postprocess_result: flip back, then resize to the original size.
            logits = ops.convert_to_tensor(np.ascontiguousarray(logits))
            logits = bilinear_resize(logits, (height, width), align_corners)
            probs = np.asarray(ops.convert_to_numpy(ops.softmax(logits, axis=-1)), dtype)
            total = probs if total is None else total + probs
            passes += 1
    return total / np.asarray(passes, dtype)


def predict_labels(
    model,
    images,
    mode="whole",
    crop_size=None,
    stride=None,
    ratios=None,
    flip=False,
    batch_size=None,
    image_resize="bilinear",
):
    """Label maps: the argmax of `predict_logits`, or of
    `multiscale_flip_inference` when `ratios` is given or `flip=True`
    (`segment` with these settings, without a test resize).

    Args:
        model: a Keras model mapping `(n, h, w, 3)` RGB images to logits
            at the input size (`ANNSegmenter`).
        images: `(batch, H, W, 3)` RGB images (array or tensor).
        mode: `"whole"` or `"slide"`.
        crop_size: int or `(h, w)`, the window of `mode="slide"`.
        stride: int or `(h, w)`, the window stride of `mode="slide"`.
        ratios: `None` for single-scale inference, or the scales of
            `multiscale_flip_inference` (e.g. `TTA_RATIOS`).
        flip: bool, average with horizontally flipped images too.
        batch_size: as in `predict_logits`.
        image_resize: `"bilinear"` or `"cv2"`, see
            `multiscale_flip_inference`.

    Returns:
        A NumPy array `(batch, H, W)` of int32 labels.

    Example:

    >>> import keras, numpy as np
    >>> inputs = keras.Input((None, None, 3))
    >>> model = keras.Model(inputs, keras.layers.Conv2D(4, 1)(inputs))
    >>> images = np.zeros((1, 30, 50, 3), "float32")
    >>> predict_labels(model, images, ratios=TTA_RATIOS, flip=True).shape
    (1, 30, 50)
    """
    crop_size, stride = _check_mode(mode, crop_size, stride)
    if ratios is not None:
        ratios = _check_ratios(ratios)
    if image_resize not in _IMAGE_RESIZES:
        raise ValueError(f"`image_resize` must be one of {_IMAGE_RESIZES}, got {image_resize!r}.")
    protocol = TestProtocol(mode, crop_size, stride, ratios=ratios, flip=flip)
    return _labels(model, _check_images(images), protocol, _check_batch_size(batch_size), image_resize)


def segment(model, images, protocol=None, batch_size=None, dtype="int32"):
    """Label maps of raw RGB images, tested as the reference tests them.

    The one way keras-ann turns images into labels. As `protocol` says:
    the test `Resize(scale, keep_ratio=True)` (OpenCV's arithmetic on
    `uint8` pixels, as the training pipeline), whole-image or sliding-window
    logits, the logits resized back to the image (bilinear, the model's
    `align_corners`) and the argmax. With `ratios` or `flip` it is mmseg's
    multi-scale + flip test on the original image instead (OpenCV's resize
    for integer pixel values, bilinear for others).

    Images of any size: sliding-window tests at the image's own size (no
    test resize, or one to the same size) run in tiles
    (`keras_ann.tiled_inference.segment_tiled`): only a band of rows of
    logits, one window high, is kept, so memory does not grow with the
    image, and the labels are slide mode's exactly. A test resize keeps the
    logits at the resized size only, and resizes them back in bands of rows.
    What still cannot fit (a whole-image pass, multi-scale + flip, a large
    test scale) is refused before any array of that size is made, with the
    memory needed and the flag to change (`MemoryBudgetError`).

    Args:
        model: an `ANNSegmenter` (or any Keras model mapping RGB images to
            logits at the input size).
        images: `(batch, H, W, 3)` RGB images of one size, pixel values in
            [0, 255] (`uint8` as read from files, or floats).
        protocol: a `TestProtocol` (or its config dict). Defaults to the
            model's `test_protocol`, else whole images at their own size.
        batch_size: images (`"whole"`) or windows (`"slide"`) per model
            call. Defaults to all images at once (`"whole"`), or to a row of
            windows capped to bound the activations
            (`keras_ann.tiled_inference.window_batch_size`).
        dtype: of the returned labels: `"int32"`, or e.g. `"uint8"` (a
            quarter of the memory: 81 MB for a 9000x9000 image; up to 256
            classes).

    Returns:
        A NumPy array `(batch, H, W)` of labels at the images' size.

    Example:

    >>> import numpy as np
    >>> from keras_ann import ANNSegmenter
    >>> from keras_ann.test_protocol import TestProtocol
    >>> model = ANNSegmenter(backbone="resnet18_d8", num_classes=3)
    >>> images = np.random.default_rng(0).integers(0, 256, (1, 60, 80, 3), dtype=np.uint8)
    >>> segment(model, images, TestProtocol(scale=(40, 30))).shape  # predicted at 40x30
    (1, 60, 80)
    """
    if protocol is None:
        protocol = getattr(model, "test_protocol", None)
    protocol = TestProtocol.of(protocol)
    images = _check_images(images)
    batch_size = _check_batch_size(batch_size)
    n, height, width = images.shape[:3]
    num_classes = getattr(model, "num_classes", 1)
    dtype = np.dtype(dtype)
    if dtype.kind not in "iu" or num_classes - 1 > np.iinfo(dtype).max:
        raise ValueError(f"`dtype` must be an integer dtype holding {num_classes} classes' labels, got {dtype}.")
    size = (height, width) if protocol.scale is None else rescale_size(height, width, protocol.scale)
    tiled = protocol.mode == "slide" and not protocol.multiscale and tuple(size) == (height, width)
    # Refused before anything of that size exists (a hostile saved scale).
    check_inference_memory(
        height, width, num_classes, scale=protocol.scale, batch=n, window=protocol.crop, stride=protocol.stride,
        mode=protocol.mode, tiled=tiled, multiscale=protocol.multiscale, label_bytes=dtype.itemsize,
        window_batch=batch_size, what="segmentation",
    )  # fmt: skip
    out = np.empty((n, height, width), dtype)
    if tiled:
        from keras_ann.tiled_inference import segment_tiled

        for i in range(n):
            segment_tiled(model, images[i], protocol.crop, protocol.stride, batch_size, out=out[i])
        return out
    integral = _uint8_if_integral(images)
    if protocol.multiscale:
        return _labels(model, images if integral is None else integral, protocol, batch_size,
                       "bilinear" if integral is None else "cv2", out)  # fmt: skip
    if protocol.scale is not None:
        if integral is not None:
            images = resize_image_cv2(integral, size)
        else:
            images = _resize_for_tta(images, size, "bilinear", _float_dtype(model))
    return _labels(model, images, protocol, batch_size, "bilinear", out)


def _uint8_if_integral(images):
    """The images as `uint8` when every value is an integer in [0, 255]
    (pixels as read from image files), else `None`."""
    if images.dtype == np.uint8:
        return images
    if np.all((images >= 0) & (images <= 255) & (images == np.round(images))):
        return images.astype(np.uint8)
    return None


def _labels(model, images, protocol, batch_size, image_resize, out=None):
    """The argmax of `protocol`'s scores for checked `images`, resized to
    `out`'s size (default: the images') first, written into `out`."""
    if protocol.multiscale:
        scores = multiscale_flip_inference(
            model, images, ratios=protocol.ratios or (1.0,), flip=protocol.flip, mode=protocol.mode,
            crop_size=protocol.crop, stride=protocol.stride, batch_size=batch_size, image_resize=image_resize,
        )  # fmt: skip
    else:
        scores = predict_logits(model, images, protocol.mode, protocol.crop, protocol.stride, batch_size)
    if out is None:
        out = np.empty(scores.shape[:3], np.int32)
    if tuple(scores.shape[1:3]) == tuple(out.shape[1:3]):
        out[...] = np.argmax(scores, axis=-1)
        return out
    for i in range(len(scores)):
        _resized_argmax(scores[i], out[i], bool(getattr(model, "align_corners", False)))
    return out


# Bytes of resized logits computed at once when resizing back to the image.
_RESIZE_BAND_BYTES = 64 << 20


def _resized_argmax(scores, out, align_corners):
    """`out[...] = argmax(bilinear_resize(scores, out.shape), -1)` for one
    `(h, w, C)` score map, a band of output rows at a time, so that the
    scores at the output's size never exist whole (a huge image tested at a
    smaller scale). Each band is `bilinear_resize`'s separable product with
    the rows of its interpolation matrix and the source rows they use."""
    (in_h, in_w, classes), (out_h, out_w) = scores.shape, out.shape
    dtype = scores.dtype
    rows = np.asarray(ops.convert_to_numpy(bilinear_interpolation_matrix(in_h, out_h, align_corners, dtype)))
    cols = bilinear_interpolation_matrix(in_w, out_w, align_corners, dtype)
    step = max(1, _RESIZE_BAND_BYTES // (out_w * classes * dtype.itemsize))
    for top in range(0, out_h, step):
        weights = rows[top : top + step]
        used = np.flatnonzero(weights.any(axis=0))
        r0, r1 = int(used[0]), int(used[-1]) + 1
        band = separable_product(scores[None, r0:r1], np.ascontiguousarray(weights[:, r0:r1]), cols)
        out[top : top + step] = np.argmax(np.asarray(ops.convert_to_numpy(band))[0], axis=-1)
