"""Backend-agnostic spatial ops that match PyTorch to the last rounding step.

Keras's own `keras.ops.image.resize` does not offer `align_corners=True`, and
its behaviour when down-sampling differs between backends (JAX anti-aliases).
`keras.layers.AveragePooling2D` uses strided windows, which differ from
PyTorch's `AdaptiveAvgPool2d` whenever the input size is not divisible by the
output size (for example the 97x97 feature map of a 769x769 crop).

Both operations are separable linear maps along height and width, so they
are written here as two small matrix products with matrices built from the
(possibly dynamic) input shape. This gives identical numbers on the
TensorFlow, JAX and PyTorch backends, exactly PyTorch's sampling rule, and
costs little next to the convolutions of a segmentation network.
"""

import functools

import keras
import numpy as np
from keras import ops

__all__ = [
    "adaptive_avg_pool2d",
    "has_64bit",
    "segmentation_pair",
    "adaptive_pooling_matrix",
    "bilinear_interpolation_matrix",
    "bilinear_resize",
    "conv2d_as_matmul",
    "separable_product",
]


def _is_static(*sizes):
    return all(isinstance(v, int) for v in sizes)


def _is_float64(dtype):
    return keras.backend.standardize_dtype(dtype) == "float64"


@functools.lru_cache(maxsize=256)
def _numpy_interpolation_matrix(in_size, out_size, align_corners, double=False):
    if double:
        # PyTorch computes float64 weights in float64.
        dst = np.arange(out_size, dtype=np.float64)
        if align_corners:
            src = dst * ((in_size - 1) / (out_size - 1) if out_size > 1 else 0.0)
        else:
            src = np.maximum((dst + 0.5) * (in_size / out_size) - 0.5, 0.0)
        return _linear_weights(src, in_size)
    # float64 products of float32 operands are exact, so rounding once to
    # float32 afterwards reproduces PyTorch's fused multiply-add.
    dst = np.arange(out_size, dtype=np.float64)
    if align_corners:
        scale = np.float32((in_size - 1) / (out_size - 1)) if out_size > 1 else 0.0
        src = (np.float64(scale) * dst).astype(np.float32)
    else:
        scale = np.float32(np.float32(in_size) / np.float32(out_size))
        src = (np.float64(scale) * (dst + 0.5) - 0.5).astype(np.float32)
        src = np.maximum(src, np.float32(0.0))
    return _linear_weights(src, in_size)


def _linear_weights(src, in_size):
    lower = np.minimum(np.floor(src), in_size - 1).astype(np.int64)
    frac = src - lower.astype(src.dtype)
    upper = np.minimum(lower + 1, in_size - 1)
    weights = np.zeros((len(src), in_size), src.dtype)
    rows = np.arange(len(src))
    weights[rows, lower] += 1 - frac
    weights[rows, upper] += frac
    return weights


def bilinear_interpolation_matrix(in_size, out_size, align_corners, dtype="float32"):
    """Matrix `M` of shape `(out_size, in_size)` with `y = M @ x` equal to
    PyTorch's 1-D linear interpolation (`F.interpolate(mode="bilinear")`
    along one axis, `size=` given, no anti-aliasing).

    The source position is computed as PyTorch's kernels compute it, with a
    single rounding of `scale * (dst + 0.5) - 0.5` (a fused multiply-add),
    so the weights equal PyTorch's bit for bit.

    Args:
        in_size: int or scalar tensor, length of the input axis.
        out_size: int or scalar tensor, length of the output axis.
        align_corners: bool, PyTorch's `align_corners`.
        dtype: dtype of the returned matrix.

    Returns:
        A `(out_size, in_size)` tensor whose rows hold at most two non-zero
        weights that sum to one.
    """
    if _is_static(in_size, out_size):
        double = _is_float64(dtype)
        matrix = _numpy_interpolation_matrix(in_size, out_size, bool(align_corners), double)
        return ops.convert_to_tensor(matrix, dtype=dtype)
    # Sizes known only at run time (TensorFlow graphs with `None` dims).
    in_f = ops.cast(in_size, "float32")
    out_f = ops.cast(out_size, "float32")
    dst = ops.cast(ops.arange(out_size), "float64")
    if align_corners:
        scale = ops.where(out_f > 1.0, (in_f - 1.0) / ops.maximum(out_f - 1.0, 1.0), 0.0)
        src = ops.cast(ops.cast(scale, "float64") * dst, "float32")
    else:
        scale = ops.cast(in_f / out_f, "float64")
        src = ops.cast(scale * (dst + 0.5) - 0.5, "float32")
        src = ops.maximum(src, 0.0)
    lower = ops.minimum(ops.floor(src), in_f - 1.0)
    frac = src - lower
    upper = ops.minimum(lower + 1.0, in_f - 1.0)
    positions = ops.cast(ops.arange(in_size), "float32")[None, :]
    weights = ops.cast(ops.equal(positions, lower[:, None]), "float32") * (
        1.0 - frac[:, None]
    ) + ops.cast(ops.equal(positions, upper[:, None]), "float32") * frac[:, None]
    return ops.cast(weights, dtype)


