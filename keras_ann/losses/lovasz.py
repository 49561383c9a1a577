"""The reference's Lovasz losses (mmseg/models/losses/lovasz_loss.py,
`LovaszLoss`): Lovasz-Softmax and the binary Lovasz hinge."""

import keras
from keras import ops

from keras_ann.losses._inputs import check_class_count, class_weight_list, labels_and_logits, num_classes_of


def _lovasz_grad(gt_sorted, valid_sorted):
    """The Lovasz extension's gradient along axis 1 (Alg. 1 of the paper,
    mmseg's `lovasz_grad`) for errors sorted in decreasing order, the
    ignored entries sorted last and masked out by `valid_sorted`; the
    labels `gt_sorted` are integers (in a float dtype)."""
    # Counts, so summed as integers: exact, and ops.cumsum of float64 is
    # float32 on the PyTorch backend.
    dtype = gt_sorted.dtype
    gt = ops.cast(gt_sorted * valid_sorted, "int32")
    background = ops.cast((1.0 - gt_sorted) * valid_sorted, "int32")
    gts = ops.cast(ops.sum(gt, axis=1, keepdims=True), dtype)
    intersection = gts - ops.cast(ops.cumsum(gt, axis=1), dtype)
    union = gts + ops.cast(ops.cumsum(background, axis=1), dtype)
    # The union is 0 only where nothing valid came yet (an all-ignored
    # group): those entries are masked out.
    jaccard = 1.0 - intersection / ops.where(union > 0, union, ops.ones_like(union))
    return ops.concatenate([jaccard[:, :1], jaccard[:, 1:] - jaccard[:, :-1]], axis=1)


def _sorted_by_error(errors, valid, *others):
    """`errors`, `valid` and `others` (all `(groups, pixels, ...)`) sorted
    along axis 1 by decreasing error, the invalid entries last."""
    key = ops.where(valid > 0, errors, ops.full_like(errors, float("-inf")))
    order = ops.argsort(-key, axis=1)
    return [ops.take_along_axis(x, order, axis=1) for x in (errors, valid) + others]


