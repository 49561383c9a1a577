"""Segmentation scores as the reference computes them (mmseg's `IoUMetric`).

The reference sums, over the whole evaluation set, the per-class areas of
intersection, union, prediction and label, and only then divides:

- `IoU[c] = intersect[c] / union[c]`, `Acc[c] = intersect[c] / label[c]`
  (nan where the denominator is 0);
- `aAcc = sum(intersect) / sum(label)`;
- `mIoU`, `mAcc`: the nan-ignoring means of `IoU` and `Acc`, so a class
  absent from both labels and predictions is left out of `mIoU`, and a class
  absent from the labels is left out of `mAcc`.

All of these follow from one confusion matrix (rows: labels, columns:
predictions) accumulated over the set. Averaging per-batch scores instead
gives other numbers.
"""

import keras
import numpy as np
from keras import ops

__all__ = ["PixelAccuracy", "SegmentationIoU", "confusion_matrix", "format_table", "metrics_from_confusion"]


def confusion_matrix(labels, predictions, num_classes, ignore_index=255):
    """The `(num_classes, num_classes)` confusion matrix of label maps.

    Pixels labelled `ignore_index` are left out. Entry `[i, j]` counts
    pixels of label `i` predicted `j`.

    Args:
        labels: integer array, any shape (e.g. `(N, H, W)`); values in
            `[0, num_classes)` or `ignore_index`.
        predictions: integer array of the same shape, values in
            `[0, num_classes)` (e.g. the argmax of the logits).
        num_classes: int.
        ignore_index: int, the label value left out. Defaults to 255.

    Returns:
        `(num_classes, num_classes)` int64 numpy array.

    Raises:
        ValueError: on mismatched shapes, or labels or predictions out of
            range (the reference would silently drop them from some of its
            per-class areas but not from others).

    Example:

    >>> confusion_matrix([[0, 1, 255, 1]], [[0, 0, 1, 1]], num_classes=2)
    array([[1, 0],
           [1, 1]])
    """
    labels = np.asarray(labels)
    predictions = np.asarray(predictions)
    if labels.shape != predictions.shape:
        raise ValueError(
            f"`labels` and `predictions` must have the same shape; got {labels.shape} "
            f"and {predictions.shape}."
        )
    num_classes = int(num_classes)
    labels = labels.astype(np.int64).ravel()
    predictions = predictions.astype(np.int64).ravel()
    keep = labels != ignore_index
    labels = labels[keep]
    predictions = predictions[keep]
    for name, values in (("labels", labels), ("predictions", predictions)):
        bad = (values < 0) | (values >= num_classes)
        if bad.any():
            raise ValueError(
                f"{name} must be in [0, {num_classes})"
                + (f" or {ignore_index}" if name == "labels" else "")
                + f"; got {sorted(set(values[bad].tolist()))[:10]}."
            )
    counts = np.bincount(labels * num_classes + predictions, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).astype(np.int64)


def metrics_from_confusion(confusion):
    """Per-class and summary scores from a confusion matrix, as mmseg's
    `IoUMetric.total_area_to_metrics` and `compute_metrics`.

    Args:
        confusion: `(C, C)` array, rows labels, columns predictions. A
            `(C + 1, C)` array is accepted too: its last row counts the
            predictions at pixels whose label is outside `[0, C)` but not
            ignored (the reference counts those in the prediction areas,
            and so in the unions, only).

    Returns:
        dict of numpy values, the scores in percent (as mmseg reports
        them; the means are taken over the fractions, then multiplied by
        100, as the reference): `"IoU"`, `"Acc"` (per class, float64, nan
        where the class's union, resp. label area, is 0), `"aAcc"`,
        `"mIoU"`, `"mAcc"` (floats; the means leave nan classes out), and
        the per-class areas
        `"area_intersect"`, `"area_union"`, `"area_pred_label"`,
        `"area_label"`.

    Example:

    >>> scores = metrics_from_confusion([[3, 1, 0], [0, 2, 0], [0, 0, 0]])
    >>> [round(float(v), 2) for v in scores["IoU"][:2]], bool(np.isnan(scores["IoU"][2]))
    ([75.0, 66.67], True)
    >>> round(scores["mIoU"], 2), round(scores["mAcc"], 2), round(scores["aAcc"], 2)
    (70.83, 87.5, 83.33)
    """
    confusion = np.asarray(confusion, dtype=np.float64)
    num_classes = confusion.shape[1]
    if confusion.ndim != 2 or confusion.shape[0] not in (num_classes, num_classes + 1):
        raise ValueError(f"Expected a (C, C) or (C + 1, C) confusion matrix, got shape {confusion.shape}.")
    intersect = np.diagonal(confusion[:num_classes]).copy()
    area_label = confusion[:num_classes].sum(axis=1)
    area_pred = confusion.sum(axis=0)
    union = area_pred + area_label - intersect
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = intersect / union
        acc = intersect / area_label
        a_acc = intersect.sum() / area_label.sum()
    return {
        "IoU": iou * 100.0,
        "Acc": acc * 100.0,
        "aAcc": float(a_acc) * 100.0,
        "mIoU": _nanmean(iou) * 100.0,
        "mAcc": _nanmean(acc) * 100.0,
        "area_intersect": intersect,
        "area_union": union,
        "area_pred_label": area_pred,
        "area_label": area_label,
    }


