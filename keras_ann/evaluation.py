"""Scoring a model on a dataset the way the reference scores it.

Predictions are made on the (test-resized) image, resized back to the
label's full resolution (bilinear, the model's `align_corners`), and
accumulated into one confusion matrix over the whole evaluation set, from
which per-class IoU and accuracy, aAcc, mIoU and mAcc follow.
"""

import keras
import numpy as np

from keras_ann import inference
from keras_ann.checks import check_positive_int
from keras_ann.metrics import confusion_matrix, format_table, metrics_from_confusion
from keras_ann.ops import bilinear_resize

__all__ = ["evaluate_dataset"]


def evaluate_dataset(
    model,
    dataset,
    num_classes=None,
    *,
    mode="whole",
    crop_size=None,
    stride=None,
    multiscale=False,
    ratios=(0.5, 0.75, 1.0, 1.25, 1.5, 1.75),
    flip=True,
    image_resize="bilinear",
    ignore_index=255,
    class_names=None,
    steps=None,
    verbose=1,
):
    """Score `model` on `(image, label)` pairs.

    Args:
        model: an `ANNSegmenter` (or any model mapping RGB images to logits
            at the input size).
        dataset: iterable of `(image, label)` batches: images
            `(N, h, w, 3)`, labels `(N, H, W)` at full resolution (e.g.
            `SegmentationDataset.eval_dataset()`).
        num_classes: defaults to `model.num_classes`.
        mode: `"whole"` or `"slide"` (with `crop_size`, `stride`).
        multiscale: average softmax over `ratios` (and horizontal flips if
            `flip`), the reference's "ms+flip" test. The reference rescales
            the *original* image for each ratio, so give the dataset's raw
            images here (`SegmentationDataset.raw_dataset().batch(1)`), not
            test-resized ones.
        image_resize: `"bilinear"` or `"cv2"` (OpenCV's uint8 arithmetic, as
            the reference's pipeline) for the multi-scale image resize.
        ignore_index: label value left out.
        class_names: names for the table.
        steps: stop after this many batches (a positive integer; `None`
            for all).
        verbose: 1 shows a progress bar, 2 also prints the table.

    Returns:
        dict with `"confusion"`, `"IoU"`, `"Acc"` (per class, nan for
        classes absent from both labels and predictions), `"aAcc"`,
        `"mIoU"`, `"mAcc"`.

    Raises:
        ValueError: for `steps` that is not a positive integer, or a
            dataset that yields no batch.
    """
    if steps is not None:
        steps = check_positive_int(steps, "steps")
    num_classes = num_classes or model.num_classes
    align_corners = getattr(model, "align_corners", False)
    total = np.zeros((num_classes, num_classes), np.int64)
    bar = keras.utils.Progbar(steps, unit_name="image") if verbose else None
    scored = 0
    for step, (images, labels) in enumerate(dataset):
        if steps is not None and step >= steps:
            break
        images = np.asarray(images, np.float32)
        labels = np.asarray(labels)
        if multiscale:
            scores = inference.multiscale_flip_inference(
                model,
                images,
                ratios=ratios,
                flip=flip,
                mode=mode,
                crop_size=crop_size,
                stride=stride,
                image_resize=image_resize,
            )
        else:
            scores = inference.predict_logits(
                model, images, mode=mode, crop_size=crop_size, stride=stride
            )
        if tuple(scores.shape[1:3]) != tuple(labels.shape[1:3]):
            scores = bilinear_resize(scores, tuple(labels.shape[1:3]), align_corners)
        predictions = np.asarray(keras.ops.argmax(scores, axis=-1))
        total += confusion_matrix(labels, predictions, num_classes, ignore_index)
        scored += 1
        if bar is not None:
            bar.update(step + 1)
    if scored == 0:
        raise ValueError("evaluate_dataset: the dataset yielded no batch, so nothing was scored; check its split.")
    results = metrics_from_confusion(total)
    results["confusion"] = total
    if verbose and verbose > 1:
        print(format_table(results, class_names))
    return results


def __getattr__(name):
    # `keras_ann.evaluation.MeanIoUEvaluation`, the callback's old home
    # (imported lazily: keras_ann.callbacks.evaluation imports this module).
    if name == "MeanIoUEvaluation":
        from keras_ann.callbacks.evaluation import MeanIoUEvaluation

        return MeanIoUEvaluation
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
