"""TensorFlow Datasets adapters into the `(image, label)` convention.

* `cityscapes` (config `semantic_segmentation`, manual download into
  `manual_dir`): `image_left` and `segmentation_label`, which holds the
  `*_gtFine_labelIds.png` ids; they are mapped to the 19 train ids.
* `scene_parse150`: `image` and `annotation`.  Beware: TFDS builds it from
  the Places Challenge 2017 `annotations_instance.tar`, whose red channel is
  one of the 100 *instance* categories (0 = none) and green the instance id;
  it is **not** the 150-class semantic map of `ADEChallengeData2016` that
  mmseg's ADE20K recipes (and their mIoU) use.  The adapter takes the red
  channel with `reduce_zero_label` (100 classes); for the ADE20K-150
  benchmark use `keras_ann.data.ADE20K` on the official release.

`tfds` is imported lazily, only by `load_tfds`.
"""

import tensorflow as tf

from keras_ann.data.cityscapes import cityscapes_label_id_map
from keras_ann.data.configs import DATA_CONFIGS
from keras_ann.data.io import make_label_lut
from keras_ann.data.pipeline import (
    AUTOTUNE,
    MMSEG_PAD_VALUE,
    apply_eval_transforms,
    apply_train_transforms,
)

__all__ = ["TFDS_SPECS", "tfds_example_to_pair", "TFDSSegmentation", "load_tfds"]

_SCALES = ("train_scale", "crop_size", "test_scale")
TFDS_SPECS = {
    "cityscapes": {
        "config": "semantic_segmentation",
        "image_key": "image_left",
        "label_key": "segmentation_label",
        "id_key": "image_id",
        "label_channel": 0,
        "label_map": cityscapes_label_id_map(),
        "reduce_zero_label": False,
        "num_classes": DATA_CONFIGS["cityscapes"].num_classes,
        "class_names": DATA_CONFIGS["cityscapes"].classes,
        "palette": DATA_CONFIGS["cityscapes"].palette,
        **{key: getattr(DATA_CONFIGS["cityscapes"], key) for key in _SCALES},
    },
    "scene_parse150": {
        "config": None,
        "image_key": "image",
        "label_key": "annotation",
        "id_key": None,
        "label_channel": 0,
        "label_map": None,
        "reduce_zero_label": True,
        "num_classes": 100,
        "class_names": None,
        "palette": None,
        **{key: getattr(DATA_CONFIGS["ade20k"], key) for key in _SCALES},
    },
}


def tfds_example_to_pair(
    example,
    *,
    image_key,
    label_key,
    label_channel=0,
    lut=None,
    num_classes=None,
    ignore_index=255,
    id_key=None,
):
    """Maps one TFDS example dict to `(uint8 image [H, W, 3], uint8 label [H, W])`.

    Args:
        example: dict of tensors as yielded by `tfds.load`.
        image_key: key of the RGB image.
        label_key: key of the label image (`[H, W, C]` or `[H, W]`).
        label_channel: channel of the label image to use.
        lut: optional `uint8 [256]` remapping table (`io.make_label_lut`).
        num_classes: optional int; when given, labels with values outside
            `[0, num_classes)` other than `ignore_index` fail a
            `tf.debugging` assertion whose message names the example
            (`id_key`) and the bad values.
        ignore_index: int.
        id_key: optional key of an example id used in error messages.

    Returns:
        `(image, label)`.

    Example:

    >>> ex = {"image": tf.zeros([4, 4, 3], tf.uint8),
    ...       "annotation": tf.ones([4, 4, 3], tf.uint8)}
    >>> img, lab = tfds_example_to_pair(ex, image_key="image", label_key="annotation")
    >>> lab.shape
    TensorShape([4, 4])
    """
    image = tf.convert_to_tensor(example[image_key])
    label = tf.convert_to_tensor(example[label_key])
    if label.shape.rank == 3:
        label = label[..., label_channel]
    label = tf.cast(label, tf.uint8)
    image = tf.cast(image, tf.uint8)
    if image.shape.rank == 3 and image.shape[-1] == 1:
        image = tf.image.grayscale_to_rgb(image)
    if lut is not None:
        label = tf.gather(tf.constant(lut, tf.uint8), tf.cast(label, tf.int32))
    if num_classes is not None:
        values = tf.cast(label, tf.int32)
        bad = tf.logical_and(values >= num_classes, tf.not_equal(values, ignore_index))
        name = example[id_key] if id_key is not None else tf.constant("<tfds example>")
        check = tf.debugging.Assert(
            tf.logical_not(tf.reduce_any(bad)),
            [
                f"Label values outside [0, {num_classes}) other than {ignore_index} in",
                name,
                tf.unique(tf.boolean_mask(tf.reshape(values, [-1]), tf.reshape(bad, [-1])))[0],
            ],
            summarize=32,
        )
        with tf.control_dependencies([check]):
            label = tf.identity(label)
    return image, label


