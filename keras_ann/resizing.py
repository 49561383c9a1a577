"""The reference's image-size and resize arithmetic, written once.

* `rescale_size`: mmcv's keep-ratio rule (`mmcv.rescale_size`, used by
  `Resize(scale, keep_ratio=True)`, `RandomResize` and, through a scale
  factor, `Resize(scale_factor=r, keep_ratio=True)` of the test-time
  augmentation).
* `resize_linear`: OpenCV's `cv2.resize(..., INTER_LINEAR)` on `uint8`
  images (what `mmcv.imresize` calls): half-pixel centres, x positions
  clamped with zero weight and y rows clamped keeping their weights, 11-bit
  fixed-point weights and the rounding of OpenCV's vectorised vertical pass.
* `resize_nearest`: OpenCV's `INTER_NEAREST` (`src = floor(dst * in /
  out)`, no half-pixel offset), how label maps are resized.

The training pipeline runs this code as TensorFlow graph ops inside
`tf.data` (`keras_ann.data.transforms`) and test-time inference runs it in
NumPy (`keras_ann.inference`), so both go through an `ArrayOps` namespace:
`NUMPY_OPS` here, the TensorFlow one in `keras_ann.data.transforms`.  This
module imports no TensorFlow.  Both resizes accept a *window* of the output,
so the training pipeline computes only the pixels that survive its random
crop (the same numbers as resizing everything and cropping).
"""

import collections
import numbers

import numpy as np

__all__ = [
    "ArrayOps",
    "NUMPY_OPS",
    "rescale_size",
    "resize_linear",
    "resize_nearest",
]

_COEF_BITS = 11
_COEF_SCALE = 1 << _COEF_BITS  # OpenCV's INTER_RESIZE_COEF_SCALE

ArrayOps = collections.namedtuple(
    "ArrayOps",
    [
        "shape",
        "arange",
        "cast",
        "floor",
        "round",
        "where",
        "minimum",
        "maximum",
        "clip",
        "take",
        "right_shift",
    ],
)
ArrayOps.__doc__ = """The array operations the arithmetic here needs.

`shape(x)` (dynamic in graphs), `arange(start, stop)`, `cast(x, dtype_name)`, `floor`, `round` (half to
even), `where(cond, a, b)`, `minimum`, `maximum`, `clip(x, lo, hi)`,
`take(x, indices, axis)`, `right_shift(x, bits)`.
"""

NUMPY_OPS = ArrayOps(
    **{name: getattr(np, name) for name in ("shape", "arange", "floor", "where", "minimum")},
    **{name: getattr(np, name) for name in ("maximum", "clip", "right_shift")},
    round=np.rint,
    cast=lambda x, dtype: np.asarray(x).astype(dtype),
    take=lambda x, indices, axis: np.take(x, indices, axis=axis),
)


def rescale_size(height, width, scale, ops=NUMPY_OPS):
    """The size mmcv's keep-ratio resize gives an image.

    The image is scaled by `factor = min(max(scale) / max(h, w),
    min(scale) / min(h, w))` and each side rounded as
    `int(side * factor + 0.5)`, in float64 as mmcv does in Python.  A
    number `scale` is a scale factor `r`, as in mmcv's
    `Resize(scale_factor=r, keep_ratio=True)`: the bound is then
    `(int(w * r + 0.5), int(h * r + 0.5))`, which usually gives
    `int(side * r + 0.5)` but can differ by one pixel.

    Args:
        height: int (or int tensor with TensorFlow `ops`), input height.
        width: int (or int tensor), input width.
        scale: the `(long, short)` bound in either order, e.g.
            `(2048, 1024)` (a pair of ints or a `[2]` tensor), or a positive
            number, a scale factor (NumPy `ops` only).
        ops: `NUMPY_OPS` (default) or the TensorFlow `ArrayOps` of
            `keras_ann.data.transforms` for graph tensors.

    Returns:
        `(new_height, new_width)`: Python ints with `NUMPY_OPS`, int32
        scalar tensors otherwise.

    Example:

    >>> rescale_size(1024, 2048, (1024, 512))
    (512, 1024)
    >>> rescale_size(97, 131, 1.75)
    (170, 229)
    """
    if isinstance(scale, numbers.Number):
        ratio = float(scale)
        if not ratio > 0:
            raise ValueError(f"A scale factor must be positive, got {scale!r}.")
        scale = (int(width * ratio + 0.5), int(height * ratio + 0.5))
    h = ops.cast(height, "float64")
    w = ops.cast(width, "float64")
    s0 = ops.cast(scale[0], "float64")
    s1 = ops.cast(scale[1], "float64")
    factor = ops.minimum(
        ops.maximum(s0, s1) / ops.maximum(h, w), ops.minimum(s0, s1) / ops.minimum(h, w)
    )
    new_h = ops.cast(ops.floor(h * factor + 0.5), "int32")
    new_w = ops.cast(ops.floor(w * factor + 0.5), "int32")
    if ops is NUMPY_OPS:
        return int(new_h), int(new_w)
    return new_h, new_w


