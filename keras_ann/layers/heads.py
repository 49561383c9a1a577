"""The decode head (`ANNHead`) and the auxiliary head (`FCNHead`) of ANN, as
mmsegmentation's `ANNHead` and `FCNHead`."""

import keras

from keras_ann.layers import initializers
from keras_ann.layers.afnb import AFNB
from keras_ann.layers.apnb import APNB
from keras_ann.layers.conv_bn import ConvBNReLU


def _classifier(num_classes, dtype):
    """mmseg's `conv_seg`: a 1x1 convolution with bias, normal(0.01) kernel."""
    return keras.layers.Conv2D(
        num_classes,
        1,
        kernel_initializer=initializers.classifier_kernel(),
        dtype=dtype,
        name="conv_seg",
    )


def _positive(value, name):
    if int(value) != value or int(value) < 1:
        raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
    return int(value)


@keras.saving.register_keras_serializable(package="keras_ann")
class ANNHead(keras.layers.Layer):
    """The ANN decode head: AFNB fuses two feature maps, APNB adds context.

    ```
    [low, high] -> AFNB (high queries over pyramid-pooled low keys)
      -> dropout -> 3x3 conv-BN-ReLU (channels)
      -> APNB (self-attention, channels) -> dropout -> 1x1 classifier
    ```

    The output stays at the resolution of `high` (the segmenter resizes it).
    AFNB's output has as many channels as `high`, as in the reference. The
    sub-layers carry the reference's module names (`fusion`, `bottleneck`,
    `context`, `conv_seg`; one `dropout` used twice), which the weight
    converter maps `decode_head.*` onto.

    Args:
        num_classes: int, output channels of the classifier.
        channels: int, width of the 3x3 conv and of APNB (the reference's
            `channels`, 512 for ResNet-50/101). Defaults to 512.
        project_channels: int, channels of the attention's queries, keys and
            values. Defaults to 256.
        query_scales: tuple of ints, query scales of AFNB and APNB.
            Defaults to `(1,)`.
        key_pool_scales: tuple of ints, the key pyramid. Defaults to
            `(1, 3, 6, 8)`.
        dropout: float, channel dropout rate. Defaults to 0.1.
        **kwargs: base `Layer` arguments (`name`, `dtype`).

    Call arguments:
        inputs: list `[low, high]` of channels-last feature maps.
        training: bool.

    Example:

    >>> import numpy as np
    >>> head = ANNHead(num_classes=3, channels=16, project_channels=8)
    >>> low = np.random.rand(1, 9, 7, 12).astype("float32")
    >>> high = np.random.rand(1, 9, 7, 24).astype("float32")
    >>> tuple(head([low, high]).shape)
    (1, 9, 7, 3)
    """

    def __init__(
        self,
        num_classes,
        channels=512,
        project_channels=256,
        query_scales=(1,),
        key_pool_scales=(1, 3, 6, 8),
        dropout=0.1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_classes = _positive(num_classes, "num_classes")
        self.channels = _positive(channels, "channels")
        self.project_channels = _positive(project_channels, "project_channels")
        self.query_scales = tuple(int(s) for s in query_scales)
        self.key_pool_scales = tuple(int(s) for s in key_pool_scales)
        self.dropout_rate = float(dropout)
        policy = self.dtype_policy
        # AFNB's width is that of `high`, known in `build`.
        self.fusion = None
        self.dropout = keras.layers.SpatialDropout2D(self.dropout_rate, dtype=policy, name="dropout")
        self.bottleneck = ConvBNReLU(self.channels, 3, dtype=policy, name="bottleneck")
        self.context = APNB(
            self.project_channels,
            self.channels,
            query_scales=self.query_scales,
            key_pool_scales=self.key_pool_scales,
            dtype=policy,
            name="context",
        )
        self.conv_seg = _classifier(self.num_classes, policy)

    def build(self, input_shape):
        low_shape, high_shape = input_shape
        self.fusion = AFNB(
            self.project_channels,
            high_shape[-1],
            query_scales=self.query_scales,
            key_pool_scales=self.key_pool_scales,
            dtype=self.dtype_policy,
            name="fusion",
        )
        self.fusion.build([low_shape, high_shape])
        shape = tuple(high_shape[:-1])
        self.bottleneck.build(shape + (high_shape[-1],))
        self.context.build(shape + (self.channels,))
        self.conv_seg.build(shape + (self.channels,))

    def call(self, inputs, training=None):
        return self.classify(self.context_inputs(inputs, training), training)

    def context_inputs(self, inputs, training=None):
        """The input of APNB (`context`): AFNB, dropout, 3x3 conv."""
        x = self.fusion(inputs, training=training)
        x = self.dropout(x, training=training)
        return self.bottleneck(x, training=training)

    def classify(self, x, training=None):
        """APNB, dropout and the classifier on `context_inputs`' output."""
        x = self.context(x, training=training)
        return self.conv_seg(self.dropout(x, training=training))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[1][:-1]) + (self.num_classes,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_classes": self.num_classes,
                "channels": self.channels,
                "project_channels": self.project_channels,
                "query_scales": self.query_scales,
                "key_pool_scales": self.key_pool_scales,
                "dropout": self.dropout_rate,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="keras_ann")
