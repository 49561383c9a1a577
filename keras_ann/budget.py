"""Training within a time budget: the iteration count that fits.

`train(..., time_budget=...)` (`keras-ann train --time-budget 30m`) does
not stop a run by a timer, which would cut the poly schedule short. It
measures, on the run's own model, data pipeline and machine, what one
training step, one evaluation and one checkpoint cost, and then sets the
iteration count (and the evaluation interval) so that the whole run, its
evaluations and checkpoints included, ends within the budget with the
learning rate schedule run to its end:

    iterations = (time left - evaluations - checkpoints - margin) / step time

The measured steps are not kept: the model's variables are put back and
the optimiser is built anew, so a budgeted run trains exactly as a run
given that iteration count would.
"""

import dataclasses
import os
import re
import tempfile
import time

import keras
import numpy as np

__all__ = ["BudgetPlan", "measure", "parse_duration", "plan_iterations", "process_start"]

# What the plan keeps back: a share of the budget for the jitter of step
# times (other processes, the input pipeline), evaluations at most this
# share of the budget, and at most this many.
MARGIN = 0.03
EVALUATION_SHARE = 0.10
MAX_EVALUATIONS = 5
# Steps timed (after the first, which traces the step function).
TIMED_STEPS = 6
# An evaluation inside `fit()` shares the cores with the input pipeline,
# which keeps preparing training batches meanwhile: it takes longer than
# the same images segmented alone (BENCHMARKS.md, "Own data within a time
# budget"), so the timed evaluation counts this many times.
EVALUATION_SLOWDOWN = 2.0
# Saves per checkpoint interval: the resume state, latest.keras and, at an
# evaluation that improves, best_mIoU.keras.
SAVES_PER_CHECKPOINT = 3

_UNITS = {"s": 1, "m": 60, "h": 3600}


def parse_duration(text):
    """Seconds of a duration such as `90s`, `15m`, `1h`, `1h30m` or `2.5h`.

    Example:

    >>> parse_duration("1h30m"), parse_duration("15m"), parse_duration("2.5h")
    (5400.0, 900.0, 9000.0)
    """
    text = str(text).strip().lower()
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([smh])", text)
    if not parts or re.sub(r"(\d+(?:\.\d+)?)\s*([smh])", "", text).strip():
        raise ValueError(f"a time budget is a duration with units, e.g. 90s, 15m, 1h or 1h30m; got {text!r}.")
    seconds = sum(float(value) * _UNITS[unit] for value, unit in parts)
    if seconds <= 0:
        raise ValueError(f"a time budget must be longer than 0; got {text!r}.")
    return seconds


def process_start():
    """The `time.monotonic()` reading at which this process started (Linux:
    `/proc/self/stat`), so that a command's budget includes its imports;
    `None` where it cannot be told.

    Example:

    >>> import time
    >>> start = process_start()
    >>> start is None or 0 <= time.monotonic() - start < 3600 * 24 * 365
    True
    """
    try:
        with open("/proc/self/stat") as f:
            ticks = int(f.read().rsplit(")", 1)[1].split()[19])  # field 22: start time since boot
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return time.monotonic() - (uptime - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


@dataclasses.dataclass(frozen=True)
class BudgetPlan:
    """A run that fits in a time budget.

    Attributes:
        iterations: training iterations (a multiple of `eval_interval`).
        eval_interval: iterations between evaluations.
        step: seconds per training step (measured).
        evaluation: seconds per evaluation (measured).
        checkpoint: seconds per saved model (measured).
        left: seconds of the budget left when planned.
    """

    iterations: int
    eval_interval: int
    step: float
    evaluation: float
    checkpoint: float
    left: float

    def describe(self):
        """One line for the log."""
        evaluations = self.iterations // self.eval_interval
        return (
            f"time budget: {self.iterations} iterations of {self.step:.2f} s, {evaluations} evaluation"
            f"{'s' if evaluations > 1 else ''} of {self.evaluation:.0f} s, checkpoints of {self.checkpoint:.1f} s "
            f"in the {self.left / 60:.1f} min left"
        )


def plan_iterations(left, step, evaluation, checkpoint, first_step=0.0, first_evaluation=0.0):
    """The iteration count and evaluation interval that fit in `left` seconds.

    Up to 5 evaluations, taking at most 10 % of the time (at least one, at
    the end); a checkpoint (three saves) at each; 3 % of the time kept back.

    Args:
        left: seconds of the budget left.
        step: seconds per training step.
        evaluation: seconds per evaluation.
        checkpoint: seconds per saved model.
        first_step: extra seconds of the first step (tracing).
        first_evaluation: extra seconds of the first evaluation (tracing).

    Returns:
        A `BudgetPlan`.

    Raises:
        ValueError: the budget leaves time for fewer than 10 iterations.

    Example:

    >>> plan = plan_iterations(left=900, step=0.5, evaluation=20, checkpoint=1)
    >>> plan.iterations, plan.eval_interval
    (1608, 536)
    """
    usable = left * (1 - MARGIN) - first_step - first_evaluation
    per_evaluation = evaluation + SAVES_PER_CHECKPOINT * checkpoint
    evaluations = int(max(1, min(MAX_EVALUATIONS, EVALUATION_SHARE * left // max(per_evaluation, 1e-9))))
    iterations = int((usable - evaluations * per_evaluation) // step)
    iterations -= iterations % evaluations
    if iterations < 10:
        raise ValueError(
            f"the time budget leaves {max(usable, 0):.0f} s for training at {step:.2f} s a step and "
            f"{per_evaluation:.0f} s an evaluation: fewer than 10 iterations. Give a longer --time-budget, or a "
            "smaller --crop-size or --batch-size."
        )
    return BudgetPlan(iterations, iterations // evaluations, step, evaluation, checkpoint, left)


class _StepTimer(keras.callbacks.Callback):
    def on_train_batch_begin(self, batch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.times.append(time.perf_counter() - self._start)

    def on_train_begin(self, logs=None):
        self.times = []


def measure(model, train_ds, val_ds, val_images, steps=TIMED_STEPS):
    """Time a training step, an evaluation and a save of `model`, then put
    its variables back as they were.

    Args:
        model: a compiled model.
        train_ds: the run's training pipeline (an endless dataset).
        val_ds: the run's evaluation pairs (one image per element): the
            first is segmented twice (the first time traces), and the
            evaluation's time is the second's times `val_images`.
        val_images: images per evaluation.
        steps: training steps timed after the first.

    Returns:
        `dict(step, first_step, evaluation, first_evaluation, checkpoint)`
        in seconds.
    """
    saved = [keras.ops.convert_to_numpy(v) for v in model.variables]
    timer = _StepTimer()
    model.fit(train_ds, epochs=1, steps_per_epoch=steps + 1, callbacks=[timer], verbose=0)
    step = float(np.median(timer.times[1:]))
    first_step = max(timer.times[0] - step, 0.0)
    from keras_ann.evaluation import evaluate_dataset

    times = []
    for _ in range(2):  # the first traces the inference function
        start = time.perf_counter()
        evaluate_dataset(model, val_ds.take(1), verbose=0)
        times.append(time.perf_counter() - start)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        model.save(os.path.join(tmp, "model.keras"))
        checkpoint = time.perf_counter() - start
    for variable, value in zip(model.variables, saved):
        variable.assign(value)
    return dict(step=step, first_step=first_step, evaluation=times[1] * val_images * EVALUATION_SLOWDOWN,
                first_evaluation=max(times[0] - times[1], 0.0), checkpoint=checkpoint)  # fmt: skip
