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
import time

import keras

from keras_ann import budget, distribute
from keras_ann.callbacks import (
    BestCheckpoint,
    JsonLinesLog,
    MeanIoUEvaluation,
    ResumeState,
    Snapshots,
    TensorBoardEvaluation,
)
from keras_ann.callbacks.resume_state import ResumeError
from keras_ann.callbacks.unevaluated import hide_unevaluated
from keras_ann.checks import PRECISIONS, check_positive_int
from keras_ann.data.configs import build_datasets
from keras_ann.precision import resolve_precision
from keras_ann.distribute import default_strategy
from keras_ann.layers.conv_bn import set_synchronized_batch_norm
from keras_ann.losses import SegmentationCrossEntropy, build_loss
from keras_ann.backbones.resnet import ResNetBackbone, set_remat
from keras_ann.models.ann_segmenter import ANNSegmenter
from keras_ann.optimizers import TorchSGD
from keras_ann.recipes import get_recipe
from keras_ann.schedules import PolyDecay
from keras_ann.weights.imagenet import resolve_backbone_init
from keras_ann.work_dir import WorkDir, WorkDirError

__all__ = ["PRECISIONS", "ResumeError", "WorkDirError", "compile_for_recipe", "train"]



def compile_for_recipe(model, recipe, precision="float32", jit_compile="auto"):
    """Compile `model` with the recipe's loss and optimiser.

    SGD (PyTorch semantics, weight decay on every parameter as L2 on the
    gradient) with poly decay per iteration; softmax cross-entropy ignoring
    255 averaged over all pixels (weighted per class by the recipe's
    `class_weight`), or the recipe's `loss` list (`losses.build_loss`);
    `fit()` adds the auxiliary loss.
    """
    schedule = PolyDecay(
        recipe.lr,
        decay_steps=recipe.iterations,
        power=recipe.poly_power,
        end_learning_rate=recipe.min_lr,
    )
    optimizer = TorchSGD(schedule, momentum=recipe.momentum, weight_decay=recipe.weight_decay)
    if precision == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    if recipe.loss:
        loss = build_loss(list(recipe.loss), ignore_index=model.ignore_index, class_weight=recipe.class_weight)
    else:
        loss = SegmentationCrossEntropy(ignore_index=model.ignore_index, class_weight=recipe.class_weight)
    model.compile(
        optimizer=optimizer,
        loss=loss,
        metrics=[],
        jit_compile=jit_compile,
    )
    return model


