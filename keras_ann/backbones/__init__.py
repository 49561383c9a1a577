"""Backbones of keras-ann."""

from keras_ann.backbones.feature_pyramid import feature_model, select_features
from keras_ann.backbones.resnet import BACKBONE_NAMES, ResNetBackbone, set_remat

__all__ = ["BACKBONE_NAMES", "ResNetBackbone", "feature_model", "select_features", "set_remat"]
