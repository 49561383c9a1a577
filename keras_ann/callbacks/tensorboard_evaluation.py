"""A callback showing each evaluation in TensorBoard: per-class IoU and a
fixed set of validation images with their ground truth and prediction
(mmsegmentation's `SegVisualizationHook`)."""

import math
import os

import keras
import numpy as np

__all__ = ["TensorBoardEvaluation"]


class TensorBoardEvaluation(keras.callbacks.Callback):
    """After each evaluation of `evaluation` (a `MeanIoUEvaluation` placed
    before this callback), write to TensorBoard, at the step of the
    optimiser's iteration:

    - `val/IoU/<class>`: each class's IoU in % (by class name when the
      model's test protocol has them, else by index; classes absent from
      both the labels and the predictions are left out, their IoU being
      undefined);
    - `val/predictions`: one image, a row per validation image: the image,
      its ground truth and the model's prediction in the palette's colours
      (tested as the evaluation tests: `keras_ann.inference.segment`),
      each panel at most `max_side` pixels on its longer side.

    The same images are shown at every evaluation, so their predictions
    can be compared over the run (TensorBoard's step slider). Writes with
    `tf.summary`, as `keras.callbacks.TensorBoard` does on every backend.
    `keras_ann.train` adds it by default (`logs/validation` in the work
    dir); see the run with `tensorboard --logdir WORK_DIR/logs`.

    Args:
        log_dir: the directory of the event files (e.g.
            `work_dir/logs/validation`, beside `keras.callbacks.TensorBoard`'s
            own `validation` run).
        evaluation: the `MeanIoUEvaluation` whose results are written.
        samples: `(image, label)` pairs, or `(images, labels)` batches of
            one: raw RGB images `(H, W, 3)` in [0, 255] and their label
            maps `(H, W)` (e.g. `list(val_ds.take(4))`).
        max_side: int, the longest side of each panel in the figure.

    Example:

    >>> import tempfile
    >>> import numpy as np
    >>> from keras_ann import ANNSegmenter
    >>> from keras_ann.callbacks import MeanIoUEvaluation
    >>> model = ANNSegmenter(backbone="resnet18_d8", num_classes=2)
    >>> model.compile()
    >>> x, y = np.zeros((2, 33, 33, 3), np.float32), np.ones((2, 33, 33), np.int32)
    >>> pairs = [(x[:1].astype(np.uint8), y[:1])]
    >>> evaluation = MeanIoUEvaluation(pairs)
    >>> board = TensorBoardEvaluation(tempfile.mkdtemp(), evaluation, pairs)
    >>> history = model.fit(x, y, batch_size=2, callbacks=[evaluation, board], verbose=0)  # doctest: +ELLIPSIS
    <BLANKLINE>
    ...
    >>> board.written
    [1]
    """

    def __init__(self, log_dir, evaluation, samples, max_side=256):
        super().__init__()
        self.log_dir = os.fspath(log_dir)
        self.evaluation = evaluation
        self.samples = samples
        self.max_side = int(max_side)
        self.written = []  # the steps written
        self._seen = 0
        self._pairs = None
        self._writer = None

    def on_train_begin(self, logs=None):
        self._seen = len(self.evaluation.history)

    def on_epoch_end(self, epoch, logs=None):
        if len(self.evaluation.history) <= self._seen:  # no evaluation in this interval
            return
        self._seen = len(self.evaluation.history)
        import tensorflow as tf

        step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        results = self.evaluation.history[-1]
        protocol = self.evaluation.test_protocol
        names = protocol.class_names or [str(i) for i in range(len(results["IoU"]))]
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        # `record_if(True)`: inside `fit()`, `keras.callbacks.TensorBoard`
        # records only at steps that are multiples of its `update_freq`.
        with self._writer.as_default(step=step), tf.summary.record_if(True):
            for name, iou in zip(names, results["IoU"]):
                if math.isfinite(float(iou)):
                    tf.summary.scalar(f"val/IoU/{name}", float(iou))
            figure = self.figure()
            if figure is not None:
                tf.summary.image(
                    "val/predictions", np.asarray(figure)[None],
                    description="image | ground truth | prediction, the same validation images at every evaluation",
                )  # fmt: skip
        self._writer.flush()
        self.written.append(step)

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def figure(self):
        """The Pillow image of `val/predictions` for the current model, or
        `None` without samples."""
        from keras_ann.inference import segment
        from keras_ann.visualization import default_palette, segmentation_figure

        if self._pairs is None:
            self._pairs = [_pair(image, label) for image, label in self.samples]
        if not self._pairs:
            return None
        protocol = self.evaluation.test_protocol
        ignore_index = 255 if protocol.ignore_index is None else protocol.ignore_index
        panels = []
        for image, label in self._pairs:
            prediction = segment(self.model, image[None], protocol)[0]
            grid = np.ix_(*_thumbnail_indices(image.shape[:2], self.max_side))
            panels.append((image[grid], label[grid], prediction[grid]))
        images, labels, predictions = zip(*panels)
        num_classes = getattr(self.model, "num_classes", None) or int(max(p.max() for p in predictions)) + 1
        palette = protocol.palette or default_palette(num_classes)
        return segmentation_figure(
            images, predictions, labels, palette=palette, class_names=protocol.class_names, ignore_index=ignore_index
        )


def _pair(image, label):
    """An `(H, W, 3)` image and `(H, W)` label map from a pair or a batch of one."""
    image, label = np.asarray(image), np.asarray(label)
    if image.ndim == 4 and image.shape[0] == 1:
        image, label = image[0], label[0]
    if label.ndim == 3 and label.shape[-1] == 1:
        label = label[..., 0]
    if image.ndim != 3 or label.shape != image.shape[:2]:
        raise ValueError(
            f"TensorBoardEvaluation: a sample must be an (H, W, 3) image and its (H, W) label map, "
            f"got shapes {image.shape} and {label.shape}."
        )
    return image, label


def _thumbnail_indices(size, max_side):
    """Nearest-neighbour row and column indices shrinking `size` to at most
    `max_side` on its longer side (label maps must not be interpolated)."""
    scale = min(1.0, max_side / max(size))
    return [np.minimum(((np.arange(max(1, round(n * scale))) + 0.5) / scale).astype(int), n - 1) for n in size]
