"""Distribution: the strategy a machine calls for, a process's role in a
cluster, the replica count, and the TensorFlow multi-worker workaround.

TensorFlow-only (`tf.distribute`) apart from JAX's `DataParallel`, which
`default_strategy()` sets globally on the JAX backend.
"""

import os

import keras
import numpy as np

__all__ = ["cluster_task", "default_strategy", "enable_multi_worker_fit", "num_replicas"]


def default_strategy():
    """The distribution the machine calls for.

    - TensorFlow backend: `MultiWorkerMirroredStrategy` when `TF_CONFIG`
      names a cluster (several machines), `MirroredStrategy` over all local
      GPUs when there are several, else the default (one device).
    - JAX backend: `keras.distribution.DataParallel` over all local devices
      when there are several (set globally; batch norm statistics are then
      computed over the global batch), and the default TensorFlow strategy
      for the input pipeline.

    Returns:
        A `tf.distribute.Strategy` to build and compile the model under.

    Example:

    >>> strategy = default_strategy()
    >>> num_replicas(strategy) >= 1
    True
    """
    import tensorflow as tf

    if keras.backend.backend() == "jax":
        import jax

        if len(jax.devices()) > 1:
            keras.distribution.set_distribution(keras.distribution.DataParallel())
        return tf.distribute.get_strategy()
    if os.environ.get("TF_CONFIG"):
        return tf.distribute.MultiWorkerMirroredStrategy()
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def cluster_task(strategy):
    """This process's place in a multi-worker cluster.

    Args:
        strategy: a `tf.distribute.Strategy`.

    Returns:
        `(is_chief, name)`, e.g. `(False, "worker-1")`; `(True, None)`
        outside a cluster. The chief is the `chief` task, or worker 0 when
        the cluster has no chief.

    Example:

    >>> import tensorflow as tf
    >>> cluster_task(tf.distribute.get_strategy())
    (True, None)
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None:
        return True, None
    cluster = resolver.cluster_spec().as_dict()
    if sum(len(cluster.get(job, [])) for job in ("chief", "worker")) < 2:
        return True, None
    task_type, task_id = resolver.task_type, resolver.task_id
    chief = task_type == "chief" or (task_type == "worker" and task_id == 0 and "chief" not in cluster)
    return chief, f"{task_type}-{task_id}"


def num_replicas(strategy):
    """Devices one global batch is split over: the JAX distribution's
    device count, else the strategy's replicas in sync.

    Args:
        strategy: a `tf.distribute.Strategy`.

    Returns:
        int.
    """
    if keras.backend.backend() == "jax":
        distribution = keras.distribution.distribution()
        if distribution is not None:
            return int(np.prod(list(distribution.device_mesh.shape)))
    return strategy.num_replicas_in_sync


def enable_multi_worker_fit(model, train_ds):
    """Let Keras 3's `fit()` run under `MultiWorkerMirroredStrategy`.

    WORKAROUND for tensorflow/tensorflow#72388 (Keras 3 up to 3.15 at
    least): before training `fit()` reduces a batch across the workers
    eagerly just to learn the input shapes, which the collective all-reduce
    refuses ("Attempt to convert a value (PerReplica ...) to a Tensor"), and
    every step it reduces the scalar logs along an axis 0 they do not have
    ("Invalid reduction dimension 0 for input with 0 dimensions"). Here the
    model, loss and metrics are built from the dataset's element spec
    instead, and the logs leave the step as 1-vectors, which the reduction
    averages over the replicas into the usual scalars. Call it under the
    strategy's scope, after `compile()`.

    Args:
        model: a compiled Keras model.
        train_ds: the training `tf.data.Dataset` (its element spec).
    """
    import tensorflow as tf

    model._symbolic_build(data_batch=train_ds.element_spec)
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None
    compute_metrics = model.compute_metrics

    def vector_logs(*args, **kwargs):
        return {name: tf.reshape(value, [1]) for name, value in compute_metrics(*args, **kwargs).items()}

    model.compute_metrics = vector_logs
