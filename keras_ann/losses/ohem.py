"""Online hard example mining: the reference's `OHEMPixelSampler`
(mmseg/structures/sampler/ohem_pixel_sampler.py) and the decode head's
loss with its weights (mmseg/models/decode_heads/decode_head.py)."""

import keras
from keras import ops

from keras_ann.losses._inputs import labels_and_logits
from keras_ann.losses.cross_entropy import SegmentationCrossEntropy


@keras.saving.register_keras_serializable(package="keras_ann")
class OHEMLoss(keras.losses.Loss):
    """A cross-entropy over the hard pixels only, as a decode head of
    mmsegmentation 1.2.2 with `sampler=dict(type="OHEMPixelSampler",
    thresh=..., min_kept=...)` (`mmseg/structures/sampler/
    ohem_pixel_sampler.py`, `OHEMPixelSampler`, and `BaseDecodeHead.
    loss_by_feat` in `mmseg/models/decode_heads/decode_head.py`).

    The sampler keeps, among the labelled pixels of the batch (`loss`'s
    `ignore_index` left out):

    * with `thresh`: those whose softmax probability of their true class is
      below `max(thresh, q)`, `q` the `min(min_kept * batch, n - 1)`-th
      smallest such probability (`n` labelled pixels), so at least about
      `min_kept` per image are kept;
    * without `thresh` (the default): the `min_kept * batch` pixels of the
      largest loss (`loss`'s per-pixel loss, class weights included).

    Then the wrapped cross-entropy is taken with the kept pixels' weight 1
    and the others' 0, divided as that loss divides (by all pixels, or the
    labelled ones with `avg_non_ignore=True`, plus float32's epsilon, not
    by the number kept), as the reference's `cross_entropy(weight=
    seg_weight)`. `sample(labels, logits)` returns the kept-pixel mask
    (mmseg's `seg_weight`).

    Only `SegmentationCrossEntropy` can be wrapped: in the reference, the
    sampler's per-pixel weight enters the cross-entropy only (`DiceLoss`
    and `FocalLoss` assert on its shape; `LovaszLoss` and `TverskyLoss`
    ignore it), and its loss-ranking branch needs per-pixel losses.

    Differences from the reference: pixels of equal loss (without
    `thresh`) or of equal probability at the cut may be kept in another
    order (the loss is the same). The sampler's mask carries no gradient, as
    mmseg's `torch.no_grad()`. mmseg's sampler takes the head's
    `ignore_index`; here it is the wrapped loss's.

    Args:
        loss: a `SegmentationCrossEntropy`; defaults to
            `SegmentationCrossEntropy()`.
        thresh: optional float, the probability threshold. Defaults to
            `None` (keep the highest-loss pixels).
        min_kept: int > 1, the pixels kept per image at least. Defaults to
            100000.
        name: str.
        **kwargs: base `Loss` arguments (`reduction`, `dtype`); both
            default to the wrapped loss's.

    Call arguments:
        y_true: `(batch, H, W)` integer labels.
        y_pred: `(batch, h, w, num_classes)` logits.

    Example (mmseg's decode head with `OHEMPixelSampler(thresh=0.7,
    min_kept=2)` and `CrossEntropyLoss()` keeps the same pixels and gives
    0.128668... on these inputs in NCHW):

    >>> import numpy as np
    >>> labels = np.array([[[0, 1], [1, 255]]])
    >>> logits = np.array([[[[2.0, -1.0], [0.0, 1.0]], [[-1.0, 0.5], [3.0, 0.0]]]])
    >>> ohem = OHEMLoss(SegmentationCrossEntropy(dtype="float64"), thresh=0.7, min_kept=2)
    >>> np.asarray(ohem.sample(labels, logits)).astype(int).tolist()
    [[[0, 1], [1, 0]]]
    >>> round(float(ohem(labels, logits)), 4)
    0.1287
    """

    def __init__(self, loss=None, thresh=None, min_kept=100000, name="ohem_loss", **kwargs):
        if loss is None:
            loss = SegmentationCrossEntropy()
        elif isinstance(loss, dict):
            loss = keras.saving.deserialize_keras_object(loss)
        if not isinstance(loss, SegmentationCrossEntropy):
            raise ValueError(
                f"OHEMLoss: loss must be a SegmentationCrossEntropy; got {type(loss).__name__}. The "
                "reference's OHEM weights pixels of its cross-entropy only (its Dice and Focal losses "
                "refuse the per-pixel weight, Lovasz and Tversky ignore it)."
            )
        if isinstance(min_kept, bool) or not isinstance(min_kept, int) or min_kept <= 1:
            raise ValueError(f"OHEMLoss: min_kept must be an int > 1 (mmseg asserts it); got {min_kept!r}.")
        kwargs.setdefault("reduction", loss.reduction)
        kwargs.setdefault("dtype", loss.dtype)
        super().__init__(name=name, **kwargs)
        self.loss = loss
        self.thresh = None if thresh is None else float(thresh)
        self.min_kept = int(min_kept)

    def sample(self, y_true, y_pred):
        """The kept pixels: a `(batch, H, W)` mask of 1.0 (kept) and 0.0 in
        the logits' dtype, at the labels' size (mmseg's `seg_weight`)."""
        labels, logits = labels_and_logits(y_true, y_pred, self.loss.align_corners)
        return self._kept(labels, logits)

    def _kept(self, labels, logits):
        logits = ops.stop_gradient(logits)
        dtype = logits.dtype
        valid = ops.not_equal(labels, self.loss.ignore_index)
        batch_kept = self.min_kept * ops.shape(labels)[0]
        flat_valid = ops.reshape(valid, (-1,))
        if self.thresh is not None:
            probs = ops.softmax(logits, axis=-1)
            safe = ops.where(valid, labels, 0)
            prob = ops.squeeze(ops.take_along_axis(probs, safe[..., None], axis=-1), -1)
            flat_prob = ops.reshape(prob, (-1,))
            # The labelled pixels' probabilities ascending, the others (2 >
            # any probability) after them.
            ascending = ops.sort(ops.where(flat_valid, flat_prob, ops.full_like(flat_prob, 2.0)))
            count = ops.sum(ops.cast(flat_valid, "int32"))
            index = ops.maximum(ops.minimum(ops.cast(batch_kept, "int32"), count - 1), 0)
            min_threshold = ops.where(count > 0, ops.take(ascending, index), ops.zeros((), dtype))
            # Python's max(min_threshold, thresh), as mmseg; ops.where keeps
            # float64 (ops.maximum is float32 on the PyTorch backend).
            thresh = ops.cast(self.thresh, dtype)
            threshold = ops.where(thresh > min_threshold, thresh, min_threshold)
            kept = ops.logical_and(valid, prob < threshold)
        else:
            losses, _ = self.loss.pixel_losses(labels, logits)
            flat = ops.reshape(losses, (-1,))
            key = ops.where(flat_valid, flat, ops.full_like(flat, float("-inf")))
            rank = ops.argsort(ops.argsort(-key))  # 0 for the largest loss
            kept = ops.logical_and(flat_valid, rank < ops.cast(batch_kept, rank.dtype))
            kept = ops.reshape(kept, ops.shape(labels))
        return ops.stop_gradient(ops.cast(kept, dtype))

    def call(self, y_true, y_pred):
        labels, logits = labels_and_logits(y_true, y_pred, self.loss.align_corners)
        return self.loss.call(labels, logits) * self._kept(labels, logits)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "loss": keras.saving.serialize_keras_object(self.loss),
                "thresh": self.thresh,
                "min_kept": self.min_kept,
            }
        )
        return config
