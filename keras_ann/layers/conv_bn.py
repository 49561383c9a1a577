"""Convolution + batch normalisation + optional ReLU, as mmcv's `ConvModule`."""

import contextlib
import threading

import keras
from keras import ops

from keras_ann.layers import initializers
from keras_ann.layers.batch_norm import TorchBatchNormalization
from keras_ann.ops import conv2d_as_matmul

# From this many input channels a float32 inference convolution with a
# kernel larger than 1x1 runs as one matrix product on the TensorFlow
# backend (`conv2d_as_matmul`), where that measured faster than TensorFlow's
# oneDNN convolution (`benchmarks/conv_as_matmul.py`; BENCHMARKS.md, "Choices
# in the code and the measurements behind them").
MATMUL_MIN_CHANNELS = 1024
# `plain_convolutions()`'s setting, per thread (as Keras keeps its scopes).
_plain = threading.local()


@contextlib.contextmanager
def plain_convolutions():
    """Within this block, folded convolutions are traced as convolutions
    whatever their width (no `conv2d_as_matmul`): for graphs that run
    outside TensorFlow, such as ONNX and TFLite exports, whose runtimes have
    their own convolution kernels (and whose int8 quantisers quantise
    convolutions).

    Example:

    >>> with plain_convolutions():
    ...     pass
    """
    previous = getattr(_plain, "active", False)
    _plain.active = True
    try:
        yield
    finally:
        _plain.active = previous


def batch_norm(name=None, dtype=None):
    """Batch normalisation with PyTorch's numbers: eps 1e-5, momentum 0.1,
    and PyTorch's update of the moving statistics (`TorchBatchNormalization`).

    Keras's momentum is the weight of the old moving statistic, so PyTorch's
    momentum of 0.1 is 0.9 here. Synchronisation across replicas is a
    run-time setting (`set_synchronized_batch_norm`), not part of the
    architecture.
    """
    return TorchBatchNormalization(
        axis=-1,
        epsilon=1e-5,
        momentum=0.9,
        dtype=dtype,
        name=name,
    )


def inference_scale_and_shift(bn, read):
    """`(s, t)` of a `BatchNormalization` in inference, `y = x * s + t`:
    `s = gamma / sqrt(moving_variance + epsilon)`, `t = beta - moving_mean * s`.

    Args:
        bn: the batch norm.
        read: how a variable is read: `keras.ops.convert_to_tensor` inside
            a call, or a NumPy conversion (e.g. to float64) outside one.
    """
    scale = (read(bn.moving_variance) + bn.epsilon) ** -0.5
    if bn.scale:
        scale = scale * read(bn.gamma)
    shift = -read(bn.moving_mean) * scale
    if bn.center:
        shift = shift + read(bn.beta)
    return scale, shift


def set_synchronized_batch_norm(model, synchronized=True):
    """Make every `BatchNormalization` of `model` compute its batch
    statistics over all replicas (`synchronized=True`) or per replica.

    A run-time setting for multi-replica TensorFlow training
    (`tf.distribute`): it is not stored in configurations, so a model
    trained this way saves and loads like any other, on every backend. Call
    it before the model's first training step (a traced step keeps the
    setting it was traced with).

    Args:
        model: a Keras layer or model; every nested `BatchNormalization`
            is set.
        synchronized: bool. Defaults to `True`.

    Returns:
        The number of `BatchNormalization` layers set.

    Raises:
        ValueError: `synchronized=True` on a backend other than TensorFlow
            (JAX and PyTorch compute no per-replica statistics to
            synchronise; JAX's `DataParallel` normalises over the global
            batch already).

    Example:

    >>> layer = ConvBNReLU(4)
    >>> set_synchronized_batch_norm(layer, False)
    1
    >>> layer.bn.synchronized
    False
    """
    synchronized = bool(synchronized)
    if synchronized and keras.backend.backend() != "tensorflow":
        raise ValueError(
            "Synchronised batch normalisation exists on the TensorFlow backend only "
            f"(the backend is {keras.backend.backend()!r}); train with "
            "`tf.distribute` on TensorFlow, or leave `synchronized=False`."
        )
    count = 0
    # `_flatten_layers` reaches the sub-layers of subclassed layers too
    # (`Model.layers` lists only the top level of a functional graph).
    for layer in model._flatten_layers(include_self=True, recursive=True):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.synchronized = synchronized
            count += 1
    return count


