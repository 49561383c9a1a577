"""Argument checks for model inputs: clear `ValueError`s, no silent casts.

Keras converts what it is given: a boolean or complex array becomes
float32 (the imaginary part dropped), a `(H, W, 3)` image fails deep inside
the functional graph, a `(batch, 0, W, 3)` batch fails in a convolution
with "negative dimension size", and labels of another size than the images
reach the metrics' confusion matrix as a shape mismatch in a graph op. These
checks run on static shapes before any of that, so they work on NumPy
arrays, tensors of every backend and symbolic `KerasTensor`s alike
(unknown dimensions are not checked). Label values are checked where they
are known (NumPy arrays, eager tensors): a value >= `num_classes` would
fail deep in a gather op (or, on some devices, be read silently), a -1 would train
as the last class, a fractional float label would be truncated.
"""

import numbers

import keras
import numpy as np

__all__ = [
    "PRECISIONS",
    "MemoryBudgetError",
    "binary_mask_fix",
    "check_images",
    "check_label_values",
    "check_labels",
    "check_inference_memory",
    "check_memory",
    "check_pair",
    "check_positive_int",
    "check_precision",
    "is_binary_mask_encoding",
]

# The precisions training, benchmarks and the command line accept: Keras
# dtype policies.
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")

_IMAGE_DTYPES = ("float16", "bfloat16", "float32", "float64", "uint8", "uint16", "int8", "int16", "int32", "int64")
_LABEL_DTYPES = ("uint8", "uint16", "int8", "int16", "int32", "int64", "float16", "bfloat16", "float32", "float64")


def _dtype_name(x):
    dtype = getattr(x, "dtype", None)
    if dtype is None:
        return None
    try:
        return keras.backend.standardize_dtype(dtype)
    except (ValueError, TypeError):
        return str(dtype)


def _shape(x):
    shape = getattr(x, "shape", None)
    if shape is None:
        return None
    try:
        return tuple(d if d is None else _dimension(d) for d in shape)
    except (TypeError, ValueError):  # unknown rank
        return None


def _dimension(d):
    """`d` as an int, or `None` for a symbolic dimension: JAX's
    shape-polymorphic export (`tf_saved_model` with any batch size) traces
    with dimensions that have no int value."""
    if isinstance(d, numbers.Integral) or not type(d).__module__.startswith("jax"):
        return int(d)
    return None


def check_images(images, name="images"):
    """Checks a batch of RGB images: shape `(batch, height, width, 3)`, no
    zero-sized axis, a real-valued numeric dtype, and (for NumPy arrays,
    whose values are at hand) no NaN or infinite pixel.

    Args:
        images: array or tensor (NumPy, any Keras backend, or symbolic).
        name: the argument's name for the error message.

    Returns:
        The static shape, a tuple (`None` for unknown dimensions).

    Raises:
        ValueError: naming `name`, the expected and the received shape or
            dtype.

    Example:

    >>> import numpy as np
    >>> check_images(np.zeros((2, 64, 64, 3), "uint8"))
    (2, 64, 64, 3)
    >>> check_images(np.zeros((64, 64, 3)))
    Traceback (most recent call last):
    ...
    ValueError: `images` must be a batch of RGB images of shape (batch, height, width, 3), got shape (64, 64, 3) (add a batch axis: `images[None]`).
    """
    dtype = _dtype_name(images)
    if dtype is not None and dtype not in _IMAGE_DTYPES:
        raise ValueError(
            f"`{name}` must hold real-valued pixels (a float or integer dtype), got dtype {dtype} "
            f"(shape {_shape(images)})."
        )
    shape = _shape(images)
    if shape is None:
        return shape
    if len(shape) != 4 or shape[-1] not in (3, None):
        hint = " (add a batch axis: `images[None]`)" if len(shape) == 3 and shape[-1] == 3 else ""
        raise ValueError(
            f"`{name}` must be a batch of RGB images of shape (batch, height, width, 3), "
            f"got shape {shape}{hint}."
        )
    if 0 in shape:
        raise ValueError(f"`{name}` must not be empty, got shape {shape}.")
    if isinstance(images, np.ndarray) and images.dtype.kind == "f":
        finite = np.isfinite(images)
        if not finite.all():
            bad = np.logical_not(finite).any(axis=(1, 2, 3))
            raise ValueError(
                f"`{name}` holds {int(np.isnan(images).sum())} NaN and "
                f"{int(np.isinf(images).sum())} infinite pixel values (in image(s) "
                f"{np.flatnonzero(bad)[:10].tolist()} of the batch); pixels must be finite "
                f"numbers (0..255): fix or drop those images."
            )
    return shape


