"""Per-channel image normalisation with the reference's arithmetic."""

import keras
from keras import ops

# The ImageNet statistics of the reference's data preprocessor (RGB, pixel
# values in [0, 255]): the model's normalisation, and the pad value of the
# training crops (the mean, which is 0 after normalisation).
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


@keras.saving.register_keras_serializable(package="keras_ann")
class ImageNormalization(keras.layers.Layer):
    """`(x - mean) / std` per channel, as mmseg's data preprocessor computes it.

    Unlike `keras.layers.Normalization`, which divides by `sqrt(variance)`
    and builds its constants in float32 whatever the layer's dtype, the
    constants here are made in the compute dtype from the exact decimal
    values, so float32 results equal PyTorch's bit for bit and float64
    models stay float64 throughout.

    Args:
        mean: per-channel means, e.g. ImageNet's `(123.675, 116.28, 103.53)`.
        std: per-channel standard deviations, e.g. `(58.395, 57.12, 57.375)`.
        **kwargs: base `Layer` arguments.

    Example:

    >>> import numpy as np
    >>> layer = ImageNormalization(mean=(1.0, 2.0), std=(2.0, 4.0))
    >>> np.asarray(layer(np.array([[3.0, 10.0]], "float32"))).tolist()
    [[1.0, 2.0]]
    """

    def __init__(self, mean, std, **kwargs):
        super().__init__(**kwargs)
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        if len(self.mean) != len(self.std) or min(self.std) <= 0:
            raise ValueError(
                f"`mean` and `std` need one value per channel and std > 0, got "
                f"mean={self.mean}, std={self.std}."
            )

    def call(self, inputs):
        dtype = self.compute_dtype
        mean = ops.convert_to_tensor(self.mean, dtype=dtype)
        std = ops.convert_to_tensor(self.std, dtype=dtype)
        return (ops.cast(inputs, dtype) - mean) / std

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"mean": self.mean, "std": self.std})
        return config
