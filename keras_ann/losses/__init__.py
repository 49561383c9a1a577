"""Segmentation losses on integer labels `(batch, H, W)` with an ignore
value and channels-last logits `(batch, H, W, C)`, each equal to the
mmsegmentation 1.2.2 class of the same name or concept, and usable from
`ANNSegmenter.compile(loss=...)`:

- `SegmentationCrossEntropy`: `CrossEntropyLoss` (softmax), the default;
- `DiceLoss`, `FocalLoss`, `LovaszLoss`, `TverskyLoss`: the classes of the
  same names, for class imbalance;
- `OHEMLoss`: a cross-entropy over the hard pixels, as a decode head with
  `OHEMPixelSampler`;
- `SumOfLosses` and `build_loss`: several losses summed, from mmseg-style
  configs (a `loss_decode` list), as recipes' `loss` key.
"""

from keras_ann.losses.combined import LOSS_TYPES, SumOfLosses, build_loss
from keras_ann.losses.cross_entropy import SegmentationCrossEntropy
from keras_ann.losses.dice import DiceLoss
from keras_ann.losses.focal import FocalLoss
from keras_ann.losses.lovasz import LovaszLoss
from keras_ann.losses.ohem import OHEMLoss
from keras_ann.losses.tversky import TverskyLoss

__all__ = [
    "LOSS_TYPES",
    "DiceLoss",
    "FocalLoss",
    "LovaszLoss",
    "OHEMLoss",
    "SegmentationCrossEntropy",
    "SumOfLosses",
    "TverskyLoss",
    "build_loss",
]
