"""Iteration-based training of a recipe with `fit()` (TensorFlow data).

`train()` reproduces the reference's loop: an endless shuffled dataset, one
optimisation step per iteration, SGD with coupled weight decay and poly
decay per iteration, evaluation and checkpoints every `eval_interval`
iterations. Keras's `fit()` runs it, one "epoch" per checkpoint interval,
so progress bars, TensorBoard logs and callbacks work as usual, and an
interrupted run started again with the same command continues from its
last saved state: weights, optimiser slots and iteration (and so the
learning rate of the poly schedule), written atomically every checkpoint
interval by `keras_ann.callbacks.ResumeState`.

(Keras's `BackupAndRestore` is not used: it restarts an interrupted epoch
from its first batch while the optimiser's iteration count continues, so an
iteration-based schedule would overshoot.)

Distribution lives in `keras_ann.distribute`, the callbacks in
`keras_ann.callbacks`.
"""

import json
import os

import keras

from keras_ann import distribute
from keras_ann.callbacks import BestCheckpoint, JsonLinesLog, MeanIoUEvaluation, ResumeState, Snapshots
from keras_ann.callbacks.unevaluated import hide_unevaluated
from keras_ann.distribute import default_strategy
from keras_ann.layers.conv_bn import set_synchronized_batch_norm
from keras_ann.losses import SegmentationCrossEntropy
from keras_ann.models.ann_segmenter import ANNSegmenter
from keras_ann.optimizers import TorchSGD
from keras_ann.recipes import get_recipe
from keras_ann.schedules import PolyDecay
from keras_ann.weights.imagenet import resolve_backbone_init

# `ResumeState` and `default_strategy` are re-exported from their old home.
__all__ = ["PRECISIONS", "ResumeState", "build_datasets", "compile_for_recipe", "default_strategy", "train"]

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")