def check_labels(labels, images_shape, name="labels", *, num_classes=None, ignore_index=255):
    """Checks label maps against the images they belong to: shape
    `(batch, height, width)` (or with a trailing axis of 1) equal to the
    images' first three axes, an integer (or integral float) dtype; with
    `num_classes`, the values too (see `check_label_values`).

    Args:
        labels: array or tensor.
        images_shape: the images' static shape, e.g. from `check_images`.
        name: the argument's name for the error message.
        num_classes: optional int; when given, concrete labels (NumPy
            arrays, eager tensors) are checked to hold only class indices
            `0..num_classes - 1` and `ignore_index`. Symbolic tensors and
            specs are not (their values are unknown).
        ignore_index: int, the ignored label value.

    Raises:
        ValueError: naming `name` and both shapes, or the bad values.

    Example:

    >>> import numpy as np
    >>> check_labels(np.zeros((2, 8, 8), "int32"), (2, 8, 8, 3), num_classes=3)
    """
    dtype = _dtype_name(labels)
    if dtype is not None and dtype not in _LABEL_DTYPES:
        raise ValueError(f"`{name}` must hold class indices (an integer dtype), got dtype {dtype}.")
    shape = _shape(labels)
    if num_classes is not None:
        values = _concrete(labels)
        if values is not None:
            check_label_values(values, num_classes, ignore_index, name)
    if shape is None:
        return
    expected = None if images_shape is None else tuple(images_shape[:3])
    core = shape[:3] if len(shape) == 4 and shape[-1] in (1, None) else shape
    if len(core) != 3 or (
        expected is not None
        and any(a is not None and b is not None and a != b for a, b in zip(core, expected))
    ):
        wanted = "(batch, height, width)" if expected is None else f"{expected} (batch, height, width)"
        one_hot = (
            f" A last axis of {shape[-1]} looks like one-hot masks (a channel per class): turn them into class "
            "indices with `np.argmax(masks, axis=-1)`."
            if len(shape) == 4 and shape[-1] is not None and shape[-1] > 1 and (expected is None or shape[:3] == expected)
            else ""
        )
        raise ValueError(
            f"`{name}` must be label maps of shape {wanted} matching the images "
            f"{tuple(images_shape) if images_shape is not None else ''}, got shape {shape}.{one_hot}"
        )


def _concrete(x):
    """`x` as a NumPy array when its values are known, else `None`."""
    if isinstance(x, np.ndarray):
        return x
    if isinstance(x, keras.KerasTensor) or not hasattr(x, "shape") or not hasattr(x, "dtype"):
        return None
    try:
        return np.asarray(keras.ops.convert_to_numpy(x))
    except Exception:  # symbolic (graph) tensors have no values
        return None


def _counted(values, counts):
    return ", ".join(f"{v} ({c} pixels)" for v, c in zip(values, counts))


def is_binary_mask_encoding(present, num_classes, ignore_index):
    """Whether label values `present` (the values found) are a 0/255-style
    binary mask read with two classes: only 0 and the ignore index, so the
    foreground would be ignored and class 1 never learnt. The one test of
    this mistake, for arrays given to `fit()` and for label files scanned
    before training (`keras_ann.data.label_scan`)."""
    present = {int(v) for v in present}
    return int(num_classes) == 2 and int(ignore_index) in present and present <= {0, int(ignore_index)}


def binary_mask_fix(ignore_index):
    """What to do about `is_binary_mask_encoding`, in words."""
    return (
        f"If {ignore_index} marks your foreground (a 0/{ignore_index} binary mask), map it to class 1: "
        f"label_map={{{ignore_index}: 1}} (`--label-map {ignore_index}:1`) with keras-ann's datasets, or "
        f"`np.where(masks == {ignore_index}, 1, masks)` for arrays."
    )


