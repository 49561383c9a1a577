"""The named data configs and the one dataset factory.

A data config is everything the reference's `configs/_base_/datasets/*.py`
says about a dataset (mmsegmentation 1.2.2): where the files are (the
loader and its splits), the classes and palette, the training transforms
(`RandomResize` scale and ratio range, `RandomCrop` size and
`cat_max_ratio`, `RandomFlip` probability, `PhotoMetricDistortion`), the test
`Resize` scale, `reduce_zero_label`, the padding values and the images per
GPU. This module is the only home of these numbers: the dataset classes
(`Cityscapes`, `ADE20K`, `PascalVOC`, `camvid`), the recipes
(`keras_ann.recipes`), the presets, training and the command line read
them from here.

Names follow the reference's base files: `cityscapes`,
`cityscapes_769x769`, `ade20k`, `pascal_voc12_aug`, plus `camvid` (the
SegNet release, not in mmseg) and `folder` (mmseg's custom-dataset layout
`ROOT/img_dir/<split>/`, `ROOT/ann_dir/<split>/`).

Padding: mmseg 1.x pads the training crops in `SegDataPreProcessor`, after
normalisation, with 0, which is the ImageNet mean colour before it (our
models normalise inside, so the pipeline pads the raw image with the mean;
`MMSEG_PAD_VALUE`). Only 1.2.2's `pascal_voc12_aug.py` adds a `Pad`
transform before normalisation, i.e. raw black. The released VOC models were
trained by mmseg 0.x, whose `Pad` came after `Normalize` (again the mean),
so `pascal_voc12_aug` pads with the mean here too; `pad_value=(0, 0, 0)`
reproduces 1.2.2 (a recipe setting, see `keras_ann.recipes`).

Example:

>>> from keras_ann.data.configs import DATA_CONFIGS
>>> DATA_CONFIGS["cityscapes_769x769"].test_scale
(2049, 1025)

The factory on a two-image CamVid-layout folder (CamVid's own root has
367 + 101 images):

>>> import os, tempfile
>>> import numpy as np
>>> from PIL import Image
>>> root = tempfile.mkdtemp()
>>> for split in ("train", "val"):
...     os.makedirs(os.path.join(root, split))
...     os.makedirs(os.path.join(root, split + "annot"))
...     for i in range(2):
...         Image.fromarray(np.full((36, 48, 3), 60 * i, np.uint8)).save(f"{root}/{split}/{i}.png")
...         Image.fromarray(np.full((36, 48), i, np.uint8)).save(f"{root}/{split}annot/{i}.png")
>>> data = build_dataset("camvid", root, "val")
>>> len(data), data.class_names[:2]
(2, ('sky', 'building'))
"""

import dataclasses
import os

from keras_ann.data.metainfo import (
    ADE20K_CLASSES,
    ADE20K_PALETTE,
    CAMVID_CLASSES,
    CAMVID_PALETTE,
    CITYSCAPES_CLASSES,
    CITYSCAPES_PALETTE,
    VOC_CLASSES,
    VOC_PALETTE,
)
from keras_ann.layers.normalize import IMAGENET_MEAN as MMSEG_PAD_VALUE  # mmseg's 0 after normalisation

__all__ = ["DataConfig", "DATA_CONFIGS", "build_dataset", "build_datasets", "dataset_defaults", "get_data_config"]


