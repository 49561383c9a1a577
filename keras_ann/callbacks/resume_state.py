"""Atomic, exact resume state of an iteration-based training run."""

import errno
import json
import os
import shutil
import zipfile

import keras
import numpy as np

from keras_ann.weights.download import file_sha256

__all__ = ["ResumeError", "ResumeState"]

STATE_FILE = "state.json"


class ResumeError(RuntimeError):
    """A run's saved state cannot be used or written as asked; the message
    names the file and says what to do."""


class ResumeState(keras.callbacks.Callback):
    """Saves and restores everything needed to continue training exactly,
    and refuses to save a model whose loss has become NaN or infinite.

    At the end of every epoch (one checkpoint interval) the model's and the
    optimiser's variables go to `<directory>/state-<iteration>.npz` (a
    NumPy archive: the variables' paths and values, in order), written
    under a temporary name with plain file I/O, then renamed; then
    `state.json`,
    which names that file and holds its SHA-256, the iteration, the
    dropout layers' random-generator states and the number of lines of
    each log, is replaced the same way. `state.json` is the commit
    point: a crash at any moment leaves it naming a complete weights file,
    and older files are deleted only after it has moved on. Optionally the
    whole model also goes to `model_path` (e.g. `latest.keras`), atomically
    as well. A failed write (a full disk) removes its temporary file and
    leaves the previous state as it was; the state never goes through an
    HDF5 file on disk, whose failed write crashes the process at exit.
    States of earlier versions (`state-<iteration>.weights.h5`, Keras's
    weights format) are restored as well.

    `state.json` may name only a file inside `directory` (a plain file
    name), and nothing outside `directory` is ever deleted; a restore
    checks the weights file against the recorded SHA-256.

    A non-finite training loss stops `fit()` at the end of that batch and
    nothing is saved from then on: the last good state stays, and `failure`
    says what happened (`train()` raises it as an error).

    Args:
        directory: where the state lives.
        model_path: optional `.keras` path to save the full model to at
            every epoch end.
        logs: append-only text files written before this callback runs at
            each epoch end (a `CSVLogger`'s history, a `JsonLinesLog`):
            their line counts are committed with the state, and `restore`
            drops the lines of a run killed after writing them but before
            committing its state, so the logs always end at the restored
            iteration.

    Example:

    >>> import tempfile, numpy as np, keras
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> model.compile(optimizer="sgd", loss="mse")
    >>> state = ResumeState(tempfile.mkdtemp())
    >>> _ = model.fit(np.ones((4, 2)), np.ones((4, 1)), epochs=2, callbacks=[state], verbose=0)
    >>> state.restore(model)  # the iteration to continue from (one batch per epoch)
    2
    """

    def __init__(self, directory, model_path=None, logs=()):
        super().__init__()
        self.directory = directory
        self.model_path = model_path
        self.logs = tuple(logs)
        self.meta_path = os.path.join(directory, STATE_FILE)
        self.failure = None

    def exists(self):
        """Whether a committed state is on disk."""
        return os.path.exists(self.meta_path)

    def read(self):
        """The committed state, checked, or `None` when there is none.

        Raises:
            ResumeError: `state.json` is corrupt or names a file outside
                `directory`.
        """
        if not self.exists():
            return None
        try:
            with open(self.meta_path) as f:
                meta = json.load(f)
            iteration, name, digest = meta["iteration"], meta["weights"], meta["sha256"]
            if not (isinstance(iteration, int) and iteration >= 0 and isinstance(digest, str)):
                raise ValueError("bad 'iteration' or 'sha256'")
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ResumeError(
                f"{self.meta_path} is corrupt or truncated ({type(error).__name__}: {error}). "
                + _START_OVER
            ) from None
        if not _is_plain_name(name):
            raise ResumeError(
                f"{self.meta_path} names the weights file {name!r}, which is not a file inside "
                f"{self.directory}; refused. " + _START_OVER
            )
        return meta

    def restore(self, model):
        """Load the saved state into `model` (compiled).

        Returns:
            The iteration to continue from; 0 when there is no state.

        Raises:
            ResumeError: the state or its weights file is corrupt, missing
                or changed.
        """
        meta = self.read()
        if meta is None:
            return 0
        weights = os.path.join(self.directory, meta["weights"])
        try:
            digest = file_sha256(weights)
        except OSError as error:
            raise ResumeError(f"{weights}, named by {self.meta_path}, cannot be read ({error}). " + _START_OVER)
        if digest != meta["sha256"]:
            raise ResumeError(
                f"{weights} does not match the SHA-256 recorded in {self.meta_path}: the file is "
                "corrupt or was changed. " + _START_OVER
            )
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        try:
            if weights.endswith(".weights.h5"):  # the format of earlier keras-ann 0.1.0 runs
                model.load_weights(weights)
            else:
                _read_state(model, weights)
        except Exception as error:  # NumPy / h5py / Keras errors of a file that is not this model's state
            raise ResumeError(f"{weights} cannot be loaded into this model ({error}). " + _START_OVER) from None
        seeds = _seed_states(model)
        saved = meta.get("seed_states", [])
        if len(saved) == len(seeds):
            for variable, value in zip(seeds, saved):
                variable.assign(np.asarray(value, dtype=variable.dtype))
        for path in self.logs:
            lines = meta.get("log_lines", {}).get(os.path.basename(path))
            if lines is not None:
                _truncate_lines(path, int(lines))
        return int(meta["iteration"])

    def clear(self):
        """Remove the committed state and the files it and a crashed save
        left in `directory` (only those: `state.json`, `state-*.npz`,
        `state-*.weights.h5`, `tmp-*`)."""
        for path in self.files():
            _remove(path)

    def files(self):
        """The files of the state in `directory` (those `clear` removes)."""
        if not os.path.isdir(self.directory):
            return []
        return [
            os.path.join(self.directory, name)
            for name in sorted(os.listdir(self.directory))
            if name in (STATE_FILE, STATE_FILE + ".tmp")
            or (name.startswith(("state-", "tmp-state-")) and name.endswith((".npz", ".weights.h5")))
        ]

    def on_train_begin(self, logs=None):
        self.failure = None

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None or self.failure is not None:
            return
        loss = float(keras.ops.convert_to_numpy(loss))
        if not np.isfinite(loss):
            iteration = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
            meta = self.read()
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
        old = self.read()
        iteration = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        name = f"state-{iteration}.npz"
        tmp = os.path.join(self.directory, f"tmp-{name}")
        state_size, model_size = self._checkpoint_sizes(old)
        self._check_space(tmp, state_size + model_size)
        self._write(tmp, lambda path: _write_state(self.model, path))
        digest = file_sha256(tmp)
        os.replace(tmp, os.path.join(self.directory, name))
        seeds = [keras.ops.convert_to_numpy(v).tolist() for v in _seed_states(self.model)]
        meta = {"iteration": iteration, "weights": name, "sha256": digest, "seed_states": seeds}
        if self.logs:
            meta["log_lines"] = {os.path.basename(path): _count_lines(path) for path in self.logs}
        self._write(self.meta_path + ".tmp", lambda path: _write_json(path, meta))
        os.replace(self.meta_path + ".tmp", self.meta_path)
        if old and old["weights"] != name:
            _remove(os.path.join(self.directory, old["weights"]))
        if self.model_path:
            tmp = self.model_path[: -len(".keras")] + ".tmp.keras"
            self._check_space(tmp, model_size)
            self._write(tmp, self.model.save)
            os.replace(tmp, self.model_path)

    def _checkpoint_sizes(self, old):
        """Bytes of a state file and of the `.keras` model: those written
        last, else the variables' size."""
        estimate = _state_bytes(self.model)
        state = os.path.join(self.directory, old["weights"]) if old else None
        state_size = os.path.getsize(state) if state and os.path.exists(state) else estimate
        if not self.model_path:
            return state_size, 0
        exists = os.path.exists(self.model_path)
        return state_size, os.path.getsize(self.model_path) if exists else estimate

    def _check_space(self, path, needed):
        """Refuse to start a write that cannot fit: HDF5 left with a failed
        write crashes the process at exit (a segfault), so a checkpoint is
        written only where there is room for it (5 % and 1 MB to spare)."""
        free = shutil.disk_usage(os.path.dirname(os.path.abspath(path))).free
        if free < needed * 1.05 + 2**20:
            raise self._disk_full(path, f"{free / 2**20:.0f} MB free")

    def _write(self, tmp, save):
        """`save(tmp)`; on failure the partial `tmp` is removed, and a full
        disk becomes a `ResumeError` saying how much space is needed."""
        try:
            save(tmp)
        except BaseException as error:
            _remove(tmp)
            if isinstance(error, OSError) and _is_disk_full(error):
                raise self._disk_full(tmp, "no space left while writing") from None
            raise

    def _disk_full(self, path, detail):
        meta = self.read()
        kept = f"iteration {meta['iteration']}" if meta else "none yet"
        state_size, model_size = (size / 2**20 for size in self._checkpoint_sizes(meta))
        model = f" and about {model_size:.0f} MB for {self.model_path}" if self.model_path else ""
        return ResumeError(
            f"No space left on the device for {path} ({detail}). A checkpoint needs about "
            f"{state_size:.0f} MB in {self.directory} (beside the previous one until it is committed){model}. "
            f"The previous state ({kept}) is intact; free space, then run the same command again to resume."
        )


