"""Models of keras-ann."""

from keras_ann.models.ann_segmenter import ANNSegmenter, logits_to_labels

__all__ = ["ANNSegmenter", "logits_to_labels"]
