"""The reference's Tversky loss (mmseg/models/losses/tversky_loss.py,
`TverskyLoss`)."""

import keras
from keras import ops

from keras_ann.losses._inputs import check_class_count, class_weight_list, labels_and_logits, num_classes_of


@keras.saving.register_keras_serializable(package="keras_ann")
class TverskyLoss(keras.losses.Loss):
    """Tversky loss on the softmax, as mmsegmentation 1.2.2's `TverskyLoss`
    (`mmseg/models/losses/tversky_loss.py`).

    Per image and class `c`, over the labelled pixels (`ignore_index`
    left out), with `p` the softmax and `t` the one-hot label:
    `TP = sum(p t)`, `FP = sum(p (1 - t))`, `FN = sum((1 - p) t)` and
    `1 - (TP + smooth) / (TP + alpha FP + beta FN + smooth)`; times
    `class_weight[c]`, summed over the classes other than `ignore_index`
    and divided by the number of classes (all of them, as the reference);
    averaged over the batch and multiplied by `loss_weight`.

    As the reference, `alpha + beta` must be 1.0 (mmseg asserts; refused
    here with a `ValueError`).

    Differences from the reference: mmseg has no `reduction`; this loss
    returns the per-image values `(batch,)` and Keras's reduction (default
    `"sum_over_batch_size"`, the reference's mean over the batch) reduces
    them. `class_weight` must be a list (mmseg also reads a file name).
    mmseg ignores the per-pixel `weight` its decode head passes (e.g. an
    OHEM sampler's); Keras's `sample_weight` here weights images. Logits of
    another size than the labels are resized bilinearly first
    (`align_corners`), as the decode head does.

    Args:
        smooth: float, added to the numerator and denominator. Defaults
            to 1.
        class_weight: optional list of `num_classes` floats.
        loss_weight: float, multiplies the loss. Defaults to 1.0.
        ignore_index: int, the label of unlabelled pixels (also drops that
            class's term when it is a class number). Defaults to 255.
        alpha: float, the weight of false positives. Defaults to 0.3.
        beta: float, the weight of false negatives. Defaults to 0.7.
        align_corners: bool, for the resize of mismatched logits.
        name: str.
        **kwargs: base `Loss` arguments (`reduction`, `dtype`).

    Call arguments:
        y_true: `(batch, H, W)` integer labels.
        y_pred: `(batch, h, w, num_classes)` logits.

    Example (mmseg's `TverskyLoss()` gives 0.097091... on these inputs in
    NCHW):

    >>> import numpy as np
    >>> labels = np.array([[[0, 1], [1, 255]]])
    >>> logits = np.array([[[[2.0, -1.0], [0.0, 1.0]], [[-1.0, 0.5], [3.0, 0.0]]]])
    >>> round(float(TverskyLoss(dtype="float64")(labels, logits)), 4)
    0.0971
    """

    def __init__(
        self,
        smooth=1.0,
        class_weight=None,
        loss_weight=1.0,
        ignore_index=255,
        alpha=0.3,
        beta=0.7,
        align_corners=False,
        name="tversky_loss",
        **kwargs,
    ):
        if alpha + beta != 1.0:
            raise ValueError(
                f"TverskyLoss: alpha + beta must be 1.0 (mmseg asserts it); got alpha={alpha}, "
                f"beta={beta}. Choose beta = 1 - alpha."
            )
        super().__init__(name=name, **kwargs)
        self.smooth = float(smooth)
        self.class_weight = class_weight_list(class_weight, "TverskyLoss")
        self.loss_weight = float(loss_weight)
        self.ignore_index = int(ignore_index)
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.align_corners = bool(align_corners)

    def call(self, y_true, y_pred):
        labels, logits = labels_and_logits(y_true, y_pred, self.align_corners)
        num_classes = num_classes_of(logits, "TverskyLoss")
        dtype = logits.dtype
        probs = ops.softmax(logits, axis=-1)
        # Ignored pixels get some one-hot row (mmseg clamps them to the last
        # class), then the validity mask removes them from every sum.
        target = ops.one_hot(ops.clip(labels, 0, num_classes - 1), num_classes, dtype=dtype)
        valid = ops.cast(ops.not_equal(labels, self.ignore_index), dtype)[..., None]
        axes = (1, 2)
        true_pos = ops.sum(probs * target * valid, axis=axes)
        false_pos = ops.sum(probs * (1.0 - target) * valid, axis=axes)
        false_neg = ops.sum((1.0 - probs) * target * valid, axis=axes)
        tversky = (true_pos + self.smooth) / (true_pos + self.alpha * false_pos + self.beta * false_neg + self.smooth)
        per_class = 1.0 - tversky  # (batch, classes)
        if self.class_weight is not None:
            check_class_count(self.class_weight, num_classes, "class_weight", "TverskyLoss")
            per_class = per_class * ops.convert_to_tensor(self.class_weight, dtype=dtype)
        if 0 <= self.ignore_index < num_classes:
            per_class = per_class * ops.cast(ops.not_equal(ops.arange(num_classes), self.ignore_index), dtype)
        return self.loss_weight * (ops.sum(per_class, axis=-1) / num_classes)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "smooth": self.smooth,
                "class_weight": self.class_weight,
                "loss_weight": self.loss_weight,
                "ignore_index": self.ignore_index,
                "alpha": self.alpha,
                "beta": self.beta,
                "align_corners": self.align_corners,
            }
        )
        return config