class TFDSSegmentation:
    """A TFDS split exposed like `SegmentationDataset`.

    Args:
        examples: `tf.data.Dataset` of TFDS example dicts.
        spec: dict as in `TFDS_SPECS` (keys, label mapping, classes, recipe).
        ignore_index: int.

    Attributes:
        files: always `[]` (TFDS stores records, not files).
        num_classes, class_names, palette: the classes.
    """

    def __init__(self, examples, spec, ignore_index=255):
        self.examples = examples
        self.spec = dict(spec)
        self.files = []
        self.num_classes = int(spec["num_classes"])
        names = spec.get("class_names")
        self.class_names = tuple(names) if names else tuple(str(i) for i in range(self.num_classes))
        self.palette = spec.get("palette")
        self.ignore_index = ignore_index
        self.lut = make_label_lut(spec.get("label_map"), spec.get("reduce_zero_label", False))

    def _pairs(self, dataset):
        def fn(example):
            return tfds_example_to_pair(
                example,
                image_key=self.spec["image_key"],
                label_key=self.spec["label_key"],
                label_channel=self.spec.get("label_channel", 0),
                lut=self.lut,
                num_classes=self.num_classes,
                ignore_index=self.ignore_index,
                id_key=self.spec.get("id_key"),
            )

        return dataset.map(fn, num_parallel_calls=AUTOTUNE, deterministic=True)

    def raw_dataset(self):
        """`(uint8 image, uint8 label)` pairs in the stored order."""
        return self._pairs(self.examples)

    def train_dataset(
        self,
        batch_size=2,
        *,
        seed=0,
        shuffle_buffer=256,
        scale=None,
        crop_size=None,
        ratio_range=(0.5, 2.0),
        cat_max_ratio=0.75,
        flip_prob=0.5,
        photometric=True,
        pad_value=MMSEG_PAD_VALUE,
        num_parallel_calls=AUTOTUNE,
    ):
        """Shuffled (seeded buffer), endlessly repeated, transformed batches.

        Arguments as `SegmentationDataset.train_dataset`, plus
        `shuffle_buffer` (0 disables shuffling).
        """
        ds = self.examples
        if shuffle_buffer:
            ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
        ds = self._pairs(ds.repeat())
        return apply_train_transforms(
            ds,
            batch_size=batch_size,
            seed=seed,
            scale=self.spec.get("train_scale") if scale is None else scale,
            ratio_range=ratio_range,
            crop_size=self.spec.get("crop_size") if crop_size is None else crop_size,
            cat_max_ratio=cat_max_ratio,
            flip_prob=flip_prob,
            photometric=photometric,
            ignore_index=self.ignore_index,
            pad_value=pad_value,
            num_parallel_calls=num_parallel_calls,
        )

    def eval_dataset(self, *, scale=None, batch_size=1):
        """Test `Resize` of the image, labels at full resolution, batch 1."""
        return apply_eval_transforms(
            self.raw_dataset(),
            scale=self.spec.get("test_scale") if scale is None else scale,
            batch_size=batch_size,
        )


def load_tfds(name, split, *, data_dir=None, manual_dir=None, spec=None, **load_kwargs):
    """Loads a TFDS segmentation dataset as a `TFDSSegmentation`.

    Args:
        name: `"cityscapes"` or `"scene_parse150"` (or any name with `spec`).
        split: TFDS split, e.g. `"train"`, `"validation"`.
        data_dir: TFDS data directory.
        manual_dir: directory with manually downloaded archives (Cityscapes).
        spec: optional dict overriding `TFDS_SPECS[name]`.
        **load_kwargs: passed to `tfds.load`.

    Returns:
        A `TFDSSegmentation`.

    Example:

    With the Cityscapes archives downloaded by hand:
    `load_tfds("cityscapes", "validation", manual_dir="~/cityscapes_zips")`.
    Here TFDS's `mock_data` stands in for the download and preparation:

    >>> import tensorflow_datasets as tfds
    >>> with tfds.testing.mock_data(num_examples=2):
    ...     ds = load_tfds("scene_parse150", "validation")
    >>> ds.num_classes, ds.spec["image_key"]
    (100, 'image')
    """
    import tensorflow_datasets as tfds

    spec = dict(TFDS_SPECS.get(name, {}), **(spec or {}))
    if "image_key" not in spec:
        raise ValueError(f"No TFDS spec for {name!r}; pass `spec=`.")
    full_name = f"{name}/{spec['config']}" if spec.get("config") else name
    download_config = None
    if manual_dir is not None:
        download_config = tfds.download.DownloadConfig(manual_dir=manual_dir)
    examples = tfds.load(
        full_name,
        split=split,
        data_dir=data_dir,
        download_and_prepare_kwargs=(
            {"download_config": download_config} if download_config else None
        ),
        **load_kwargs,
    )
    return TFDSSegmentation(examples, spec)
