"""Segmentation losses on integer labels `(batch, H, W)` with an ignore
value and channels-last logits `(batch, H, W, C)`, each equal to the
mmsegmentation 1.2.2 class of the same concept, and usable from
`ANNSegmenter.compile(loss=...)`.
"""

from keras_ann.losses.cross_entropy import SegmentationCrossEntropy

__all__ = ["SegmentationCrossEntropy"]
