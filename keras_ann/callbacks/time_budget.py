"""A callback that stops `fit()` once a time budget is spent."""

import time

import keras

__all__ = ["TimeBudget"]


class TimeBudget(keras.callbacks.Callback):
    """Stops `fit()` at the end of the first batch past `seconds` of
    training, and counts the iterations done.

    Args:
        seconds: the budget, from the start of training.

    Attributes:
        iterations: batches trained.
        elapsed: seconds since the start of training at the last batch.

    Example:

    >>> import numpy as np, keras
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> model.compile(optimizer="sgd", loss="mse")
    >>> budget = TimeBudget(seconds=0)
    >>> _ = model.fit(np.zeros((8, 2)), np.zeros((8, 1)), batch_size=2, epochs=3, callbacks=[budget], verbose=0)
    >>> budget.iterations
    1
    """

    def __init__(self, seconds):
        super().__init__()
        self.seconds = seconds
        self.iterations = 0
        self.elapsed = 0.0

    def on_train_begin(self, logs=None):
        self.start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.iterations += 1
        self.elapsed = time.perf_counter() - self.start
        if self.elapsed > self.seconds:
            self.model.stop_training = True