def build_datasets(
    recipe, data_root, *, seed=0, per_replica_batch=None, num_replicas=1, val_split="val", start=0
):
    """Training and evaluation `tf.data` pipelines of a recipe.

    Args:
        recipe: a `Recipe`.
        data_root: the dataset's root directory in the layout of the
            recipe's data config (`keras_ann.data.configs`).
        seed: data order and augmentation seed.
        per_replica_batch: images per device (defaults to the recipe's).
        num_replicas: devices.
        val_split: evaluation split.
        start: training samples already drawn (a resumed run's position
            in the stream).

    Returns:
        `(train_ds, val_ds, dataset_object)`.

    Raises:
        DatasetError: label mistakes in either split, found by a scan of
            every label file before training (`data.check_dataset_labels`).
    """
    from keras_ann.data.configs import build_datasets as build

    per_replica = per_replica_batch or recipe.per_replica_batch(num_replicas)
    return build(recipe, data_root, batch_size=per_replica * num_replicas, seed=seed, start=start, val_split=val_split)


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
    callbacks=None,
    keep_snapshots=None,
):
    """Train a recipe; resumes automatically from `work_dir`.

    Args:
        recipe: a recipe name (see `keras_ann.recipes.RECIPES`) or `Recipe`.
        data_root: dataset root.
        work_dir: where checkpoints (`latest.keras` at every checkpoint interval,
            `best_mIoU.keras` at the best evaluation so far, its score in
            `best_mIoU.keras.json`, kept across resumes), the resume state
            (`resume/`), TensorBoard logs (`logs/`), `recipe.json`,
            `history.csv`, `history.json` and `log.jsonl` (one JSON line
            per checkpoint interval: losses, learning rate, per-class IoU
            after each evaluation) go.
        precision: `"float32"`, `"mixed_float16"` or `"mixed_bfloat16"`.
        iterations, batch_size, eval_interval, crop_size, scale, backbone:
            override the recipe's.
        imagenet_checkpoint: the backbone's ImageNet initialisation:
            `None` for the recipe's `backbone_init` (the reference's
            checkpoint, downloaded once), a `.pth` path or an address, or
            `"none"` to train from scratch
            (`keras_ann.weights.imagenet.resolve_backbone_init`).
        seed: random seed (weights, data order, augmentation).
        eval_steps: evaluate on this many images only.
        checkpoint_interval: save the resume state every so many
            iterations (a divisor of the evaluation interval; default: the
            largest divisor not above 1000). A killed run loses at most this
            many iterations.
        strategy: a `tf.distribute` strategy (default: `default_strategy()`).
        verbose: `fit()` verbosity.
        keep_snapshots: save `iter_<N>.keras` in `work_dir` at every
            evaluation and keep the newest so many (default: none).
        callbacks: more Keras callbacks, run after keras-ann's (so they see
            `val_mIoU`, `val_mAcc`, `val_aAcc`, `decode_loss`, `aux_loss`
            in the logs; at the end of an interval without an evaluation
            they do not see the `val_*` scores, see
            `keras_ann.callbacks.unevaluated.hide_unevaluated`), e.g. early
            stopping on the validation mIoU (patience counts evaluations):
            `keras.callbacks.EarlyStopping(monitor="val_mIoU", mode="max",
            patience=...)`.

    Returns:
        `(model, history)`.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"`precision` must be one of {PRECISIONS}, got {precision!r}.")
    recipe = _apply_overrides(
        get_recipe(recipe), iterations=iterations, batch_size=batch_size, eval_interval=eval_interval,
        crop_size=crop_size, scale=scale, backbone=backbone,
    )  # fmt: skip
    eval_interval, checkpoint_interval = _intervals(recipe, checkpoint_interval)
    recipe, imagenet_path = resolve_backbone_init(recipe, imagenet_checkpoint)
    os.makedirs(work_dir, exist_ok=True)
    keras.utils.set_random_seed(seed)
    keras.mixed_precision.set_global_policy(precision)
    strategy = strategy or default_strategy()
    replicas = distribute.num_replicas(strategy)
    with strategy.scope():
        model = _build_model(recipe, replicas, imagenet_path)
        compile_for_recipe(model, recipe, precision)
    out_dir, resume = _work_dir_layout(work_dir, strategy)
    initial_epoch, done = resume.restore(model)
    if initial_epoch:
        print(f"resuming {work_dir} at iteration {done}")
    # A resumed run continues the same stream: the batches (order and
    # augmentation) it would have drawn next without the interruption.
    global_batch = recipe.per_replica_batch(replicas) * replicas
    train_ds, val_ds, val_data = build_datasets(
        recipe, data_root, seed=seed, num_replicas=replicas, start=done * global_batch
    )
    model.test_config = recipe.test_config(val_data.class_names, val_data.palette)  # the data's own classes
    if eval_steps:
        val_ds = val_ds.take(eval_steps)
    if distribute.cluster_task(strategy)[1] is not None:
        with strategy.scope():
            distribute.enable_multi_worker_fit(model, train_ds)
    _write_recipe(out_dir, recipe, precision, seed)
    every = eval_interval // checkpoint_interval
    callbacks = _callbacks(recipe, out_dir, resume, val_ds, val_data, every) + hide_unevaluated(callbacks or [])
    if keep_snapshots:
        callbacks.insert(2, Snapshots(out_dir, keep_snapshots, every_n_epochs=every))
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


def _apply_overrides(recipe, **overrides):
    """The recipe with the given (not `None`) fields replaced."""
    return recipe.replace(**{key: value for key, value in overrides.items() if value is not None})


def _intervals(recipe, checkpoint_interval):
    """`(eval_interval, checkpoint_interval)` of a run, checked: the
    evaluation interval divides the iterations, the checkpoint interval
    (default: the largest divisor of the evaluation interval not above
    1000) divides the evaluation interval."""
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
    return eval_interval, checkpoint_interval


def _build_model(recipe, replicas, imagenet_path):
    """The recipe's `ANNSegmenter` (under the strategy's scope), its
    backbone initialised from `imagenet_path` when given."""
    from keras_ann.weights import load_imagenet_backbone

    model = ANNSegmenter(
        backbone=recipe.backbone,
        num_classes=recipe.num_classes,
        align_corners=recipe.align_corners,
        auxiliary_loss_weight=recipe.aux_loss_weight,
        dropout=recipe.dropout,
        ignore_index=recipe.ignore_index,
        test_config=recipe.test_config(),
    )
    # tf.distribute needs synchronised BN (a run-time setting, not saved);
    # under JAX's DataParallel the statistics are over the global batch.
    if replicas > 1 and keras.backend.backend() == "tensorflow":
        set_synchronized_batch_norm(model)
    if imagenet_path:
        load_imagenet_backbone(model, imagenet_path)
    return model


def _work_dir_layout(work_dir, strategy):
    """`(out_dir, resume)`: this process's output directory and its
    `ResumeState`.

    In a multi-worker cluster every worker keeps its own resume state (the
    machines need not share a file system); the chief writes the run's
    outputs to `work_dir`, the others to `work_dir/<task>/`. Only the chief
    writes `latest.keras`.
    """
    chief, task = distribute.cluster_task(strategy)
    out_dir = work_dir if chief else os.path.join(work_dir, task)
    resume = ResumeState(
        os.path.join(out_dir, "resume"), os.path.join(work_dir, "latest.keras") if chief else None
    )
    os.makedirs(out_dir, exist_ok=True)
    return out_dir, resume


def _write_recipe(out_dir, recipe, precision, seed):
    with open(os.path.join(out_dir, "recipe.json"), "w") as f:
        json.dump({**recipe.to_config(), "precision": precision, "seed": seed}, f, indent=2)


def _callbacks(recipe, out_dir, resume, val_ds, val_data, every):
    """Evaluation every `every` checkpoint intervals, the best checkpoint,
    then the resume state, the CSV and JSON-lines histories and
    TensorBoard."""
    evaluation = MeanIoUEvaluation(
        val_ds,
        class_names=val_data.class_names,
        every_n_epochs=every,
        mode=recipe.test_mode,
        crop_size=recipe.test_crop,
        stride=recipe.test_stride,
    )
    return [
        evaluation,
        BestCheckpoint(os.path.join(out_dir, "best_mIoU.keras")),
        resume,  # after the evaluation: a run killed during it evaluates again
        keras.callbacks.CSVLogger(os.path.join(out_dir, "history.csv"), append=True),
        JsonLinesLog(os.path.join(out_dir, "log.jsonl"), evaluation),
        keras.callbacks.TensorBoard(os.path.join(out_dir, "logs"), update_freq=50),
    ]
