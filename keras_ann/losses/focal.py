"""The reference's sigmoid focal loss (mmseg/models/losses/focal_loss.py,
`FocalLoss`)."""

import keras
from keras import ops

from keras_ann.losses._inputs import check_class_count, class_weight_list, labels_and_logits, num_classes_of


@keras.saving.register_keras_serializable(package="keras_ann")
class FocalLoss(keras.losses.Loss):
    """Sigmoid focal loss per pixel and class, as mmsegmentation 1.2.2's
    `FocalLoss` (`mmseg/models/losses/focal_loss.py`).

    Each class is a binary problem: with `p = sigmoid(logit)` and `t` the
    one-hot label, the loss of a pixel and class is
    `BCE(logit, t) * (alpha t + (1 - alpha)(1 - t)) * |t - p|^gamma`, times
    `class_weight[c]`, 0 at pixels labelled `ignore_index`. `"mean"`
    averages over **all** pixels times classes, ignored pixels included
    (as the reference); then times `loss_weight`. With a single logit
    channel the target is `label == 1` (a binary foreground logit, as the
    reference).

    As the reference, only the sigmoid form exists: `use_sigmoid=False` is
    refused (mmseg asserts). `alpha` may be one float or one float per
    class (the weight of each class's positive pixels, not a class weight).

    Differences from the reference:

    * mmseg 1.2.2's CPU branch fails on integer labels (it keeps one column
      of the one-hot labels, `target[:, num_classes]`, and raises a shape
      error); its CUDA branch (mmcv's `sigmoid_focal_loss` kernel) is the
      formula above, which is also what its CPU code computes for one-hot
      labels. This loss is that formula, on any device.
    * mmcv's kernel takes `log(max(p, FLT_MIN))`; here the binary
      cross-entropy is the overflow-free form of PyTorch's
      `binary_cross_entropy_with_logits` (they differ only for logits
      beyond about +-87).
    * mmseg asserts `gamma` and `loss_weight` are Python floats and `alpha`
      a float or list; here any real numbers are taken.
    * Labels outside `[0, C)` other than `ignore_index` have an all-zero
      target (mmseg's `one_hot` raises on them).
    * mmseg's per-pixel `weight` is `sample_weight` `(batch, H, W, 1)`
      here; `reduction_override` is this loss's `reduction`; `avg_factor`
      has no counterpart. Logits of another size than the labels are
      resized bilinearly first (`align_corners`), as the decode head does.

    Args:
        use_sigmoid: must be `True` (the default).
        gamma: float, the focusing exponent. Defaults to 2.0.
        alpha: float or list of `num_classes` floats in [0, 1]. Defaults
            to 0.5.
        reduction: `"mean"` (the default), `"sum"` or `"none"` (the
            per-pixel, per-class losses `(batch, H, W, num_classes)`).
        class_weight: optional list of `num_classes` floats.
        loss_weight: float, multiplies the loss. Defaults to 1.0.
        ignore_index: int, the label of unlabelled pixels (in mmseg, the
            decode head's `ignore_index`). Defaults to 255.
        align_corners: bool, for the resize of mismatched logits.
        name: str.
        **kwargs: base `Loss` arguments (`dtype`).

    Call arguments:
        y_true: `(batch, H, W)` integer labels.
        y_pred: `(batch, h, w, num_classes)` logits.

    Example (mmseg's `FocalLoss()` computes 0.019414... on these inputs with
    one-hot labels, the CUDA branch's target):

    >>> import numpy as np
    >>> labels = np.array([[[0, 1], [1, 255]]])
    >>> logits = np.array([[[[2.0, -1.0], [0.0, 1.0]], [[-1.0, 0.5], [3.0, 0.0]]]])
    >>> round(float(FocalLoss(dtype="float64")(labels, logits)), 4)
    0.0194
    """

    def __init__(
        self,
        use_sigmoid=True,
        gamma=2.0,
        alpha=0.5,
        reduction="mean",
        class_weight=None,
        loss_weight=1.0,
        ignore_index=255,
        align_corners=False,
        name="focal_loss",
        **kwargs,
    ):
        if use_sigmoid is not True:
            raise ValueError(
                f"FocalLoss: use_sigmoid={use_sigmoid!r}; only the sigmoid focal loss exists (mmseg "
                "asserts use_sigmoid is True). Leave use_sigmoid=True, or use SegmentationCrossEntropy "
                "for a softmax loss."
            )
        if reduction not in ("none", "mean", "sum"):
            raise ValueError(f"FocalLoss: reduction should be 'none', 'mean' or 'sum'; got {reduction!r}.")
        super().__init__(name=name, reduction=reduction, **kwargs)
        self.use_sigmoid = True
        self.gamma = float(gamma)
        if isinstance(alpha, (list, tuple)):
            self.alpha = [float(a) for a in alpha]
        else:
            try:
                self.alpha = float(alpha)
            except (TypeError, ValueError):
                raise ValueError(
                    f"FocalLoss: alpha must be a float or a list of floats (one per class); got {alpha!r}."
                ) from None
        self.class_weight = class_weight_list(class_weight, "FocalLoss")
        self.loss_weight = float(loss_weight)
        self.ignore_index = int(ignore_index)
        self.align_corners = bool(align_corners)

    def call(self, y_true, y_pred):
        labels, logits = labels_and_logits(y_true, y_pred, self.align_corners)
        num_classes = num_classes_of(logits, "FocalLoss")
        dtype = logits.dtype
        valid = ops.not_equal(labels, self.ignore_index)
        safe = ops.where(valid, labels, 0)
        if num_classes == 1:
            target = ops.cast(ops.equal(safe, 1), dtype)[..., None]
        else:
            target = ops.one_hot(ops.clip(safe, 0, num_classes), num_classes + 1, dtype=dtype)[..., :num_classes]
        probs = ops.sigmoid(logits)
        one_minus_pt = (1.0 - probs) * target + probs * (1.0 - target)
        if isinstance(self.alpha, list):
            check_class_count(self.alpha, num_classes, "alpha", "FocalLoss")
            alpha = ops.convert_to_tensor(self.alpha, dtype=dtype)
        else:
            alpha = self.alpha
        focal_weight = (alpha * target + (1.0 - alpha) * (1.0 - target)) * ops.power(one_minus_pt, self.gamma)
        # PyTorch's binary_cross_entropy_with_logits, free of overflow:
        # (1 - t) x + log(1 + exp(-x)). (No ops.maximum: it computes float64
        # in float32 on the PyTorch backend.)
        bce = (1.0 - target) * logits + ops.relu(-logits) + ops.log1p(ops.exp(-ops.abs(logits)))
        weight = ops.cast(valid, dtype)[..., None]
        if self.class_weight is not None:
            check_class_count(self.class_weight, num_classes, "class_weight", "FocalLoss")
            weight = weight * ops.convert_to_tensor(self.class_weight, dtype=dtype)
        return self.loss_weight * (bce * focal_weight * weight)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "use_sigmoid": self.use_sigmoid,
                "gamma": self.gamma,
                "alpha": self.alpha,
                "class_weight": self.class_weight,
                "loss_weight": self.loss_weight,
                "ignore_index": self.ignore_index,
                "align_corners": self.align_corners,
            }
        )
        return config
