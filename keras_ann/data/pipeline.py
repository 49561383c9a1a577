"""`tf.data` pipelines shared by every dataset.

Samples follow one convention: `(image, label)` with the image RGB
`uint8 [H, W, 3]` and the label `uint8 [H, W]` (255 = ignore) as read, and
`float32` images (0..255, not normalised: the model normalises) with
`int32` labels after the transforms.

Reproducibility: the training stream is a function of `seed` only.  The
file order of each epoch is a stateless permutation of `(seed, epoch)`; the
`i`-th sample of the stream gets the stateless seed
`fold_in((seed, 0x5EED), i)`, from which every random choice of its
transforms is split.  Maps run in parallel with `deterministic=True`, so
the same seed gives the same batches whatever the thread timing.

Decoding is done by Pillow inside `tf.numpy_function` (Pillow releases the
GIL while decoding, so parallel calls scale): a bad file ends the pipeline
with an `InvalidArgumentError` whose message is `assertion failed:
[DatasetError: <the DatasetError's text, naming the file>]`; with
`skip_bad=True` such samples are dropped with a `DatasetWarning` naming the
file.  Cheap checks
(`verify="header"`: existence, readability of headers, image/label size)
run eagerly when the dataset object is built, so most problems are reported
before training starts.
"""

import warnings

import numpy as np
import tensorflow as tf

from keras_ann.data import transforms
from keras_ann.data.errors import DatasetError, DatasetWarning
from keras_ann.data.io import load_sample, make_label_lut, verify_files
from keras_ann.layers.normalize import IMAGENET_MEAN

__all__ = [
    "MMSEG_PAD_VALUE",
    "SegmentationDataset",
    "element_seeds",
    "apply_train_transforms",
    "apply_eval_transforms",
]

# mmseg pads *after* normalising with 0, i.e. with the mean colour before
# normalisation.  Our models normalise inside, so the pipeline pads the raw
# image with the ImageNet mean to reproduce the reference.
MMSEG_PAD_VALUE = IMAGENET_MEAN  # the model's mean: 0 once normalised, as mmseg pads

AUTOTUNE = tf.data.AUTOTUNE
_SEED_SALT = 0x5EED


def element_seeds(dataset, seed, start=0):
    """Pairs each element with a per-element stateless seed.

    Args:
        dataset: a `tf.data.Dataset` of `(image, label)`.
        seed: int.
        start: the stream position of the first element (a resumed stream
            gets the seeds it would have had without the interruption).

    Returns:
        A dataset of `(seed[2], image, label)`.
    """
    base = tf.constant([int(seed), _SEED_SALT], tf.int64)

    def attach(i, element):
        image, label = element
        return tf.random.experimental.stateless_fold_in(base, i), image, label

    return dataset.enumerate(start=start).map(attach)


def _options(deterministic):
    options = tf.data.Options()
    options.deterministic = deterministic
    return options


def apply_train_transforms(
    dataset,
    *,
    batch_size,
    seed=0,
    start=0,
    scale=None,
    ratio_range=(0.5, 2.0),
    crop_size=None,
    cat_max_ratio=0.75,
    flip_prob=0.5,
    photometric=True,
    ignore_index=255,
    pad_value=MMSEG_PAD_VALUE,
    drop_remainder=True,
    num_parallel_calls=AUTOTUNE,
    deterministic=True,
    prefetch=AUTOTUNE,
):
    """Applies mmseg's training transforms to a stream of raw samples and batches it.

    Args:
        dataset: `tf.data.Dataset` of `(uint8 image [H, W, 3], uint8 label [H, W])`,
            already shuffled / repeated as wanted.
        batch_size: int.
        seed: int, seeds the per-sample randomness.
        start: stream position of the first sample (see `element_seeds`).
        scale, ratio_range, crop_size, cat_max_ratio, flip_prob, photometric,
            ignore_index, pad_value: see `transforms.train_transform`.
        drop_remainder: bool.
        num_parallel_calls: parallelism of the transform map.
        deterministic: keep the order (needed for reproducibility).
        prefetch: prefetch buffer (`None` for none).

    Returns:
        A dataset of `(float32 [B, h, w, 3], int32 [B, h, w])`.
    """

    def fn(element_seed, image, label):
        return transforms.train_transform(
            image,
            label,
            element_seed,
            scale=scale,
            ratio_range=ratio_range,
            crop_size=crop_size,
            cat_max_ratio=cat_max_ratio,
            flip_prob=flip_prob,
            photometric=photometric,
            ignore_index=ignore_index,
            pad_value=pad_value,
        )

    ds = element_seeds(dataset, seed, start)
    ds = ds.map(fn, num_parallel_calls=num_parallel_calls, deterministic=deterministic)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    if prefetch is not None:
        ds = ds.prefetch(prefetch)
    return ds.with_options(_options(deterministic))


