"""The demo: a small ANN trained on generated scenes in about a minute.

`train_demo` generates the scenes (`keras_ann.data.synthetic`), trains a
half-width ANN (ResNet-18-D8, AFNB + APNB) through the ordinary
`model.fit()` path on a `tf.data` stream, stopped by a `TimeBudget`, and
scores it with `evaluate_dataset` on a fixed validation set; `keras-ann
demo` prints what it returns and saves its figure.
"""

import dataclasses

__all__ = ["DemoResult", "train_demo"]

# The demo's validation scenes: the same for every seed, so that the
# scores of runs compare.
VALIDATION_SEED = 2019


@dataclasses.dataclass
class DemoResult:
    """What `train_demo` trained and measured.

    Attributes:
        model: the trained `ANNSegmenter`.
        results: `evaluate_dataset`'s scores on the validation scenes.
        figure: a PIL image of the first (up to 4) validation scenes:
            image, ground truth, prediction, with a legend.
        iterations: the iterations trained (fewer than asked when the time
            budget ran out).
        seconds: the training time.
        validation_images: the number of validation scenes scored.
    """

    model: object
    results: dict
    figure: object
    iterations: int
    seconds: float
    validation_images: int


def train_demo(
    *,
    seconds=90.0,
    iterations=400,
    batch_size=8,
    lr=0.1,
    size=64,
    train_images=512,
    val_images=48,
    seed=0,
    say=print,
):
    """Train a small ANN on generated scenes and score it.

    Args:
        seconds: the training time budget: training stops there, done or
            not (`keras_ann.callbacks.TimeBudget`).
        iterations: the iterations of the poly learning-rate schedule.
        batch_size: scenes per step.
        lr: the initial learning rate (SGD, momentum 0.9).
        size: the scenes' height and width in pixels.
        train_images: the number of training scenes (from `seed`).
        val_images: the number of validation scenes (a fixed set, the same
            for every seed).
        seed: the seed of the training scenes, their order and the weights.
        say: called with each progress line (the scenes, the model, the
            loss every few iterations); `None` for none.

    Returns:
        A `DemoResult`.

    Example:

    >>> result = train_demo(iterations=1, size=32, train_images=2, val_images=2, batch_size=2, say=None)
    >>> result.iterations, result.validation_images, "mIoU" in result.results
    (1, 2, True)
    >>> result.figure.save("demo.png")  # image, ground truth, prediction per scene, and a legend
    """
    import keras
    import numpy as np
    import tensorflow as tf

    import keras_ann
    from keras_ann.callbacks import TimeBudget
    from keras_ann.data.synthetic import SYNTHETIC_CLASSES, SYNTHETIC_PALETTE, make_scenes
    from keras_ann.evaluation import evaluate_dataset
    from keras_ann.optimizers import TorchSGD
    from keras_ann.schedules import PolyDecay
    from keras_ann.test_protocol import TestProtocol
    from keras_ann.visualization import segmentation_figure

    say = say or (lambda line: None)
    keras.utils.set_random_seed(seed)
    say(f"generating {train_images} training and {val_images} validation scenes ({size}x{size}) ...")
    train_x, train_y = make_scenes(train_images, size, size, seed=seed)
    val_x, val_y = make_scenes(val_images, size, size, seed=VALIDATION_SEED)
    backbone = keras_ann.ResNetBackbone(depth=18, output_stride=8, stem_channels=32, base_channels=32)
    model = keras_ann.ANNSegmenter(
        backbone, num_classes=len(SYNTHETIC_CLASSES), head_channels=128, project_channels=64, auxiliary_channels=64,
        test_protocol=TestProtocol(class_names=SYNTHETIC_CLASSES, palette=SYNTHETIC_PALETTE),
    )  # fmt: skip
    params = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    say(f"ANN (ResNet-18-D8, half width, AFNB + APNB), {params:,} trainable parameters")
    optimizer = TorchSGD(PolyDecay(lr, decay_steps=iterations, power=0.9, end_learning_rate=1e-4))
    model.compile(optimizer=optimizer, metrics=[])
    budget = TimeBudget(seconds)
    # Epochs only pace the log: the largest divisor of the iterations up to
    # 25, so that `iterations=5` trains 5.
    steps_per_epoch = max(d for d in range(1, 26) if iterations % d == 0)
    # An endless shuffled stream: iteration-based training, as the recipes.
    train_ds = (
        tf.data.Dataset.from_tensor_slices((train_x, train_y))
        .shuffle(len(train_x), seed=seed)
        .repeat()
        .batch(batch_size, drop_remainder=True)
    )
    # Keras's own epoch line would claim a whole epoch when the budget
    # stops one early: the demo tells the iterations it really trained.
    progress = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: say(
            f"iteration {budget.iterations}/{iterations} - loss {logs['loss']:.4f} - {budget.elapsed:.0f} s"
        )
    )
    model.fit(
        train_ds,
        epochs=iterations // steps_per_epoch,
        steps_per_epoch=steps_per_epoch,
        callbacks=[budget, progress],
        verbose=0,
    )
    batches = [(val_x[i : i + 8], val_y[i : i + 8]) for i in range(0, len(val_x), 8)]
    results = evaluate_dataset(model, batches, verbose=0)
    shown = min(4, len(val_x))
    labels = model.predict_labels(val_x[:shown])
    zoom = max(1, 192 // size)  # panels of about 192 pixels
    figure = segmentation_figure(val_x[:shown], labels, val_y[:shown], SYNTHETIC_PALETTE, SYNTHETIC_CLASSES, zoom=zoom)
    return DemoResult(model, results, figure, budget.iterations, budget.elapsed, len(val_x))
