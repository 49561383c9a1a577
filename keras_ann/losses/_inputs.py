"""What every segmentation loss does first: labels and logits checked,
cast and brought to the same size, as the reference's decode heads do."""

import keras
from keras import ops

from keras_ann.ops import bilinear_resize, segmentation_pair

# torch.finfo(torch.float32).eps, whatever the dtype, as the reference's
# `weight_reduce_loss` and `cross_entropy` add it.
FLOAT32_EPSILON = 1.1920928955078125e-07


def labels_and_logits(y_true, y_pred, align_corners=False):
    """`(labels, logits)`: int32 labels `(batch, H, W)` (a trailing axis of 1
    dropped) and logits `(batch, H, W, C)` in float32 at least (float64
    stays float64), resized bilinearly to the labels' size when they differ,
    as mmseg's `BaseDecodeHead.loss_by_feat` resizes before its losses."""
    y_true, y_pred = segmentation_pair(y_true, y_pred)
    y_true = ops.cast(y_true, "int32")
    # Not keras.backend.result_type: it turns float64 into float32 on the
    # JAX and PyTorch backends.
    dtype = "float64" if keras.backend.standardize_dtype(y_pred.dtype) == "float64" else "float32"
    y_pred = ops.cast(y_pred, dtype)
    size = (ops.shape(y_true)[1], ops.shape(y_true)[2])
    return y_true, bilinear_resize(y_pred, size, align_corners)


def num_classes_of(y_pred, loss_name):
    """The static number of classes (the logits' last axis), or a
    `ValueError`: the losses build per-class tensors from it."""
    num_classes = y_pred.shape[-1]
    if num_classes is None:
        raise ValueError(
            f"{loss_name}: the logits' last axis (the number of classes) must be known when the "
            f"loss is traced; got logits of shape {tuple(y_pred.shape)}."
        )
    return int(num_classes)


def class_weight_list(class_weight, loss_name):
    """`None` or a list of floats; a `ValueError` for anything else."""
    if class_weight is None:
        return None
    if isinstance(class_weight, str):
        raise ValueError(
            f"{loss_name}: class_weight={class_weight!r} is a string; pass a list of floats (one per "
            "class). mmseg reads a file name here; load the file yourself, e.g. "
            "`np.load(path).tolist()`."
        )
    try:
        return [float(w) for w in class_weight]
    except (TypeError, ValueError):
        raise ValueError(
            f"{loss_name}: class_weight must be None or a sequence of floats (one per class); "
            f"got {class_weight!r}."
        ) from None


def check_class_count(values, num_classes, argument, loss_name):
    """A `ValueError` when a per-class list does not have `num_classes`
    entries."""
    if values is not None and len(values) != num_classes:
        raise ValueError(
            f"{loss_name}: {argument} has {len(values)} entries but the logits have {num_classes} "
            f"classes; give one value per class."
        )
