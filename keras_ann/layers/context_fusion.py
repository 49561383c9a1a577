"""What AFNB and APNB share: attention per query scale, fused by a 1x1 conv."""

import keras
from keras import ops

from keras_ann.layers.asymmetric_attention import AsymmetricNonLocalAttention
from keras_ann.layers.conv_bn import ConvBNReLU


class ContextFusion(keras.layers.Layer):
    """Sum of asymmetric attention contexts, concatenated with the query
    features and projected by 1x1 conv + BN (+ ReLU).

    Subclasses set `share_key_query` and `activation` and say which inputs
    are queries and keys (`_split_inputs`).
    """

    share_key_query = False
    activation = None

    def __init__(
        self,
        key_channels,
        out_channels,
        query_scales=(1,),
        key_pool_scales=(1, 3, 6, 8),
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.key_channels = int(key_channels)
        self.out_channels = int(out_channels)
        self.query_scales = tuple(int(s) for s in query_scales)
        self.key_pool_scales = tuple(key_pool_scales)
        if not self.query_scales:
            raise ValueError("`query_scales` must name at least one scale.")
        self.stages = [
            AsymmetricNonLocalAttention(
                self.key_channels,
                self.out_channels,
                share_key_query=self.share_key_query,
                query_scale=scale,
                key_pool_scales=self.key_pool_scales,
                dtype=self.dtype_policy,
                name=f"stage_{i}",
            )
            for i, scale in enumerate(self.query_scales)
        ]
        self.bottleneck = ConvBNReLU(
            self.out_channels,
            activation=self.activation,
            dtype=self.dtype_policy,
            name="bottleneck",
        )

    def _split_inputs(self, inputs):
        """Returns `(query_feats, key_feats)`."""
        raise NotImplementedError

    def build(self, input_shape):
        query_shape, key_shape = self._split_inputs(input_shape)
        for stage in self.stages:
            stage.build([query_shape, key_shape])
        self.bottleneck.build(
            tuple(query_shape[:-1]) + (self.out_channels + query_shape[-1],)
        )

    def call(self, inputs, training=None):
        query_feats, key_feats = self._split_inputs(inputs)
        context = self.stages[0]([query_feats, key_feats], training=training)
        for stage in self.stages[1:]:
            context = context + stage([query_feats, key_feats], training=training)
        fused = ops.concatenate([context, query_feats], axis=-1)
        return self.bottleneck(fused, training=training)

    def attention_scores(self, inputs, training=False):
        """The attention weights of each query scale's block.

        Args:
            inputs: the block's inputs, as for `call`.
            training: bool, batch-norm mode. Defaults to `False`.

        Returns:
            A list with one `(batch, q_h, q_w, num_keys)` tensor per query
            scale (see `AsymmetricNonLocalAttention.attention_scores`).
        """
        if not self.built:
            self.build(keras.tree.map_structure(lambda t: tuple(ops.shape(t)), inputs))
        query_feats, key_feats = self._split_inputs(inputs)
        return [
            stage.attention_scores([query_feats, key_feats], training=training)
            for stage in self.stages
        ]

    def compute_output_shape(self, input_shape):
        query_shape, _ = self._split_inputs(input_shape)
        return tuple(query_shape[:-1]) + (self.out_channels,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "key_channels": self.key_channels,
                "out_channels": self.out_channels,
                "query_scales": self.query_scales,
                "key_pool_scales": self.key_pool_scales,
            }
        )
        return config
