"""Pyramid key sampling of the asymmetric non-local block."""

import keras
from keras import ops

from keras_ann.ops import adaptive_pooling_matrix, separable_product


@keras.saving.register_keras_serializable(package="keras_ann")
class PyramidPooling(keras.layers.Layer):
    """Adaptive average pooling to several grid sizes, flattened and
    concatenated: the sampled keys (and values) of the ANN blocks.

    For `pool_scales=(1, 3, 6, 8)` every feature map, whatever its size,
    becomes 1 + 9 + 36 + 64 = 110 vectors. Bins follow PyTorch's
    `AdaptiveAvgPool2d` exactly (bin `i` spans `floor(i * H / s)` to
    `ceil((i + 1) * H / s)`), which differs from strided pooling whenever `H`
    is not a multiple of `s`. Within each scale the bins are listed row by
    row, scales in the given order, as the reference's `PPMConcat` does.

    Args:
        pool_scales: tuple of ints, the grid sizes. Defaults to
            `(1, 3, 6, 8)`.
        **kwargs: base `Layer` arguments.

    Input shape:
        `(batch, height, width, channels)`.

    Output shape:
        `(batch, sum(s * s for s in pool_scales), channels)`.

    Example:

    >>> import numpy as np
    >>> tuple(PyramidPooling()(np.zeros((2, 97, 97, 16), "float32")).shape)
    (2, 110, 16)
    """

    def __init__(self, pool_scales=(1, 3, 6, 8), **kwargs):
        super().__init__(**kwargs)
        pool_scales = tuple(int(s) for s in pool_scales)
        if not pool_scales or min(pool_scales) < 1:
            raise ValueError(
                f"`pool_scales` must be positive ints, got {pool_scales}."
            )
        self.pool_scales = pool_scales

    @property
    def num_keys(self):
        return sum(s * s for s in self.pool_scales)

    def call(self, inputs):
        # All scales in one pass over the input: the pooling matrices of
        # every scale stacked, `(sum s, H)` and `(sum s, W)`; scale `s`'s
        # grid is then the diagonal block of its rows and columns.
        batch, height, width, channels = (ops.shape(inputs)[k] for k in range(4))
        dtype = inputs.dtype
        rows = ops.concatenate([adaptive_pooling_matrix(height, s, dtype) for s in self.pool_scales], axis=0)
        cols = ops.concatenate([adaptive_pooling_matrix(width, s, dtype) for s in self.pool_scales], axis=0)
        grid = separable_product(inputs, rows, cols)
        pooled, start = [], 0
        for s in self.pool_scales:
            block = grid[:, start : start + s, start : start + s, :]
            pooled.append(ops.reshape(block, (batch, s * s, channels)))
            start += s
        return ops.concatenate(pooled, axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_keys, input_shape[-1])

    def get_config(self):
        config = super().get_config()
        config["pool_scales"] = self.pool_scales
        return config
