"""Initialisers that reproduce the reference's PyTorch / mmcv initialisation.

Keras's `HeNormal` uses fan-in; mmcv's `kaiming_init` (used for every
`ConvModule` and for the ResNet backbone) uses fan-out. A plain `nn.Conv2d`
keeps PyTorch's default, `kaiming_uniform_(a=sqrt(5))`, which is a uniform
distribution on +-1/sqrt(fan_in) for the kernel and for the bias.
"""

import math

import keras


def kaiming_normal_fan_out():
    """mmcv's `kaiming_init(mode="fan_out", nonlinearity="relu")`:
    normal with std sqrt(2 / fan_out), not truncated."""
    return keras.initializers.VarianceScaling(
        scale=2.0, mode="fan_out", distribution="untruncated_normal"
    )


def torch_default_kernel():
    """PyTorch's default `nn.Conv2d` kernel: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    return keras.initializers.VarianceScaling(
        scale=1.0 / 3.0, mode="fan_in", distribution="uniform"
    )


def torch_default_bias(fan_in):
    """PyTorch's default `nn.Conv2d` bias: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1.0 / math.sqrt(fan_in)
    return keras.initializers.RandomUniform(-bound, bound)


def classifier_kernel():
    """mmseg's `conv_seg` initialisation: normal with std 0.01."""
    return keras.initializers.RandomNormal(stddev=0.01)
