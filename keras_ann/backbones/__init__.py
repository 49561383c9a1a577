"""Backbones of keras-ann."""

from keras_ann.backbones.resnet import BACKBONE_NAMES, ResNetBackbone

__all__ = ["BACKBONE_NAMES", "ResNetBackbone"]
