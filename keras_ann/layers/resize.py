"""Bilinear resize of a feature map to the spatial size of another tensor."""

import keras
from keras import ops

from keras_ann.ops import bilinear_resize


@keras.saving.register_keras_serializable(package="keras_ann")
class ResizeLike(keras.layers.Layer):
    """Resize `x` bilinearly to the height and width of `reference`.

    Identical to PyTorch's `F.interpolate(mode="bilinear")` with the given
    `align_corners`, on every backend, for up- and down-sampling, and for
    sizes known only at run time.

    Args:
        align_corners: bool, PyTorch's `align_corners`. Defaults to `False`.
        **kwargs: base `Layer` arguments. Give `dtype="float32"` to resize
            (and return) in float32 under a mixed-precision policy.

    Call arguments:
        inputs: list `[x, reference]`, both channels-last 4-D tensors.

    Example:

    >>> import numpy as np
    >>> x = np.zeros((1, 4, 4, 19), "float32")
    >>> ref = np.zeros((1, 31, 33, 3), "float32")
    >>> tuple(ResizeLike()([x, ref]).shape)
    (1, 31, 33, 19)
    """

    def __init__(self, align_corners=False, **kwargs):
        super().__init__(**kwargs)
        self.align_corners = bool(align_corners)

    def call(self, inputs):
        x, reference = inputs
        size = (ops.shape(reference)[1], ops.shape(reference)[2])
        return bilinear_resize(x, size, self.align_corners)

    def compute_output_shape(self, input_shape):
        x_shape, ref_shape = input_shape
        return (x_shape[0], ref_shape[1], ref_shape[2], x_shape[-1])

    def get_config(self):
        config = super().get_config()
        config["align_corners"] = self.align_corners
        return config
