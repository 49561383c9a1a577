"""The reference's pixel-wise cross-entropy for segmentation."""

import keras
from keras import ops

from keras_ann.losses._inputs import FLOAT32_EPSILON, labels_and_logits


@keras.saving.register_keras_serializable(package="keras_ann")
class SegmentationCrossEntropy(keras.losses.Loss):
    """Softmax cross-entropy per pixel with an ignore value, as the
    reference's `CrossEntropyLoss` (`use_sigmoid=False`).

    Pixels labelled `ignore_index` contribute zero. By default the loss is
    averaged over **all** pixels, ignored ones included, as the reference
    does (`avg_non_ignore=False`); `avg_non_ignore=True` averages over the
    labelled pixels only; the sum is divided by that count plus float32's
    epsilon (1.19e-7), as the reference. Class weights scale each pixel's
    loss by the weight of its true class, and the average still counts
    pixels. That is a deliberate difference: mmseg 1.2.2 divides the
    class-weighted sum by the sum of the pixels' class weights instead, and
    raises an `IndexError` as soon as one pixel holds the ignore value (its
    `class_weight[label]` lookup), so on real data with void pixels it
    cannot train with class weights at all; on labels without ignored
    pixels the two differ by the factor pixels / (sum of their weights).
    Logits of another spatial size than the labels are resized bilinearly to
    the labels' size first (`align_corners` as given), as the reference's
    decode heads do before their loss.

    Args:
        ignore_index: int, the label value to ignore. Defaults to 255.
        avg_non_ignore: bool. Defaults to `False`.
        class_weight: optional sequence of `num_classes` floats.
        align_corners: bool, for the resize of mismatched logits.
        loss_weight: float, multiplies the loss. Defaults to 1.0.
        name: str.
        **kwargs: base `Loss` arguments (`reduction`, `dtype`).

    Call arguments:
        y_true: `(batch, H, W)` integer labels (a trailing axis of 1 is
            accepted).
        y_pred: `(batch, h, w, num_classes)` logits.

    Example:

    >>> import numpy as np
    >>> labels = np.array([[[0, 255]]])
    >>> logits = np.array([[[[2.0, 0.0], [0.0, 2.0]]]], "float32")
    >>> loss = SegmentationCrossEntropy()(labels, logits)
    >>> round(float(loss), 4)  # (0.1269 + 0) / 2 pixels
    0.0635
    """

    def __init__(
        self,
        ignore_index=255,
        avg_non_ignore=False,
        class_weight=None,
        align_corners=False,
        loss_weight=1.0,
        name="segmentation_cross_entropy",
        **kwargs,
    ):
        kwargs.setdefault("reduction", "sum_over_batch_size")
        super().__init__(name=name, **kwargs)
        self.ignore_index = int(ignore_index)
        self.avg_non_ignore = bool(avg_non_ignore)
        self.class_weight = None if class_weight is None else [float(w) for w in class_weight]
        self.align_corners = bool(align_corners)
        self.loss_weight = float(loss_weight)

    def pixel_losses(self, y_true, y_pred):
        """The unreduced per-pixel losses, as the reference's with
        `reduction="none"`: `loss_weight` times the class weight of the
        true class times the negative log-likelihood, 0 at ignored pixels.

        Returns:
            `(losses, valid)`: both `(batch, H, W)` at the labels' size,
            `valid` a boolean mask of the labelled pixels.
        """
        y_true, y_pred = labels_and_logits(y_true, y_pred, self.align_corners)
        dtype = y_pred.dtype
        valid = ops.not_equal(y_true, self.ignore_index)
        safe_labels = ops.where(valid, y_true, 0)
        log_probs = ops.log_softmax(y_pred, axis=-1)
        per_pixel = -ops.squeeze(
            ops.take_along_axis(log_probs, safe_labels[..., None], axis=-1), -1
        )
        mask = ops.cast(valid, dtype)
        if self.class_weight is not None:
            weights = ops.convert_to_tensor(self.class_weight, dtype=dtype)
            mask = mask * ops.take(weights, safe_labels)
        return self.loss_weight * (per_pixel * mask), valid

    def call(self, y_true, y_pred):
        per_pixel, valid = self.pixel_losses(y_true, y_pred)
        dtype = per_pixel.dtype
        # The reference divides the sum by (count + float32's epsilon), the
        # count being all pixels or, with `avg_non_ignore`, the labelled
        # ones (mmseg's `cross_entropy` -> `weight_reduce_loss(avg_factor)`).
        # Rescaled here, as the reduction divides by the number of pixels.
        num_pixels = ops.cast(ops.size(per_pixel), dtype)
        count = ops.sum(ops.cast(valid, dtype)) if self.avg_non_ignore else num_pixels
        return per_pixel * (num_pixels / (count + FLOAT32_EPSILON))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "ignore_index": self.ignore_index,
                "avg_non_ignore": self.avg_non_ignore,
                "class_weight": self.class_weight,
                "align_corners": self.align_corners,
                "loss_weight": self.loss_weight,
            }
        )
        return config
