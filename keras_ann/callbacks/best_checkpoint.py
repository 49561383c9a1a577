"""A callback keeping the model of the best validation mIoU."""

import json
import math
import os
import shutil

import keras
import numpy as np

from keras_ann.callbacks.resume_state import ResumeError, _is_disk_full, _remove

__all__ = ["BestCheckpoint"]


class BestCheckpoint(keras.callbacks.Callback):
    """Save the model to `best_mIoU.keras` whenever the monitored score
    (by default `val_mIoU`, logged by `MeanIoUEvaluation`, which must come
    before this callback) beats the best so far.

    The best value and its iteration are kept in `<filepath>.json` next to
    the model, both written atomically (temporary name, then rename), and
    read back when the callback is created: a resumed run (`train()` started
    again on the same work directory) keeps the best of the whole run, and
    only a better score replaces the file. Epochs without an evaluation (a
    NaN score) are skipped.

    Args:
        filepath: the `.keras` path, e.g. `work_dir/best_mIoU.keras`.
        monitor: the log key. Defaults to `"val_mIoU"`.

    Example:

    ```python
    model.fit(..., callbacks=[MeanIoUEvaluation(val_ds), BestCheckpoint("run/best_mIoU.keras")])
    ```
    """

    def __init__(self, filepath, monitor="val_mIoU"):
        super().__init__()
        self.filepath = filepath
        self.monitor = monitor
        self.state_path = filepath + ".json"
        self.best = -math.inf
        self.best_iteration = None
        if os.path.exists(self.state_path):
            with open(self.state_path) as f:
                state = json.load(f)
            self.best = float(state["best"])
            self.best_iteration = state.get("iteration")

    def _disk_full(self, detail, needed):
        return ResumeError(
            f"No space left on the device for {self.filepath} ({detail}). The best checkpoint needs about "
            f"{needed / 2**20:.0f} MB; the resume state is intact: free space, then run the same command "
            "again to resume."
        )

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or not math.isfinite(float(value)) or float(value) <= self.best:
            return
        self.best = float(value)
        self.best_iteration = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        directory = os.path.dirname(os.path.abspath(self.filepath))
        os.makedirs(directory, exist_ok=True)
        temporary = os.path.join(directory, ".tmp-" + os.path.basename(self.filepath))
        # As the resume state: a write that cannot fit is not started (HDF5
        # left with a failed write crashes the process at exit).
        needed = os.path.getsize(self.filepath) if os.path.exists(self.filepath) else _model_bytes(self.model)
        free = shutil.disk_usage(directory).free
        if free < needed * 1.05 + 2**20:
            raise self._disk_full(f"{free / 2**20:.0f} MB free", needed)
        try:
            self.model.save(temporary)
        except OSError as error:
            _remove(temporary)
            if _is_disk_full(error):
                raise self._disk_full("no space left while writing", needed) from None
            raise
        os.replace(temporary, self.filepath)
        with open(self.state_path + ".tmp", "w") as f:
            json.dump({"monitor": self.monitor, "best": self.best, "iteration": self.best_iteration}, f)
        os.replace(self.state_path + ".tmp", self.state_path)


def _model_bytes(model):
    """Bytes of a model's weights: what its `.keras` file holds, about."""
    return sum(int(np.prod(w.shape)) * np.dtype(w.dtype).itemsize for w in getattr(model, "weights", []))
