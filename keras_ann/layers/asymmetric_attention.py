"""The asymmetric non-local attention block shared by AFNB and APNB."""

import keras
from keras import ops

from keras_ann.layers import initializers
from keras_ann.layers.conv_bn import ConvBNReLU
from keras_ann.layers.pyramid_pooling import PyramidPooling
from keras_ann.ops import bilinear_resize


@keras.saving.register_keras_serializable(package="keras_ann")
class AsymmetricNonLocalAttention(keras.layers.Layer):
    """Non-local attention whose keys and values are a pyramid-pooled sample.

    For every query position the block attends over `sum(s * s)` sampled
    key positions (110 for the default scales) instead of all `H * W`
    positions of a standard non-local block:

    ```
    query = ReLU(BN(conv1x1(query_feats)))               # (B, Hq*Wq, C)
    key   = PyramidPooling(ReLU(BN(conv1x1(key_feats)))) # (B, S, C)
    value = PyramidPooling(conv1x1(key_feats))           # (B, S, C)
    attn  = softmax(query @ key^T * C**-0.5, axis=keys)  # float32
    out   = conv1x1(attn @ value)                        # out_channels
    ```

    This is the reference's `SelfAttentionBlock` of `ann_head.py`. The output
    projection starts at zero (weights and bias), so a freshly initialised
    block adds no context. With `share_key_query` and the same tensor as
    queries and keys (APNB) the projection is computed once, but in
    training its batch normalisation updates the moving statistics twice,
    as the reference's two calls do. The value projection is an affine 1x1
    convolution and the pooling weights sum to one, so pooling before
    projecting gives the same values as the reference's order for
    `H * W / S` times less work.

    Args:
        key_channels: int, channels of queries, keys and values
            (the reference's `channels`, 256 in ANN).
        out_channels: int, channels of the output.
        share_key_query: bool, one projection for keys and queries (APNB).
        query_scale: int, when > 1 the projected queries are max-pooled by
            this factor and the context is resized back with bilinear
            interpolation (`align_corners=True`, as OCNet, where this block
            comes from). The reference recipes use 1.
        key_pool_scales: tuple of ints for `PyramidPooling`.
        **kwargs: base `Layer` arguments.

    Call arguments:
        inputs: list `[query_feats, key_feats]` of channels-last feature
            maps with equal batch size; their spatial sizes may differ. When
            `share_key_query=True` both must have the same channels.
        training: bool, batch-norm mode.

    Returns:
        `(batch, Hq, Wq, out_channels)` context.

    Example:

    >>> import numpy as np
    >>> block = AsymmetricNonLocalAttention(key_channels=8, out_channels=16)
    >>> q = np.random.rand(2, 12, 12, 32).astype("float32")
    >>> k = np.random.rand(2, 12, 12, 24).astype("float32")
    >>> tuple(block([q, k]).shape)
    (2, 12, 12, 16)
    """

    def __init__(
        self,
        key_channels,
        out_channels,
        share_key_query=False,
        query_scale=1,
        key_pool_scales=(1, 3, 6, 8),
        **kwargs,
    ):
        super().__init__(**kwargs)
        if int(query_scale) < 1:
            raise ValueError(f"`query_scale` must be >= 1, got {query_scale}.")
        self.key_channels = int(key_channels)
        self.out_channels = int(out_channels)
        self.share_key_query = bool(share_key_query)
        self.query_scale = int(query_scale)
        self.key_pool_scales = tuple(key_pool_scales)

        policy = self.dtype_policy
        self.key_project = ConvBNReLU(
            self.key_channels, dtype=policy, name="key_project"
        )
        if self.share_key_query:
            self.query_project = self.key_project
        else:
            self.query_project = ConvBNReLU(
                self.key_channels,
                dtype=policy,
                name="query_project",
            )
        self.key_sampler = PyramidPooling(self.key_pool_scales, dtype=policy, name="key_sampler")
        self.out_project = keras.layers.Conv2D(
            self.out_channels,
            1,
            kernel_initializer="zeros",
            bias_initializer="zeros",
            dtype=policy,
            name="out_project",
        )
        # The value projection's default bias depends on the input channels,
        # so it is created in `build`.
        self.value_project = None

    def build(self, input_shape):
        query_shape, key_shape = input_shape
        if self.share_key_query and query_shape[-1] != key_shape[-1]:
            raise ValueError(
                "With `share_key_query=True` queries and keys need the same "
                f"channels, got query {query_shape} and key {key_shape}."
            )
        key_in = key_shape[-1]
        self.value_project = keras.layers.Conv2D(
            self.key_channels,
            1,
            kernel_initializer=initializers.torch_default_kernel(),
            bias_initializer=initializers.torch_default_bias(key_in),
            dtype=self.dtype_policy,
            name="value_project",
        )
        self.key_project.build(key_shape)
        if not self.share_key_query:
            self.query_project.build(query_shape)
        self.value_project.build((None, None, None, key_in))
        self.out_project.build((None, None, None, self.key_channels))

    def _attend(self, inputs, training):
        """Queries, softmax attention over the sampled keys, and values.

        Returns `(attention (B, Nq, S), value (B, S, C), (q_h, q_w))` with
        `Nq = q_h * q_w` the (possibly max-pooled) query positions, row by
        row.
        """
        query_feats, key_feats = inputs
        if self.share_key_query and query_feats is key_feats:
            # The reference calls the shared projection twice on the same
            # features (as queries, then as keys): same output, and in
            # training its batch-norm statistics are updated twice.
            key_map = self.key_project(key_feats, training=training, statistics_updates=2)
            query = key_map
        else:
            key_map = self.key_project(key_feats, training=training)
            query = self.query_project(query_feats, training=training)
        if self.query_scale > 1:
            query = ops.max_pool(query, self.query_scale, self.query_scale, "valid")

        batch = ops.shape(query)[0]
        q_h, q_w = ops.shape(query)[1], ops.shape(query)[2]
        query = ops.reshape(query, (batch, -1, self.key_channels))
        key = self.key_sampler(key_map)
        # (B, S, 1, C_in) -> 1x1 conv -> (B, S, C).
        value = self.value_project(ops.expand_dims(self.key_sampler(key_feats), 2))
        value = ops.squeeze(value, 2)

        sim = ops.einsum("bnc,bsc->bns", query, key)
        # Softmax in float32 at least (float64 models stay float64).
        softmax_dtype = "float64" if self.compute_dtype == "float64" else "float32"
        sim = ops.cast(sim, softmax_dtype) * (self.key_channels**-0.5)
        attention = ops.cast(ops.softmax(sim, axis=-1), self.compute_dtype)
        return attention, value, (q_h, q_w)

    def call(self, inputs, training=None):
        query_feats, _ = inputs
        attention, value, (q_h, q_w) = self._attend(inputs, training)
        batch = ops.shape(attention)[0]
        context = ops.einsum("bns,bsc->bnc", attention, value)
        context = ops.reshape(context, (batch, q_h, q_w, self.key_channels))
        if self.query_scale > 1:
            size = (ops.shape(query_feats)[1], ops.shape(query_feats)[2])
            context = bilinear_resize(context, size, align_corners=True)
        return self.out_project(context)

    def attention_scores(self, inputs, training=False):
        """The attention weights of every query over the sampled keys.

        The same computation as `call` up to the softmax, so the weights are
        exactly those the block uses; key `k` is the `k`-th adaptive-pooling
        bin of `key_pool_scales` (scales in order, bins row by row; see
        `keras_ann.attention_maps.pyramid_bins`).

        Args:
            inputs: list `[query_feats, key_feats]`, as for `call`.
            training: bool, batch-norm mode. Defaults to `False`.

        Returns:
            `(batch, q_h, q_w, num_keys)` tensor whose last axis sums to one;
            `q_h, q_w` is the query size divided by `query_scale` (rounded
            down).

        Example:

        >>> import numpy as np
        >>> block = AsymmetricNonLocalAttention(key_channels=8, out_channels=16)
        >>> x = np.random.rand(1, 12, 10, 8).astype("float32")
        >>> tuple(block.attention_scores([x, x]).shape)
        (1, 12, 10, 110)
        """
        if not self.built:
            self.build([tuple(ops.shape(t)) for t in inputs])
        attention, _, (q_h, q_w) = self._attend(inputs, training)
        batch = ops.shape(attention)[0]
        return ops.reshape(attention, (batch, q_h, q_w, self.key_sampler.num_keys))

    def compute_output_shape(self, input_shape):
        query_shape, _ = input_shape
        return tuple(query_shape[:-1]) + (self.out_channels,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "key_channels": self.key_channels,
                "out_channels": self.out_channels,
                "share_key_query": self.share_key_query,
                "query_scale": self.query_scale,
                "key_pool_scales": self.key_pool_scales,
            }
        )
        return config
