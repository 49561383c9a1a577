"""keras-ann: Asymmetric Non-local Neural Networks for semantic segmentation
(Zhu et al., ICCV 2019) in Keras 3, matching mmsegmentation's reference.

What is top-level, in one rule: **the model is imported with the package,
the workflow around it on first use.** `import keras_ann` imports the
backend-agnostic modules a model needs to be built, trained by `fit()` and
loaded from a `.keras` file on any backend (`ops`, `checks`, `layers`,
`backbones`, `models`, `losses`, `metrics`, `optimizers`, `schedules`,
`test_protocol`: they register their Keras objects or are part of a saved
model) and exposes the model-building names (`ANNSegmenter`,
`ResNetBackbone`, `AFNB`, `APNB`, `SegmentationCrossEntropy`,
`TestProtocol`, `logits_to_labels`, `fold_batch_norm`).
Everything that needs
TensorFlow, files, downloads or an optional dependency lives in a submodule
that is imported when it is first accessed (PEP 562): `keras_ann.data`,
`.inference`, `.tiled_inference`, `.evaluation`, `.training`, `.callbacks`, `.distribute`,
`.precision`, `.presets`, `.recipes`, `.weights`, `.export`, `.quantize`, `.visualization`,
`.resizing`, `.work_dir`, `.attention_maps`, `.benchmark`, `.budget`, `.analysis`, `.hub`, `.demo`. So
`import keras_ann` on the JAX or PyTorch backend imports no TensorFlow, and
`keras_ann.data` is there when wanted.

Example:

>>> import numpy as np
>>> import keras_ann
>>> model = keras_ann.ANNSegmenter(backbone="resnet18_d8", num_classes=3)
>>> tuple(model(np.zeros((1, 33, 33, 3))).shape)
(1, 33, 33, 3)
>>> keras_ann.recipes.__name__  # imported here, on first access
'keras_ann.recipes'
"""

import importlib
import os
import sys

if os.path.basename(sys.argv[0]) == "keras-ann" or sys.argv[0] == "-m":  # the command line: its own words only
    from keras_ann.quiet_start import load_tensorflow_quietly

    load_tensorflow_quietly(sys.argv)

from keras_ann import backbones, checks, layers, losses, metrics, models, ops, optimizers, schedules, test_protocol
from keras_ann.backbones import ResNetBackbone
from keras_ann.layers import AFNB, APNB, ANNHead, FCNHead
from keras_ann.losses import SegmentationCrossEntropy
from keras_ann.models import ANNSegmenter, fold_batch_norm, logits_to_labels
from keras_ann.test_protocol import TestProtocol

__version__ = "0.1.0"

# Submodules imported on first attribute access (see the module docstring).
_LAZY_SUBMODULES = (
    "analysis",
    "attention_maps",
    "benchmark",
    "budget",
    "callbacks",
    "data",
    "demo",
    "distribute",
    "evaluation",
    "export",
    "file_lists",
    "hub",
    "inference",
    "precision",
    "presets",
    "quantize",
    "recipes",
    "resizing",
    "tiled_inference",
    "training",
    "visualization",
    "weights",
    "work_dir",
)

__all__ = [
    "AFNB",
    "ANNHead",
    "ANNSegmenter",
    "APNB",
    "FCNHead",
    "ResNetBackbone",
    "SegmentationCrossEntropy",
    "TestProtocol",
    "backbones",
    "checks",
    "fold_batch_norm",
    "layers",
    "logits_to_labels",
    "losses",
    "metrics",
    "models",
    "ops",
    "optimizers",
    "schedules",
    "test_protocol",
]  # the lazy submodules are left out, so that `import *` imports no TensorFlow


def __getattr__(name):
    if name in _LAZY_SUBMODULES:
        # import_module binds the submodule in this namespace, so this runs
        # once per name; an ImportError (a missing optional dependency, a
        # module absent from this version) surfaces here, on access.
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY_SUBMODULES))
