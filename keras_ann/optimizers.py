"""Optimisers with the reference's (PyTorch's) update rules."""

import keras
from keras import ops

__all__ = ["TorchSGD"]


@keras.saving.register_keras_serializable(package="keras_ann")
class TorchSGD(keras.optimizers.Optimizer):
    """Stochastic gradient descent with PyTorch's `torch.optim.SGD` rule.

    The reference trains with `torch.optim.SGD(lr, momentum=0.9,
    weight_decay=5e-4)` and a poly learning rate changed every iteration.
    Per variable `p` with gradient `g`, at learning rate `lr`:

    ```python
    g = g + weight_decay * p                       # L2, coupled to the gradient
    buf = momentum * buf + (1 - dampening) * g     # first update: buf = g
    p = p - lr * buf                               # nesterov: lr * (g + momentum * buf)
    ```

    This differs from `keras.optimizers.SGD` in two ways that matter for
    reproducing the reference:

    - Keras's momentum accumulates `lr * g` (`m = momentum * m - lr * g`),
      PyTorch's accumulates `g` and multiplies by the *current* `lr`; the two
      agree only for a constant learning rate.
    - Keras's `weight_decay` is decoupled (`p -= lr * wd * p` outside the
      momentum); here it is added to the gradient, so it goes through the
      momentum buffer, as in PyTorch.

    Weight decay applies to every variable, biases and normalisation
    parameters included, as the reference's (it has no `paramwise_cfg`);
    `exclude_from_weight_decay()` can leave some out. The base class's
    (decoupled) `weight_decay` stays `None`; the coefficient is the
    `l2_weight_decay` attribute and the `"weight_decay"` config entry.

    Works with `keras.optimizers.LossScaleOptimizer` (mixed precision), with
    learning rate schedules (the rate of update `k`, counting from 0, is
    `schedule(k)`), and with the TensorFlow, JAX and PyTorch backends.

    Args:
        learning_rate: float, a `keras.optimizers.schedules.LearningRateSchedule`
            (e.g. `keras_ann.schedules.PolyDecay`), or a callable without
            arguments. Defaults to 0.01.
        momentum: float in [0, 1]. Defaults to 0.9.
        weight_decay: float >= 0, the L2 coefficient added to the gradient.
            Defaults to 5e-4.
        nesterov: bool, Nesterov momentum (needs `momentum > 0` and
            `dampening == 0`, as in PyTorch). Defaults to `False`.
        dampening: float, PyTorch's dampening. Defaults to 0.0.
        **kwargs: base optimizer arguments (`name`, `clipnorm`, `clipvalue`,
            `global_clipnorm`, `use_ema`, `loss_scale_factor`,
            `gradient_accumulation_steps`, ...). A decoupled `weight_decay`
            cannot be given here.

    Example:

    >>> import numpy as np
    >>> w = keras.Variable(np.array([1.0, -2.0], "float32"))
    >>> opt = TorchSGD(learning_rate=0.1, momentum=0.9, weight_decay=0.5)
    >>> opt.apply([np.array([1.0, 1.0], "float32")], [w])
    >>> [round(float(v), 4) for v in np.asarray(w)]  # p - 0.1 * (g + 0.5 * p)
    [0.85, -2.0]
    """

    def __init__(
        self,
        learning_rate=0.01,
        momentum=0.9,
        weight_decay=5e-4,
        nesterov=False,
        dampening=0.0,
        name="torch_sgd",
        **kwargs,
    ):
        momentum = float(momentum)
        weight_decay = float(weight_decay or 0.0)
        dampening = float(dampening)
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"`momentum` must be in [0, 1], got {momentum}.")
        if weight_decay < 0.0:
            raise ValueError(f"`weight_decay` must be >= 0, got {weight_decay}.")
        if nesterov and (momentum <= 0.0 or dampening != 0.0):
            raise ValueError("Nesterov momentum requires `momentum > 0` and `dampening == 0`.")
        # Keras's decoupled decay stays off: ours is applied in `update_step`.
        super().__init__(learning_rate=learning_rate, weight_decay=None, name=name, **kwargs)
        self.momentum = momentum
        self.l2_weight_decay = weight_decay
        self.nesterov = bool(nesterov)
        self.dampening = dampening

    def build(self, variables):
        """Create one momentum buffer per variable (none if `momentum == 0`)."""
        if self.built:
            return
        super().build(variables)
        self.momentums = []
        if self.momentum != 0.0:
            self.momentums = self.add_optimizer_variables(variables, "momentum")

    def update_step(self, gradient, variable, learning_rate):
        """PyTorch's SGD update of one variable."""
        dtype = variable.dtype

        def constant(value):
            # Not `ops.cast(value, dtype)`: TensorFlow would round a Python
            # float to float32 first, losing precision for float64 variables.
            return ops.convert_to_tensor(value, dtype=dtype)

        learning_rate = ops.cast(learning_rate, dtype)
        gradient = ops.cast(gradient, dtype)
        if self.l2_weight_decay and self._use_weight_decay(variable):
            gradient = ops.add(gradient, ops.multiply(constant(self.l2_weight_decay), variable))
        if self.momentum == 0.0:
            self.assign_sub(variable, ops.multiply(learning_rate, gradient))
            return
        buf = self.momentums[self._get_variable_index(variable)]
        if self.dampening == 0.0 and not self.nesterov and keras.backend.backend() == "tensorflow":
            # One fused kernel (buf = momentum * buf + g; p -= lr * buf), the
            # same products and sums, instead of five elementwise ops.
            _tf_apply_momentum(variable, buf, learning_rate, gradient, self.momentum)
            return
        momentum = constant(self.momentum)
        new_buf = ops.multiply(momentum, buf)
        if self.dampening == 0.0:
            # The buffers start at zero, so the first update gives buf = g too.
            new_buf = ops.add(new_buf, gradient)
        else:
            new_buf = ops.add(new_buf, ops.multiply(constant(1.0 - self.dampening), gradient))
            # PyTorch starts the buffer at g, undamped.
            new_buf = ops.where(ops.equal(self.iterations, 0), gradient, new_buf)
        self.assign(buf, new_buf)
        if self.nesterov:
            step = ops.add(gradient, ops.multiply(momentum, new_buf))
        else:
            step = new_buf
        self.assign_sub(variable, ops.multiply(learning_rate, step))

    def _apply_weight_decay(self, variables):
        # Never decoupled: the L2 term is part of `update_step`.
        return

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "momentum": self.momentum,
                "weight_decay": self.l2_weight_decay,
                "nesterov": self.nesterov,
                "dampening": self.dampening,
            }
        )
        return config


def _tf_apply_momentum(variable, buf, learning_rate, gradient, momentum):
    """PyTorch's undamped momentum update in TensorFlow's fused kernel.

    `ResourceApplyMomentum` computes `accum = accum * momentum + grad;
    var -= lr * accum`: the rule of `torch.optim.SGD` (dampening 0, no
    Nesterov) with the same roundings, in one pass over the variable
    instead of five elementwise ops and two assignments. Under a
    `tf.distribute` update, the handles are those of the replica's copies.
    """
    import tensorflow as tf

    def handle(v):
        return (v.value if isinstance(v, keras.Variable) else v).handle

    tf.raw_ops.ResourceApplyMomentum(
        var=handle(variable),
        accum=handle(buf),
        lr=learning_rate,
        grad=gradient,
        momentum=tf.constant(momentum, dtype=gradient.dtype),
        use_locking=False,
        use_nesterov=False,
    )