def torch_padding(kernel_size, strides, dilation_rate):
    """Keras padding mode and explicit symmetric padding equal to PyTorch's
    `padding = dilation * (kernel_size - 1) // 2`.

    For stride 1 and an odd kernel Keras's `"same"` pads symmetrically and
    equals PyTorch. For stride 2, `"same"` pads only on the bottom/right when
    the size is even, so the padding is made explicit instead.

    Returns:
        `(padding_mode, explicit_pad)`, `explicit_pad` being 0 when
        `padding_mode` already matches.
    """
    pad = dilation_rate * (kernel_size - 1) // 2
    if pad == 0:
        return "valid", 0
    if strides == 1 and kernel_size % 2 == 1:
        return "same", 0
    return "valid", pad


def torch_conv2d(filters, kernel_size, strides=1, dilation_rate=1, dtype=None, name="conv"):
    """A bias-free `Conv2D` padded like PyTorch and initialised like mmcv's
    `ConvModule`, with the `ZeroPadding2D` it needs before it (or `None`).

    Returns:
        `(pad_layer_or_None, conv_layer)`.
    """
    padding, explicit_pad = torch_padding(kernel_size, strides, dilation_rate)
    pad = (
        keras.layers.ZeroPadding2D(explicit_pad, dtype=dtype, name=f"{name}_pad")
        if explicit_pad
        else None
    )
    conv = keras.layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding=padding,
        dilation_rate=dilation_rate,
        use_bias=False,
        kernel_initializer=initializers.kaiming_normal_fan_out(),
        dtype=dtype,
        name=name,
    )
    return pad, conv


