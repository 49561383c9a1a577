"""The reference's Dice loss (mmseg/models/losses/dice_loss.py, `DiceLoss`)."""

import keras
from keras import ops

from keras_ann.losses._inputs import labels_and_logits, num_classes_of


@keras.saving.register_keras_serializable(package="keras_ann")
class DiceLoss(keras.losses.Loss):
    """Dice loss per image, as mmsegmentation 1.2.2's `DiceLoss`
    (`mmseg/models/losses/dice_loss.py`).

    Per image, over all pixels and classes, with `p` the activated logits
    and `t` the one-hot labels: `1 - 2 sum(p t) / (sum(p^2) + eps + sum(t^2)
    + eps)` (the V-Net form), or with `naive_dice=True` `1 - (2 sum(p t) +
    eps) / (sum(p) + sum(t) + eps)`; then reduced over the batch
    (`reduction`) and multiplied by `loss_weight`.

    As the reference: a pixel labelled `ignore_index` (or any label outside
    `[0, C)`) has an all-zero one-hot row, but its prediction still counts
    in `sum(p^2)` (or `sum(p)`); `ignore_index` also drops the class
    *channel* of that number when the logits have one (so `ignore_index=0`
    drops class 0, and with a single class is refused, where mmseg
    asserts). Negative labels count as class 0 (mmseg clamps them).

    Differences from the reference: mmseg casts the one-hot labels to
    float32 (`.float()`), so with float64 logits its `sum(t^2) + eps` is
    rounded to float32 (a relative difference of about 1e-9 in the loss);
    here all is in the logits' dtype. The reference's per-call arguments
    map onto Keras's: its per-image `weight` is
    `sample_weight` of shape `(batch,)` (the same weighted mean), its
    `reduction_override` is this loss's `reduction`; `avg_factor` has no
    counterpart. mmseg's `forward(ignore_index=...)` is unused by its
    `DiceLoss` (the constructor's counts), so only this `ignore_index`
    exists here. Logits of another size than the labels are resized
    bilinearly first (`align_corners`), as the reference's decode head does.

    Args:
        use_sigmoid: bool, sigmoid of each logit (`True`, the default) or
            a softmax over the classes.
        activate: bool, whether to apply the sigmoid/softmax at all
            (`False`: `y_pred` are already probabilities). With one class
            and `use_sigmoid=False` no softmax is applied (as the reference).
        reduction: `"mean"` (the default), `"sum"` or `"none"` (the
            per-image losses, shape `(batch,)`).
        naive_dice: bool, the first-power denominator. Defaults to `False`.
        loss_weight: float, multiplies the loss. Defaults to 1.0.
        ignore_index: int, the label of unlabelled pixels. Defaults to 255.
        eps: float, the smoothing term. Defaults to 1e-3.
        align_corners: bool, for the resize of mismatched logits.
        name: str.
        **kwargs: base `Loss` arguments (`dtype`).

    Call arguments:
        y_true: `(batch, H, W)` integer labels.
        y_pred: `(batch, h, w, num_classes)` logits.

    Example (mmseg's `DiceLoss()` gives the same, 0.28522..., on these
    inputs in NCHW):

    >>> import numpy as np
    >>> labels = np.array([[[0, 1], [1, 255]]])
    >>> logits = np.array([[[[2.0, -1.0], [0.0, 1.0]], [[-1.0, 0.5], [3.0, 0.0]]]])
    >>> loss = DiceLoss(dtype="float64")(labels, logits)
    >>> round(float(loss), 4)
    0.2852
    >>> round(float(DiceLoss(use_sigmoid=False, naive_dice=True)(labels, logits)), 4)
    0.2853
    """

    def __init__(
        self,
        use_sigmoid=True,
        activate=True,
        reduction="mean",
        naive_dice=False,
        loss_weight=1.0,
        ignore_index=255,
        eps=1e-3,
        align_corners=False,
        name="dice_loss",
        **kwargs,
    ):
        if reduction not in ("none", "mean", "sum"):
            raise ValueError(f"DiceLoss: reduction should be 'none', 'mean' or 'sum'; got {reduction!r}.")
        super().__init__(name=name, reduction=reduction, **kwargs)
        self.use_sigmoid = bool(use_sigmoid)
        self.activate = bool(activate)
        self.naive_dice = bool(naive_dice)
        self.loss_weight = float(loss_weight)
        self.ignore_index = None if ignore_index is None else int(ignore_index)
        self.eps = float(eps)
        self.align_corners = bool(align_corners)

    def call(self, y_true, y_pred):
        labels, logits = labels_and_logits(y_true, y_pred, self.align_corners)
        num_classes = num_classes_of(logits, "DiceLoss")
        dtype = logits.dtype
        # One-hot over C + 1 classes, the last one cut: labels >= C (the
        # ignored ones) get an all-zero row, negative ones count as 0.
        target = ops.one_hot(ops.clip(labels, 0, num_classes), num_classes + 1, dtype=dtype)[..., :num_classes]
        probs = logits
        if self.activate:
            if self.use_sigmoid:
                probs = ops.sigmoid(logits)
            elif num_classes != 1:
                probs = ops.softmax(logits, axis=-1)
        if self.ignore_index is not None and 0 <= self.ignore_index < num_classes:
            if num_classes == 1:
                raise ValueError(
                    f"DiceLoss: ignore_index={self.ignore_index} is the only class of the logits, so no "
                    "class would be left (mmseg asserts here); use another ignore_index, e.g. 255."
                )
            keep = ops.cast(ops.not_equal(ops.arange(num_classes), self.ignore_index), dtype)
            probs = probs * keep
            target = target * keep
        axes = (1, 2, 3)
        overlap = ops.sum(probs * target, axis=axes)
        if self.naive_dice:
            dice = (2.0 * overlap + self.eps) / (ops.sum(probs, axis=axes) + ops.sum(target, axis=axes) + self.eps)
        else:
            pred_sum = ops.sum(probs * probs, axis=axes) + self.eps
            target_sum = ops.sum(target * target, axis=axes) + self.eps
            dice = (2.0 * overlap) / (pred_sum + target_sum)
        return self.loss_weight * (1.0 - dice)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "use_sigmoid": self.use_sigmoid,
                "activate": self.activate,
                "naive_dice": self.naive_dice,
                "loss_weight": self.loss_weight,
                "ignore_index": self.ignore_index,
                "eps": self.eps,
                "align_corners": self.align_corners,
            }
        )
        return config