def _nanmean(values):
    values = np.asarray(values, np.float64)
    finite = ~np.isnan(values)
    return float(values[finite].mean()) if finite.any() else float("nan")


def _percent(value):
    """A percentage as mmseg prints it: `np.round(value, 2)`, 2 decimals."""
    value = float(value)
    if np.isnan(value):
        return "nan"
    return f"{float(np.round(value, 2)):.2f}"


def _center(text, width):
    """PrettyTable's centring: an odd excess goes right for text of odd
    length, left for text of even length."""
    excess = width - len(text)
    if excess % 2 == 0:
        left = right = excess // 2
    elif len(text) % 2:
        left, right = excess // 2, excess // 2 + 1
    else:
        left, right = excess // 2 + 1, excess // 2
    return " " * left + text + " " * right


def _table(header, rows):
    """A plain-text table drawn as PrettyTable's default style."""
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows)]
    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"

    def line(cells):
        return "|" + "|".join(" " + _center(str(c), w) + " " for c, w in zip(cells, widths)) + "|"

    return "\n".join([rule, line(header), rule, *(line(r) for r in rows), rule])


def format_table(metrics_dict, class_names=None):
    """The reference's evaluation printout: per-class IoU and Acc, then the
    summary (aAcc, mIoU, mAcc), in percent with 2 decimals.

    The per-class table is laid out as mmseg's PrettyTable (`Class`, `IoU`,
    `Acc`, centred columns); the summary as mmseg 0.x's summary table. Plain
    text, no dependency.

    Args:
        metrics_dict: dict with `"IoU"` and `"Acc"` (per class) and `"aAcc"`,
            `"mIoU"`, `"mAcc"`, in percent (e.g. from
            `metrics_from_confusion()` or `SegmentationIoU.all_metrics()`).
        class_names: optional sequence of names; defaults to the class
            indices.

    Returns:
        str.

    Example:

    >>> scores = metrics_from_confusion([[3, 1], [0, 2]])
    >>> print(format_table(scores, ["road", "sky"]))
    per class results:
    +-------+-------+--------+
    | Class |  IoU  |  Acc   |
    +-------+-------+--------+
    |  road | 75.00 | 75.00  |
    |  sky  | 66.67 | 100.00 |
    +-------+-------+--------+
    Summary:
    +-------+-------+-------+
    |  aAcc |  mIoU |  mAcc |
    +-------+-------+-------+
    | 83.33 | 70.83 | 87.50 |
    +-------+-------+-------+
    """
    iou = np.asarray(metrics_dict["IoU"], np.float64).ravel()
    acc = np.asarray(metrics_dict["Acc"], np.float64).ravel()
    if class_names is None:
        class_names = [str(i) for i in range(len(iou))]
    class_names = [str(n) for n in class_names]
    if not len(class_names) == len(iou) == len(acc):
        raise ValueError(
            f"Got {len(class_names)} class names for {len(iou)} IoU and {len(acc)} Acc values."
        )
    rows = [(n, _percent(i), _percent(a)) for n, i, a in zip(class_names, iou, acc)]
    summary_keys = ("aAcc", "mIoU", "mAcc")
    summary = [_percent(metrics_dict[k]) for k in summary_keys]
    return "\n".join(
        [
            "per class results:",
            _table(("Class", "IoU", "Acc"), rows),
            "Summary:",
            _table(summary_keys, [summary]),
        ]
    )


def _labels_and_predictions(metric, y_true, y_pred, sample_weight, num_classes=None):
    """`(labels, predicted classes)`, both int32 `(N, H, W)`, of a metric's
    batch: the scores resized to the labels' size (`metric.align_corners`)
    and their argmax; `sample_weight` and a wrong class count refused."""
    from keras_ann.ops import bilinear_resize, segmentation_pair

    if sample_weight is not None:
        raise ValueError(f"`{type(metric).__name__}` does not support `sample_weight`.")
    y_true, y_pred = segmentation_pair(y_true, y_pred)
    if num_classes is not None and y_pred.shape[-1] is not None and y_pred.shape[-1] != num_classes:
        raise ValueError(f"Expected {num_classes} classes in `y_pred`, got {y_pred.shape[-1]}.")
    size = (ops.shape(y_true)[1], ops.shape(y_true)[2])
    y_pred = bilinear_resize(ops.cast(y_pred, "float32"), size, metric.align_corners)
    return ops.cast(y_true, "int32"), ops.cast(ops.argmax(y_pred, axis=-1), "int32")