@keras.saving.register_keras_serializable(package="keras_ann")
class LovaszLoss(keras.losses.Loss):
    """Lovasz-Softmax (multi-class) or Lovasz hinge (binary) loss, as
    mmsegmentation 1.2.2's `LovaszLoss` (`mmseg/models/losses/lovasz_loss.py`).

    `loss_type="multi_class"`: over the labelled pixels (`ignore_index`
    left out) of the whole batch, or of each image with `per_image=True`,
    for each class `c` the errors `|[label == c] - softmax_c|` sorted in
    decreasing order are dotted with the Lovasz gradient of the sorted
    foreground; times `class_weight[c]`; averaged over the classes chosen
    by `classes`: `"present"` (those labelled in the group), `"all"`, or a
    list of class numbers. `loss_type="binary"`: the logits have one channel
    (the foreground score), labels are 0/1, and the hinge errors
    `1 - logit (2 label - 1)` (through a ReLU) are dotted likewise. Times
    `loss_weight`.

    As the reference: `classes` and `class_weight` have no effect with
    `loss_type="binary"`; with `per_image=False` the result is one number
    and only `reduction="none"` is accepted (mmseg asserts);
    `reduction="mean"`/`"sum"` reduce the per-image losses of
    `per_image=True`. Unknown `loss_type` or `classes` are refused.

    Differences from the reference:

    * `reduction` defaults to `"auto"`: `"none"` without `per_image`,
      `"mean"` with it. (mmseg's default, `"mean"` with `per_image=False`,
      fails its own assertion.)
    * A group with no labelled pixel, or with no present class, gives 0
      (mmseg returns an empty tensor or raises).
    * mmseg's `lovasz_grad` casts the sorted labels with `.float()`, so
      mmseg fails on float64 logits; this loss computes in the logits'
      dtype (the float64 tests drive mmseg with `.float()` meaning float64).
    * Ties among equal errors may be ordered differently (the loss is the
      same: a tie's share of the dot product does not depend on its order).
    * `class_weight` must be a list (mmseg also reads a file name). The
      reference's decode head passes a per-pixel `weight` that `LovaszLoss`
      ignores; here Keras's `sample_weight` weights the per-image losses.
      Logits of another size than the labels are resized bilinearly first
      (`align_corners`), as the decode head does.

    Args:
        loss_type: `"multi_class"` (the default) or `"binary"`.
        classes: `"present"` (the default), `"all"` or a list of ints.
        per_image: bool, one loss per image. Defaults to `False`.
        reduction: `"auto"` (the default), `"none"`, `"mean"` or `"sum"`.
        class_weight: optional list of `num_classes` floats.
        loss_weight: float, multiplies the loss. Defaults to 1.0.
        ignore_index: int, the label of unlabelled pixels (in mmseg, the
            decode head's `ignore_index`). Defaults to 255.
        align_corners: bool, for the resize of mismatched logits.
        name: str.
        **kwargs: base `Loss` arguments (`dtype`).

    Call arguments:
        y_true: `(batch, H, W)` integer labels.
        y_pred: `(batch, h, w, num_classes)` logits (`num_classes` 1 for
            `loss_type="binary"`).

    Example (mmseg's `LovaszLoss(reduction="none")` gives 0.203183... on
    these inputs in NCHW):

    >>> import numpy as np
    >>> labels = np.array([[[0, 1], [1, 255]]])
    >>> logits = np.array([[[[2.0, -1.0], [0.0, 1.0]], [[-1.0, 0.5], [3.0, 0.0]]]])
    >>> round(float(LovaszLoss(dtype="float64")(labels, logits)), 4)
    0.2032
    """

    def __init__(
        self,
        loss_type="multi_class",
        classes="present",
        per_image=False,
        reduction="auto",
        class_weight=None,
        loss_weight=1.0,
        ignore_index=255,
        align_corners=False,
        name="lovasz_loss",
        **kwargs,
    ):
        if loss_type not in ("binary", "multi_class"):
            raise ValueError(f"LovaszLoss: loss_type should be 'binary' or 'multi_class'; got {loss_type!r}.")
        if isinstance(classes, (list, tuple)) and all(
            isinstance(c, int) and not isinstance(c, bool) for c in classes
        ):
            classes = [int(c) for c in classes]
        elif classes not in ("all", "present"):
            raise ValueError(
                f"LovaszLoss: classes should be 'all', 'present' or a list of class numbers; got {classes!r}."
            )
        if reduction == "auto":
            reduction = "mean" if per_image else "none"
        if reduction not in ("none", "mean", "sum"):
            raise ValueError(f"LovaszLoss: reduction should be 'none', 'mean' or 'sum'; got {reduction!r}.")
        if not per_image and reduction != "none":
            raise ValueError(
                f"LovaszLoss: reduction={reduction!r} needs per_image=True (one loss per image to "
                "reduce); with per_image=False the loss is one number, so leave reduction='auto' "
                "(or 'none'), as mmseg asserts."
            )
        super().__init__(name=name, reduction=reduction, **kwargs)
        self.loss_type = loss_type
        self.classes = classes
        self.per_image = bool(per_image)
        self.class_weight = class_weight_list(class_weight, "LovaszLoss")
        self.loss_weight = float(loss_weight)
        self.ignore_index = int(ignore_index)
        self.align_corners = bool(align_corners)

    def call(self, y_true, y_pred):
        labels, logits = labels_and_logits(y_true, y_pred, self.align_corners)
        num_classes = num_classes_of(logits, "LovaszLoss")
        # Groups: the images (per_image) or the whole batch as one.
        labels = ops.reshape(labels, (ops.shape(labels)[0] if self.per_image else 1, -1))
        valid = ops.cast(ops.not_equal(labels, self.ignore_index), logits.dtype)
        if self.loss_type == "binary":
            loss = self._hinge(labels, logits, valid, num_classes)
        else:
            loss = self._softmax(labels, logits, valid, num_classes)
        loss = self.loss_weight * loss
        return loss if self.per_image else loss[0]

    def _hinge(self, labels, logits, valid, num_classes):
        if num_classes != 1:
            raise ValueError(
                f"LovaszLoss: loss_type='binary' takes one logit channel (batch, H, W, 1), the "
                f"foreground score; got {num_classes} channels. Use loss_type='multi_class'."
            )
        scores = ops.reshape(logits, ops.shape(labels))
        gt = ops.cast(labels, logits.dtype)
        errors = 1.0 - scores * (2.0 * gt - 1.0)
        errors_sorted, valid_sorted, gt_sorted = _sorted_by_error(errors, valid, gt)
        grad = _lovasz_grad(gt_sorted, valid_sorted)
        return ops.sum(ops.relu(errors_sorted) * valid_sorted * grad, axis=1)

    def _softmax(self, labels, logits, valid, num_classes):
        dtype = logits.dtype
        if isinstance(self.classes, list):
            bad = [c for c in self.classes if not 0 <= c < num_classes]
            if bad:
                raise ValueError(
                    f"LovaszLoss: classes {bad} are not class numbers of logits with {num_classes} classes."
                )
            class_ids = list(self.classes)
        else:
            class_ids = list(range(num_classes))
        if num_classes == 1 and not (isinstance(self.classes, list) and len(self.classes) == 1):
            raise ValueError(
                f"LovaszLoss: loss_type='multi_class' with one logit channel needs classes=[c] "
                f"(one class; mmseg raises 'Sigmoid output possible only with 1 class'); got "
                f"classes={self.classes!r}. For a binary foreground logit use loss_type='binary'."
            )
        probs = ops.softmax(logits, axis=-1)
        probs = ops.reshape(probs, (ops.shape(labels)[0], -1, num_classes))
        # With one channel mmseg takes that channel for any class asked.
        columns = class_ids if num_classes > 1 else [0] * len(class_ids)
        probs = ops.take(probs, ops.convert_to_tensor(columns, dtype="int32"), axis=2)
        ids = ops.convert_to_tensor(class_ids, dtype="int32")
        foreground = ops.cast(ops.equal(labels[..., None], ids), dtype)  # (groups, pixels, K)
        errors = ops.abs(foreground - probs)
        valid = ops.broadcast_to(valid[..., None], ops.shape(errors))
        errors_sorted, valid_sorted, fg_sorted = _sorted_by_error(errors, valid, foreground)
        grad = _lovasz_grad(fg_sorted, valid_sorted)
        per_class = ops.sum(errors_sorted * valid_sorted * grad, axis=1)  # (groups, K)
        if self.class_weight is not None:
            check_class_count(self.class_weight, num_classes, "class_weight", "LovaszLoss")
            per_class = per_class * ops.convert_to_tensor([self.class_weight[c] for c in class_ids], dtype=dtype)
        if self.classes == "present":
            chosen = ops.cast(ops.sum(foreground * valid, axis=1) > 0, dtype)
        else:
            chosen = ops.ones_like(per_class)
        count = ops.sum(chosen, axis=1)
        # ops.where, not ops.maximum (float32 on the PyTorch backend).
        return ops.sum(per_class * chosen, axis=1) / ops.where(count > 0, count, ops.ones_like(count))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "loss_type": self.loss_type,
                "classes": self.classes,
                "per_image": self.per_image,
                "class_weight": self.class_weight,
                "loss_weight": self.loss_weight,
                "ignore_index": self.ignore_index,
                "align_corners": self.align_corners,
            }
        )
        return config