_START_OVER = (
    "To start over from iteration 0, run again with --restart (`restart=True`); to resume instead, "
    "put back the run's files."
)


def _is_plain_name(name):
    return (
        isinstance(name, str)
        and name not in ("", ".", "..")
        and "/" not in name
        and "\\" not in name
        and "\0" not in name
        and os.path.basename(name) == name
    )


def _is_disk_full(error):
    return error.errno in (errno.ENOSPC, errno.EDQUOT) or "No space left" in str(error)


def _state_variables(model):
    """The variables a state file holds, in order: the model's (weights,
    batch-norm statistics, random-generator states) and the optimiser's."""
    return list(model.variables) + list(getattr(model.optimizer, "variables", []))


def _state_bytes(model):
    """Bytes of the variables a state file holds (model and optimiser)."""
    return sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in _state_variables(model))


def _write_state(model, path):
    """`model`'s state as a `.npz` archive at `path`: `paths` (the variables'
    paths, for messages) and `v0`, `v1`, ... (their values, in order),
    written one variable at a time through Python's own file I/O (no HDF5),
    so a full disk is an `OSError` here and nothing else."""
    variables = _state_variables(model)
    with open(path, "wb") as f:
        with zipfile.ZipFile(f, "w") as archive:  # stored, as `np.savez`
            with archive.open("paths.npy", "w") as member:
                np.lib.format.write_array(member, np.array([v.path for v in variables]), allow_pickle=False)
            for i, variable in enumerate(variables):
                with archive.open(f"v{i}.npy", "w", force_zip64=True) as member:
                    value = np.asarray(keras.ops.convert_to_numpy(variable))
                    np.lib.format.write_array(member, value, allow_pickle=False)
        f.flush()
        os.fsync(f.fileno())


