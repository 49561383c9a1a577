"""AFNB: the asymmetric fusion non-local block."""

import keras
from keras import ops

from keras_ann.layers.asymmetric_attention import AsymmetricNonLocalAttention
from keras_ann.layers.conv_bn import ConvBNReLU


@keras.saving.register_keras_serializable(package="keras_ann")
class AFNB(keras.layers.Layer):
    """Asymmetric Fusion Non-local Block (Zhu et al., ICCV 2019).

    Fuses two backbone stages: the high-level features (stage 4) are the
    queries, the low-level features (stage 3) give the pyramid-sampled keys
    and values. The contexts of all query scales are summed, concatenated
    with the high-level features and projected by a 1x1 convolution and batch
    normalisation, without activation:

    ```
    context = sum(attention_s([high, low]) for s in query_scales)
    output  = BN(conv1x1(concat([context, high])))
    ```

    Args:
        key_channels: int, channels of the attention's queries, keys and
            values (the reference's `project_channels`, 256).
        out_channels: int, output channels (the reference uses the
            high-level input's channels, 2048 for ResNet-50/101).
        query_scales: tuple of ints, one attention block per scale.
            Defaults to `(1,)`.
        key_pool_scales: tuple of ints, the key pyramid. Defaults to
            `(1, 3, 6, 8)`.
        synchronized: bool, synchronised batch normalisation.
        **kwargs: base `Layer` arguments.

    Call arguments:
        inputs: list `[low_feats, high_feats]` (stage 3, stage 4).
        training: bool.

    Example:

    >>> import numpy as np
    >>> afnb = AFNB(key_channels=8, out_channels=32)
    >>> low = np.random.rand(1, 10, 10, 16).astype("float32")
    >>> high = np.random.rand(1, 10, 10, 32).astype("float32")
    >>> afnb([low, high]).shape
    (1, 10, 10, 32)
    """

    def __init__(
        self,
        key_channels,
        out_channels,
        query_scales=(1,),
        key_pool_scales=(1, 3, 6, 8),
        synchronized=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.key_channels = int(key_channels)
        self.out_channels = int(out_channels)
        self.query_scales = tuple(int(s) for s in query_scales)
        self.key_pool_scales = tuple(key_pool_scales)
        self.synchronized = synchronized
        if not self.query_scales:
            raise ValueError("`query_scales` must name at least one scale.")
        self.stages = [
            AsymmetricNonLocalAttention(
                self.key_channels,
                self.out_channels,
                share_key_query=False,
                query_scale=scale,
                key_pool_scales=self.key_pool_scales,
                synchronized=synchronized,
                dtype=self.dtype_policy,
                name=f"stage_{i}",
            )
            for i, scale in enumerate(self.query_scales)
        ]
        self.bottleneck = ConvBNReLU(
            self.out_channels,
            activation=None,
            synchronized=synchronized,
            dtype=self.dtype_policy,
            name="bottleneck",
        )

    def build(self, input_shape):
        low_shape, high_shape = input_shape
        for stage in self.stages:
            stage.build([high_shape, low_shape])
        self.bottleneck.build(
            tuple(high_shape[:-1]) + (self.out_channels + high_shape[-1],)
        )

    def call(self, inputs, training=None):
        low_feats, high_feats = inputs
        context = self.stages[0]([high_feats, low_feats], training=training)
        for stage in self.stages[1:]:
            context = context + stage([high_feats, low_feats], training=training)
        fused = ops.concatenate([context, high_feats], axis=-1)
        return self.bottleneck(fused, training=training)

    def compute_output_shape(self, input_shape):
        _, high_shape = input_shape
        return tuple(high_shape[:-1]) + (self.out_channels,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "key_channels": self.key_channels,
                "out_channels": self.out_channels,
                "query_scales": self.query_scales,
                "key_pool_scales": self.key_pool_scales,
                "synchronized": self.synchronized,
            }
        )
        return config
