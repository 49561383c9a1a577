"""Readers for pretrained weights saved by other frameworks."""

from keras_ann.weights.pth_reader import CheckpointError
from keras_ann.weights.pth_reader import extract_meta
from keras_ann.weights.pth_reader import extract_state_dict
from keras_ann.weights.pth_reader import load_torch_checkpoint

__all__ = [
    "CheckpointError",
    "extract_meta",
    "extract_state_dict",
    "load_torch_checkpoint",
]
