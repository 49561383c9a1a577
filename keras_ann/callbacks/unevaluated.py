"""Hiding the NaN scores of epochs without an evaluation from user callbacks."""

import math

import keras

__all__ = ["hide_unevaluated"]


class _Hide(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.hidden = {}

    def on_epoch_end(self, epoch, logs=None):
        self.hidden = {}
        for key, value in list((logs or {}).items()):
            if key.startswith("val_") and isinstance(value, float) and math.isnan(value):
                self.hidden[key] = logs.pop(key)


class _Restore(keras.callbacks.Callback):
    def __init__(self, hide):
        super().__init__()
        self.hide = hide

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs.update(self.hide.hidden)


def hide_unevaluated(callbacks):
    """`callbacks` wrapped so that, at the end of an epoch without an
    evaluation, they do not see the NaN `val_*` scores that
    `MeanIoUEvaluation` logs then (for `CSVLogger`'s fixed columns).

    Keras's `EarlyStopping` and `ModelCheckpoint(save_best_only=True)` take
    the first value they see as the best, and nothing beats NaN: without
    this, monitoring `val_mIoU` would never improve after a first epoch
    without evaluation. A missing key makes them wait for the next
    evaluation instead. The scores are put back after `callbacks`, so the
    History keeps one entry per epoch.

    Example:

    >>> import keras
    >>> wrapped = hide_unevaluated([keras.callbacks.EarlyStopping("val_mIoU")])
    >>> len(wrapped)
    3
    """
    callbacks = list(callbacks)
    if not callbacks:
        return []
    hide = _Hide()
    return [hide, *callbacks, _Restore(hide)]