# The keys of a data config that are also recipe keys (see
# `keras_ann.recipes.Recipe`), i.e. what a recipe may override.
PIPELINE_KEYS = (
    "train_scale",
    "ratio_range",
    "crop_size",
    "cat_max_ratio",
    "flip_prob",
    "photometric_distortion",
    "test_scale",
    "reduce_zero_label",
    "pad_value",
    "ignore_index",
    "images_per_gpu",
)


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """One dataset as the reference's base config describes it.

    Attributes:
        name: the config's name, e.g. `"cityscapes_769x769"`.
        loader: `"cityscapes"`, `"ade20k"`, `"pascal_voc"`, `"camvid"` or
            `"folder"`: which file layout `build_dataset` reads.
        classes: class names (`None` for `folder`: given by the user).
        palette: RGB colours per class (`None` for `folder`).
        train_scale: `RandomResize` scale `(long, short)`, or `None`.
        ratio_range: `RandomResize` ratio range.
        crop_size: `RandomCrop` size `(h, w)`.
        cat_max_ratio: `RandomCrop`'s largest share of one class.
        flip_prob: `RandomFlip` probability.
        photometric_distortion: whether `PhotoMetricDistortion` is applied.
        test_scale: the test `Resize` scale `(long, short)`, or `None`.
        reduce_zero_label: mmseg's `reduce_zero_label`.
        pad_value: raw RGB fill of the padded crop (see the module notes).
        ignore_index: the label fill of the padded crop and the ignored
            value (mmseg's `seg_pad_val`).
        images_per_gpu: the training `batch_size` of the reference's
            dataloader.
        train_split, val_split: the loader's splits for training and
            evaluation.
        loader_options: fixed extra arguments of the loader.
    """

    name: str
    loader: str
    classes: tuple
    palette: tuple
    train_scale: tuple
    crop_size: tuple
    test_scale: tuple
    images_per_gpu: int
    ratio_range: tuple = (0.5, 2.0)
    cat_max_ratio: float = 0.75
    flip_prob: float = 0.5
    photometric_distortion: bool = True
    reduce_zero_label: bool = False
    pad_value: tuple = MMSEG_PAD_VALUE
    ignore_index: int = 255
    train_split: str = "train"
    val_split: str = "val"
    loader_options: dict = dataclasses.field(default_factory=dict)

    @property
    def num_classes(self):
        return None if self.classes is None else len(self.classes)

    def pipeline_settings(self):
        """The values of `PIPELINE_KEYS`, as a dict."""
        return {key: getattr(self, key) for key in PIPELINE_KEYS}


DATA_CONFIGS = {
    c.name: c
    for c in [
        # configs/_base_/datasets/cityscapes.py
        DataConfig(
            "cityscapes", "cityscapes", CITYSCAPES_CLASSES, CITYSCAPES_PALETTE,
            train_scale=(2048, 1024), crop_size=(512, 1024), test_scale=(2048, 1024), images_per_gpu=2,
        ),
        # configs/_base_/datasets/cityscapes_769x769.py
        DataConfig(
            "cityscapes_769x769", "cityscapes", CITYSCAPES_CLASSES, CITYSCAPES_PALETTE,
            train_scale=(2049, 1025), crop_size=(769, 769), test_scale=(2049, 1025), images_per_gpu=2,
        ),
        # configs/_base_/datasets/ade20k.py
        DataConfig(
            "ade20k", "ade20k", ADE20K_CLASSES, ADE20K_PALETTE,
            train_scale=(2048, 512), crop_size=(512, 512), test_scale=(2048, 512), images_per_gpu=4,
            reduce_zero_label=True,
        ),
        # configs/_base_/datasets/pascal_voc12_aug.py: train.txt + aug.txt.
        DataConfig(
            "pascal_voc12_aug", "pascal_voc", VOC_CLASSES, VOC_PALETTE,
            train_scale=(2048, 512), crop_size=(512, 512), test_scale=(2048, 512), images_per_gpu=4,
            train_split="train_aug",
        ),
        # CamVid as released with SegNet (480x360, 11 classes, void 11):
        # not in mmseg; the reference's pipeline at the native size.
        DataConfig(
            "camvid", "camvid", CAMVID_CLASSES, CAMVID_PALETTE,
            train_scale=(480, 360), crop_size=(360, 480), test_scale=(480, 360), images_per_gpu=4,
        ),
        # mmseg's custom dataset (`BaseSegDataset`): images and label maps in
        # ROOT/img_dir/<split>/ and ROOT/ann_dir/<split>/; classes given.
        DataConfig(
            "folder", "folder", None, None,
            train_scale=None, crop_size=(512, 512), test_scale=None, images_per_gpu=2,
            loader_options={"img_dir": "img_dir", "ann_dir": "ann_dir"},
        ),
    ]
}  # fmt: skip

