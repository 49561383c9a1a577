"""A callback saving periodic model snapshots, keeping the newest few."""

import os
import re

import keras

__all__ = ["Snapshots"]

_NAME = re.compile(r"^iter_(\d+)\.keras$")


class Snapshots(keras.callbacks.Callback):
    """Save the model to `<directory>/iter_<iteration>.keras` every
    `every_n_epochs` epochs (in `train()`, every evaluation interval, as the
    reference's `iter_<N>.pth`), and delete the oldest beyond `keep`.

    Files are written under a temporary name and renamed. The snapshots
    are found by name in `directory`, so a resumed run counts those of the
    interrupted one too.

    Args:
        directory: where the snapshots go.
        keep: int >= 1, how many of the newest snapshots to keep.
        every_n_epochs: save at the end of every n-th epoch.

    Example:

    ```python
    model.fit(..., epochs=8, callbacks=[Snapshots("run", keep=2, every_n_epochs=2)])
    # run/iter_<N>.keras of the last two of epochs 2, 4, 6, 8
    ```
    """

    def __init__(self, directory, keep, every_n_epochs=1):
        super().__init__()
        if int(keep) < 1:
            raise ValueError(f"`keep` (--keep-snapshots) must be at least 1, got {keep}.")
        self.directory = directory
        self.keep = int(keep)
        self.every_n_epochs = int(every_n_epochs)

    def snapshots(self):
        """The snapshot paths in `directory`, oldest first."""
        if not os.path.isdir(self.directory):
            return []
        found = [(int(m.group(1)), name) for name in os.listdir(self.directory) if (m := _NAME.match(name))]
        return [os.path.join(self.directory, name) for _, name in sorted(found)]

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every_n_epochs or getattr(self.model, "stop_training", False):
            return
        iteration = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        os.makedirs(self.directory, exist_ok=True)
        path = os.path.join(self.directory, f"iter_{iteration}.keras")
        temporary = os.path.join(self.directory, f".tmp-iter_{iteration}.keras")
        self.model.save(temporary)
        os.replace(temporary, path)
        for old in self.snapshots()[: -self.keep]:
            os.remove(old)