def train(
    recipe,
    data_root,
    work_dir,
    *,
    precision="auto",
    remat=False,
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
    allow_changes=False,
    restart=False,
    verbose="auto",
    callbacks=None,
    keep_snapshots=None,
    time_budget=None,
    budget_start=None,
    tensorboard_images=4,
):
    """Train a recipe; resumes automatically from `work_dir`.

    A run resumes at the iteration its state was saved at and ends at the
    asked iteration count. Restarting it with other settings than its
    `recipe.json` (iterations, batch, crop, precision, intervals, ...) is
    refused with the differences listed unless `allow_changes`; a work dir
    holding `latest.keras` or `history.csv` but no resume state is refused
    unless `restart`. The work dir is locked for the run: a second run on it
    is refused, naming the pid and host of the first.

    Args:
        recipe: a recipe name (see `keras_ann.recipes.RECIPES`) or `Recipe`.
        data_root: dataset root.
        work_dir: where checkpoints (`latest.keras` at every checkpoint interval,
            `best_mIoU.keras` at the best evaluation so far, its score in
            `best_mIoU.keras.json`, kept across resumes), the resume state
            (`resume/`), TensorBoard logs (`logs/`), `recipe.json`,
            `history.csv`, `history.json` and `log.jsonl` (one JSON line
            per checkpoint interval: losses, learning rate, per-class IoU
            after each evaluation) go (see `keras_ann.work_dir`).
        precision: `"auto"` (bfloat16 where the hardware runs it natively,
            else float32: `keras_ann.precision`), `"float32"`,
            `"mixed_float16"` or `"mixed_bfloat16"`. The chosen policy is
            printed and saved in `recipe.json`.
        remat: recompute the backbone's activations in the backward pass
            instead of keeping them (the reference's `with_cp=True`): the
            same training up to round-off, with less memory and a slower
            step (BENCHMARKS.md, "Training memory: `--remat`"). `True`
            for all of it, or the parts to recompute (`"stem,stage1"`:
            see `ResNetBackbone`). Needs a
            `ResNetBackbone`; a run-time choice, not part of the recipe (a
            run may resume with it on or off).
        iterations, batch_size, eval_interval, crop_size, scale, backbone:
            override the recipe's.
        imagenet_checkpoint: the backbone's ImageNet initialisation:
            `None` for the recipe's `backbone_init` (the reference's
            checkpoint, downloaded once), a `.pth` path or an address, or
            `"none"` to train from scratch
            (`keras_ann.weights.imagenet.resolve_backbone_init`).
        seed: random seed (weights, data order, augmentation).
        eval_steps: evaluate on this many images only (a positive
            integer; `None` for all).
        checkpoint_interval: save the resume state every so many
            iterations (a divisor of the evaluation interval; default: the
            largest divisor not above 1000). A killed run loses at most this
            many iterations.
        strategy: a `tf.distribute` strategy (default: `default_strategy()`).
        allow_changes: resume although the settings differ from the saved
            `recipe.json`.
        restart: start over from iteration 0, replacing the work dir's
            resume state, history, logs, models and snapshots: once the
            data is checked, they are moved to `.previous-<time>/` in the
            work dir, which is removed when the new run commits its first
            state (a restart that fails before then loses nothing).
        verbose: `fit()` verbosity.
        keep_snapshots: save `iter_<N>.keras` in `work_dir` at every
            evaluation and keep the newest so many (default: none).
        time_budget: seconds (or a duration such as `"30m"`) for the whole
            run, start-up, evaluations and checkpoints included (default:
            the recipe's `time_budget`, dropped by `iterations`): the
            iteration count and evaluation interval are planned from a
            step, an evaluation and a save timed on this run's model and
            data (`keras_ann.budget`), and the poly schedule runs to its
            end at that count. The plan is printed and saved in
            `recipe.json`; a resumed run keeps it.
        budget_start: the `time.monotonic()` reading the budget counts
            from (default: this call; `keras-ann train` counts from its
            process's start, `keras_ann.budget.process_start()`).
        callbacks: more Keras callbacks, run after keras-ann's (so they see
            `val_mIoU`, `val_mAcc`, `val_aAcc`, `decode_loss`, `aux_loss`
            in the logs; at the end of an interval without an evaluation
            they do not see the `val_*` scores, see
            `keras_ann.callbacks.unevaluated.hide_unevaluated`), e.g. early
            stopping on the validation mIoU (patience counts evaluations):
            `keras.callbacks.EarlyStopping(monitor="val_mIoU", mode="max",
            patience=...)`. Keras callbacks of experiment trackers work
            here too, e.g. MLflow's `mlflow.keras.MlflowCallback(run)` or
            Weights & Biases' `wandb.integration.keras.WandbMetricsLogger()`
            (see docs/training.md, "Watching a run"; neither is a dependency).
        tensorboard_images: at each evaluation, show this many validation
            images (the first ones, the same every time) with their ground
            truth and prediction in TensorBoard, with the per-class IoU
            (`keras_ann.callbacks.TensorBoardEvaluation`, in
            `logs/validation`); 0 for none (the IoU scalars are still
            written).

    Returns:
        `(model, history)`.
    """
    started = time.monotonic() if budget_start is None else budget_start
    if time_budget is not None and (iterations is not None or eval_interval is not None):
        raise ValueError("`time_budget` plans the iterations and evaluations: give it or `iterations`/`eval_interval`.")
    precision = resolve_precision(precision, log=print)
    if eval_steps is not None:  # 0 would silently mean "all" below
        eval_steps = check_positive_int(eval_steps, "eval_steps")
    tensorboard_images = check_positive_int(tensorboard_images, "tensorboard_images", allow_zero=True)
    recipe = _apply_overrides(
        get_recipe(recipe), time_budget=time_budget, iterations=iterations, total_batch=batch_size,
        val_interval=eval_interval, crop_size=crop_size, scale=scale, backbone=backbone,
    )  # fmt: skip
    time_budget = recipe.time_budget
    checkpoint_interval_asked = checkpoint_interval
    eval_interval, checkpoint_interval = _intervals(recipe, checkpoint_interval)
    if recipe.load_from:  # fine-tuning: the whole model's weights, no ImageNet initialisation
        recipe, imagenet_path = recipe.replace(backbone_init=None), None
    else:
        recipe, imagenet_path = resolve_backbone_init(recipe, imagenet_checkpoint)
    keras.utils.set_random_seed(seed)
    keras.mixed_precision.set_global_policy(precision)
    strategy = strategy or default_strategy()
    replicas = distribute.num_replicas(strategy)
    _check_memory(recipe, replicas, precision)
    run, resume = _work_dir_layout(work_dir, strategy)
    with run.lock():
        planned = time_budget is not None and not restart and resume.exists()
        if planned:  # a budgeted run resumes with its plan
            saved = run.read_recipe() or {}
            if saved.get("time_budget") == time_budget and "iterations" in saved:
                recipe = recipe.replace(iterations=saved["iterations"], val_interval=saved["val_interval"],
                                        time_budget=time_budget)  # fmt: skip
                eval_interval, checkpoint_interval = _intervals(recipe, saved.get("checkpoint_interval"))
        if run.stopped_before_first_state(resume.exists()):  # nothing to resume: the same command starts over
            print(f"{work_dir}: the earlier run stopped before its first checkpoint; starting over")
            restart = True
        if not restart:  # (a restart sets the old run aside once its data is known to be good)
            resume.read()  # a corrupt state is refused before the model is built
        with strategy.scope():
            model = _build_model(recipe, replicas, imagenet_path)
            backbone = model.backbone
            set_remat(backbone, remat)
            if backbone.remat:
                setting = backbone.remat
                parts = "its activations" if setting is True else "the activations of " + ", ".join(setting)
                print(f"remat: resnet{backbone.depth}_d{backbone.output_stride} recomputes {parts} "
                      "in the backward pass")
            if recipe.load_from and isinstance(backbone, ResNetBackbone):  # recipe.json names what was loaded
                recipe = recipe.replace(backbone=f"resnet{backbone.depth}_d{backbone.output_stride}")
            compile_for_recipe(model, recipe, precision)
        # The data root too: a resume on other data was not noticed.
        settings = {**recipe.to_config(), "precision": precision, "seed": seed,
                    "checkpoint_interval": checkpoint_interval, "eval_steps": eval_steps,
                    "data_root": os.path.realpath(os.fspath(data_root))}  # fmt: skip
        run.check_restart(settings, resuming=resume.exists(), restart=restart, allow_changes=allow_changes)
        done = 0 if restart else _restore(resume, model, recipe.iterations, work_dir)

        # A resumed run continues the same stream: the batches (order and
        # augmentation) it would have drawn next without the interruption.
        def datasets(start):
            batch = recipe.per_replica_batch(replicas) * replicas
            return build_datasets(recipe, data_root, batch_size=batch, seed=seed, start=start * batch)

        train_ds, val_ds, val_data = datasets(done)  # the data is checked (labels scanned) here
        aside = run.set_aside(resume.files()) if restart else None
        model.test_protocol = recipe.test_protocol(val_data.class_names, val_data.palette)  # the data's own classes
        if eval_steps:
            val_ds = val_ds.take(eval_steps)
        if time_budget is not None and not done:
            timed = budget.measure(model, train_ds, val_ds, min(len(val_data), eval_steps or len(val_data)))
            plan = budget.plan_iterations(started + time_budget - time.monotonic(), **timed)
            print(plan.describe())
            recipe = recipe.replace(iterations=plan.iterations, val_interval=plan.eval_interval, time_budget=time_budget)
            asked = checkpoint_interval_asked if plan.eval_interval % (checkpoint_interval_asked or 1) == 0 else None
            eval_interval, checkpoint_interval = _intervals(recipe, asked)
            with strategy.scope():
                compile_for_recipe(model, recipe, precision)  # the schedule of the planned count, a new optimiser
            settings.update(iterations=plan.iterations, val_interval=plan.eval_interval,
                            checkpoint_interval=checkpoint_interval)  # fmt: skip
        if distribute.cluster_task(strategy)[1] is not None:
            with strategy.scope():
                distribute.enable_multi_worker_fit(model, train_ds)
            distribute.exit_after_other_workers(strategy)
        run.write_recipe(settings)
        every = eval_interval // checkpoint_interval
        callbacks = _callbacks(run, resume, val_ds, every, tensorboard_images) + hide_unevaluated(callbacks or [])
        if keep_snapshots:
            callbacks.insert(2, Snapshots(run.path, keep_snapshots, every_n_epochs=every))
        if not done:
            run.mark_uncommitted()
            callbacks.insert(callbacks.index(resume) + 1, _FirstState(run, aside, resume))
        history = _fit(
            model, recipe.iterations, checkpoint_interval, done, train_ds, lambda start: datasets(start)[0],
            callbacks, resume, verbose,
        )  # fmt: skip
        if resume.failure:
            raise FloatingPointError(resume.failure)
        with open(run.history_json, "w") as f:
            json.dump(history.history, f, indent=2)
    return model, history


