"""Recomputation ("rematerialisation") of a function's activations in the
backward pass, on every backend, with the variables it assigns (batch
normalisation's moving statistics) assigned once."""

import threading

import keras

_STATE = threading.local()


def assign(variable, value):
    """`variable.assign(value)`, or, inside a `recomputed` function, the
    assignment handed to that function's caller.

    A recomputed function runs again in the backward pass (TensorFlow's
    `tf.recompute_grad`, PyTorch's `torch.utils.checkpoint`), which would
    repeat its assignments, and JAX's `jax.checkpoint` traces it apart,
    where an assigned value could not leave it. So the function returns
    the values it would assign, and its caller assigns them, once.

    Args:
        variable: a `keras.Variable`.
        value: its new value.
    """
    collectors = getattr(_STATE, "collectors", None)
    if collectors:
        collectors[-1].append((variable, value))
    else:
        variable.assign(value)


def recomputed(fn):
    """`fn` wrapped with `keras.remat`: its intermediate activations are
    not kept for the backward pass but computed again from its inputs; the
    variables it assigns through `assign` are assigned after it, once.

    Args:
        fn: a function of tensors, returning a tensor or a structure of
            them.

    Returns:
        The wrapped function, with `fn`'s outputs.

    Example:

    >>> import numpy as np
    >>> count = keras.Variable(0.0)
    >>> def double(x):
    ...     assign(count, count + 1.0)
    ...     return x * 2.0
    >>> float(recomputed(double)(np.float32(3.0))), float(count)
    (6.0, 1.0)
    """
    assigned = []

    def collecting(*args):
        updates = []
        collectors = _STATE.__dict__.setdefault("collectors", [])
        collectors.append(updates)
        try:
            outputs = fn(*args)
        finally:
            collectors.pop()
        assigned[:] = [variable for variable, _ in updates]
        return outputs, [value for _, value in updates]

    remat = keras.remat(collecting)

    def call(*args):
        outputs, values = remat(*args)
        for variable, value in zip(assigned, values):
            variable.assign(value)
        return outputs

    return call
