"""Models of keras-ann."""

from keras_ann.models.ann_segmenter import ANNSegmenter, logits_to_labels
from keras_ann.models.batch_norm_folding import fold_batch_norm

__all__ = ["ANNSegmenter", "fold_batch_norm", "logits_to_labels"]