# Earlier names, still accepted.
_ALIASES = {"pascal_voc": "pascal_voc12_aug", "voc12aug": "pascal_voc12_aug"}


def get_data_config(name):
    """The `DataConfig` called `name` (or a `DataConfig` itself); a clear
    error listing the names otherwise."""
    if isinstance(name, DataConfig):
        return name
    name = _ALIASES.get(name, name)
    if name not in DATA_CONFIGS:
        raise ValueError(f"Unknown data config {name!r}. Known: {', '.join(DATA_CONFIGS)}.")
    return DATA_CONFIGS[name]


# SegmentationDataset arguments among the pipeline keys (the others are
# arguments of `train_dataset`).
_DATASET_KEYS = ("train_scale", "crop_size", "test_scale", "ratio_range", "cat_max_ratio", "reduce_zero_label", "ignore_index")


def dataset_defaults(config):
    """The `SegmentationDataset` arguments of a data config (its train and
    test scales, crop, ratio range, `cat_max_ratio`, `reduce_zero_label`,
    ignore index): the defaults of the dataset classes."""
    config = get_data_config(config)
    return {key: getattr(config, key) for key in _DATASET_KEYS}


def split_file_path(pattern, split):
    """The split file of `split` for a `split_file` pattern: `{split}` is
    the only field it may hold (`ValueError` naming the pattern otherwise;
    `'splits/{split}_{x}.txt'` and `'{0}'` raised a raw `KeyError` /
    `IndexError`). Write `{{` and `}}` for braces in the name.

    Example:

    >>> split_file_path("splits/{split}.txt", "val")
    'splits/val.txt'
    """
    import string

    try:
        fields = [(name, spec, conversion) for _, name, spec, conversion in string.Formatter().parse(pattern)
                  if name is not None]  # fmt: skip
    except ValueError:  # an unmatched brace
        fields = None
    if fields is None or not fields or any(field != ("split", "", None) for field in fields):
        raise ValueError(
            f"`split_file` must hold {{split}} and no other {{...}} field (one file per split, e.g. "
            f"'splits/{{split}}.txt'), got {pattern!r}."
        )
    return pattern.format(split=split)


def build_dataset(config, root, split, **options):
    """The one dataset factory: the files of `split` with the config's settings.

    Args:
        config: a data config name (see `DATA_CONFIGS`) or `DataConfig`.
        root: the dataset root in its standard layout (Cityscapes' directory
            of `leftImg8bit/` and `gtFine/`, `ADEChallengeData2016`,
            `VOCdevkit`, a CamVid-style folder, or the `folder` root).
        split: the split (`"train"` and `"val"` take the config's
            `train_split` and `val_split`), or several joined by commas
            (`"train,val"`: one dataset of their samples, in that order, as
            the literature trains a final model on train+val).
        **options: overrides of the config's pipeline settings
            (`train_scale`, `crop_size`, `test_scale`, ...) and, for
            `folder`, `num_classes` (required), `class_names`, `palette`,
            `img_dir`, `ann_dir`, `image_suffix`, `label_suffix`,
            `split_file` (a file of stems per split, `{split}` in its
            name, relative to `root`), `label_map`, `label_palette`,
            `verify`, `skip_bad`.

    Returns:
        A `SegmentationDataset`.
    """
    from keras_ann import data

    config = get_data_config(config)
    if "," in str(split):
        return _joined([build_dataset(config, root, part.strip(), **options) for part in str(split).split(",")])
    split = {"train": config.train_split, "val": config.val_split}.get(split, split)
    settings = dataset_defaults(config)
    extra = dict(config.loader_options)
    for key, value in options.items():
        if key in PIPELINE_KEYS:
            if key in settings:
                settings[key] = value
        elif value is not None or key not in extra:
            extra[key] = value
    root = os.fspath(root)
    if config.loader == "cityscapes":
        return data.Cityscapes(root, split, **settings, **extra)
    if config.loader == "ade20k":
        return data.ADE20K(root, split, **settings, **extra)
    if config.loader == "pascal_voc":
        return data.PascalVOC(root, split, **settings, **extra)
    if config.loader == "camvid":
        return data.camvid(root, split, **settings, **extra)
    if config.loader == "folder":
        img_dir, ann_dir = extra.pop("img_dir"), extra.pop("ann_dir")
        split_file = extra.pop("split_file", None)
        if extra.get("num_classes") is None:
            raise ValueError("The `folder` data config needs `num_classes` (the number of classes of the labels).")
        if extra.get("image_suffix") is None:
            extra.pop("image_suffix", None)
        if extra.get("label_suffix") is None:
            extra.pop("label_suffix", None)
        if split_file is not None:
            return data.FolderDataset.from_split_file(
                os.path.join(root, split_file_path(split_file, split)),
                os.path.join(root, img_dir), os.path.join(root, ann_dir), **settings, **extra,
            )
        return data.FolderDataset(
            os.path.join(root, img_dir, split), os.path.join(root, ann_dir, split), **settings, **extra
        )
    raise ValueError(f"Data config {config.name!r} has an unknown loader {config.loader!r}.")