@keras.saving.register_keras_serializable(package="keras_ann")
class ConvBNReLU(keras.layers.Layer):
    """`Conv2D` (no bias) + `BatchNormalization` + optional ReLU.

    The convolution pads like PyTorch (`padding = dilation * (k - 1) // 2`,
    symmetric) and is initialised like mmcv's `ConvModule`: He normal with
    fan-out. Batch normalisation uses PyTorch's epsilon (1e-5) and momentum
    (0.1), gamma 1 and beta 0, and updates its moving statistics as PyTorch
    (`TorchBatchNormalization`: unbiased batch variance).

    In inference (and when the batch norm is frozen) the batch norm is
    folded into the convolution at each call: one convolution with kernel
    `kernel * s` and bias `t` (`s = gamma / sqrt(moving_variance + eps)`,
    `t = beta - moving_mean * s`), the same values up to round-off with
    one pass less over the feature map.

    Args:
        filters: int, output channels.
        kernel_size: int, square kernel size. Defaults to 1.
        strides: int. Defaults to 1.
        dilation_rate: int. Defaults to 1.
        activation: `"relu"` or `None`. Defaults to `"relu"`.
        **kwargs: base `Layer` arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: channels-last feature map.
        training: bool, batch-norm mode.
        statistics_updates: int, how many times a training call updates
            the moving statistics, as calling the reference's module that
            many times on the same input. Defaults to 1.

    Example:

    >>> import numpy as np
    >>> layer = ConvBNReLU(8, kernel_size=3, strides=2)
    >>> tuple(layer(np.zeros((1, 9, 9, 4), "float32")).shape)
    (1, 5, 5, 8)
    """

    def __init__(
        self,
        filters,
        kernel_size=1,
        strides=1,
        dilation_rate=1,
        activation="relu",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if activation not in ("relu", None):
            raise ValueError(
                f"`activation` must be 'relu' or None, got {activation!r}."
            )
        self.filters = filters
        self.kernel_size = kernel_size
        self.strides = strides
        self.dilation_rate = dilation_rate
        self.activation = activation

        self.pad, self.conv = torch_conv2d(
            filters, kernel_size, strides, dilation_rate, dtype=self.dtype_policy, name="conv"
        )
        self.bn = batch_norm("bn", dtype=self.dtype_policy)

    def build(self, input_shape):
        shape = input_shape
        if self.pad is not None:
            self.pad.build(shape)
            shape = self.pad.compute_output_shape(shape)
        self.conv.build(shape)
        shape = self.conv.compute_output_shape(shape)
        self.bn.build(shape)

    def call(self, inputs, training=None, statistics_updates=1):
        x = inputs if self.pad is None else self.pad(inputs)
        if training and self.bn.trainable:
            x = self.bn(self.conv(x), training=training, statistics_updates=statistics_updates)
        else:
            x = self._folded_conv(x)
        if self.activation == "relu":
            x = keras.ops.relu(x)
        return x

    def _folded_conv(self, x):
        """The convolution and the batch norm in inference as one biased
        convolution: `conv(x, kernel * s) + t` with
        `s = gamma / sqrt(moving_variance + epsilon)` and
        `t = beta - moving_mean * s`, which skips a pass over the feature
        map (and, under mixed precision, its casts to float32 and back)."""
        # Batch-norm variables are not autocast: s and t are in float32
        # (float64 for float64 models).
        scale, shift = inference_scale_and_shift(self.bn, ops.convert_to_tensor)
        kernel = ops.cast(ops.cast(self.conv.kernel, scale.dtype) * scale, self.compute_dtype)
        if self._convolves_as_matmul(x):
            x = conv2d_as_matmul(x, kernel, self.dilation_rate, self.conv.padding)
        else:
            x = self.conv.convolution_op(x, kernel)
        return x + ops.cast(shift, self.compute_dtype)

    def _convolves_as_matmul(self, x):
        """Whether the folded convolution runs as one matrix product
        (`conv2d_as_matmul`): on the TensorFlow backend, in float32, for a
        stride-1 kernel larger than 1x1 with at least
        `MATMUL_MIN_CHANNELS` input channels, where it measured faster than
        TensorFlow's convolution, and outside `plain_convolutions()`. The
        result is the same up to round-off."""
        return (
            not getattr(_plain, "active", False)
            and keras.backend.backend() == "tensorflow"
            and self.compute_dtype == "float32"
            and self.strides == 1
            and self.kernel_size > 1
            and x.shape[-1] is not None
            and x.shape[-1] >= MATMUL_MIN_CHANNELS
        )

    def compute_output_shape(self, input_shape):
        shape = input_shape
        if self.pad is not None:
            shape = self.pad.compute_output_shape(shape)
        return self.conv.compute_output_shape(shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "kernel_size": self.kernel_size,
                "strides": self.strides,
                "dilation_rate": self.dilation_rate,
                "activation": self.activation,
            }
        )
        return config


def unsynchronized(config):
    """A copy of a serialised layer or model (`keras.layers.serialize`)
    with every `BatchNormalization` at `synchronized=False`.

    Keras's `BatchNormalization` saves `synchronized` and refuses `True` on
    the JAX and PyTorch backends; the setting belongs to a training run, not
    to the architecture (`set_synchronized_batch_norm`).

    Example:

    >>> bn = keras.layers.serialize(keras.layers.BatchNormalization(synchronized=True))
    >>> unsynchronized(bn)["config"]["synchronized"]
    False
    """
    if isinstance(config, dict):
        config = {key: unsynchronized(value) for key, value in config.items()}
        inner = config.get("config")
        if config.get("class_name") == "BatchNormalization" and isinstance(inner, dict):
            inner["synchronized"] = False
        return config
    if isinstance(config, (list, tuple)):
        return type(config)(unsynchronized(value) for value in config)
    return config