def check_label_values(labels, num_classes, ignore_index=255, name="labels"):
    """Checks that label maps hold only class indices: integers in
    `[0, num_classes)` or `ignore_index`.

    Refused, each with the values, their pixel counts and the fix: values
    `>= num_classes` (naming `ignore_index` for a void value), negative
    values (a -1 would otherwise be read as the last class), and
    non-integer or non-finite floats (masks resized with interpolation or
    rescaled).

    Args:
        labels: a NumPy array (or anything `np.asarray` takes).
        num_classes: int.
        ignore_index: int.
        name: the argument's name for the error message.

    Raises:
        ValueError: naming `name`, the bad values and what to do.

    Example:

    >>> import numpy as np
    >>> check_label_values(np.array([[0, 11, 11]]), 11, name="y")
    Traceback (most recent call last):
    ...
    ValueError: `y` holds labels outside [0, 11) that are not the ignore index 255: 11 (2 pixels). The classes are 0..10 (num_classes=11); if 11 is your void value pass ANNSegmenter(..., ignore_index=11), or set those pixels to 255.
    """
    labels = np.asarray(labels)
    k, ignore = int(num_classes), int(ignore_index)
    if labels.dtype.kind == "f":
        finite = np.isfinite(labels)
        if not np.all(finite):
            raise ValueError(
                f"`{name}` holds {int(np.size(finite) - np.count_nonzero(finite))} NaN or infinite "
                "labels: labels are class indices."
            )
        fractional = labels != np.floor(labels)
        if np.any(fractional):
            examples = np.unique(labels[fractional])[:3].tolist()
            scaled = (
                " They lie in [0, 1]: were the masks divided by 255 (e.g. by a `Rescaling` "
                "layer meant for the images)?"
                if labels.min() >= 0 and labels.max() <= 1
                else ""
            )
            raise ValueError(
                f"`{name}` holds non-integer labels, e.g. {examples} "
                f"({int(np.count_nonzero(fractional))} pixels): labels are class indices. Masks "
                f"resized with bilinear interpolation get such values: resize masks with "
                f"nearest-neighbour interpolation.{scaled}"
            )
    if labels.dtype.kind not in "iuf" or labels.size == 0:
        return
    if k == 2 and np.any(labels == ignore) and is_binary_mask_encoding(np.unique(labels), k, ignore):
        raise ValueError(
            f"`{name}` holds only 0 and {ignore}, but {ignore} is the ignore index: with num_classes=2 the "
            f"foreground would be ignored and class 1 never learnt. {binary_mask_fix(ignore)}"
        )
    bad = ((labels < 0) | (labels >= k)) & (labels != ignore)
    if not np.any(bad):
        return
    values, counts = np.unique(labels[bad], return_counts=True)
    values = [int(v) for v in values]
    negative = [(v, c) for v, c in zip(values, counts) if v < 0]
    above = [(v, c) for v, c in zip(values, counts) if v >= k]
    parts = []
    if negative:
        v = negative[0][0]
        parts.append(
            f"`{name}` holds negative labels: {_counted(*zip(*negative))}. Negative values are no "
            f"classes (-1 would be read as the last class). If {v} marks void pixels pass "
            f"ANNSegmenter(..., ignore_index={v}), or set them to {ignore}."
        )
    if above:
        listed = _counted(*zip(*above[:8])) + (f" and {len(above) - 8} more values" if len(above) > 8 else "")
        v = above[0][0]
        void = (
            f"if {v} is your void value pass ANNSegmenter(..., ignore_index={v}), or set those "
            f"pixels to {ignore}"
            if len(above) == 1
            else f"set void pixels to the ignore index {ignore}"
        )
        parts.append(
            f"`{name}` holds labels outside [0, {k}) that are not the ignore index {ignore}: "
            f"{listed}. The classes are 0..{k - 1} (num_classes={k}); {void}."
        )
    raise ValueError(" ".join(parts))
def check_positive_int(value, name, allow_zero=False):
    """An integer that is at least 1 (at least 0 with `allow_zero`), as an
    `int`. Booleans and non-integral numbers are refused, not rounded.

    Args:
        value: the value to check.
        name: the argument's name for the error message.
        allow_zero: also accept 0.

    Returns:
        `int(value)`.

    Raises:
        ValueError: naming `name` and the value.

    Example:

    >>> check_positive_int(4, "batch_size")
    4
    >>> check_positive_int(0, "batch_size")
    Traceback (most recent call last):
    ...
    ValueError: `batch_size` must be a positive integer, got 0.
    """
    kind = "non-negative" if allow_zero else "positive"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < (0 if allow_zero else 1):
        raise ValueError(f"`{name}` must be a {kind} integer, got {value!r}.")
    return int(value)