def _count_dtype():
    """int64 counts where the backend has them (JAX only with x64)."""
    from keras_ann.ops import has_64bit

    return "int64" if has_64bit() else "float32"


@keras.saving.register_keras_serializable(package="keras_ann")
class SegmentationIoU(keras.metrics.Metric):
    """mIoU accumulated over a whole evaluation set, as mmseg's `IoUMetric`.

    Keeps one confusion matrix over every batch seen since the last
    `reset_state()`; scores are computed from it at the end (not averaged
    per batch). `result()` is the mIoU: the mean IoU over classes whose
    union is non-zero (absent classes are nan and left out, as in the
    reference). `all_metrics()` gives per-class IoU and Acc, aAcc, mIoU and
    mAcc; `table()` formats them as the reference prints them.

    Pixels labelled `ignore_index` are left out. Pixels with another label
    outside `[0, num_classes)` count towards the predicted class's area
    only, as the reference's `intersect_and_union` does.

    Counts are int64 (float32 on JAX without `jax_enable_x64`, as
    `keras.metrics.MeanIoU`'s).

    Args:
        num_classes: int.
        ignore_index: int, the label value left out. Defaults to 255.
        class_names: optional names, for `table()`.
        align_corners: bool; logits of another spatial size than the labels
            are first resized bilinearly to the labels' size, as the
            reference does. Defaults to `False`.
        name: str. Defaults to `"mean_iou"`.
        dtype: the result's dtype.

    Call arguments:
        y_true: `(N, H, W)` integer labels (a trailing axis of 1 is
            accepted).
        y_pred: `(N, h, w, num_classes)` logits or probabilities (argmax
            taken inside).

    Example:

    >>> import numpy as np
    >>> metric = SegmentationIoU(num_classes=3)
    >>> labels = np.array([[[0, 1], [1, 255]]])
    >>> logits = np.eye(3, dtype="float32")[[[[0, 1], [0, 2]]]]
    >>> metric.update_state(labels, logits)
    >>> float(metric.result())  # IoU 50 %, 50 % and nan (class 2 absent: left out)
    50.0
    >>> scores = metric.all_metrics()
    >>> [round(float(v), 2) for v in scores["Acc"][:2]], bool(np.isnan(scores["Acc"][2]))
    ([100.0, 50.0], True)

    With `fit()`:

    ```python
    model.compile(..., metrics=[SegmentationIoU(19, class_names=CITYSCAPES_CLASSES)])
    ```
    """

    def __init__(
        self,
        num_classes,
        ignore_index=255,
        class_names=None,
        align_corners=False,
        name="mean_iou",
        dtype=None,
    ):
        super().__init__(name=name, dtype=dtype)
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self.class_names = None if class_names is None else [str(n) for n in class_names]
        if self.class_names is not None and len(self.class_names) != self.num_classes:
            raise ValueError(f"Got {len(self.class_names)} class names for {self.num_classes} classes.")
        self.align_corners = bool(align_corners)
        self._count_dtype = _count_dtype()
        # Rows: labels 0..C-1, then one row for stray (out-of-range) labels.
        self.confusion = self.add_variable(
            shape=(self.num_classes + 1, self.num_classes),
            initializer="zeros",
            dtype=self._count_dtype,
            aggregation="sum",
            name="confusion",
        )

    def update_state(self, y_true, y_pred, sample_weight=None):
        """Add a batch's pixels to the confusion matrix.

        Args:
            y_true: `(N, H, W)` or `(N, H, W, 1)` integer labels.
            y_pred: `(N, h, w, num_classes)` scores.
            sample_weight: not supported; must be `None`.
        """
        labels, preds = _labels_and_predictions(self, y_true, y_pred, sample_weight, self.num_classes)
        c = self.num_classes
        labels = ops.reshape(labels, (-1,))
        preds = ops.reshape(preds, (-1,))
        ignored = ops.equal(labels, self.ignore_index)
        stray = ops.logical_or(ops.less(labels, 0), ops.greater_equal(labels, c))
        # Bins 0..C*C-1 labelled pixels, C*C..C*C+C-1 stray labels, C*C+C ignored.
        rows = ops.where(stray, c, labels)
        index = ops.where(ignored, (c + 1) * c, rows * c + preds)
        # A segment sum has a static length (jittable), unlike bincount in JAX.
        counts = ops.segment_sum(ops.ones_like(index), index, num_segments=(c + 1) * c + 1)
        counts = ops.reshape(counts[: (c + 1) * c], (c + 1, c))
        self.confusion.assign_add(ops.cast(counts, self._count_dtype))

    def result(self):
        """The mIoU in percent (as mmseg and the command line report it)
        over classes with a non-zero union."""
        confusion = ops.cast(self.confusion, "float32")
        c = self.num_classes
        intersect = ops.diagonal(confusion[:c])
        union = ops.sum(confusion, axis=0) + ops.sum(confusion[:c], axis=1) - intersect
        present = ops.greater(union, 0)
        iou = ops.where(present, intersect / ops.where(present, union, 1.0), 0.0)
        count = ops.sum(ops.cast(present, "float32"))
        miou = ops.where(ops.greater(count, 0), ops.sum(iou) / ops.maximum(count, 1.0), float("nan"))
        return ops.cast(miou * 100.0, self.dtype)

    def confusion_matrix(self):
        """The accumulated `(num_classes, num_classes)` confusion matrix
        (int64 numpy; rows labels, columns predictions)."""
        return np.asarray(ops.convert_to_numpy(self.confusion))[: self.num_classes].astype(np.int64)

    def all_metrics(self):
        """Per-class `"IoU"`, `"Acc"`, and `"aAcc"`, `"mIoU"`, `"mAcc"` (percent,
        numpy), as `metrics_from_confusion()`, in float64."""
        counts = np.asarray(ops.convert_to_numpy(self.confusion)).astype(np.float64)
        return metrics_from_confusion(counts)

    def per_class_iou(self):
        """IoU per class in percent (float64 numpy, nan for classes with a
        zero union)."""
        return self.all_metrics()["IoU"]

    def per_class_accuracy(self):
        """Acc per class in percent (float64 numpy, nan for classes absent
        from the labels)."""
        return self.all_metrics()["Acc"]

    def table(self):
        """`format_table()` of the accumulated scores, with `class_names`."""
        return format_table(self.all_metrics(), self.class_names)

    def get_config(self):
        return {
            "num_classes": self.num_classes,
            "ignore_index": self.ignore_index,
            "class_names": self.class_names,
            "align_corners": self.align_corners,
            "name": self.name,
            "dtype": self.dtype,
        }


