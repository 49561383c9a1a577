"""Iteration-based training of a recipe with `fit()` (TensorFlow data).

`train()` reproduces the reference's loop: an endless shuffled dataset, one
optimisation step per iteration, SGD with coupled weight decay and poly
decay per iteration, evaluation and checkpoints every `eval_interval`
iterations. Keras's `fit()` runs it, one "epoch" per checkpoint interval,
so progress bars, TensorBoard logs and callbacks work as usual, and an
interrupted run started again with the same command continues from its
last saved state: weights, optimiser slots and iteration (and so the
learning rate of the poly schedule), written atomically every checkpoint
interval by `ResumeState`.

(Keras's `BackupAndRestore` is not used: it restarts an interrupted epoch
from its first batch while the optimiser's iteration count continues, so an
iteration-based schedule would overshoot.)
"""

import json
import os

import keras
import numpy as np

from keras_ann.evaluation import MeanIoUEvaluation
from keras_ann.layers.conv_bn import set_synchronized_batch_norm
from keras_ann.losses import SegmentationCrossEntropy
from keras_ann.models.ann_segmenter import ANNSegmenter
from keras_ann.optimizers import TorchSGD
from keras_ann.recipes import get_recipe
from keras_ann.schedules import PolyDecay

__all__ = ["ResumeState", "build_datasets", "compile_for_recipe", "default_strategy", "train"]


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


