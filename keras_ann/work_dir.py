"""A training run's work directory: its layout, its lock, and the checks
that a restart continues the same run.

```
<work_dir>/
  .lock             held (fcntl.flock) by the process training in it
  recipe.json       the run's settings, compared on every restart
  resume/           the resume state (`keras_ann.callbacks.ResumeState`);
                    uncommitted.json while a run from iteration 0 has not
                    committed its first state
  history.csv       one row per checkpoint interval
  history.json      fit()'s history, at the end
  log.jsonl         one JSON line per checkpoint interval (per-class scores)
  best_mIoU.keras   the model of the best evaluation (+ .json: its score)
  logs/             TensorBoard
  latest.keras      the model at the last checkpoint (the chief's only)
  iter_<N>.keras    snapshots (--keep-snapshots)
  .previous-<time>/ an earlier run set aside by --restart, removed at the
                    new run's first committed state
  <task>/           the same for each other worker of a multi-worker run
```
"""

import fcntl
import glob
import json
import os
import shutil
import socket
import time

__all__ = ["WorkDirError", "WorkDir"]


class WorkDirError(RuntimeError):
    """A work directory that this run must not use as asked; the message
    says why and what to do."""


class WorkDir:
    """The files of one process's share of a training run.

    Args:
        path: the process's output directory.
        model_path: where the chief writes `latest.keras` (`None` on the
            other workers).

    Example:

    >>> import tempfile
    >>> run = WorkDir(tempfile.mkdtemp())
    >>> with run.lock():
    ...     run.check_restart({"iterations": 8}, resuming=False, restart=False, allow_changes=False)
    ...     run.write_recipe({"iterations": 8})
    """

    def __init__(self, path, model_path=None):
        self.path = path
        self.model_path = model_path
        self.resume_dir = os.path.join(path, "resume")
        self.history_csv = os.path.join(path, "history.csv")
        self.history_json = os.path.join(path, "history.json")
        self.log_jsonl = os.path.join(path, "log.jsonl")
        self.best_model = os.path.join(path, "best_mIoU.keras")
        self.recipe_json = os.path.join(path, "recipe.json")
        self.logs = os.path.join(path, "logs")
        self.lock_path = os.path.join(path, ".lock")
        self.uncommitted = os.path.join(self.resume_dir, "uncommitted.json")
        self._lock_file = None

    def lock(self):
        """Hold an exclusive lock on the directory (a context manager).

        The directory is made if needed; when the block fails and the
        directory was made here and holds nothing but the lock, it is
        removed again, so a run refused at its start leaves nothing behind.

        Raises:
            WorkDirError: another process holds it; the message names its
                pid and host.
        """
        return _Lock(self)

    def check_restart(self, settings, *, resuming, restart, allow_changes):
        """Refuse a start that would silently overwrite or change a run.

        Args:
            settings: the run's `recipe.json` content.
            resuming: a resume state is on disk.
            restart: start over from iteration 0 (outputs replaced).
            allow_changes: resume although the settings differ.

        Raises:
            WorkDirError: outputs of a run without a resume state (unless
                `restart`), or changed settings (unless `allow_changes`).
        """
        if restart:
            return
        if not resuming:
            found = [p for p in (self.model_path, self.history_csv) if p and os.path.exists(p)]
            if found:
                raise WorkDirError(
                    f"{self.path} holds {' and '.join(os.path.basename(p) for p in found)} of an earlier run "
                    f"but no resume state ({os.path.join(self.resume_dir, 'state.json')}), so it cannot be "
                    "resumed. Run again with --restart (`restart=True`) to start over and replace them, "
                    "or choose another work directory."
                )
            return
        saved = self.read_recipe()
        if saved is None or allow_changes:
            return
        changed = {k: (saved.get(k), v) for k, v in _jsonable(settings).items() if saved.get(k, v) != v}
        changed.update({k: (v, None) for k, v in saved.items() if k not in settings})
        if changed:
            lines = "; ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in sorted(changed.items()))
            raise WorkDirError(
                f"{self.path} is resumed with other settings than {self.recipe_json} records ({lines}). "
                "Run again with the run's settings, or with --allow-changes (`allow_changes=True`) to "
                "continue with the new ones, or with --restart (`restart=True`) to start over."
            )

    def read_recipe(self):
        if not os.path.exists(self.recipe_json):
            return None
        try:
            with open(self.recipe_json) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None  # unreadable: nothing to compare with (it is rewritten)

    def write_recipe(self, settings):
        tmp = self.recipe_json + ".tmp"
        with open(tmp, "w") as f:
            json.dump(_jsonable(settings), f, indent=2)
        os.replace(tmp, self.recipe_json)

    def set_aside(self, state_files):
        """Move an earlier run's outputs out of the way of a restart.

        Its resume state (`state_files`), history, logs, best and latest
        models and snapshots go to `<path>/.previous-<time>/`, which
        `drop_aside` removes once the new run has committed its first
        state: a restart that fails before then loses nothing.

        Returns:
            The directory, or `None` when there was nothing to move.
        """
        names = [self.history_csv, self.history_json, self.log_jsonl, self.best_model, self.best_model + ".json",
                 self.recipe_json, self.logs]  # fmt: skip
        if self.model_path and os.path.dirname(os.path.abspath(self.model_path)) == os.path.abspath(self.path):
            names.append(self.model_path)
        names += sorted(glob.glob(os.path.join(glob.escape(self.path), "iter_*.keras")))
        names += sorted(glob.glob(os.path.join(glob.escape(self.path), ".tmp-iter_*.keras")))
        moves = [(p, os.path.basename(p)) for p in names if os.path.lexists(p)]
        moves += [(p, os.path.join("resume", os.path.basename(p))) for p in state_files]
        if not moves:
            return None
        aside = os.path.join(self.path, time.strftime(".previous-%Y%m%d-%H%M%S"))
        while os.path.exists(aside):
            aside += "_"
        os.makedirs(os.path.join(aside, "resume"))
        for source, name in moves:
            os.replace(source, os.path.join(aside, name))
        return aside

    def mark_uncommitted(self):
        """Record that a run started from iteration 0 here and has not
        committed a resume state yet (`resume/uncommitted.json`)."""
        os.makedirs(self.resume_dir, exist_ok=True)
        with open(self.uncommitted, "w") as f:
            json.dump({"pid": os.getpid(), "started": time.time()}, f)

    def clear_uncommitted(self):
        if os.path.exists(self.uncommitted):
            os.remove(self.uncommitted)

    def stopped_before_first_state(self, resuming):
        """Whether the outputs here are those of a run that stopped before
        its first resume state (they hold nothing to resume: the same
        command starts over, setting them aside)."""
        return not resuming and os.path.exists(self.uncommitted)

    @staticmethod
    def drop_aside(aside):
        """Remove a directory of `set_aside` (the new run is committed)."""
        if aside and os.path.isdir(aside):
            shutil.rmtree(aside, ignore_errors=True)

    def clear_history(self):
        """Remove the logs and the best model of an earlier run (a restart:
        its best score must not outlive it)."""
        for path in (self.history_csv, self.history_json, self.log_jsonl, self.best_model, self.best_model + ".json"):
            if os.path.exists(path):
                os.remove(path)


def _jsonable(settings):
    # Tuples become lists, as they are read back from JSON.
    return json.loads(json.dumps(settings, default=list))


class _Lock:
    def __init__(self, work_dir):
        self.work_dir = work_dir

    def __enter__(self):
        # A run refused before it wrote anything leaves no empty directory.
        self.created = not os.path.isdir(self.work_dir.path)
        os.makedirs(self.work_dir.path, exist_ok=True)
        f = open(self.work_dir.lock_path, "a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.seek(0)
            holder = f.read().strip() or "unknown process"
            f.close()
            raise WorkDirError(
                f"{self.work_dir.path} is in use by another training run ({holder}, lock file "
                f"{self.work_dir.lock_path}). Wait for it to finish or stop it, or use another work directory."
            ) from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()} on host {socket.gethostname()}\n")
        f.flush()
        self.file = f
        return self.work_dir

    def __exit__(self, exc_type, *exc):
        self.file.seek(0)
        self.file.truncate()
        fcntl.flock(self.file, fcntl.LOCK_UN)
        self.file.close()
        if exc_type is not None and self.created and os.listdir(self.work_dir.path) == [".lock"]:
            os.remove(self.work_dir.lock_path)
            os.rmdir(self.work_dir.path)
        return False
