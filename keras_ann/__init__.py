"""keras-ann: Asymmetric Non-local Neural Networks for semantic segmentation
(Zhu et al., ICCV 2019) in Keras 3, matching mmsegmentation's reference."""

from keras_ann import attention_maps, backbones, layers, losses, metrics, models, ops, optimizers, schedules
from keras_ann.backbones import ResNetBackbone
from keras_ann.layers import AFNB, APNB, ANNHead, FCNHead
from keras_ann.losses import SegmentationCrossEntropy
from keras_ann.models import ANNSegmenter, logits_to_labels

__version__ = "0.1.0"

__all__ = [
    "AFNB",
    "ANNHead",
    "ANNSegmenter",
    "APNB",
    "FCNHead",
    "ResNetBackbone",
    "SegmentationCrossEntropy",
    "attention_maps",
    "backbones",
    "layers",
    "logits_to_labels",
    "losses",
    "metrics",
    "models",
    "ops",
    "optimizers",
    "schedules",
]
