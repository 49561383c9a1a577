"""Several losses summed, and the losses of a list of mmseg-style configs
(a decode head's `loss_decode` list)."""

import keras

from keras_ann.losses.cross_entropy import SegmentationCrossEntropy
from keras_ann.losses.dice import DiceLoss
from keras_ann.losses.focal import FocalLoss
from keras_ann.losses.lovasz import LovaszLoss
from keras_ann.losses.ohem import OHEMLoss
from keras_ann.losses.tversky import TverskyLoss

# The `type` names of `build_loss`: mmseg's, and OHEMLoss (mmseg's
# `sampler=dict(type="OHEMPixelSampler")` of a cross-entropy head).
LOSS_TYPES = {
    "CrossEntropyLoss": SegmentationCrossEntropy,
    "DiceLoss": DiceLoss,
    "FocalLoss": FocalLoss,
    "LovaszLoss": LovaszLoss,
    "TverskyLoss": TverskyLoss,
    "OHEMLoss": OHEMLoss,
}
_TAKES_CLASS_WEIGHT = ("CrossEntropyLoss", "FocalLoss", "LovaszLoss", "TverskyLoss", "OHEMLoss")
_OHEM_KEYS = ("thresh", "min_kept")


@keras.saving.register_keras_serializable(package="keras_ann")
class SumOfLosses(keras.losses.Loss):
    """The sum of several losses, each reduced as it reduces, as mmseg sums
    the losses of a decode head's `loss_decode` list.

    Args:
        losses: a non-empty list of Keras losses taking `(labels, logits)`.
        name: str.
        **kwargs: base `Loss` arguments (unused: each loss reduces itself).

    Example:

    >>> import numpy as np
    >>> labels = np.array([[[0, 1], [1, 255]]])
    >>> logits = np.array([[[[2.0, -1.0], [0.0, 1.0]], [[-1.0, 0.5], [3.0, 0.0]]]], "float32")
    >>> both = SumOfLosses([SegmentationCrossEntropy(), DiceLoss(loss_weight=3.0)])
    >>> parts = SegmentationCrossEntropy()(labels, logits) + DiceLoss(loss_weight=3.0)(labels, logits)
    >>> bool(abs(float(both(labels, logits)) - float(parts)) < 1e-6)
    True
    """

    def __init__(self, losses, name="sum_of_losses", **kwargs):
        super().__init__(name=name, **kwargs)
        losses = [keras.saving.deserialize_keras_object(loss) if isinstance(loss, dict) else loss for loss in losses]
        if not losses or not all(isinstance(loss, keras.losses.Loss) for loss in losses):
            raise ValueError(f"SumOfLosses: losses must be a non-empty list of Keras losses; got {losses!r}.")
        self.losses = losses

    def __call__(self, y_true, y_pred, sample_weight=None):
        total = None
        for loss in self.losses:
            value = loss(y_true, y_pred, sample_weight=sample_weight)
            total = value if total is None else total + keras.ops.cast(value, total.dtype)
        return total

    def call(self, y_true, y_pred):
        return self(y_true, y_pred)

    def get_config(self):
        config = super().get_config()
        config["losses"] = [keras.saving.serialize_keras_object(loss) for loss in self.losses]
        return config


def build_loss(config, ignore_index=255, class_weight=None):
    """A Keras loss from mmseg-style loss configs: one dict or a list of
    dicts `{"type": NAME, **arguments}` (mmseg's `loss_decode`), summed.

    `type` is one of `LOSS_TYPES`: mmseg's `CrossEntropyLoss` (softmax
    only: `SegmentationCrossEntropy`), `DiceLoss`, `FocalLoss`,
    `LovaszLoss`, `TverskyLoss`, and `OHEMLoss` (its `thresh` and
    `min_kept`, the other arguments those of its cross-entropy). mmseg's
    `loss_name` (the logged name) is accepted and unused.

    Args:
        config: a dict or a non-empty list of dicts.
        ignore_index: the `ignore_index` of entries that do not set it (the
            decode head's, in mmseg).
        class_weight: the `class_weight` of entries that take one and do
            not set it (e.g. a recipe's), or `None`.

    Returns:
        The loss, or `SumOfLosses` of them.

    Example:

    >>> loss = build_loss([{"type": "CrossEntropyLoss", "loss_weight": 1.0},
    ...                    {"type": "DiceLoss", "loss_weight": 3.0}])
    >>> [type(part).__name__ for part in loss.losses]
    ['SegmentationCrossEntropy', 'DiceLoss']
    """
    entries = [config] if isinstance(config, dict) else list(config or ())
    if not entries:
        raise ValueError("build_loss: give one loss config or a non-empty list of them, e.g. [{'type': 'DiceLoss'}].")
    losses = [_one_loss(entry, ignore_index, class_weight) for entry in entries]
    return losses[0] if len(losses) == 1 else SumOfLosses(losses)


def _one_loss(entry, ignore_index, class_weight):
    if not isinstance(entry, dict) or not isinstance(entry.get("type"), str):
        raise ValueError(f"A loss config is a dict with a 'type' (e.g. {{'type': 'DiceLoss'}}); got {entry!r}.")
    arguments = dict(entry)
    name = arguments.pop("type")
    arguments.pop("loss_name", None)
    if name not in LOSS_TYPES:
        raise ValueError(f"Unknown loss type {name!r}; the types are {', '.join(LOSS_TYPES)}.")
    if name in ("CrossEntropyLoss", "OHEMLoss"):
        if arguments.pop("use_sigmoid", False):
            raise ValueError(f"{name}: use_sigmoid=True (a binary cross-entropy) is not available; leave it false.")
    arguments.setdefault("ignore_index", ignore_index)
    if class_weight is not None and name in _TAKES_CLASS_WEIGHT:
        arguments.setdefault("class_weight", list(class_weight))
    try:
        if name == "OHEMLoss":
            sampler = {key: arguments.pop(key) for key in _OHEM_KEYS if key in arguments}
            return OHEMLoss(SegmentationCrossEntropy(**arguments), **sampler)
        return LOSS_TYPES[name](**arguments)
    except TypeError as error:
        raise ValueError(f"Loss config {entry!r}: {error}") from None


def parse_loss_option(text):
    """`keras-ann train --loss`: `"NAME[:WEIGHT],..."` -> a `loss_decode`
    list. A name is a `LOSS_TYPES` name, any case, `Loss` optional
    (`dice`, `CrossEntropy`, `OHEM`); the weight is its `loss_weight`.

    Example:

    >>> parse_loss_option("CrossEntropy:1,dice:3")
    [{'type': 'CrossEntropyLoss', 'loss_weight': 1.0}, {'type': 'DiceLoss', 'loss_weight': 3.0}]
    """
    names = {name.lower(): name for name in LOSS_TYPES}
    names.update({name.lower()[: -len("loss")]: name for name in LOSS_TYPES})
    entries = []
    for part in str(text).split(","):
        name, _, weight = part.strip().partition(":")
        if name.strip().lower() not in names:
            raise ValueError(
                f"--loss: unknown loss {name.strip()!r} in {text!r}; the names are "
                f"{', '.join(n[: -len('Loss')] for n in LOSS_TYPES)} (e.g. --loss CrossEntropy:1,Dice:3)."
            )
        entry = {"type": names[name.strip().lower()]}
        if weight.strip():
            try:
                entry["loss_weight"] = float(weight)
            except ValueError:
                raise ValueError(f"--loss: the weight of {name.strip()!r} must be a number, got {weight!r}.") from None
        entries.append(entry)
    return entries