def _linear_taps(in_size, out_size, start, length, clamp_weights, ops):
    """INTER_LINEAR source indices and 11-bit weights along one axis.

    OpenCV zeroes the fraction of out-of-range positions along x only; along
    y it keeps the weights and clamps the two source rows (which coincide).
    """
    in_size = ops.cast(in_size, "int32")
    inv_scale = ops.cast(out_size, "float64") / ops.cast(in_size, "float64")
    scale = 1.0 / inv_scale
    dst = ops.cast(ops.arange(start, start + length), "float64")
    f = ops.cast((dst + 0.5) * scale - 0.5, "float32")
    s = ops.floor(f)
    frac = f - s
    s = ops.cast(s, "int32")
    if clamp_weights:
        low = s < 0
        frac = ops.where(low, 0.0, frac)
        s = ops.where(low, 0, s)
        high = s >= in_size - 1
        frac = ops.where(high, 0.0, frac)
        s = ops.where(high, in_size - 1, s)
    w0 = ops.cast(ops.round((1.0 - frac) * float(_COEF_SCALE)), "int32")
    w1 = ops.cast(ops.round(frac * float(_COEF_SCALE)), "int32")
    s1 = ops.clip(s + 1, 0, in_size - 1)
    s = ops.clip(s, 0, in_size - 1)
    return s, s1, w0, w1


def _window(size, window):
    if window is None:
        return 0, 0, size[0], size[1]
    return window


def resize_linear(image, size, window=None, ops=NUMPY_OPS):
    """Resizes a `uint8` image as `cv2.resize(..., INTER_LINEAR)` does.

    Args:
        image: `uint8` array (or tensor, with TensorFlow `ops`) `[H, W, C]`.
        size: `(out_height, out_width)`, ints or int scalar tensors.
        window: optional `(y0, x0, h, w)`: compute only this window of the
            resized image (the same numbers as resizing, then slicing).
        ops: `NUMPY_OPS` or the TensorFlow `ArrayOps`.

    Returns:
        `uint8` `[h, w, C]` (the window, or the full `size`).

    Example:

    >>> x = np.arange(16, dtype=np.uint8).reshape(4, 4, 1) * 10
    >>> resize_linear(x, (2, 2))[..., 0].tolist()
    [[25, 45], [105, 125]]
    """
    shape = ops.shape(image)
    in_h, in_w = shape[0], shape[1]
    out_h, out_w = size
    y0, x0, h, w = _window((out_h, out_w), window)
    ys, ys1, wy0, wy1 = _linear_taps(in_h, out_h, y0, h, False, ops)
    xs, xs1, wx0, wx1 = _linear_taps(in_w, out_w, x0, w, True, ops)
    # Horizontal pass over the source rows the window needs only (the taps
    # are non-decreasing).
    r0 = ys[0]
    rows = image[r0 : ys1[-1] + 1]
    left = ops.cast(ops.take(rows, xs, 1), "int32")
    right = ops.cast(ops.take(rows, xs1, 1), "int32")
    hbuf = left * wx0[None, :, None] + right * wx1[None, :, None]
    # Vertical pass with OpenCV's vectorised rounding:
    # ((top >> 4) * b0 >> 16) + ((bottom >> 4) * b1 >> 16), then (+2) >> 2.
    shift = ops.right_shift
    top = shift(ops.take(hbuf, ys - r0, 0), 4)
    bottom = shift(ops.take(hbuf, ys1 - r0, 0), 4)
    out = shift(top * wy0[:, None, None], 16) + shift(bottom * wy1[:, None, None], 16)
    out = shift(out + 2, 2)
    return ops.cast(ops.clip(out, 0, 255), "uint8")


def resize_nearest(label, size, window=None, ops=NUMPY_OPS):
    """Resizes a label map as `cv2.resize(..., INTER_NEAREST)` does.

    Args:
        label: array (or tensor) `[H, W, ...]`, any dtype.
        size: `(out_height, out_width)`.
        window: optional `(y0, x0, h, w)` window of the output.
        ops: `NUMPY_OPS` or the TensorFlow `ArrayOps`.

    Returns:
        `[h, w, ...]` of the input dtype.

    Example:

    >>> resize_nearest(np.array([[1, 2], [3, 4]], np.uint8), (4, 4))[0].tolist()
    [1, 1, 2, 2]
    """
    out_h, out_w = size
    y0, x0, h, w = _window((out_h, out_w), window)

    def taps(in_size, out_size, start, length):
        in_size = ops.cast(in_size, "int32")
        inv_scale = ops.cast(out_size, "float64") / ops.cast(in_size, "float64")
        dst = ops.cast(ops.arange(start, start + length), "float64")
        src = ops.cast(ops.floor(dst * (1.0 / inv_scale)), "int32")
        return ops.minimum(src, in_size - 1)

    shape = ops.shape(label)
    ys = taps(shape[0], out_h, y0, h)
    xs = taps(shape[1], out_w, x0, w)
    return ops.take(ops.take(label, ys, 0), xs, 1)
