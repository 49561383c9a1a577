"""Learning rate schedules of the reference."""

import keras
from keras import ops

__all__ = ["PolyDecay"]


def _compute_dtype():
    """float64 where the backend has it (JAX only with `jax_enable_x64`)."""
    from keras_ann.ops import has_64bit

    return "float64" if has_64bit() else "float32"


@keras.saving.register_keras_serializable(package="keras_ann")
class PolyDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Polynomial decay per iteration, as mmengine's `PolyLR`.

    The reference (mmseg 1.x) uses `PolyLR(eta_min=1e-4, power=0.9,
    begin=0, end=max_iters, by_epoch=False)`. mmengine's scheduler reaches
    `eta_min` on the *last* iteration, `max_iters - 1`, so the learning rate
    of iteration `k` (counting from 0) is

    ```python
    T = decay_steps - 1
    lr(k) = (initial - end) * (1 - min(k, T) / T) ** power + end
    ```

    which is constant at `end_learning_rate` from iteration `T` on. (The
    older mmcv `PolyLrUpdaterHook` divided by `max_iters` instead; the two
    differ by less than 1e-7 relative over the first 100 iterations of a
    40k schedule, but by up to 0.7% near its end.) Keras optimisers call the
    schedule with the number of updates already made, so update `k` uses
    `lr(k)`, as the reference's iteration `k` does.

    Computed in float64 by default where the backend allows it (TensorFlow,
    PyTorch, JAX with `jax_enable_x64`), otherwise in float32; optimisers
    cast the value to each variable's dtype (PyTorch too rounds the learning
    rate to float32 for float32 parameters).

    Args:
        initial_learning_rate: float, the learning rate of iteration 0.
            Defaults to 0.01.
        decay_steps: int, the number of training iterations (mmengine's
            `end`). Defaults to 40000.
        power: float. Defaults to 0.9.
        end_learning_rate: float, mmengine's `eta_min`. Defaults to 1e-4.
        dtype: `None` (float64 where available, see above) or an explicit
            float dtype, e.g. `"float32"` on devices without float64 (TPUs).
        name: str.

    Example:

    >>> schedule = PolyDecay(0.01, decay_steps=40000, power=0.9, end_learning_rate=1e-4)
    >>> [round(float(schedule(k)), 8) for k in (0, 1, 39999, 50000)]
    [0.01, 0.00999978, 0.0001, 0.0001]
    >>> from keras_ann.optimizers import TorchSGD
    >>> optimizer = TorchSGD(schedule, momentum=0.9, weight_decay=5e-4)
    """

    def __init__(
        self,
        initial_learning_rate=0.01,
        decay_steps=40000,
        power=0.9,
        end_learning_rate=1e-4,
        dtype=None,
        name="poly_decay",
    ):
        super().__init__()
        decay_steps = int(decay_steps)
        if decay_steps < 1:
            raise ValueError(f"`decay_steps` must be >= 1, got {decay_steps}.")
        self.initial_learning_rate = float(initial_learning_rate)
        self.decay_steps = decay_steps
        self.power = float(power)
        self.end_learning_rate = float(end_learning_rate)
        self.dtype = None if dtype is None else keras.backend.standardize_dtype(dtype)
        self.name = name

    def __call__(self, step):
        dtype = self.dtype or _compute_dtype()
        initial = ops.convert_to_tensor(self.initial_learning_rate, dtype)
        last = self.decay_steps - 1
        if last == 0:
            # mmengine never updates a one-iteration schedule.
            return initial
        end = ops.convert_to_tensor(self.end_learning_rate, dtype)
        last_step = ops.convert_to_tensor(float(last), dtype)
        step = ops.minimum(ops.cast(step, dtype), last_step)
        # (T - k) / T, not 1 - k / T: integers subtract exactly, so this is
        # never negative, even where XLA turns the division into a product
        # with the reciprocal (1 - 7 * (1/7) < 0 in float32, a nan power).
        fraction = ops.maximum(ops.divide(ops.subtract(last_step, step), last_step), 0.0)
        decay = ops.power(fraction, ops.convert_to_tensor(self.power, dtype))
        return ops.add(ops.multiply(ops.subtract(initial, end), decay), end)

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "power": self.power,
            "end_learning_rate": self.end_learning_rate,
            "dtype": self.dtype,
            "name": self.name,
        }
