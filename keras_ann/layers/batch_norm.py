"""Batch normalisation that updates its statistics as PyTorch's does."""

import keras
from keras import ops

from keras_ann.layers import recomputation


@keras.saving.register_keras_serializable(package="keras_ann")
class TorchBatchNormalization(keras.layers.BatchNormalization):
    """`BatchNormalization` whose moving statistics follow PyTorch's
    `BatchNorm2d` / `SyncBatchNorm` in training mode.

    The output is Keras's (normalised with the batch's biased variance);
    only the update of the moving statistics differs from
    `keras.layers.BatchNormalization`:

    ```
    n = number of values per channel in the batch (all replicas when synchronized)
    moving_mean     = momentum * moving_mean     + (1 - momentum) * mean
    moving_variance = momentum * moving_variance + (1 - momentum) * variance * n / (n - 1)
    ```

    PyTorch keeps the *unbiased* batch variance, Keras the biased one, so
    after a few steps the moving variances of the two differ by about
    `1 / n` of the batch variance, which changes every inference logit.
    A batch of one value per channel (`n == 1`) keeps its biased variance
    (zero); PyTorch refuses it in training.

    `statistics_updates=k` in the call applies the update `k` times with
    the same batch statistics, which is what PyTorch does when one module
    is called `k` times on the same input in one forward pass (the
    reference's shared key/query projection of APNB).

    On the TensorFlow backend a float32 or 16-bit training call runs
    TensorFlow's fused batch-norm kernel (forward and gradient; oneDNN on a
    CPU), which returns the same statistics with less memory and time;
    float64, masked, synchronised or non-4-D calls take the general path.

    Renormalisation (`renorm=True`) is not supported.

    Args:
        **kwargs: `keras.layers.BatchNormalization` arguments (`axis`,
            `momentum`, `epsilon`, `synchronized`, ...).

    Call arguments:
        inputs: the input tensor.
        training: bool, normalise with the batch statistics and update the
            moving ones.
        mask: optional, as for `keras.layers.BatchNormalization`; `n` is
            then the number of unmasked values.
        statistics_updates: int >= 1, how many times a training call
            updates the moving statistics. Defaults to 1.

    Example:

    >>> import numpy as np
    >>> bn = TorchBatchNormalization(momentum=0.0)  # keep the last batch's
    >>> _ = bn(np.array([[1.0], [3.0]], "float32"), training=True)
    >>> float(bn.moving_variance[0])  # unbiased: ((1-2)^2 + (3-2)^2) / (2-1)
    2.0
    """

    def __init__(self, **kwargs):
        if kwargs.get("renorm"):
            raise ValueError("`TorchBatchNormalization` does not support `renorm=True`.")
        super().__init__(**kwargs)

    def call(self, inputs, training=None, mask=None, statistics_updates=1):
        if not (training and self.trainable):
            return super().call(inputs, training=training, mask=mask)
        statistics_updates = int(statistics_updates)
        if statistics_updates < 1:
            raise ValueError(
                f"`statistics_updates` must be >= 1, got {statistics_updates}."
            )
        if mask is not None and len(mask.shape) != len(inputs.shape) - 1:
            # Keras's own check, with its message.
            return super().call(inputs, training=training, mask=mask)

        if self._fused_training(inputs, mask):
            # One fused kernel (TensorFlow's FusedBatchNormV3, oneDNN on a
            # CPU) normalises the map with float32 statistics, and its
            # gradient is one kernel too: no float32 copy of a 16-bit map,
            # fewer intermediate maps kept for the backward pass.
            outputs, mean, unbiased = _fused_batch_norm_training(
                inputs,
                self.gamma if self.scale else ops.ones(self.moving_mean.shape, "float32"),
                self.beta if self.center else ops.zeros(self.moving_mean.shape, "float32"),
                self.epsilon,
            )
            self._update_moving_statistics(mean, unbiased, statistics_updates, "float32")
            return outputs

        # As Keras: statistics in float32 at least.
        compute_dtype = keras.backend.result_type(inputs.dtype, "float32")
        inputs = ops.cast(inputs, compute_dtype)
        mean, variance = self._moments(inputs, mask)

        count = self._count(inputs, mask)
        unbiased = variance * (count / ops.maximum(count - 1.0, 1.0))
        self._update_moving_statistics(mean, unbiased, statistics_updates, compute_dtype)

        outputs = ops.batch_normalization(
            x=inputs,
            mean=mean,
            variance=variance,
            axis=self.axis,
            offset=None if not self.center else ops.cast(self.beta, compute_dtype),
            scale=None if not self.scale else ops.cast(self.gamma, compute_dtype),
            epsilon=self.epsilon,
        )
        return ops.cast(outputs, self.compute_dtype)

    def _fused_training(self, inputs, mask):
        """Whether a training call takes the fused kernel: on the
        TensorFlow backend, a float32 or 16-bit compute dtype (float64, the
        precision of the comparisons with the reference, keeps the general
        path), a channels-last 4-D input, no mask and no synchronisation
        across replicas."""
        return (
            keras.backend.backend() == "tensorflow"
            and self.compute_dtype in ("bfloat16", "float16", "float32")
            and mask is None
            and not self.synchronized
            and len(inputs.shape) == 4
            and self.axis in (-1, 3)
        )

    def _update_moving_statistics(self, mean, unbiased, statistics_updates, compute_dtype):
        momentum = self.momentum
        moving_mean = ops.cast(self.moving_mean, compute_dtype)
        moving_variance = ops.cast(self.moving_variance, compute_dtype)
        for _ in range(statistics_updates):
            moving_mean = moving_mean * momentum + mean * (1.0 - momentum)
            moving_variance = moving_variance * momentum + unbiased * (1.0 - momentum)
        # Inside a recomputed segment (`ResNetBackbone(remat=True)`) the
        # segment's caller assigns them, once.
        recomputation.assign(self.moving_mean, ops.cast(moving_mean, self.moving_mean.dtype))
        recomputation.assign(self.moving_variance, ops.cast(moving_variance, self.moving_variance.dtype))

    def _count(self, inputs, mask):
        """Values per channel in the batch, as a scalar of the inputs' dtype
        (summed over replicas when synchronized)."""
        if mask is None:
            count = ops.cast(ops.size(inputs), inputs.dtype) / ops.cast(
                ops.shape(inputs)[self.axis], inputs.dtype
            )
        else:
            count = ops.sum(ops.cast(mask, inputs.dtype))
        if self.synchronized:
            count = _sum_over_replicas(count)
        return count


