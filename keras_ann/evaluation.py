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

__all__ = ["check_evaluation_data", "evaluate_dataset", "evaluation_dataset"]


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


def check_evaluation_data(protocol, num_classes, *, model="the model", layout=None, given=()):
    """The data config and loader options of the split a model is scored
    on (`evaluation_dataset`), checked before anything is read.

    The data is the protocol's (`protocol.data`, the model's data config
    or the one a user names); `folder` data is read with the model's
    classes and label encoding and the `layout` given, a named dataset
    with its own (only `reduce_zero_label` and `ignore_index` apply).

    Args:
        protocol: the `TestProtocol` the model is tested by.
        num_classes: the model's number of classes.
        model: how an error names the model.
        layout: the folder layout keys (`img_dir`, `ann_dir`, `img_suffix`,
            `ann_suffix`, `split_file`; `None` values ignored).
        given: the data keys a user gave (recipe key names); the
            folder-only ones are refused for a named dataset.

    Returns:
        `(config, options)`: the `DataConfig` and `build_dataset` options.

    Raises:
        ValueError: no data named, folder keys for a named dataset, or a
            dataset of another number of classes than the model's.

    Example:

    >>> from keras_ann.test_protocol import TestProtocol
    >>> config, options = check_evaluation_data(TestProtocol(data="folder", label_map=((255, 1),)), 2)
    >>> config.name, options
    ('folder', {'label_map': {255: 1}, 'num_classes': 2})
    """
    from keras_ann.data.configs import get_data_config
    from keras_ann.recipes import dataset_options

    if protocol.data is None:
        raise ValueError(f"--dataset is required: {model} carries no test protocol naming its data.")
    config = get_data_config(protocol.data)
    options = dataset_options({**protocol.data_contract(), **(layout or {})})
    if config.classes is None:  # folder: the model's classes and label encoding, the given layout
        return config, dict(options, num_classes=num_classes)
    folder_only = [key for key in given if key not in ("data", "reduce_zero_label", "ignore_index")]
    if folder_only:
        flags = ", ".join("--" + key.replace("_", "-") for key in folder_only)
        raise ValueError(f"{flags} only apply to --dataset folder (the data is {config.name})")
    if config.num_classes != num_classes:
        raise ValueError(
            f"{model} predicts {num_classes} classes but {config.name} has {config.num_classes}; evaluate it on "
            "the data it was trained for (--dataset folder with its layout)"
        )
    return config, {key: options[key] for key in ("reduce_zero_label", "ignore_index") if key in options}


def evaluation_dataset(
    protocol, num_classes, data_root, split, *, model="the model", layout=None, given=(), verbose=1
):
    """The split a model is scored on, read as the model's training read
    its labels, and its labels scanned as `train` scans them.

    Args:
        protocol: the `TestProtocol` the model is tested by.
        num_classes: the model's number of classes.
        data_root: the dataset root.
        split: the split, e.g. `"val"`.
        model, layout, given: as `check_evaluation_data`.
        verbose: 1 prints the label scan's progress and class table, 0
            nothing.

    Returns:
        `(dataset, protocol, config)`: the `SegmentationDataset`, the
        protocol with the dataset's class names where it had none, and the
        `DataConfig`.

    Raises:
        ValueError: as `check_evaluation_data`, or for data that cannot be
            read or labels outside the classes.

    Example:

    >>> import os, tempfile
    >>> import numpy as np
    >>> from PIL import Image
    >>> from keras_ann.test_protocol import TestProtocol
    >>> root = tempfile.mkdtemp()
    >>> for folder in ("img_dir/val", "ann_dir/val"):
    ...     os.makedirs(os.path.join(root, folder))
    >>> Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(os.path.join(root, "img_dir/val/a.png"))
    >>> Image.fromarray(np.ones((8, 8), np.uint8)).save(os.path.join(root, "ann_dir/val/a.png"))
    >>> dataset, protocol, config = evaluation_dataset(TestProtocol(data="folder"), 2, root, "val", verbose=0)
    >>> len(dataset), config.name
    (1, 'folder')
    """
    from keras_ann.data.configs import build_dataset
    from keras_ann.data.label_scan import check_dataset_labels

    config, options = check_evaluation_data(protocol, num_classes, model=model, layout=layout, given=given)
    dataset = build_dataset(config, data_root, split, **options)
    check_dataset_labels(dataset, before="scoring", verbose=verbose)  # the label scan of `train`
    if protocol.class_names is None and len(dataset.class_names) == num_classes:
        protocol = protocol.replace(class_names=dataset.class_names)
    return dataset, protocol, config