class FCNHead(keras.layers.Layer):
    """The FCN head, ANN's auxiliary head (mmsegmentation's `FCNHead`).

    ```
    x -> num_convs x (k x k conv-BN-ReLU, channels, dilated)
      [-> concat with x -> k x k conv-BN-ReLU]   (concat_input)
      -> dropout -> 1x1 classifier
    ```

    ANN's configs use it on stage 3 with one 3x3 convolution of 256
    channels and no concatenation. The sub-layers carry the reference's
    module names (`convs`, `conv_cat`, `conv_seg`).

    Args:
        num_classes: int, output channels of the classifier.
        channels: int, width of the convolutions. Defaults to 256.
        num_convs: int >= 0. Defaults to 1. With 0 the input goes to the
            classifier directly and must have `channels` channels.
        kernel_size: int, odd. Defaults to 3.
        dilation_rate: int, dilation of the convolutions. Defaults to 1.
        concat_input: bool, concatenate the input with the convolutions'
            output and fuse them by one more convolution. Defaults to
            `False`.
        dropout: float, channel dropout before the classifier. Defaults to
            0.1.
        **kwargs: base `Layer` arguments (`name`, `dtype`).

    Example:

    >>> import numpy as np
    >>> head = FCNHead(num_classes=4, channels=8)
    >>> tuple(head(np.random.rand(2, 5, 6, 16).astype("float32")).shape)
    (2, 5, 6, 4)
    """

    def __init__(
        self,
        num_classes,
        channels=256,
        num_convs=1,
        kernel_size=3,
        dilation_rate=1,
        concat_input=False,
        dropout=0.1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_classes = _positive(num_classes, "num_classes")
        self.channels = _positive(channels, "channels")
        if int(num_convs) != num_convs or num_convs < 0:
            raise ValueError(f"`num_convs` must be an integer >= 0, got {num_convs!r}.")
        self.num_convs = int(num_convs)
        self.kernel_size = _positive(kernel_size, "kernel_size")
        if self.kernel_size % 2 == 0:
            raise ValueError(f"`kernel_size` must be odd, got {kernel_size!r}.")
        self.dilation_rate = _positive(dilation_rate, "dilation_rate")
        self.concat_input = bool(concat_input)
        if self.concat_input and not self.num_convs:
            raise ValueError("`concat_input=True` needs `num_convs` >= 1.")
        self.dropout_rate = float(dropout)
        policy = self.dtype_policy
        self.convs = [
            ConvBNReLU(
                self.channels,
                self.kernel_size,
                dilation_rate=self.dilation_rate,
                dtype=policy,
                name=f"convs_{i}",
            )
            for i in range(self.num_convs)
        ]
        self.conv_cat = (
            ConvBNReLU(self.channels, self.kernel_size, dtype=policy, name="conv_cat")
            if self.concat_input
            else None
        )
        self.dropout = keras.layers.SpatialDropout2D(self.dropout_rate, dtype=policy, name="dropout")
        self.conv_seg = _classifier(self.num_classes, policy)

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        if not self.num_convs and input_shape[-1] != self.channels:
            raise ValueError(
                f"`num_convs=0` needs an input of `channels` ({self.channels}) "
                f"channels, got {input_shape[-1]}."
            )
        shape = input_shape
        for conv in self.convs:
            conv.build(shape)
            shape = shape[:-1] + (self.channels,)
        if self.conv_cat is not None:
            self.conv_cat.build(shape[:-1] + (self.channels + input_shape[-1],))
        self.conv_seg.build(shape[:-1] + (self.channels,))

    def call(self, inputs, training=None):
        x = inputs
        for conv in self.convs:
            x = conv(x, training=training)
        if self.conv_cat is not None:
            x = self.conv_cat(keras.ops.concatenate([inputs, x], axis=-1), training=training)
        return self.conv_seg(self.dropout(x, training=training))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.num_classes,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_classes": self.num_classes,
                "channels": self.channels,
                "num_convs": self.num_convs,
                "kernel_size": self.kernel_size,
                "dilation_rate": self.dilation_rate,
                "concat_input": self.concat_input,
                "dropout": self.dropout_rate,
            }
        )
        return config