def apply_eval_transforms(dataset, *, scale=None, batch_size=1, num_parallel_calls=AUTOTUNE):
    """mmseg's test pipeline: keep-ratio `Resize(scale)` of the image only.

    Args:
        dataset: `tf.data.Dataset` of `(uint8 image, uint8 label)`.
        scale: pair of ints or `None`.
        batch_size: int; images of different sizes need 1.
        num_parallel_calls: parallelism.

    Returns:
        A dataset of `(float32 [B, h, w, 3], int32 [B, H, W])` with the
        label at its full, original resolution.
    """

    def fn(image, label):
        return transforms.test_transform(image, scale), tf.cast(label, tf.int32)

    ds = dataset.map(fn, num_parallel_calls=num_parallel_calls, deterministic=True)
    return ds.batch(batch_size).prefetch(AUTOTUNE)


class SegmentationDataset:
    """A list of (image, label) files with its classes and `tf.data` pipelines.

    Args:
        files: list of `(image_path, label_path)`.
        num_classes: int.
        class_names: optional sequence of `num_classes` names.
        palette: optional sequence of `num_classes` RGB triples.
        ignore_index: int, the ignored label value. Defaults to 255.
        reduce_zero_label: bool, mmseg's `reduce_zero_label` (0 -> 255,
            `k` -> `k - 1`).
        label_map: optional `{raw_value: new_value}` applied after
            `reduce_zero_label`, e.g. `{11: 255}` for CamVid's void.
        label_palette: optional colour of each class, for label files that
            are RGB colour masks: a list of RGB triples (class `i` has
            colour `i`) or a dict `{(r, g, b): class_id}` (255 for void
            colours); see `keras_ann.data.rgb_to_labels`. Colours not in it
            are refused naming the file.
        train_scale: default `scale` of `RandomResize` (`None`: no resize).
        crop_size: default crop `(h, w)` (`None`: no crop / pad).
        test_scale: default `scale` of the test `Resize` (`None`: none).
        ratio_range: default ratio range of `RandomResize`.
        cat_max_ratio: default `cat_max_ratio` of `RandomCrop`.
        verify: `"header"` (default), `"full"` or `"none"`; see
            `keras_ann.data.io.verify_files`.
        skip_bad: bool, skip bad samples with a warning instead of raising.
        name: str, used in messages.

    Example:

    >>> import os, tempfile
    >>> import numpy as np
    >>> from PIL import Image
    >>> root = tempfile.mkdtemp()
    >>> image, label = os.path.join(root, "a.png"), os.path.join(root, "a_label.png")
    >>> Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(image)
    >>> Image.fromarray(np.eye(40, 60, dtype=np.uint8) * 2).save(label)
    >>> ds = SegmentationDataset([(image, label)], num_classes=3, crop_size=(32, 32))
    >>> ds
    SegmentationDataset(name='dataset', samples=1, num_classes=3)
    >>> images, labels = next(iter(ds.train_dataset(batch_size=2)))
    >>> tuple(images.shape), tuple(labels.shape)
    ((2, 32, 32, 3), (2, 32, 32))
    """

    def __init__(
        self,
        files,
        num_classes,
        *,
        class_names=None,
        palette=None,
        ignore_index=255,
        reduce_zero_label=False,
        label_map=None,
        label_palette=None,
        train_scale=None,
        crop_size=None,
        test_scale=None,
        ratio_range=(0.5, 2.0),
        cat_max_ratio=0.75,
        verify="header",
        skip_bad=False,
        name="dataset",
    ):
        self.name = name
        self.num_classes = int(num_classes)
        if self.num_classes < 1:
            raise ValueError(f"`num_classes` must be >= 1, got {num_classes!r}.")
        if class_names is not None and len(class_names) != self.num_classes:
            raise ValueError(
                f"{len(class_names)} class names given for {self.num_classes} classes."
            )
        if palette is not None and len(palette) != self.num_classes:
            raise ValueError(
                f"{len(palette)} palette colours given for {self.num_classes} classes."
            )
        self.class_names = (
            tuple(class_names)
            if class_names is not None
            else tuple(str(i) for i in range(self.num_classes))
        )
        self.palette = tuple(tuple(int(c) for c in p) for p in palette) if palette else None
        self.ignore_index = int(ignore_index)
        self.reduce_zero_label = bool(reduce_zero_label)
        self.label_map = dict(label_map) if label_map else None
        self.lut = make_label_lut(self.label_map, self.reduce_zero_label)
        self.label_palette = label_palette
        self.train_scale = train_scale
        self.crop_size = crop_size
        self.test_scale = test_scale
        self.ratio_range = tuple(ratio_range)
        self.cat_max_ratio = float(cat_max_ratio)
        self.skip_bad = bool(skip_bad)
        files = [(str(i), str(l)) for i, l in files]
        if not files:
            raise DatasetError(f"{name}: no samples.")
        self.files = verify_files(
            files,
            verify,
            lut=self.lut,
            num_classes=self.num_classes,
            ignore_index=self.ignore_index,
            skip_bad=self.skip_bad,
            palette=self.label_palette,
        )
        if not self.files:
            raise DatasetError(f"{name}: every sample was bad; nothing left.")

    def __len__(self):
        return len(self.files)

    def __repr__(self):
        return (
            f"{type(self).__name__}(name={self.name!r}, samples={len(self.files)}, "
            f"num_classes={self.num_classes})"
        )

    # ------------------------------------------------------------------
    # Loading
    # ------------------------------------------------------------------

    def load(self, index):
        """Reads sample `index` eagerly.

        Returns:
            `(image uint8 [H, W, 3], label uint8 [H, W])` NumPy arrays, the
            label remapped and checked.
        """
        image_path, label_path = self.files[index]
        return load_sample(
            image_path,
            label_path,
            lut=self.lut,
            num_classes=self.num_classes,
            ignore_index=self.ignore_index,
            palette=self.label_palette,
        )

    def _py_load(self, image_path, label_path):
        """`(image, label, ok, message)`: a bad sample is not raised here but
        reported (`ok=False`), so that its message, not a Python traceback
        logged by the op, is what TensorFlow raises (see `_decode`)."""
        try:
            image, label = self.load_paths(image_path, label_path)
            return image, label, True, b""
        except DatasetError as e:
            message = b""
            if self.skip_bad:
                warnings.warn(f"Skipping bad sample: {e}", DatasetWarning, stacklevel=2)
            else:
                message = f"DatasetError: {e}".encode()
            return np.zeros((1, 1, 3), np.uint8), np.zeros((1, 1), np.uint8), False, message

    def load_paths(self, image_path, label_path):
        """Reads and checks one pair given by its paths (see `load`)."""
        return load_sample(
            image_path,
            label_path,
            lut=self.lut,
            num_classes=self.num_classes,
            ignore_index=self.ignore_index,
            palette=self.label_palette,
        )

    def _decode(self, paths, num_parallel_calls, deterministic=True):
        """Maps a dataset of `(image_path, label_path)` to decoded samples."""

        def load(image_path, label_path):
            image, label, ok, message = tf.numpy_function(
                self._py_load,
                [image_path, label_path],
                [tf.uint8, tf.uint8, tf.bool, tf.string],
                stateful=False,
                name="load_sample",
            )
            if not self.skip_bad:
                # `InvalidArgumentError: assertion failed: [DatasetError: ...]`,
                # naming the file (the CLI prints the DatasetError's text).
                check = tf.debugging.Assert(ok, [message], name="sample_ok")
                with tf.control_dependencies([check]):
                    image, label = tf.identity(image), tf.identity(label)
            image.set_shape([None, None, 3])
            label.set_shape([None, None])
            ok.set_shape([])
            return image, label, ok

        ds = paths.map(load, num_parallel_calls=num_parallel_calls, deterministic=deterministic)
        if self.skip_bad:
            ds = ds.filter(lambda image, label, ok: ok)
        return ds.map(lambda image, label, ok: (image, label))

    def _paths_dataset(self, indices):
        images = tf.constant([f[0] for f in self.files])
        labels = tf.constant([f[1] for f in self.files])
        return indices.map(lambda i: (tf.gather(images, i), tf.gather(labels, i)))

    def _index_stream(self, seed, shuffle, repeat, start=0):
        """File indices: epoch after epoch (each a stateless permutation of
        `(seed, epoch)` when shuffling), from stream position `start` on
        without reading the files before it."""
        n = len(self.files)
        first_epoch, offset = divmod(int(start), n) if repeat else (0, int(start))
        epochs = tf.data.Dataset.counter(first_epoch) if repeat else tf.data.Dataset.range(1)
        if not shuffle:
            return epochs.flat_map(lambda e: tf.data.Dataset.range(n)).skip(offset)
        base = tf.constant([int(seed), _SEED_SALT + 1], tf.int64)

        def permutation(epoch):
            key = tf.random.experimental.stateless_fold_in(base, epoch)
            order = tf.argsort(tf.random.stateless_uniform([n], key))
            return tf.data.Dataset.from_tensor_slices(tf.cast(order, tf.int64))

        return epochs.flat_map(permutation).skip(offset)

    def raw_dataset(self, *, shuffle=False, seed=0, repeat=False, num_parallel_calls=AUTOTUNE):
        """Decoded, untransformed samples.

        Args:
            shuffle: bool, shuffle the files (a stateless permutation per
                epoch).
            seed: int.
            repeat: bool, repeat endlessly.
            num_parallel_calls: decoding parallelism.

        Returns:
            A dataset of `(uint8 image [H, W, 3], uint8 label [H, W])`.
        """
        paths = self._paths_dataset(self._index_stream(seed, shuffle, repeat))
        return self._decode(paths, num_parallel_calls).with_options(_options(True))

    # ------------------------------------------------------------------
    # Pipelines
    # ------------------------------------------------------------------

    def train_dataset(
        self,
        batch_size=2,
        *,
        seed=0,
        start=0,
        scale=None,
        crop_size=None,
        ratio_range=None,
        cat_max_ratio=None,
        flip_prob=0.5,
        photometric=True,
        pad_value=MMSEG_PAD_VALUE,
        shuffle=True,
        repeat=True,
        drop_remainder=True,
        num_parallel_calls=AUTOTUNE,
        prefetch=AUTOTUNE,
    ):
        """The training pipeline: shuffled, endlessly repeated, transformed, batched.

        `RandomResize(scale, ratio_range)` -> `RandomCrop(crop_size,
        cat_max_ratio)` -> `RandomFlip(flip_prob)` -> `PhotoMetricDistortion`
        -> pad to `crop_size`, as mmseg; `None` arguments take the dataset's
        defaults (its recipe).

        Args:
            batch_size: int.
            seed: int; the same seed gives the same batches.
            start: the number of samples of the stream already used: a
                resumed run passes `iterations * batch_size` and continues
                with the batches (order and augmentation) the interrupted
                run would have drawn next. Files before it are not read.
            scale: `RandomResize` scale, e.g. `(2048, 1024)`.
            crop_size: `(h, w)`.
            ratio_range: `(min, max)`.
            cat_max_ratio: float.
            flip_prob: float.
            photometric: bool.
            pad_value: image fill value for padding (default: the ImageNet
                mean, which becomes mmseg's 0 after the model normalises).
            shuffle: bool.
            repeat: bool, repeat endlessly.
            drop_remainder: bool.
            num_parallel_calls: decode / transform parallelism.
            prefetch: prefetch buffer, `None` for none.

        Returns:
            A dataset of `(float32 [B, h, w, 3], int32 [B, h, w])`.

        Example:

        A Cityscapes recipe (`train_scale=(2048, 1024)`,
        `crop_size=(512, 1024)`) gives `[2, 512, 1024, 3]` batches; here a
        one-image dataset built on the spot:

        >>> import os, tempfile
        >>> import numpy as np
        >>> from PIL import Image
        >>> root = tempfile.mkdtemp()
        >>> image, label = os.path.join(root, "a.png"), os.path.join(root, "a.png.label.png")
        >>> Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(image)
        >>> Image.fromarray(np.ones((40, 60), np.uint8)).save(label)
        >>> ds = SegmentationDataset([(image, label)], num_classes=3)
        >>> train = ds.train_dataset(batch_size=2, scale=(128, 64), crop_size=(32, 48))
        >>> images, labels = next(iter(train))
        >>> tuple(images.shape), tuple(labels.shape), labels.dtype.name
        ((2, 32, 48, 3), (2, 32, 48), 'int32')
        """
        scale = self.train_scale if scale is None else scale
        crop_size = self.crop_size if crop_size is None else crop_size
        ratio_range = self.ratio_range if ratio_range is None else ratio_range
        cat_max_ratio = self.cat_max_ratio if cat_max_ratio is None else cat_max_ratio
        paths = self._paths_dataset(self._index_stream(seed, shuffle, repeat, start))
        raw = self._decode(paths, num_parallel_calls)
        return apply_train_transforms(
            raw,
            batch_size=batch_size,
            seed=seed,
            start=start,
            scale=scale,
            ratio_range=ratio_range,
            crop_size=crop_size,
            cat_max_ratio=cat_max_ratio,
            flip_prob=flip_prob,
            photometric=photometric,
            ignore_index=self.ignore_index,
            pad_value=pad_value,
            drop_remainder=drop_remainder,
            num_parallel_calls=num_parallel_calls,
            prefetch=prefetch,
        )

    def eval_dataset(self, *, scale=None, batch_size=1, num_parallel_calls=AUTOTUNE):
        """The evaluation pipeline: files in order, test `Resize`, labels untouched.

        Args:
            scale: test `Resize` scale (keep ratio); `None` takes the
                dataset's `test_scale`.
            batch_size: int (1 unless all images share a size).
            num_parallel_calls: parallelism.

        Returns:
            A dataset of `(float32 [B, h, w, 3], int32 [B, H, W])`, labels
            at full resolution.
        """
        scale = self.test_scale if scale is None else scale
        raw = self.raw_dataset(num_parallel_calls=num_parallel_calls)
        return apply_eval_transforms(
            raw, scale=scale, batch_size=batch_size, num_parallel_calls=num_parallel_calls
        )