def _fused_batch_norm_training(inputs, gamma, beta, epsilon):
    """TensorFlow's fused batch norm in training mode on a channels-last
    float32 or 16-bit map: `(outputs, batch mean, unbiased batch variance)`, the
    statistics in float32 and held out of the gradient.

    TensorFlow only (`TorchBatchNormalization._fused_training` says when).
    The kernel returns the variance with Bessel's correction, PyTorch's
    moving-variance update.
    """
    import tensorflow as tf

    empty = tf.constant([], tf.float32)
    outputs, mean, unbiased, _, _, _ = tf.raw_ops.FusedBatchNormV3(
        x=inputs,
        scale=tf.cast(gamma, tf.float32),
        offset=tf.cast(beta, tf.float32),
        mean=empty,
        variance=empty,
        epsilon=epsilon,
        exponential_avg_factor=1.0,
        data_format="NHWC",
        is_training=True,
    )
    return outputs, tf.stop_gradient(mean), tf.stop_gradient(unbiased)


def _sum_over_replicas(value):
    """`value` summed over the replicas of the current `tf.distribute`
    replica context (unchanged outside one).

    TensorFlow only: Keras allows `synchronized=True` on the TensorFlow
    backend alone, and its synchronised moments reduce the same way.
    """
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    if context is None:
        return value
    return context.all_reduce(tf.distribute.ReduceOp.SUM, value)
