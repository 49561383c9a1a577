"""Public layers of keras-ann."""

from keras_ann.layers.afnb import AFNB
from keras_ann.layers.apnb import APNB
from keras_ann.layers.asymmetric_attention import AsymmetricNonLocalAttention
from keras_ann.layers.batch_norm import TorchBatchNormalization
from keras_ann.layers.conv_bn import ConvBNReLU, set_synchronized_batch_norm
from keras_ann.layers.heads import ANNHead, FCNHead
from keras_ann.layers.normalize import ImageNormalization
from keras_ann.layers.pyramid_pooling import PyramidPooling
from keras_ann.layers.resize import ResizeLike

__all__ = [
    "AFNB",
    "ANNHead",
    "APNB",
    "AsymmetricNonLocalAttention",
    "ConvBNReLU",
    "FCNHead",
    "ImageNormalization",
    "PyramidPooling",
    "ResizeLike",
    "TorchBatchNormalization",
    "set_synchronized_batch_norm",
]
