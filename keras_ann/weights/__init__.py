"""Pretrained weights: a safe PyTorch checkpoint reader and the conversion of
the reference's (mmsegmentation) ANN weights."""

from keras_ann.weights.convert import ConversionError
from keras_ann.weights.convert import infer_ann_config
from keras_ann.weights.convert import load_imagenet_backbone
from keras_ann.weights.convert import load_reference_weights
from keras_ann.weights.pth_reader import CheckpointError
from keras_ann.weights.pth_reader import extract_meta
from keras_ann.weights.pth_reader import extract_state_dict
from keras_ann.weights.pth_reader import load_torch_checkpoint

__all__ = [
    "CheckpointError",
    "ConversionError",
    "extract_meta",
    "extract_state_dict",
    "infer_ann_config",
    "load_imagenet_backbone",
    "load_reference_weights",
    "load_torch_checkpoint",
]