def _cluster_task(strategy):
    """`(is_chief, name)` of this process in a multi-worker cluster, or
    `(True, None)` outside one. The chief is the `chief` task, or worker 0
    when the cluster has no chief."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None:
        return True, None
    cluster = resolver.cluster_spec().as_dict()
    if sum(len(cluster.get(job, [])) for job in ("chief", "worker")) < 2:
        return True, None
    task_type, task_id = resolver.task_type, resolver.task_id
    chief = task_type == "chief" or (task_type == "worker" and task_id == 0 and "chief" not in cluster)
    return chief, f"{task_type}-{task_id}"


def _fit_multi_worker(model, train_ds):
    """Let Keras 3's `fit()` run under `MultiWorkerMirroredStrategy`.

    Keras 3 (up to 3.15 at least) cannot: before training it reduces a batch
    across the workers eagerly just to learn the input shapes, which the
    collective all-reduce refuses ("Attempt to convert a value (PerReplica
    ...) to a Tensor"), and every step it reduces the scalar logs along an
    axis 0 they do not have ("Invalid reduction dimension 0 for input with 0
    dimensions", tensorflow/tensorflow#72388). Here the model, loss and
    metrics are built from the dataset's element spec instead, and the logs
    leave the step as 1-vectors, which the reduction averages over the
    replicas into the usual scalars.
    """
    import tensorflow as tf

    model._symbolic_build(data_batch=train_ds.element_spec)
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None
    compute_metrics = model.compute_metrics

    def vector_logs(*args, **kwargs):
        return {name: tf.reshape(value, [1]) for name, value in compute_metrics(*args, **kwargs).items()}

    model.compute_metrics = vector_logs


def _num_replicas(strategy):
    if keras.backend.backend() == "jax":
        distribution = keras.distribution.distribution()
        if distribution is not None:
            return int(np.prod(list(distribution.device_mesh.shape)))
    return strategy.num_replicas_in_sync


class ResumeState(keras.callbacks.Callback):
    """Saves and restores everything needed to continue training exactly,
    and refuses to save a model whose loss has become NaN or infinite.

    At the end of every epoch (one checkpoint interval) the model's and the
    optimiser's variables go to `<directory>/state-<epoch>.weights.h5`,
    written under a temporary name and renamed, and then `state.json`,
    which names that file and holds the epoch, the iteration and the
    dropout layers' random-generator states, is replaced the same way.
    `state.json` is the commit point: a crash at any moment leaves it
    naming a complete weights file, and older files are deleted only after
    it has moved on. Optionally the whole model also goes to `model_path`
    (e.g. `latest.keras`), atomically as well.

    A non-finite training loss stops `fit()` at the end of that batch and
    nothing is saved from then on: the last good state stays, and `failure`
    says what happened (`train()` raises it as an error).

    Args:
        directory: where the state lives.
        model_path: optional `.keras` path to save the full model to at
            every epoch end.
    """

    def __init__(self, directory, model_path=None):
        super().__init__()
        self.directory = directory
        self.model_path = model_path
        self.meta_path = os.path.join(directory, "state.json")
        self.failure = None

    def _read_meta(self):
        if not os.path.exists(self.meta_path):
            return None
        with open(self.meta_path) as f:
            return json.load(f)

    def restore(self, model):
        """Load a saved state into `model` (compiled).

        Returns:
            `(epoch, iteration)` to continue from; `(0, 0)` when there is
            none.
        """
        meta = self._read_meta()
        if meta is None:
            return 0, 0
        weights = os.path.join(self.directory, meta["weights"])
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        model.load_weights(weights)
        seeds = _seed_states(model)
        saved = meta.get("seed_states", [])
        if len(saved) == len(seeds):
            for variable, value in zip(seeds, saved):
                variable.assign(np.asarray(value, dtype=variable.dtype))
        return int(meta["epoch"]), int(meta["iteration"])

    def on_train_begin(self, logs=None):
        self.failure = None

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None or self.failure is not None:
            return
        loss = float(keras.ops.convert_to_numpy(loss))
        if not np.isfinite(loss):
            iteration = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
            meta = self._read_meta()
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
        old = self._read_meta()
        name = f"state-{epoch + 1}.weights.h5"
        tmp = os.path.join(self.directory, f"tmp-{name}")
        self.model.save_weights(tmp)
        os.replace(tmp, os.path.join(self.directory, name))
        iteration = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        seeds = [keras.ops.convert_to_numpy(v).tolist() for v in _seed_states(self.model)]
        _write_json_atomic(
            self.meta_path, {"epoch": epoch + 1, "iteration": iteration, "weights": name, "seed_states": seeds}
        )
        if old and old["weights"] != name:
            _remove(os.path.join(self.directory, old["weights"]))
        if self.model_path:
            tmp = self.model_path[: -len(".keras")] + ".tmp.keras"
            self.model.save(tmp)
            os.replace(tmp, self.model_path)


def _seed_states(model):
    """The dropout layers' random-generator states (not among the weights
    that `save_weights` writes): restored, a resumed run draws the dropout
    masks the uninterrupted run would have drawn."""
    return [v for v in model.variables if v.path.endswith("seed_generator_state")]


def _write_json_atomic(path, value):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(value, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _remove(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")


def build_datasets(
    recipe, data_root, *, seed=0, per_replica_batch=None, num_replicas=1, val_split="val", start=0
):
    """Training and evaluation `tf.data` pipelines of a recipe.

    Args:
        recipe: a `Recipe`.
        data_root: the dataset's root directory in its standard layout
            (Cityscapes, `ADEChallengeData2016`, `VOCdevkit`, or a CamVid-style
            folder for `dataset="camvid"`).
        seed: data order and augmentation seed.
        per_replica_batch: images per device (defaults to the recipe's).
        num_replicas: devices.
        val_split: evaluation split.
        start: training samples already drawn (a resumed run's position
            in the stream).

    Returns:
        `(train_ds, val_ds, dataset_object)`.
    """
    from keras_ann import data

    crop = tuple(recipe.crop_size)
    scale = tuple(recipe.scale) if recipe.scale else None
    common = dict(train_scale=scale, crop_size=crop, test_scale=scale, ratio_range=recipe.ratio_range)
    if recipe.dataset == "cityscapes":
        make = lambda split: data.Cityscapes(data_root, split, **common)  # noqa: E731
    elif recipe.dataset == "ade20k":
        make = lambda split: data.ADE20K(data_root, split, **common)  # noqa: E731
    elif recipe.dataset == "pascal_voc":
        train_split = "train_aug"
        make = lambda split: data.PascalVOC(  # noqa: E731
            data_root, train_split if split == "train" else split, **common
        )
    elif recipe.dataset == "camvid":
        make = lambda split: data.camvid(data_root, split, **common)  # noqa: E731
    else:
        raise ValueError(f"Unknown dataset {recipe.dataset!r} in recipe {recipe.name!r}.")
    train_data = make("train")
    val_data = make(val_split)
    per_replica = per_replica_batch or recipe.per_replica_batch(num_replicas)
    train_ds = train_data.train_dataset(batch_size=per_replica * num_replicas, seed=seed, start=start)
    val_ds = val_data.eval_dataset()
    return train_ds, val_ds, val_data


def compile_for_recipe(model, recipe, precision="float32", jit_compile="auto"):
    """Compile `model` with the recipe's loss and optimiser.

    SGD (PyTorch semantics, weight decay on every parameter as L2 on the
    gradient) with poly decay per iteration; softmax cross-entropy ignoring
    255 averaged over all pixels; `fit()` adds the auxiliary loss.
    """
    schedule = PolyDecay(
        recipe.learning_rate,
        decay_steps=recipe.iterations,
        power=recipe.power,
        end_learning_rate=recipe.min_learning_rate,
    )
    optimizer = TorchSGD(schedule, momentum=recipe.momentum, weight_decay=recipe.weight_decay)
    if precision == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    model.compile(
        optimizer=optimizer,
        loss=SegmentationCrossEntropy(ignore_index=model.ignore_index),
        metrics=[],
        jit_compile=jit_compile,
    )
    return model


def train(
    recipe,
    data_root,
    work_dir,
    *,
    precision="float32",
    iterations=None,
    batch_size=None,
    eval_interval=None,
    crop_size=None,
    scale=None,
    backbone=None,
    imagenet_checkpoint=None,
    seed=0,
    eval_steps=None,
    checkpoint_interval=None,
    strategy=None,
    verbose="auto",
):
    """Train a recipe; resumes automatically from `work_dir`.

    Args:
        recipe: a recipe name (see `keras_ann.recipes.RECIPES`) or `Recipe`.
        data_root: dataset root.
        work_dir: where checkpoints (`latest.keras` at every checkpoint interval),
            the resume state (`backup/`), TensorBoard logs (`logs/`) and
            `history.json` go.
        precision: `"float32"`, `"mixed_float16"` or `"mixed_bfloat16"`.
        iterations, batch_size, eval_interval, crop_size, scale, backbone:
            override the recipe's.
        imagenet_checkpoint: path of an ImageNet ResNet-V1c `.pth` for the
            backbone (`None`: from scratch).
        seed: random seed (weights, data order, augmentation).
        eval_steps: evaluate on this many images only.
        checkpoint_interval: save the resume state every so many
            iterations (a divisor of the evaluation interval; default: the
            largest divisor not above 1000). A killed run loses at most this
            many iterations.
        strategy: a `tf.distribute` strategy (default: `default_strategy()`).
        verbose: `fit()` verbosity.

    Returns:
        `(model, history)`.
    """

    from keras_ann.weights import load_imagenet_backbone

    if precision not in PRECISIONS:
        raise ValueError(f"`precision` must be one of {PRECISIONS}, got {precision!r}.")
    recipe = get_recipe(recipe)
    changes = {
        key: value
        for key, value in dict(
            iterations=iterations,
            batch_size=batch_size,
            eval_interval=eval_interval,
            crop_size=crop_size,
            scale=scale,
            backbone=backbone,
        ).items()
        if value is not None
    }
    recipe = recipe.replace(**changes)
    eval_interval = min(recipe.eval_interval, recipe.iterations)
    if recipe.iterations % eval_interval:
        raise ValueError(
            f"`iterations` ({recipe.iterations}) must be a multiple of `eval_interval` ({eval_interval})."
        )
    if checkpoint_interval is None:
        checkpoint_interval = max(d for d in range(1, min(1000, eval_interval) + 1) if eval_interval % d == 0)
    if eval_interval % checkpoint_interval:
        raise ValueError(
            f"`checkpoint_interval` ({checkpoint_interval}) must divide the evaluation interval ({eval_interval})."
        )
    os.makedirs(work_dir, exist_ok=True)
    keras.utils.set_random_seed(seed)
    keras.mixed_precision.set_global_policy(precision)
    strategy = strategy or default_strategy()
    replicas = _num_replicas(strategy)
    with strategy.scope():
        model = ANNSegmenter(
            backbone=recipe.backbone,
            num_classes=recipe.num_classes,
            align_corners=recipe.align_corners,
            auxiliary_loss_weight=recipe.auxiliary_loss_weight,
        )
        # tf.distribute needs synchronised BN (a run-time setting, not saved);
        # under JAX's DataParallel the statistics are over the global batch.
        if replicas > 1 and keras.backend.backend() == "tensorflow":
            set_synchronized_batch_norm(model)
        if imagenet_checkpoint:
            load_imagenet_backbone(model, imagenet_checkpoint)
        compile_for_recipe(model, recipe, precision)
    # In a multi-worker cluster every worker keeps its own resume state (the
    # machines need not share a file system); the chief writes the run's
    # outputs to `work_dir`, the others to `work_dir/<task>/`.
    chief, task = _cluster_task(strategy)
    out_dir = work_dir if chief else os.path.join(work_dir, task)
    resume = ResumeState(
        os.path.join(out_dir, "resume"), os.path.join(work_dir, "latest.keras") if chief else None
    )
    initial_epoch, done = resume.restore(model)
    if initial_epoch:
        print(f"resuming {work_dir} at iteration {done}")
    # A resumed run continues the same stream: the batches (order and
    # augmentation) it would have drawn next without the interruption.
    global_batch = recipe.per_replica_batch(replicas) * replicas
    train_ds, val_ds, val_data = build_datasets(
        recipe, data_root, seed=seed, num_replicas=replicas, start=done * global_batch
    )
    if eval_steps:
        val_ds = val_ds.take(eval_steps)
    if task is not None:
        with strategy.scope():
            _fit_multi_worker(model, train_ds)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "recipe.json"), "w") as f:
        json.dump({**recipe.__dict__, "precision": precision, "seed": seed}, f, indent=2, default=list)
    every = eval_interval // checkpoint_interval
    callbacks = [
        MeanIoUEvaluation(
            val_ds,
            class_names=val_data.class_names,
            every_n_epochs=every,
            mode=recipe.test_mode,
            crop_size=recipe.test_crop,
            stride=recipe.test_stride,
        ),
        resume,  # after the evaluation: a run killed during it evaluates again
        keras.callbacks.CSVLogger(os.path.join(out_dir, "history.csv"), append=True),
        keras.callbacks.TensorBoard(os.path.join(out_dir, "logs"), update_freq=50),
    ]
    history = model.fit(
        train_ds,
        epochs=recipe.iterations // checkpoint_interval,
        initial_epoch=initial_epoch,
        steps_per_epoch=checkpoint_interval,
        callbacks=callbacks,
        verbose=verbose,
    )
    if resume.failure:
        raise FloatingPointError(resume.failure)
    with open(os.path.join(out_dir, "history.json"), "w") as f:
        json.dump(history.history, f, indent=2)
    return model, history