def _read_state(model, path):
    """Assign the state at `path` (see `_write_state`) to `model`'s
    variables, matched by order as Keras's weights files are (paths carry
    auto-numbered names); a `ValueError` says how file and model differ."""
    variables = _state_variables(model)
    with np.load(path, allow_pickle=False) as archive:
        paths = [str(p) for p in archive["paths"]]
        if len(paths) != len(variables):
            raise ValueError(f"it holds {len(paths)} variables, this model and its optimiser have {len(variables)}")
        values = [archive[f"v{i}"] for i in range(len(variables))]
    for variable, value, saved in zip(variables, values, paths):
        if tuple(value.shape) != tuple(variable.shape):
            raise ValueError(
                f"{saved} has shape {value.shape} in the file, where this model's {variable.path} "
                f"has {tuple(variable.shape)}"
            )
    for variable, value in zip(variables, values):
        variable.assign(value)


def _seed_states(model):
    """The dropout layers' random-generator states (not among the weights
    that `save_weights` writes): restored, a resumed run draws the dropout
    masks the uninterrupted run would have drawn."""
    return [v for v in model.variables if v.path.endswith("seed_generator_state")]


def _write_json(path, value):
    with open(path, "w") as f:
        json.dump(value, f)
        f.flush()
        os.fsync(f.fileno())


def _count_lines(path):
    """Non-empty lines of a text file (a CSV's header included); 0 when
    absent."""
    if not os.path.exists(path):
        return 0
    with open(path, "rb") as f:
        return sum(1 for line in f if line.strip())


def _truncate_lines(path, count):
    """Keep the first `count` non-empty lines of a text file (atomically);
    a line cut short by a crash is dropped as well."""
    if not os.path.exists(path):
        return
    with open(path, "rb") as f:
        lines = [line for line in f if line.strip()]
    if len(lines) <= count and all(line.endswith(b"\n") for line in lines):
        return
    kept = [line if line.endswith(b"\n") else line + b"\n" for line in lines[:count]]
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.writelines(kept)
    os.replace(tmp, path)


def _remove(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
