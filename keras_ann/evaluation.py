"""Scoring a model on a dataset the way the reference scores it.

Each raw image is segmented by `keras_ann.inference.segment` as the model's
test protocol says (test resize, whole / slide / ms+flip, logits resized
back to the label's full resolution), and the labels are accumulated into
one confusion matrix over the whole evaluation set, from which per-class
IoU and accuracy, aAcc, mIoU and mAcc follow.
"""

import sys

import keras
import numpy as np

from keras_ann.checks import check_positive_int
from keras_ann.inference import segment
from keras_ann.metrics import confusion_matrix, format_table, metrics_from_confusion
from keras_ann.test_protocol import TestProtocol

__all__ = ["evaluate_dataset"]


def evaluate_dataset(model, dataset, protocol=None, num_classes=None, *, steps=None, verbose=1):
    """Score `model` on `(image, label)` pairs.

    Args:
        model: an `ANNSegmenter` (or any model mapping RGB images to logits
            at the input size).
        dataset: iterable of `(images, labels)` batches of raw images
            `(N, H, W, 3)` (pixel values in [0, 255], as read) and their
            label maps `(N, H, W)` (e.g.
            `SegmentationDataset.raw_dataset().batch(1)`).
        protocol: the `TestProtocol` (test scale, mode, window, ms+flip,
            class names for the table, ignore index). Defaults to the
            model's `test_protocol`.
        num_classes: defaults to `model.num_classes`.
        steps: stop after this many batches (a positive integer; `None`
            for all).
        verbose: 1 shows a progress bar, 2 also prints the table.

    Returns:
        dict with `"confusion"`, `"IoU"`, `"Acc"` (per class, nan for
        classes absent from both labels and predictions), `"aAcc"`,
        `"mIoU"`, `"mAcc"`, in percent (as mmseg reports them and the table
        prints them).

    Raises:
        ValueError: for `steps` that is not a positive integer, or a
            dataset that yields no batch.

    Example:

    >>> import numpy as np
    >>> from keras_ann import ANNSegmenter
    >>> model = ANNSegmenter(backbone="resnet18_d8", num_classes=2)
    >>> pairs = [(np.zeros((1, 33, 33, 3), np.uint8), np.ones((1, 33, 33), np.uint8))]
    >>> results = evaluate_dataset(model, pairs, verbose=0)
    >>> int(results["confusion"].sum()), results["IoU"].shape  # 33 x 33 pixels scored, 2 classes
    (1089, (2,))
    """
    if steps is not None:
        steps = check_positive_int(steps, "steps")
    protocol = TestProtocol.of(getattr(model, "test_protocol", None) if protocol is None else protocol)
    num_classes = num_classes or model.num_classes
    ignore_index = 255 if protocol.ignore_index is None else protocol.ignore_index
    total = np.zeros((num_classes, num_classes), np.int64)
    if steps is None:
        steps = _length(dataset)
    # On a terminal the bar is redrawn in place; into a file or pipe it
    # writes one line at the end instead of one per image.
    bar = keras.utils.Progbar(steps, unit_name="image", verbose=1 if sys.stdout.isatty() else 2) if verbose else None
    scored = 0
    for step, (images, labels) in enumerate(dataset):
        if steps is not None and step >= steps:
            break
        labels = np.asarray(labels)
        predictions = segment(model, np.asarray(images), protocol)
        total += confusion_matrix(labels, predictions, num_classes, ignore_index)
        scored += 1
        if bar is not None:
            bar.update(step + 1)
    if scored == 0:
        raise ValueError("evaluate_dataset: the dataset yielded no batch, so nothing was scored; check its split.")
    results = metrics_from_confusion(total)
    results["confusion"] = total
    if verbose and verbose > 1:
        print(format_table(results, protocol.class_names))
    return results


def _length(dataset):
    """The number of batches of a list or a `tf.data.Dataset` of known
    size, else `None` (the progress bar then counts without a total)."""
    try:
        length = len(dataset)
    except TypeError:
        return None
    return length if length >= 0 else None