@keras.saving.register_keras_serializable(package="keras_ann")
class PixelAccuracy(keras.metrics.Metric):
    """Fraction of labelled pixels predicted right (the reference's `aAcc`),
    accumulated over every batch since the last `reset_state()`.

    Pixels labelled `ignore_index` are left out of both counts (unlike
    `keras.metrics.SparseCategoricalAccuracy`, which would count them as
    wrong).

    Args:
        ignore_index: int, the label value left out. Defaults to 255.
        align_corners: bool; logits of another spatial size than the labels
            are resized bilinearly to the labels' size first.
        name: str. Defaults to `"pixel_accuracy"`.
        dtype: the result's dtype.

    Example:

    >>> import numpy as np
    >>> metric = PixelAccuracy()
    >>> labels = np.array([[[0, 1], [1, 255]]])
    >>> logits = np.eye(2, dtype="float32")[[[[0, 1], [0, 0]]]]
    >>> metric.update_state(labels, logits)
    >>> round(float(metric.result()), 2)  # 2 of 3 labelled pixels right, in percent
    66.67
    """

    def __init__(self, ignore_index=255, align_corners=False, name="pixel_accuracy", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.ignore_index = int(ignore_index)
        self.align_corners = bool(align_corners)
        count_dtype = _count_dtype()
        self.correct = self.add_variable(shape=(), initializer="zeros", dtype=count_dtype, aggregation="sum", name="correct")
        self.total = self.add_variable(shape=(), initializer="zeros", dtype=count_dtype, aggregation="sum", name="total")

    def update_state(self, y_true, y_pred, sample_weight=None):
        """Add a batch's labelled pixels.

        Args:
            y_true: `(N, H, W)` or `(N, H, W, 1)` integer labels.
            y_pred: `(N, h, w, num_classes)` scores.
            sample_weight: not supported; must be `None`.
        """
        labels, preds = _labels_and_predictions(self, y_true, y_pred, sample_weight)
        valid = ops.not_equal(labels, self.ignore_index)
        right = ops.logical_and(valid, ops.equal(labels, preds))
        self.correct.assign_add(ops.cast(ops.sum(ops.cast(right, "int32")), self.correct.dtype))
        self.total.assign_add(ops.cast(ops.sum(ops.cast(valid, "int32")), self.total.dtype))

    def result(self):
        """Right over labelled pixels, in percent (nan before any labelled
        pixel)."""
        total = ops.cast(self.total, "float32")
        value = ops.where(ops.greater(total, 0), ops.cast(self.correct, "float32") / ops.maximum(total, 1.0), float("nan"))
        return ops.cast(value * 100.0, self.dtype)

    def get_config(self):
        return {"ignore_index": self.ignore_index, "align_corners": self.align_corners, "name": self.name, "dtype": self.dtype}