def _joined(datasets):
    """One dataset of the samples of `datasets` (splits of one dataset, so
    of one setting); a file in two of them is refused."""
    import copy

    seen = {}
    for dataset in datasets:
        for image, _ in dataset.files:
            if image in seen:
                raise ValueError(f"{image} is in both {seen[image]} and {dataset.name}: list each sample in one split.")
            seen[image] = dataset.name
    joined = copy.copy(datasets[0])
    joined.files = [pair for dataset in datasets for pair in dataset.files]
    joined.name = "+".join(dataset.name for dataset in datasets)
    return joined


def build_datasets(
    settings, root, *, batch_size, seed=0, start=0, val_split="val", **options
):
    """The training and evaluation `tf.data` pipelines of a recipe or data config.

    Args:
        settings: a `Recipe` (its `data` names the data config and its
            pipeline keys are used), a `DataConfig` or a data config name.
        root: the dataset root (see `build_dataset`).
        batch_size: images per training step (all devices together).
        seed: data order and augmentation seed.
        start: training samples already drawn (a resumed run's position in
            the stream).
        val_split: the evaluation split.
        **options: more `build_dataset` options.

    Returns:
        `(train_ds, val_ds, val_data)`: the endless, augmented, batched
        training pipeline, the evaluation pairs (raw images and labels, one
        per batch: `evaluate_dataset` tests them by the model's protocol)
        and the evaluation `SegmentationDataset` (class names).

    Raises:
        DatasetError: label mistakes in either split, found by a scan of
            every label file before training (`data.check_dataset_labels`).
    """
    train_split = "train"
    if isinstance(settings, (str, DataConfig)):
        config = get_data_config(settings)
        values = config.pipeline_settings()
    else:
        config = get_data_config(settings.data)
        values = {key: getattr(settings, key) for key in PIPELINE_KEYS}
        train_split = settings.train_split
        if val_split == "val":
            val_split = settings.val_split
        if config.classes is None:  # folder: the recipe's classes and layout
            options.setdefault("num_classes", settings.num_classes)
            for key, value in settings.data_options().items():
                options.setdefault(key, value)
    kwargs = {**{k: values[k] for k in _DATASET_KEYS}, **options}
    train_data = build_dataset(config, root, train_split, **kwargs)
    val_data = build_dataset(config, root, val_split, **kwargs)
    from keras_ann.data.label_scan import check_dataset_labels

    check_dataset_labels(train_data, val_data)  # label mistakes refused before the first step
    train_ds = train_data.train_dataset(
        batch_size=batch_size,
        seed=seed,
        start=start,
        flip_prob=values["flip_prob"],
        photometric=values["photometric_distortion"],
        pad_value=values["pad_value"],
    )
    return train_ds, val_data.raw_dataset().batch(1), val_data
