"""A callback scoring mIoU during `fit()`, the reference's evaluation hook."""

import keras
import numpy as np

from keras_ann.evaluation import evaluate_dataset
from keras_ann.metrics import format_table

__all__ = ["MeanIoUEvaluation"]


class MeanIoUEvaluation(keras.callbacks.Callback):
    """Evaluate mIoU on a dataset at the end of every epoch of `fit()`.

    With iteration-based training an "epoch" is a checkpoint interval;
    `every_n_epochs` makes this score the model every evaluation interval as
    the reference does. Logs `val_mIoU`, `val_mAcc`, `val_aAcc` (in %).

    Args:
        dataset: the evaluation pairs (see `evaluate_dataset`).
        class_names: for the printed table.
        every_n_epochs: evaluate at the end of every n-th epoch.
        **kwargs: more `evaluate_dataset` arguments (mode, crop_size, ...).
    """

    def __init__(self, dataset, class_names=None, every_n_epochs=1, **kwargs):
        super().__init__()
        self.dataset = dataset
        self.class_names = class_names
        self.every_n_epochs = every_n_epochs
        self.kwargs = kwargs
        self.history = []

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        if (epoch + 1) % self.every_n_epochs or (loss is not None and not np.isfinite(float(loss))):
            # Not evaluated (between evaluations, or a diverged model that
            # is not worth scoring): NaN keeps the columns of a `CSVLogger`,
            # which fixes them at the first epoch.
            if logs is not None:
                for key in ("mIoU", "mAcc", "aAcc"):
                    logs[f"val_{key}"] = float("nan")
            return
        results = evaluate_dataset(
            self.model, self.dataset, class_names=self.class_names, verbose=0, **self.kwargs
        )
        print("\n" + format_table(results, self.class_names))
        self.history.append(results)
        if logs is not None:
            for key in ("mIoU", "mAcc", "aAcc"):
                logs[f"val_{key}"] = float(results[key]) * 100.0