def _check_memory(recipe, replicas, precision):
    """`MemoryBudgetError` (a `ValueError`) when a training step or an
    evaluation at the test scale cannot fit in memory
    (`keras_ann.checks.check_memory`), before anything is built or read."""
    from keras_ann.checks import check_memory

    h, w = recipe.crop_size
    batch = recipe.per_replica_batch(replicas)
    check_memory(h, w, recipe.num_classes, what=f"training on {batch}x{h}x{w} crops per device", training=True,
                 flag="--crop-size or --batch-size", batch=batch, precision=precision)  # fmt: skip
    if recipe.test_scale:  # the keep-ratio test resize is at most long x short
        long, short = max(recipe.test_scale), min(recipe.test_scale)
        window = recipe.test_crop if recipe.test_mode == "slide" else None
        check_memory(short, long, recipe.num_classes, what=f"evaluation at the test scale {long}x{short}",
                     flag="--scale", window=window, precision=precision)  # fmt: skip


class _FirstState(keras.callbacks.Callback):
    """Once a run from iteration 0 has committed its first resume state:
    removes the earlier run that `--restart` set aside, and the mark that
    this run had committed nothing."""

    def __init__(self, run, aside, resume):
        super().__init__()
        self.run, self.aside, self.resume, self.done = run, aside, resume, False

    def on_epoch_end(self, epoch, logs=None):
        if not self.done and self.resume.exists():
            self.run.clear_uncommitted()
            self.run.drop_aside(self.aside)
            self.done = True


