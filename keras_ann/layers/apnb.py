"""APNB: the asymmetric pyramid non-local block."""

import keras
from keras import ops

from keras_ann.layers.asymmetric_attention import AsymmetricNonLocalAttention
from keras_ann.layers.conv_bn import ConvBNReLU


@keras.saving.register_keras_serializable(package="keras_ann")
class APNB(keras.layers.Layer):
    """Asymmetric Pyramid Non-local Block (Zhu et al., ICCV 2019).

    Self-attention over pyramid-sampled keys with one projection shared by
    keys and queries. The contexts of all query scales are summed,
    concatenated with the input and projected by a 1x1 convolution, batch
    normalisation and ReLU:

    ```
    context = sum(attention_s([x, x]) for s in query_scales)
    output  = ReLU(BN(conv1x1(concat([context, x]))))
    ```

    Args:
        key_channels: int, channels of the attention's queries, keys and
            values (the reference's `project_channels`, 256).
        out_channels: int, output channels (512 in the reference head); the
            attention's output has as many.
        query_scales: tuple of ints, one attention block per scale.
            Defaults to `(1,)`.
        key_pool_scales: tuple of ints, the key pyramid. Defaults to
            `(1, 3, 6, 8)`.
        synchronized: bool, synchronised batch normalisation.
        **kwargs: base `Layer` arguments.

    Example:

    >>> import numpy as np
    >>> apnb = APNB(key_channels=8, out_channels=16)
    >>> apnb(np.random.rand(2, 13, 11, 16).astype("float32")).shape
    (2, 13, 11, 16)
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
                share_key_query=True,
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
            synchronized=synchronized,
            dtype=self.dtype_policy,
            name="bottleneck",
        )

    def build(self, input_shape):
        for stage in self.stages:
            stage.build([input_shape, input_shape])
        self.bottleneck.build(
            tuple(input_shape[:-1]) + (self.out_channels + input_shape[-1],)
        )

    def call(self, inputs, training=None):
        context = self.stages[0]([inputs, inputs], training=training)
        for stage in self.stages[1:]:
            context = context + stage([inputs, inputs], training=training)
        fused = ops.concatenate([context, inputs], axis=-1)
        return self.bottleneck(fused, training=training)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.out_channels,)

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
