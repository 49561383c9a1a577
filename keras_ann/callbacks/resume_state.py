"""Atomic, exact resume state of an iteration-based training run."""

import json
import os

import keras
import numpy as np

__all__ = ["ResumeState"]


class ResumeState(keras.callbacks.Callback):
    """Saves and restores everything needed to continue training exactly,
    and refuses to save a model whose loss has become NaN or infinite.

    At the end of every epoch (one checkpoint interval) the model's and the
    optimiser's variables go to `<directory>/state-<epoch>.weights.h5`,
    written under a temporary name and renamed, and then `state.json`,
    which names that file and holds the epoch, the iteration and the
    dropout layers' random-generator states, is replaced the same way.
    `state.json` is the commit point: a crash at any moment leaves it
    naming a complete weights file, and older files are deleted only after
    it has moved on. Optionally the whole model also goes to `model_path`
    (e.g. `latest.keras`), atomically as well.

    A non-finite training loss stops `fit()` at the end of that batch and
    nothing is saved from then on: the last good state stays, and `failure`
    says what happened (`train()` raises it as an error).

    Args:
        directory: where the state lives.
        model_path: optional `.keras` path to save the full model to at
            every epoch end.
    """

    def __init__(self, directory, model_path=None):
        super().__init__()
        self.directory = directory
        self.model_path = model_path
        self.meta_path = os.path.join(directory, "state.json")
        self.failure = None

    def _read_meta(self):
        if not os.path.exists(self.meta_path):
            return None
        with open(self.meta_path) as f:
            return json.load(f)

    def restore(self, model):
        """Load a saved state into `model` (compiled).

        Returns:
            `(epoch, iteration)` to continue from; `(0, 0)` when there is
            none.
        """
        meta = self._read_meta()
        if meta is None:
            return 0, 0
        weights = os.path.join(self.directory, meta["weights"])
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        model.load_weights(weights)
        seeds = _seed_states(model)
        saved = meta.get("seed_states", [])
        if len(saved) == len(seeds):
            for variable, value in zip(seeds, saved):
                variable.assign(np.asarray(value, dtype=variable.dtype))
        return int(meta["epoch"]), int(meta["iteration"])

    def on_train_begin(self, logs=None):
        self.failure = None

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None or self.failure is not None:
            return
        loss = float(keras.ops.convert_to_numpy(loss))
        if not np.isfinite(loss):
            iteration = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
            meta = self._read_meta()
            kept = f"iteration {meta['iteration']}" if meta else "none yet"
            self.failure = (
                f"The training loss became {loss} at iteration {iteration}; training stopped. "
                f"The last good state ({kept}) is kept in {self.directory}. Lower the learning "
                "rate, use float32 or check the data, then run the same command again to resume."
            )
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        if self.failure is not None:
            return
        os.makedirs(self.directory, exist_ok=True)
        old = self._read_meta()
        name = f"state-{epoch + 1}.weights.h5"
        tmp = os.path.join(self.directory, f"tmp-{name}")
        self.model.save_weights(tmp)
        os.replace(tmp, os.path.join(self.directory, name))
        iteration = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        seeds = [keras.ops.convert_to_numpy(v).tolist() for v in _seed_states(self.model)]
        _write_json_atomic(
            self.meta_path, {"epoch": epoch + 1, "iteration": iteration, "weights": name, "seed_states": seeds}
        )
        if old and old["weights"] != name:
            _remove(os.path.join(self.directory, old["weights"]))
        if self.model_path:
            tmp = self.model_path[: -len(".keras")] + ".tmp.keras"
            self.model.save(tmp)
            os.replace(tmp, self.model_path)


def _seed_states(model):
    """The dropout layers' random-generator states (not among the weights
    that `save_weights` writes): restored, a resumed run draws the dropout
    masks the uninterrupted run would have drawn."""
    return [v for v in model.variables if v.path.endswith("seed_generator_state")]


def _write_json_atomic(path, value):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(value, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _remove(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