@functools.lru_cache(maxsize=256)
def _numpy_pooling_matrix(in_size, out_size, double=False):
    dtype = np.float64 if double else np.float32
    weights = np.zeros((out_size, in_size), dtype)
    for i in range(out_size):
        start = (i * in_size) // out_size
        end = -((-(i + 1) * in_size) // out_size)  # ceil
        weights[i, start:end] = dtype(1.0) / dtype(end - start)
    return weights


def adaptive_pooling_matrix(in_size, out_size, dtype="float32"):
    """Matrix `P` of shape `(out_size, in_size)` with `y = P @ x` equal to
    PyTorch's 1-D adaptive average pooling.

    Bin `i` averages the input positions `floor(i * in / out)` up to (but
    excluding) `ceil((i + 1) * in / out)`. Bins may overlap, and the rule also
    holds when the input is shorter than the output.

    Args:
        in_size: int or scalar tensor, length of the input axis.
        out_size: int, number of bins.
        dtype: dtype of the returned matrix.

    Returns:
        A `(out_size, in_size)` tensor whose rows sum to one.
    """
    if _is_static(in_size, out_size):
        matrix = _numpy_pooling_matrix(in_size, out_size, _is_float64(dtype))
        return ops.convert_to_tensor(matrix, dtype=dtype)
    bins = ops.arange(out_size, dtype="int32")
    in_size = ops.cast(in_size, "int32")
    start = (bins * in_size) // out_size
    end = ((bins + 1) * in_size + out_size - 1) // out_size
    positions = ops.arange(in_size, dtype="int32")[None, :]
    inside = ops.logical_and(positions >= start[:, None], positions < end[:, None])
    weights = ops.cast(inside, "float32") / ops.cast(end - start, "float32")[:, None]
    return ops.cast(weights, dtype)


def separable_product(x, rows, cols):
    """`out[b, i, j, c] = sum_hw rows[i, h] * x[b, h, w, c] * cols[j, w]`.

    Two matrix products with broadcast batch dimensions, no transposes:
    `rows @ x` over `(b, h, w * c)`, then `cols @ y` over `(b, i, w, c)`,
    in this order whatever the sizes, so that a model traced with static
    and with dynamic shapes rounds alike (columns first would take fewer
    multiply-adds when upsampling, a small gain on a small part of the
    forward pass). TensorFlow's einsum for the same contractions moved the
    large input around first and was slower on a CPU (BENCHMARKS.md,
    "Choices in the code and the measurements behind them").

    Args:
        x: `(batch, H, W, channels)` tensor.
        rows: `(I, H)` matrix, applied along the height.
        cols: `(J, W)` matrix, applied along the width.

    Returns:
        The `(batch, I, J, channels)` tensor.

    Example:

    >>> import numpy as np
    >>> x = np.arange(8, dtype="float32").reshape(1, 2, 4, 1)
    >>> rows = np.array([[0.5, 0.5]], "float32")  # the mean of the two rows
    >>> cols = np.array([[1, 1, 0, 0], [0, 0, 1, 1]], "float32")  # sums of pairs
    >>> [float(v) for v in np.asarray(separable_product(x, rows, cols)).ravel()]
    [5.0, 9.0]
    """
    batch, height, width, channels = (ops.shape(x)[k] for k in range(4))
    y = ops.matmul(rows, ops.reshape(x, (batch, height, width * channels)))
    y = ops.reshape(y, (batch, ops.shape(rows)[0], width, channels))
    return ops.matmul(cols, y)


def bilinear_resize(images, size, align_corners=False):
    """Bilinear resize of a channels-last batch, identical to PyTorch's
    `F.interpolate(x, size, mode="bilinear", align_corners=...)`.

    Args:
        images: `(batch, height, width, channels)` tensor.
        size: `(height, width)` of the output; ints or scalar tensors.
        align_corners: bool, as in PyTorch. The reference uses `False`
            except for its 769x769 Cityscapes recipes.

    Returns:
        The resized tensor, in the dtype of `images`.

    Example:

    >>> import numpy as np
    >>> x = np.arange(4, dtype="float32").reshape(1, 2, 2, 1)
    >>> y = bilinear_resize(x, (3, 3), align_corners=True)
    >>> [float(v) for v in np.asarray(y)[0, :, :, 0].ravel()]
    [0.0, 0.5, 1.0, 1.0, 1.5, 2.0, 2.0, 2.5, 3.0]
    """
    in_h, in_w = ops.shape(images)[1], ops.shape(images)[2]
    out_h, out_w = size
    same = _is_static(in_h, in_w, out_h, out_w) and (in_h, in_w) == (out_h, out_w)
    if same:
        return images  # both sampling rules are the identity here.
    dtype = images.dtype
    rows = bilinear_interpolation_matrix(in_h, out_h, align_corners, dtype)
    cols = bilinear_interpolation_matrix(in_w, out_w, align_corners, dtype)
    return separable_product(images, rows, cols)


def adaptive_avg_pool2d(inputs, output_size):
    """PyTorch's `AdaptiveAvgPool2d` for a channels-last batch.

    Args:
        inputs: `(batch, height, width, channels)` tensor.
        output_size: int `s` (an `s x s` grid) or `(out_h, out_w)`.

    Returns:
        A `(batch, out_h, out_w, channels)` tensor.
    """
    if isinstance(output_size, int):
        output_size = (output_size, output_size)
    out_h, out_w = output_size
    in_h, in_w = ops.shape(inputs)[1], ops.shape(inputs)[2]
    dtype = inputs.dtype
    rows = adaptive_pooling_matrix(in_h, out_h, dtype)
    cols = adaptive_pooling_matrix(in_w, out_w, dtype)
    return separable_product(inputs, rows, cols)


def conv2d_as_matmul(x, kernel, dilation_rate=1, padding="valid"):
    """A stride-1 2-D convolution (channels last) as one matrix product and
    a sum of shifted slices: `y = x @ K`, with `K` the `(C_in, kh * kw *
    C_out)` matrix of every tap's kernel, then the output is the sum over
    the taps `(i, j)` of `y`'s tap-`(i, j)` columns shifted by
    `(i * dilation, j * dilation)`.

    The same arithmetic as the convolution, in a different order, so equal
    to it up to round-off. On a CPU it runs at the matrix-multiply rate, so
    in float32 it beats TensorFlow's convolution when the input channels
    are many (the decode head's 3x3 convolution of 2048 channels); with
    few input channels, or in bfloat16, the convolution is the faster
    (`benchmarks/conv_as_matmul.py`; figures in BENCHMARKS.md, "Choices in
    the code and the measurements behind them").

    Args:
        x: `(batch, H, W, C_in)` tensor.
        kernel: `(kh, kw, C_in, C_out)` tensor, Keras's `Conv2D` layout.
        dilation_rate: int, the same along height and width. Defaults to 1.
        padding: `"valid"` or `"same"` (Keras's: the `dilation * (k - 1)`
            rows and columns of zeros split with the extra one at the
            bottom and right). Defaults to `"valid"`.

    Returns:
        The `(batch, H', W', C_out)` convolution, in the dtype of `x`.

    Example:

    >>> import numpy as np
    >>> x = np.arange(16, dtype="float32").reshape(1, 4, 4, 1)
    >>> kernel = np.ones((3, 3, 1, 1), "float32")  # sums of 3x3 windows
    >>> np.asarray(conv2d_as_matmul(x, kernel))[0, :, :, 0].tolist()
    [[45.0, 54.0], [81.0, 90.0]]
    """
    kh, kw, c_in, c_out = (int(v) for v in kernel.shape)
    if padding not in ("valid", "same"):
        raise ValueError(f"`padding` must be 'valid' or 'same', got {padding!r}.")
    d = int(dilation_rate)
    if padding == "same":
        rows, cols = d * (kh - 1), d * (kw - 1)
        x = ops.pad(x, [[0, 0], [rows // 2, rows - rows // 2], [cols // 2, cols - cols // 2], [0, 0]])
    batch, height, width = (ops.shape(x)[k] for k in range(3))
    out_h, out_w = height - d * (kh - 1), width - d * (kw - 1)
    taps = ops.reshape(ops.transpose(kernel, (2, 0, 1, 3)), (c_in, kh * kw * c_out))
    y = ops.matmul(ops.reshape(x, (-1, c_in)), taps)
    y = ops.reshape(y, (batch, height, width, kh * kw, c_out))
    out = None
    for i in range(kh):
        for j in range(kw):
            tap = ops.slice(y, (0, i * d, j * d, i * kw + j, 0), (batch, out_h, out_w, 1, c_out))
            out = tap if out is None else out + tap
    return ops.squeeze(out, axis=3)


def has_64bit():
    """Whether the backend computes in 64-bit types (JAX only with
    `jax_enable_x64`)."""
    if keras.config.backend() == "jax":
        import jax

        return bool(jax.config.jax_enable_x64)
    return True


def segmentation_pair(y_true, y_pred):
    """Labels `(N, H, W)` (a trailing axis of 1 is dropped) and scores
    `(N, h, w, C)` as tensors, or a `ValueError` naming both shapes."""
    y_true = ops.convert_to_tensor(y_true)
    y_pred = ops.convert_to_tensor(y_pred)
    if len(y_true.shape) == 4:
        y_true = ops.squeeze(y_true, -1)
    if len(y_true.shape) != 3 or len(y_pred.shape) != 4:
        raise ValueError(
            "Expected labels of shape (batch, H, W) and logits of shape "
            f"(batch, h, w, classes); got labels {tuple(y_true.shape)} and "
            f"logits {tuple(y_pred.shape)}."
        )
    return y_true, y_pred
