"""A callback scoring mIoU during `fit()`, the reference's evaluation hook."""

import keras
import numpy as np

from keras_ann.evaluation import evaluate_dataset
from keras_ann.metrics import format_table
from keras_ann.test_protocol import TestProtocol

__all__ = ["MeanIoUEvaluation"]


class MeanIoUEvaluation(keras.callbacks.Callback):
    """Evaluate mIoU on a dataset at the end of every epoch of `fit()`.

    With iteration-based training an "epoch" is a checkpoint interval;
    `every_n_epochs` makes this score the model every evaluation interval as
    the reference does. The model is tested as its `test_protocol` says
    (`keras_ann.inference.segment`), or as `protocol` says. Logs
    `val_mIoU`, `val_mAcc`, `val_aAcc` in percent (as mmseg and the command
    line print them).

    Args:
        dataset: raw `(images, labels)` batches (see `evaluate_dataset`).
        protocol: a `TestProtocol` instead of the model's own.
        every_n_epochs: evaluate at the end of every n-th epoch.

    Example:

    >>> import numpy as np
    >>> from keras_ann import ANNSegmenter
    >>> model = ANNSegmenter(backbone="resnet18_d8", num_classes=2)
    >>> model.compile()
    >>> x, y = np.zeros((2, 33, 33, 3), np.float32), np.ones((2, 33, 33), np.int32)
    >>> evaluation = MeanIoUEvaluation([(x[:1].astype(np.uint8), y[:1])])
    >>> history = model.fit(x, y, batch_size=2, callbacks=[evaluation], verbose=0)  # doctest: +ELLIPSIS
    <BLANKLINE>
    ...
    >>> sorted(k for k in history.history if k.startswith("val_"))
    ['val_aAcc', 'val_mAcc', 'val_mIoU']
    """

    def __init__(self, dataset, protocol=None, every_n_epochs=1):
        super().__init__()
        self.dataset = dataset
        self.protocol = protocol
        self.every_n_epochs = every_n_epochs
        self.history = []

    @property
    def test_protocol(self):
        """The protocol the model is tested with."""
        return TestProtocol.of(self.protocol or getattr(self.model, "test_protocol", None))

    @property
    def class_names(self):
        """The names of the classes for the table and the log, or `None`."""
        return self.test_protocol.class_names

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
        results = evaluate_dataset(self.model, self.dataset, self.test_protocol, verbose=0)
        print("\n" + format_table(results, self.class_names))
        self.history.append(results)
        if logs is not None:
            for key in ("mIoU", "mAcc", "aAcc"):
                logs[f"val_{key}"] = float(results[key])
