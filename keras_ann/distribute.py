"""Distribution: the strategy a machine calls for, a process's role in a
cluster, the replica count, and the TensorFlow multi-worker workaround.

TensorFlow-only (`tf.distribute`) apart from JAX's `DataParallel`, which
`default_strategy()` sets globally on the JAX backend.
"""

import atexit
import os
import socket
import time

import keras
import numpy as np

__all__ = [
    "cluster_task",
    "default_strategy",
    "enable_multi_worker_fit",
    "exit_after_other_workers",
    "num_replicas",
]


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
        _configure_coordination_service()
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


# Longer than a worker's process teardown (several seconds on a loaded CPU),
# during which it may stop sending heartbeats before its server closes.
HEARTBEAT_TIMEOUT_S = 60


def _configure_coordination_service():
    """Configure TensorFlow's coordination service as
    `MultiWorkerMirroredStrategy` does (which keeps a configuration made
    before it), with a heartbeat timeout of `HEARTBEAT_TIMEOUT_S` instead
    of 10 s: see `exit_after_other_workers`."""
    from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2
    from tensorflow.python.distribute import multi_worker_util
    from tensorflow.python.distribute.cluster_resolver import TFConfigClusterResolver
    from tensorflow.python.eager import context

    cluster_spec = TFConfigClusterResolver().cluster_spec()
    jobs = [
        coordination_config_pb2.CoordinatedJob(name=job, num_tasks=cluster_spec.num_tasks(job))
        for job in ("chief", "worker")
        if job in cluster_spec.jobs
    ]
    if context.context().coordination_service is None and sum(job.num_tasks for job in jobs) > 1:
        context.context().configure_coordination_service(
            service_type="standalone",
            service_leader=multi_worker_util.coordination_leader(cluster_spec),
            heartbeat_timeout_in_ms=HEARTBEAT_TIMEOUT_S * 1000,
            coordinated_jobs=jobs,
        )


_EXIT_WAIT_REGISTERED = []


def exit_after_other_workers(strategy, timeout=300):
    """Make the chief of a multi-worker cluster the last process to exit.

    The chief (worker 0 when there is no `chief` task) hosts TensorFlow's
    coordination service, to which every other worker sends heartbeats
    until its process ends. A chief that exits first leaves them printing
    `BaseCollectiveExecutor::StartAbort UNAVAILABLE: Failed to send RPC to
    coordination service ... Connection refused` after a successful run
    (TensorFlow's Python API offers no way to shut a worker's coordination
    agent down before exit). Registered once per process, an `atexit`
    handler of the chief waits until the server of every other worker
    named in the cluster spec has stopped accepting connections, i.e.
    until their processes have ended, at most `timeout` seconds. Does
    nothing outside a cluster or on the other workers. (A worker may stop
    sending heartbeats during its teardown, before its server closes:
    `default_strategy()` sets a heartbeat timeout longer than that, so
    that the chief's service does not report it as unhealthy meanwhile.)

    Args:
        strategy: a `tf.distribute.Strategy`.
        timeout: the longest wait, in seconds.
    """
    chief, task = cluster_task(strategy)
    if task is None or not chief or _EXIT_WAIT_REGISTERED:
        return
    resolver = strategy.cluster_resolver
    cluster = resolver.cluster_spec().as_dict()
    others = [
        address
        for job in ("chief", "worker")
        for index, address in enumerate(_task_addresses(cluster.get(job, [])))
        if (job, index) != (resolver.task_type, resolver.task_id)
    ]
    _EXIT_WAIT_REGISTERED.append(others)
    atexit.register(_wait_until_closed, others, timeout)


def _task_addresses(tasks):
    # A job's tasks: a list of addresses, or a dict {index: address}.
    if isinstance(tasks, dict):
        return [tasks[i] for i in sorted(tasks)]
    return list(tasks)


def _wait_until_closed(addresses, timeout):
    deadline = time.monotonic() + timeout
    for address in addresses:
        host, port = address.rsplit(":", 1)
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((host.strip("[]"), int(port)), timeout=1):
                    pass
            except OSError:
                break  # nobody listens there any more: that worker has exited
            time.sleep(0.2)