def _restore(resume, model, iterations, work_dir):
    """The iteration of the resume state restored into `model` (0 when
    there is none); a state past `iterations` is refused."""
    done = resume.restore(model)
    if done > iterations:
        raise WorkDirError(f"{work_dir} was saved at iteration {done}, past the {iterations} iterations asked for.")
    if done:
        print(f"resuming {work_dir} at iteration {done}")
    return done


def _fit(model, iterations, interval, done, train_ds, train_dataset, callbacks, resume, verbose):
    """`fit()` from iteration `done` to `iterations`, one epoch per
    checkpoint interval (epoch k ends at iteration (k + 1) * interval).

    A state saved at another checkpoint interval (a restart with
    `allow_changes`) first runs the iterations up to the next multiple of
    `interval`, then continues with a dataset that starts there.
    """
    earlier = None
    if done % interval:
        aligned = (done // interval + 1) * interval
        earlier = model.fit(
            train_ds, epochs=aligned // interval, initial_epoch=aligned // interval - 1,
            steps_per_epoch=aligned - done, callbacks=callbacks, verbose=verbose,
        )  # fmt: skip
        if resume.failure or aligned == iterations:
            return earlier
        done, train_ds = aligned, train_dataset(aligned)
    history = model.fit(
        train_ds,
        epochs=iterations // interval,
        initial_epoch=done // interval,
        steps_per_epoch=interval,
        callbacks=callbacks,
        verbose=verbose,
    )
    if earlier is not None:
        history.history = {k: earlier.history.get(k, []) + v for k, v in history.history.items()}
        history.epoch = earlier.epoch + history.epoch
    return history


def _apply_overrides(recipe, **overrides):
    """The recipe with the given (not `None`) fields replaced."""
    return recipe.replace(**{key: value for key, value in overrides.items() if value is not None})


def _intervals(recipe, checkpoint_interval):
    """`(eval_interval, checkpoint_interval)` of a run, checked: the
    evaluation interval divides the iterations, the checkpoint interval
    (default: the largest divisor of the evaluation interval not above
    1000) divides the evaluation interval."""
    eval_interval = min(recipe.val_interval, recipe.iterations)
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

    if recipe.load_from:
        # A released or trained model; new classifiers when the classes differ.
        model = ANNSegmenter.from_preset(
            recipe.load_from,
            num_classes=recipe.num_classes,
            ignore_index=recipe.ignore_index,
            test_protocol=recipe.test_protocol(),
        )
        print(f"fine-tuning from {recipe.load_from} ({model.backbone.name}, {model.num_classes} classes)")
        return model
    model = ANNSegmenter(
        backbone=recipe.backbone,
        num_classes=recipe.num_classes,
        align_corners=recipe.align_corners,
        auxiliary_loss_weight=recipe.aux_loss_weight,
        dropout=recipe.dropout,
        ignore_index=recipe.ignore_index,
        test_protocol=recipe.test_protocol(),
    )
    # tf.distribute needs synchronised BN (a run-time setting, not saved);
    # under JAX's DataParallel the statistics are over the global batch.
    if replicas > 1 and keras.backend.backend() == "tensorflow":
        set_synchronized_batch_norm(model)
    if imagenet_path:
        load_imagenet_backbone(model, imagenet_path)
    return model


def _work_dir_layout(work_dir, strategy):
    """`(run, resume)`: this process's `WorkDir` and its `ResumeState`.

    In a multi-worker cluster every worker keeps its own resume state (the
    machines need not share a file system); the chief writes the run's
    outputs to `work_dir`, the others to `work_dir/<task>/`. Only the chief
    writes `latest.keras`.
    """
    chief, task = distribute.cluster_task(strategy)
    run = WorkDir(work_dir if chief else os.path.join(work_dir, task),
                  os.path.join(work_dir, "latest.keras") if chief else None)  # fmt: skip
    resume = ResumeState(run.resume_dir, run.model_path, logs=(run.history_csv, run.log_jsonl))
    return run, resume


def _callbacks(run, resume, val_ds, every, tensorboard_images):
    """Evaluation every `every` checkpoint intervals, the best checkpoint,
    the CSV history and the JSON-lines log, then the resume state (which
    commits the logs' line counts with it: a resumed run's logs end where
    its state does) and TensorBoard (with each evaluation's per-class IoU
    and `tensorboard_images` validation images)."""
    evaluation = MeanIoUEvaluation(val_ds, every_n_epochs=every)  # the model's test protocol
    samples = val_ds.take(tensorboard_images) if tensorboard_images else []  # read at the first evaluation
    return [
        evaluation,
        BestCheckpoint(run.best_model),
        keras.callbacks.CSVLogger(run.history_csv, append=True),
        JsonLinesLog(run.log_jsonl, evaluation),
        resume,  # after the evaluation and the logs: a run killed before its commit redoes them
        keras.callbacks.TensorBoard(run.logs, update_freq=50),
        TensorBoardEvaluation(os.path.join(run.logs, "validation"), evaluation, samples),
    ]