def check_precision(precision, name="precision"):
    """One of `PRECISIONS` (a Keras dtype policy name), returned as given.

    Args:
        precision: the value to check.
        name: the argument's name for the error message.

    Raises:
        ValueError: naming `name`, the value and the choices.

    Example:

    >>> check_precision("mixed_bfloat16")
    'mixed_bfloat16'
    >>> check_precision("bf16")
    Traceback (most recent call last):
    ...
    ValueError: `precision` must be one of ('float32', 'mixed_float16', 'mixed_bfloat16'), got 'bf16'.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"`{name}` must be one of {PRECISIONS}, got {precision!r}.")
    return precision


def check_pair(value, name):
    """An int or a pair of ints (height, width), all positive, as a tuple.

    Args:
        value: an int (used for both) or a pair of ints.
        name: the argument's name for the error message.

    Raises:
        ValueError: naming `name` and the value.

    Example:

    >>> check_pair(769, "crop_size")
    (769, 769)
    """
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        pair = (int(value), int(value))
    else:
        try:
            pair = tuple(value)
        except TypeError:
            pair = None
        if (
            pair is None
            or len(pair) != 2
            or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in pair)
        ):
            raise ValueError(
                f"`{name}` must be an int or a pair of ints (height, width), got {value!r}."
            )
        pair = (int(pair[0]), int(pair[1]))
    if min(pair) < 1:
        raise ValueError(f"`{name}` must be positive, got {value!r}.")
    return pair


# Memory of a forward pass, per input pixel: the image (3 values) and the
# logits (one per class) at full size, and at the peak of the network the
# values alive per pixel of the window it runs on (a ResNet-D8's features
# at 1/8 of the size with up to 2048 channels, the stem's at 1/2 with 64,
# each held as input and output of a layer; a rounded-up bound). Training
# keeps every layer's activations for the backward pass.
INFERENCE_VALUES_PER_PIXEL = 160
TRAINING_VALUES_PER_PIXEL = 1000
_FALLBACK_MEMORY_BYTES = 8 << 30


class MemoryBudgetError(ValueError):
    """A computation would need more memory than the machine has."""


def available_memory_bytes():
    """Bytes of memory this machine has available now: `MemAvailable` of
    `/proc/meminfo`, else its physical memory (`os.sysconf`), else 8 GiB."""
    import os

    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return _FALLBACK_MEMORY_BYTES


def _gigabytes(n):
    return f"{n / 1e9:.1f} GB" if n >= 1e8 else f"{n / 1e6:.0f} MB"


def check_memory(height, width, num_classes, *, what, flag, batch=1, window=None, training=False,
                 precision="float32", budget=None):
    """Refuse a forward pass that cannot fit in memory, before any array
    of that size is made.

    The estimate: the images and logits, `batch * height * width * (3 +
    num_classes)` values, and the network's activations on `window`
    (default: the whole image), `INFERENCE_VALUES_PER_PIXEL` (or
    `TRAINING_VALUES_PER_PIXEL`) values per pixel; 4 bytes a value (2 for
    the activations in mixed precision).

    Args:
        height, width: the image size the network sees.
        num_classes: classes of the logits.
        what: the pass, for the message (e.g. "predict at 60000x60000").
        flag: the flag that sets the size, for the message.
        batch: images per pass.
        window: `(h, w)` the network runs on at once (slide inference).
        training: the activations are kept for the backward pass.
        precision: a policy of `PRECISIONS`.
        budget: bytes allowed (default: `available_memory_bytes()`).

    Returns:
        The estimate in bytes.

    Raises:
        MemoryBudgetError: (a `ValueError`) the estimate, the budget and
            the flag to change.

    Example:

    >>> check_memory(512, 1024, 19, what="predict", flag="--test-scale", budget=8e9)
    381681664
    >>> check_memory(60000, 60000, 19, what="predict at 60000x60000", flag="--test-scale", budget=8e9)
    Traceback (most recent call last):
    ...
    keras_ann.checks.MemoryBudgetError: predict at 60000x60000 needs about 2620.8 GB of memory, more than the 8.0 GB available: lower --test-scale.
    """
    window_h, window_w = window or (height, width)
    window_h, window_w = min(window_h, height), min(window_w, width)
    per_pixel = TRAINING_VALUES_PER_PIXEL if training else INFERENCE_VALUES_PER_PIXEL
    activation_bytes = 4 if precision == "float32" else 2
    needed = batch * (height * width * (3 + num_classes) * 4 + window_h * window_w * per_pixel * activation_bytes)
    budget = available_memory_bytes() if budget is None else budget
    if needed > budget:
        raise MemoryBudgetError(
            f"{what} needs about {_gigabytes(needed)} of memory, more than the {_gigabytes(budget)} available: "
            f"lower {flag}."
        )
    return needed


def check_inference_memory(height, width, num_classes, *, scale=None, window=None, stride=None, what="inference",
                           flag=None, batch=1, precision="float32", mode=None, tiled=False, multiscale=False,
                           label_bytes=4, window_batch=None, budget=None):
    """`check_memory` of inference on an image of `height` x `width`,
    resized first to the keep-ratio test `scale` (`(long, short)`) when
    given, run whole or on `window`s.

    With `tiled` (sliding windows at the image's own size,
    `keras_ann.tiled_inference`, `window` and `stride` given) the logits
    are kept for one window's height of rows only: the estimate is the
    images and their labels (`label_bytes` a pixel), a band `window_h x
    width x num_classes` (held twice, as sums and as averages) and
    `window_batch` windows (default:
    `keras_ann.tiled_inference.window_batch_size`). Otherwise, as
    `check_memory`, plus the labels. The message says what to change:
    lower `flag` if given, else what helps (leave out `--ms-flip`, lower
    `--crop` when the image and its labels fit, `--mode slide` for a
    whole-image pass at the image's size, lower `--test-scale`).

    Returns:
        The estimate in bytes.

    Raises:
        MemoryBudgetError: as `check_memory`.

    Example:

    >>> check_inference_memory(9000, 9000, 19, window=(512, 512), stride=(341, 341), tiled=True, label_bytes=1,
    ...                        budget=4e9)
    1596938496
    >>> check_inference_memory(9000, 9000, 19, mode="whole", budget=4e9)
    Traceback (most recent call last):
    ...
    keras_ann.checks.MemoryBudgetError: inference at 9000x9000 needs about 59.3 GB of memory, more than the 4.0 GB available: use --mode slide --crop H W --stride H W (sliding windows at the image's size run in tiles, in memory that does not grow with the image).
    """
    budget = available_memory_bytes() if budget is None else budget
    if tiled:
        from keras_ann.tiled_inference import window_batch_size

        window_h, window_w = min(window[0], height), min(window[1], width)
        columns = max(width - window[1] + stride[1] - 1, 0) // stride[1] + 1
        windows = window_batch or window_batch_size(window, columns)
        pixels = batch * height * width * (3 + label_bytes)  # the images (uint8) and the labels
        band = window_h * width * num_classes * 4 * 2
        network = windows * window_h * window_w * ((3 + num_classes) * 4 + INFERENCE_VALUES_PER_PIXEL * 4)
        needed = pixels + band + network
        if needed > budget:
            fix = (
                f"split the image into parts (its pixels and labels alone need {_gigabytes(pixels)})"
                if pixels > budget
                else f"lower --crop (the logits of a band one window high and a batch of windows need "
                f"{_gigabytes(band + network)})"
            )
            raise MemoryBudgetError(
                f"{what} at {height}x{width} in tiles needs about {_gigabytes(needed)} of memory, more than the "
                f"{_gigabytes(budget)} available: {f'lower {flag}' if flag else fix}."
            )
        return needed
    labels = batch * height * width * label_bytes
    if flag is not None:
        fix = f"lower {flag}"
    elif multiscale:
        fix = ("leave out --ms-flip (multi-scale + flip keeps every scale's scores whole; single-scale sliding "
               "windows run in tiles)")
    elif scale is None and mode == "whole":
        fix = ("use --mode slide --crop H W --stride H W (sliding windows at the image's size run in tiles, in "
               "memory that does not grow with the image)")
    else:
        fix = "lower --test-scale"
    if scale is not None and not multiscale:
        from keras_ann.resizing import rescale_size

        height, width = rescale_size(height, width, tuple(scale))
    what = f"{what} at {height}x{width}"
    needed = labels + check_memory(
        height, width, num_classes, what=what, flag="", batch=batch, window=window if mode != "whole" else None,
        precision=precision, budget=float("inf"),
    )  # fmt: skip
    if needed > budget:
        raise MemoryBudgetError(
            f"{what} needs about {_gigabytes(needed)} of memory, more than the {_gigabytes(budget)} available: {fix}."
        )
    return needed
