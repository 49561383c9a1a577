"""The reference's training recipes (mmsegmentation `configs/ann/`), as data.

A `Recipe` is one flat set of keys in the reference's meaning (see
`Recipe.to_config`, which `keras-ann train RECIPE --print-config` prints);
it names a data config of `keras_ann.data.configs` (the dataset's pipeline,
classes and batch) and overrides only what the reference's recipe
overrides. Each released model of `keras_ann.presets` has the recipe that
trained it, under the same name (e.g. `"ann_r50_d8_cityscapes_512x1024_40k"`
for mmseg's `ann_r50-d8_4xb2-40k_cityscapes-512x1024.py`):

- model (`configs/_base_/models/ann_r50-d8.py`): dilated ResNet-V1c
  (`resnet50_d8` / `resnet101_d8`) initialised from the reference's ImageNet
  weights (`open-mmlab://resnet50_v1c`, `backbone_init`), ANN head with
  dropout 0.1 and an auxiliary FCN head (loss weight 0.4), `align_corners`
  True only for the 769x769 Cityscapes recipes;
- optimisation (`configs/_base_/schedules/schedule_*k.py`): SGD, learning
  rate 0.01, momentum 0.9, weight decay 5e-4 (coupled, on every parameter),
  poly decay per iteration with power 0.9 down to 1e-4; evaluation every
  `val_interval` iterations (2000 for 20k, 4000 for 40k, 8000 for 80k,
  16000 for 160k);
- data: the data config's, on 4 GPUs (`total_batch` = 4 x `images_per_gpu`);
- test: whole image, or 769x769 windows with stride 513 for the 769x769
  recipes, at the data config's `test_scale`.

Example:

>>> from keras_ann.recipes import get_recipe
>>> recipe = get_recipe("ann_r50_d8_cityscapes_769x769_40k")
>>> recipe.test_scale, recipe.test_mode, recipe.test_stride
((2049, 1025), 'slide', (513, 513))
>>> recipe.replace(iterations=1000).to_config()["iterations"]
1000
"""

import dataclasses
import json
import math
import numbers
import os

from keras_ann.data.configs import PIPELINE_KEYS, get_data_config, split_file_path
from keras_ann.test_protocol import duplicate_names_message, label_map_pairs, rgb_colours

__all__ = [
    "DEFAULT_RECIPE",
    "IMAGENET_CHECKPOINTS",
    "RECIPES",
    "Recipe",
    "apply_settings",
    "get_recipe",
    "load_recipe",
    "parse_setting",
    "replace_data",
    "resolved_config",
    "train_recipe",
]

# The reference's `open-mmlab://resnet{50,101}_v1c` (mmcv's model zoo, as
# mmengine's `hub/openmmlab.json` resolves it). The last 8 hex digits of a
# file name are the first 8 of its SHA-256.
IMAGENET_CHECKPOINTS = {
    "resnet50_d8": "https://download.openmmlab.com/pretrain/third_party/resnet50_v1c-2cccc1ad.pth",
    "resnet101_d8": "https://download.openmmlab.com/pretrain/third_party/resnet101_v1c-e67eebb6.pth",
}

# configs/_base_/schedules/schedule_*k.py: max_iters -> val_interval.
_VAL_INTERVAL = {20000: 2000, 40000: 4000, 80000: 8000, 160000: 16000}

# Marks a field the data config fills in.
_FROM_DATA = None


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A training recipe: model, data pipeline, schedule and test protocol.

    The fields are the recipe's keys, in the reference's meaning; those left
    `None` at construction take the data config's value (`data`).

    Attributes:
        name: e.g. `"ann_r50_d8_cityscapes_512x1024_40k"`.
        data: the data config, e.g. `"cityscapes_769x769"`
            (`keras_ann.data.configs.DATA_CONFIGS`).
        backbone: backbone name (mmseg's `model.backbone.depth`).
        iterations: optimisation steps (`train_cfg.max_iters`).
        val_interval: evaluate and checkpoint every so many iterations.
        num_classes: classes (default: the data config's).
        crop_size: `(h, w)` of `RandomCrop`.
        train_scale: `(long, short)` scale of `RandomResize`, or `None`.
        ratio_range: `RandomResize` ratio range.
        cat_max_ratio: `RandomCrop`'s `cat_max_ratio`.
        flip_prob: `RandomFlip` probability.
        photometric_distortion: whether `PhotoMetricDistortion` is applied.
        test_scale: `(long, short)` scale of the test `Resize`, or `None`.
        reduce_zero_label: label 0 is ignored and `k` becomes `k - 1`.
        pad_value: raw RGB fill of padded training crops (the ImageNet mean
            is mmseg's 0 after normalisation).
        ignore_index: the ignored label (and label padding).
        images_per_gpu: the reference's `train_dataloader.batch_size`.
        total_batch: images per step over all devices (default: the
            reference's 4 GPUs x `images_per_gpu`).
        lr, momentum, weight_decay: SGD.
        poly_power, min_lr: the poly schedule (`power`, `eta_min`).
        align_corners: the heads' `align_corners`.
        aux_loss_weight: the auxiliary FCN head's loss weight.
        dropout: the heads' dropout ratio.
        class_weight: a loss weight per class (mmseg's
            `loss_decode.class_weight`, for both heads), or `None`.
        loss: the heads' losses as mmseg's `loss_decode` list, e.g.
            `[{"type": "CrossEntropyLoss"}, {"type": "DiceLoss",
            "loss_weight": 3.0}]` (summed; `keras_ann.losses.build_loss`,
            with `class_weight` for the losses that take one), or `None`:
            the cross-entropy.
        test_mode: `"whole"` or `"slide"`.
        test_crop, test_stride: slide window and stride `(h, w)`, `None`
            for whole.
        backbone_init: URL or path of the ImageNet checkpoint loaded into
            the backbone, or `None` to train from scratch (default: the
            reference's checkpoint for the backbone, if it has one).
        load_from: a preset name, `.keras` or reference `.pth` file,
            preset directory or hub handle whose weights start the run (fine-tuning, mmseg's `load_from`; the
            classifiers are replaced when `num_classes` differs), or `None`.
        class_names: names of the classes (default: the data config's;
            for `folder`: `"0"`, `"1"`, ...).
        palette: RGB colour of each class, or `None`.
        train_split, val_split: the splits trained and evaluated on
            (default: the data config's, `"train"` and `"val"`).
        img_dir, ann_dir: `folder` only: the image and label directories
            under the data root (default `img_dir`, `ann_dir`), each with
            one sub-directory per split (mmseg's custom-dataset layout).
        img_suffix, ann_suffix: `folder` only: image and label name
            endings after the common stem (default: any image extension,
            `".png"`).
        split_file: `folder` only: instead of split sub-directories, a
            file of stems per split, relative to the data root, with
            `{split}` in its name (e.g. `"splits/{split}.txt"`); the files
            are then directly in `img_dir` and `ann_dir`.
        label_map: `((raw, new), ...)` applied to the label values, e.g.
            `((255, 1),)` for 0/255 binary masks.
        label_palette: the colour of each class, for label files that are
            RGB colour masks (class `i` has colour `i`).
        time_budget: seconds for the whole run (a duration such as
            `"30m"` is read too), or `None`: the iteration count and
            evaluation interval are then planned by `train()` from timings
            of the run (`keras_ann.budget`), and `iterations` and
            `val_interval` are the plan's. Giving `iterations` drops it.
    """

    name: str
    data: str
    backbone: str
    iterations: int
    val_interval: int
    num_classes: int = _FROM_DATA
    crop_size: tuple = _FROM_DATA
    train_scale: tuple = _FROM_DATA
    ratio_range: tuple = _FROM_DATA
    cat_max_ratio: float = _FROM_DATA
    flip_prob: float = _FROM_DATA
    photometric_distortion: bool = _FROM_DATA
    test_scale: tuple = _FROM_DATA
    reduce_zero_label: bool = _FROM_DATA
    pad_value: tuple = _FROM_DATA
    ignore_index: int = _FROM_DATA
    images_per_gpu: int = _FROM_DATA
    total_batch: int = None
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    poly_power: float = 0.9
    min_lr: float = 1e-4
    align_corners: bool = False
    aux_loss_weight: float = 0.4
    dropout: float = 0.1
    class_weight: tuple = None
    loss: tuple = None
    test_mode: str = "whole"
    test_crop: tuple = None
    test_stride: tuple = None
    backbone_init: str = "imagenet"
    load_from: str = None
    class_names: tuple = None
    palette: tuple = None
    train_split: str = None
    val_split: str = None
    img_dir: str = None
    ann_dir: str = None
    img_suffix: str = None
    ann_suffix: str = None
    split_file: str = None
    label_map: tuple = None
    label_palette: tuple = None
    time_budget: float = None

    def __post_init__(self):
        config = get_data_config(self.data)
        set_ = lambda key, value: object.__setattr__(self, key, value)  # noqa: E731
        for key, value in config.pipeline_settings().items():
            if getattr(self, key) is None:
                set_(key, value)
        if self.num_classes is None:
            if config.num_classes is None:
                raise ValueError(f"Recipe {self.name!r}: the {config.name!r} data config needs `num_classes`.")
            set_("num_classes", config.num_classes)
        if self.total_batch is None:
            set_("total_batch", 4 * self.images_per_gpu)
        if self.backbone_init == "imagenet":
            set_("backbone_init", IMAGENET_CHECKPOINTS.get(self.backbone))
        self._check_numbers(set_)
        self._check_data_keys(config, set_)
        if self.class_weight is not None:
            try:
                weights = tuple(float(w) for w in self.class_weight)
            except (TypeError, ValueError):
                weights = ()
            if len(weights) != self.num_classes or not all(w >= 0 for w in weights):
                raise ValueError(
                    f"Recipe {self.name!r}: `class_weight` must be {self.num_classes} non-negative numbers "
                    f"(one per class), got {self.class_weight!r}; `--set class_weight=null` drops the weights."
                )
            set_("class_weight", weights)
        if self.loss is not None:
            set_("loss", _loss_entries(self.name, self.loss))
        if self.test_mode not in ("whole", "slide"):
            raise ValueError(f"Recipe {self.name!r}: `test_mode` must be 'whole' or 'slide', got {self.test_mode!r}.")
        if self.test_mode == "slide" and (self.test_crop is None or self.test_stride is None):
            raise ValueError(f"Recipe {self.name!r}: `test_mode='slide'` needs `test_crop` and `test_stride`.")

    def _check_numbers(self, set_):
        """Checks every numeric and boolean key (from `--set`, a recipe
        file or Python alike): one `ValueError` naming the key and the
        value; pairs become tuples."""
        def fail(key, what):
            raise ValueError(f"Recipe {self.name!r}: `{key}` must be {what}, got {getattr(self, key)!r}.")

        for key in ("iterations", "val_interval", "total_batch", "images_per_gpu", "num_classes"):
            if not _is_int(getattr(self, key), 1):
                fail(key, "a positive integer")
        if self.num_classes > 256:
            fail("num_classes", "at most 256: labels are 8-bit images, class ids 0..255")
        if isinstance(self.time_budget, str):
            from keras_ann.budget import parse_duration

            try:
                set_("time_budget", parse_duration(self.time_budget))
            except ValueError:
                fail("time_budget", "seconds or a duration such as 30m, or null")
        if self.time_budget is not None:
            if not _is_number(self.time_budget, 0, None, True):
                fail("time_budget", "seconds or a duration such as 30m, or null")
            set_("time_budget", float(self.time_budget))
        if not _is_int(self.ignore_index, 0) or self.ignore_index > 255:
            fail("ignore_index", "a label value 0..255 (labels are 8-bit images)")
        for key, optional in (("crop_size", False), ("train_scale", True), ("test_scale", True),
                              ("test_crop", True), ("test_stride", True)):  # fmt: skip
            value = getattr(self, key)
            if value is None and optional:
                continue
            if not (isinstance(value, (list, tuple)) and len(value) == 2 and all(_is_int(v, 1) for v in value)):
                fail(key, "a pair of positive integers, e.g. [512, 512]" + (", or null" if optional else ""))
            set_(key, tuple(int(v) for v in value))
        value = self.ratio_range
        if value is not None:
            if not (isinstance(value, (list, tuple)) and len(value) == 2 and all(_is_number(v, 0, None, True) for v in value)
                    and value[0] <= value[1]):  # fmt: skip
                fail("ratio_range", "a pair of positive numbers [low, high], e.g. [0.5, 2.0], or null")
            set_("ratio_range", tuple(float(v) for v in value))
        value = self.pad_value
        if not (isinstance(value, (list, tuple)) and len(value) == 3 and all(_is_number(v, 0, 255) for v in value)):
            fail("pad_value", "three numbers 0..255 (an RGB colour)")
        set_("pad_value", tuple(value))
        for key, low, high, low_open, high_open, what in (
            ("lr", 0, None, True, False, "a positive number"),
            ("momentum", 0, 1, False, True, "a number in [0, 1)"),
            ("weight_decay", 0, None, False, False, "a non-negative number"),
            ("poly_power", 0, None, False, False, "a non-negative number"),
            ("min_lr", 0, None, False, False, "a non-negative number"),
            ("aux_loss_weight", 0, None, False, False, "a non-negative number"),
            ("dropout", 0, 1, False, True, "a number in [0, 1)"),
            ("flip_prob", 0, 1, False, False, "a probability in [0, 1]"),
            ("cat_max_ratio", 0, 1, True, False, "a number in (0, 1]"),
        ):
            if not _is_number(getattr(self, key), low, high, low_open, high_open):
                fail(key, what)
        for key in ("photometric_distortion", "reduce_zero_label", "align_corners"):
            if not isinstance(getattr(self, key), bool):
                fail(key, "true or false")

    def _check_label_palette(self, colours):
        """A colour mask's colour `i` is the raw label `i`: one colour per
        class, then colours whose raw labels `label_map` maps (void
        colours, mapped to the ignore index: `--ignore-colour`)."""
        mapped = dict(label_map_pairs(self.label_map)) if self.label_map else {}
        unmapped = [i for i in range(self.num_classes, len(colours)) if i not in mapped]
        if len(colours) < self.num_classes or unmapped:
            raise ValueError(
                f"Recipe {self.name!r}: `label_palette` has {len(colours)} colours for "
                f"num_classes={self.num_classes}: give one colour per class, then any void colours "
                f"with `--ignore-colour R,G,B` (or map their raw labels, e.g. `label_map` "
                f"[[{self.num_classes}, {self.ignore_index}]])."
            )

    def _check_data_keys(self, config, set_):
        """Normalises (tuples) and checks the class and folder keys."""
        for key in ("train_split", "val_split"):
            if getattr(self, key) is None:
                set_(key, getattr(config, key))
        if config.loader == "folder":  # the layout's defaults, shown by --print-config
            for key, value in {**config.loader_options, "ann_suffix": ".png"}.items():
                if getattr(self, key) is None:
                    set_(key, value)
        if self.class_names is not None:
            names = self.class_names.split(",") if isinstance(self.class_names, str) else self.class_names
            set_("class_names", tuple(str(n).strip() for n in names))
            if len(self.class_names) != self.num_classes:
                raise ValueError(
                    f"Recipe {self.name!r}: {len(self.class_names)} class names {list(self.class_names)} "
                    f"for num_classes={self.num_classes}."
                )
        for key in ("palette", "label_palette"):
            value = getattr(self, key)
            if value is None:
                continue
            try:
                colours = rgb_colours(value, key)
            except (TypeError, ValueError) as error:
                raise ValueError(f"Recipe {self.name!r}: {error}") from None
            if key == "label_palette":
                self._check_label_palette(colours)
            elif len(colours) != self.num_classes:
                raise ValueError(
                    f"Recipe {self.name!r}: `{key}` has {len(colours)} colours for num_classes={self.num_classes}."
                )
            set_(key, colours)
        if self.label_map is not None:
            try:
                set_("label_map", label_map_pairs(self.label_map))
            except ValueError as error:
                raise ValueError(f"Recipe {self.name!r}: {error}") from None
        if config.loader != "folder":
            given = [key for key in ("class_names", "palette") + FOLDER_KEYS if getattr(self, key) is not None]
            if given:
                raise ValueError(
                    f"Recipe {self.name!r}: {', '.join(given)} only apply to the `folder` data config "
                    f"(this recipe's data is {config.name!r})."
                )
        if self.split_file is not None:
            try:
                split_file_path(self.split_file, "train")
            except ValueError as error:
                raise ValueError(f"Recipe {self.name!r}: {error}") from None
        if self.class_names is not None and len(set(self.class_names)) != len(self.class_names):
            raise ValueError(f"Recipe {self.name!r}: {duplicate_names_message(self.class_names)}")

    def data_options(self):
        """The `keras_ann.data.configs.build_dataset` options of the class
        and folder keys that are set."""
        return dataset_options({key: getattr(self, key) for key in ("class_names", "palette") + FOLDER_KEYS})

    def replace(self, **changes):
        """A copy with some keys changed (e.g. `iterations=1000`).

        `scale` sets both `train_scale` and `test_scale`. A new `backbone`
        takes its own ImageNet checkpoint when the recipe had the old
        backbone's. An iteration count replaces a time budget.
        """
        if "scale" in changes:
            scale = changes.pop("scale")
            changes.setdefault("train_scale", scale)
            changes.setdefault("test_scale", scale)
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ValueError(f"Unknown recipe key(s) {unknown}; the keys are {', '.join(CONFIG_KEYS)}.")
        if (
            "backbone" in changes
            and "backbone_init" not in changes
            and self.backbone_init == IMAGENET_CHECKPOINTS.get(self.backbone)
        ):
            changes["backbone_init"] = IMAGENET_CHECKPOINTS.get(changes["backbone"])
        if changes.get("iterations") is not None:
            changes.setdefault("time_budget", None)
        return dataclasses.replace(self, **changes)

    def per_replica_batch(self, num_replicas):
        """Images per device so that the total batch stays the recipe's."""
        if self.total_batch % num_replicas:
            raise ValueError(
                f"The recipe's total batch of {self.total_batch} images cannot be "
                f"split evenly over {num_replicas} devices."
            )
        return self.total_batch // num_replicas

    def to_config(self):
        """The recipe as a JSON-ready dict of all its keys (tuples as lists).

        `Recipe.from_config` reads it back.
        """
        def plain(value):
            return [plain(v) for v in value] if isinstance(value, tuple) else value

        return {f.name: plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_config(cls, config):
        """The recipe of a `to_config` dict (unknown keys are refused)."""
        unknown = sorted(set(config) - set(CONFIG_KEYS))
        if unknown:
            raise ValueError(f"Unknown recipe key(s) {unknown}; the keys are {', '.join(CONFIG_KEYS)}.")
        return cls(**config)

    def test_protocol(self, class_names=None, palette=None):
        """The model's `TestProtocol`: this recipe's test mode, window and
        scale, and its data contract (data config, classes, palette, label
        map, `reduce_zero_label`, ignore index, label palette).

        `ANNSegmenter(test_protocol=...)` keeps it with a saved model.

        Args:
            class_names, palette: the classes of the data actually used
                (default: the recipe's, else the data config's when it has
                `num_classes` of them).
        """
        from keras_ann.test_protocol import TestProtocol

        config = get_data_config(self.data)
        if class_names is None:
            class_names, palette = self.class_names or config.classes, self.palette or config.palette
        if class_names is not None and len(class_names) != self.num_classes:
            class_names = palette = None
        return TestProtocol(
            mode=self.test_mode,
            crop=self.test_crop,
            stride=self.test_stride,
            scale=self.test_scale,
            data=config.name,
            class_names=class_names,
            palette=palette,
            label_map=self.label_map,
            reduce_zero_label=self.reduce_zero_label,
            ignore_index=self.ignore_index,
            label_palette=self.label_palette,
        )


def _is_int(value, low):
    """An integer (not a bool) of at least `low`."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= low


def _is_number(value, low=None, high=None, low_open=False, high_open=False):
    """A finite real number (not a bool) within the bounds."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        return False
    if low is not None and (value <= low if low_open else value < low):
        return False
    return high is None or (value < high if high_open else value <= high)


def _loss_entries(name, loss):
    """The `loss` key as a tuple of JSON-ready dicts, checked by building
    the losses (Keras is imported only for a recipe that sets it)."""
    from keras_ann.losses import build_loss

    entries = [loss] if isinstance(loss, dict) else loss
    if not isinstance(entries, (list, tuple)) or not entries:
        raise ValueError(
            f"Recipe {name!r}: `loss` must be a list of loss configs, e.g. "
            f'[{{"type": "DiceLoss", "loss_weight": 1.0}}], got {loss!r}; `--set loss=null` is the cross-entropy.'
        )
    plain = lambda value: [plain(v) for v in value] if isinstance(value, (list, tuple)) else value  # noqa: E731
    entries = tuple({key: plain(value) for key, value in entry.items()} if isinstance(entry, dict) else entry
                    for entry in entries)  # fmt: skip
    try:
        build_loss(list(entries))
    except ValueError as error:
        raise ValueError(f"Recipe {name!r}: `loss`: {error}") from None
    return entries


CONFIG_KEYS = tuple(f.name for f in dataclasses.fields(Recipe))
# Keys only the `folder` data config reads.
FOLDER_KEYS = ("img_dir", "ann_dir", "img_suffix", "ann_suffix", "split_file", "label_map", "label_palette")
assert set(PIPELINE_KEYS) <= set(CONFIG_KEYS)


# Recipe keys (and flags, `--img-suffix` -> `img_suffix`) whose
# `build_dataset` option has another name.
_DATASET_OPTION_NAMES = {"img_suffix": "image_suffix", "ann_suffix": "label_suffix"}


def with_ignore_colours(label_palette, label_map, colours, ignore_index=255):
    """`(label_palette, label_map)` with `colours` ignored: each void colour
    is appended to the label palette (a colour mask's colour `i` reads as
    the raw label `i`) and its raw label mapped to `ignore_index`.

    Args:
        label_palette: the colour of each class.
        label_map: `[[raw, new], ...]` or `None`.
        colours: the RGB colours of void pixels.
        ignore_index: int, the ignored label value.

    Example:

    >>> with_ignore_colours([(0, 0, 0), (255, 0, 0)], None, [(255, 255, 255)])
    ([(0, 0, 0), (255, 0, 0), (255, 255, 255)], [[2, 255]])
    """
    if not label_palette:
        raise ValueError(
            "--ignore-colour needs --label-palette: the colour of each class, then the colours to ignore."
        )
    palette = [tuple(int(v) for v in c) for c in label_palette]
    pairs = [list(p) for p in (label_map or [])]
    for colour in colours:
        colour = tuple(int(v) for v in colour)
        if colour in palette:
            raise ValueError(f"--ignore-colour {','.join(map(str, colour))} is also a class colour in --label-palette.")
        pairs.append([len(palette), int(ignore_index)])
        palette.append(colour)
    return palette, pairs


def dataset_options(keys):
    """The `keras_ann.data.configs.build_dataset` options of recipe keys
    (the class, label-encoding and folder-layout keys among `keys`; `None`
    values left out): the one mapping from a recipe's or the command line's
    names to the loader's.

    Example:

    >>> dataset_options({"img_suffix": "_leftImg8bit.png", "label_map": [[255, 1]], "split_file": None})
    {'image_suffix': '_leftImg8bit.png', 'label_map': {255: 1}}
    """
    options = {}
    for key, value in keys.items():
        if value is None or key not in ("class_names", "palette", "reduce_zero_label", "ignore_index") + FOLDER_KEYS:
            continue
        if key == "label_map":
            value = dict(label_map_pairs(value))  # a raw value mapped twice refused, not kept once
        elif key == "label_palette":
            value = [list(c) for c in value]
        options[_DATASET_OPTION_NAMES.get(key, key)] = value
    return options


def _reference(depth, data, crop, iterations):
    h, w = crop
    short = {"pascal_voc12_aug": "pascal_voc", "cityscapes_769x769": "cityscapes"}.get(data, data)
    slide = data == "cityscapes_769x769"
    return Recipe(
        name=f"ann_r{depth}_d8_{short}_{h}x{w}_{iterations // 1000}k",
        data=data,
        backbone=f"resnet{depth}_d8",
        iterations=iterations,
        val_interval=_VAL_INTERVAL[iterations],
        crop_size=crop,
        # The 769x769 recipes' own overrides.
        align_corners=slide,
        test_mode="slide" if slide else "whole",
        test_crop=(769, 769) if slide else None,
        test_stride=(513, 513) if slide else None,
    )


RECIPES = {
    r.name: r
    for r in [
        _reference(depth, data, crop, iterations)
        for data, crop, schedules in [
            ("cityscapes", (512, 1024), (40000, 80000)),
            ("cityscapes_769x769", (769, 769), (40000, 80000)),
            ("ade20k", (512, 512), (80000, 160000)),
            ("pascal_voc12_aug", (512, 512), (20000, 40000)),
        ]
        for iterations in schedules
        for depth in (50, 101)
    ]
}

# Not a reference recipe: the reference's settings scaled to CamVid (11
# classes, 480x360 images; ../shared/data/camvid) and to a CPU, from
# scratch (there is no ImageNet ResNet-18-V1c checkpoint).
# Images at half resolution (240x180), 128x128 crops, batch 8, 600
# iterations: a short run on 2 CPU cores (its runs' times and scores:
# BENCHMARKS.md, "The 20-minute CPU recipe").
RECIPES["ann_r18_d8_camvid_cpu"] = Recipe(
    name="ann_r18_d8_camvid_cpu",
    data="camvid",
    backbone="resnet18_d8",
    iterations=600,
    val_interval=100,
    crop_size=(128, 128),
    train_scale=(240, 180),
    test_scale=(240, 180),
    images_per_gpu=8,
    total_batch=8,
)

# CamVid from scratch to a real result in an hour of 2 CPU cores
# (BENCHMARKS.md, "CamVid from scratch in an hour", which has the runs and
# how each choice was measured): bfloat16 where the CPU has AVX512_BF16 or
# AMX (`--precision auto`), much faster than float32 there; ResNet-18 at
# output stride 16, much faster to train than 8; full-resolution images
# (480x360, resized 0.5-2x) and 256x256 crops, batch 8; 2500 iterations,
# which leave a margin in the hour (3000 filled it); the reference's SGD
# and poly schedule at 5x its learning rate, which learns far faster from
# scratch at this budget than the reference's 0.01; ENet's class weights
# 1 / ln(1.02 + p) of the CamVid training labels' class shares p
# (normalised to mean 1); tested whole at 480x360.
RECIPES["ann_r18_d16_camvid_cpu_1h"] = Recipe(
    name="ann_r18_d16_camvid_cpu_1h",
    data="camvid",
    backbone="resnet18_d16",
    iterations=2500,
    val_interval=500,
    crop_size=(256, 256),
    train_scale=(480, 360),
    test_scale=(480, 360),
    images_per_gpu=8,
    total_batch=8,
    lr=0.05,
    class_weight=(0.269, 0.206, 1.61, 0.16, 0.743, 0.419, 1.513, 1.535, 0.615, 1.823, 2.106),
    time_budget=3300,  # 55 min, start-up included: the iterations that fit the hour on the CPU at hand
)


def get_recipe(name):
    """The recipe called `name`; a clear error listing the names otherwise."""
    if isinstance(name, Recipe):
        return name
    if name not in RECIPES:
        raise ValueError(
            f"Unknown recipe {name!r}. Known recipes:\n  " + "\n  ".join(sorted(RECIPES))
        )
    return RECIPES[name]


def resolved_config(recipe, **changes):
    """The fully resolved recipe as a JSON-ready dict: `recipe` (a name or
    `Recipe`) with `changes` applied (keys of `Recipe.to_config`; `None`
    values are ignored).

    Example:

    >>> resolved_config("ann_r50_d8_ade20k_512x512_80k", iterations=10)["total_batch"]
    16
    """
    changes = {key: value for key, value in changes.items() if value is not None}
    return get_recipe(recipe).replace(**changes).to_config()


# The base recipe (model and schedule) of `keras-ann train --dataset folder`
# when no recipe is named: CPU-sized (ResNet-18-D8, 128x128 crops, images
# at 240x180, 600 iterations).
# The base of `keras-ann train --dataset ...` without a recipe: the best CPU
# recipe's model, optimiser and schedule (within its time budget), its
# scale, crop, batch and class weights then chosen from the data.
DEFAULT_RECIPE = "ann_r18_d16_camvid_cpu_1h"

# Keys a recipe file may hold besides the recipe's: what `train()` writes
# into `recipe.json` next to them (the run's, not the recipe's; ignored).
_RUN_KEYS = ("precision", "seed", "checkpoint_interval", "eval_steps", "data_root")


def load_recipe(name_or_path):
    """A recipe by name, or from a JSON file of recipe keys (what
    `keras-ann train RECIPE --print-config` prints, or a work directory's
    `recipe.json`).

    Args:
        name_or_path: a name of `RECIPES`, a `Recipe`, or a `.json` path.

    Example:

    >>> import json, tempfile
    >>> path = tempfile.mktemp(suffix=".json")
    >>> config = get_recipe("ann_r18_d8_camvid_cpu").replace(iterations=20).to_config()
    >>> json.dump(config, open(path, "w"))
    >>> load_recipe(path).iterations
    20
    """
    if isinstance(name_or_path, Recipe):
        return name_or_path
    text = os.fspath(name_or_path)
    if not (text.endswith(".json") or os.path.sep in text or os.path.isfile(text)):
        return get_recipe(text)
    if not os.path.isfile(text):
        raise FileNotFoundError(f"Recipe file not found: {text}")
    try:
        with open(text) as f:
            config = json.load(f)
    except json.JSONDecodeError as error:
        raise ValueError(f"Recipe file {text} is not valid JSON: {error}") from None
    if not isinstance(config, dict):
        raise ValueError(f"Recipe file {text} must hold one JSON object of recipe keys, got {type(config).__name__}.")
    config = {key: value for key, value in config.items() if key not in _RUN_KEYS}
    try:
        return Recipe.from_config(config)
    except TypeError as error:  # a required key missing
        raise ValueError(f"Recipe file {text}: {error}") from None
    except ValueError as error:
        raise ValueError(f"Recipe file {text}: {error}") from None


def parse_setting(text):
    """`"key=value"` -> `(key, value)`, the value parsed as JSON where it
    can be (`10`, `0.5`, `true`, `null`, `[64, 64]`, `"x"`), else the text
    itself (`data=folder`), as mmseg's `--cfg-options`.

    Example:

    >>> parse_setting("crop_size=[64,64]"), parse_setting("data=folder")
    (('crop_size', [64, 64]), ('data', 'folder'))
    """
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ValueError(f"--set takes KEY=VALUE, got {text!r}; the keys are {', '.join(CONFIG_KEYS)}.")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def apply_settings(recipe, settings):
    """`recipe` with `key=value` texts (`parse_setting`) applied; an
    unknown key is refused with the list of keys.

    A new `data` takes that data config's classes unless `num_classes` is
    set too.

    Example:

    >>> apply_settings("ann_r18_d8_camvid_cpu", ["iterations=40", "lr=0.02"]).lr
    0.02
    """
    recipe = load_recipe(recipe)
    changes = dict(parse_setting(text) for text in settings)
    return replace_data(recipe, **changes)


def replace_data(recipe, **changes):
    """`recipe.replace(**changes)`, where a change of `data` takes the new
    data config's classes (`num_classes`, names, palette) unless given."""
    if "data" in changes and changes["data"] != recipe.data:
        for key in ("num_classes", "class_names", "palette", "train_split", "val_split") + FOLDER_KEYS:
            changes.setdefault(key, None)
    unknown = sorted(set(changes) - set(CONFIG_KEYS) - {"scale"})
    if unknown:
        raise ValueError(f"Unknown recipe key(s) {unknown}; the keys are {', '.join(CONFIG_KEYS)}.")
    return recipe.replace(**changes)


def train_recipe(
    name=None, *, data_keys=None, changes=None, loss=None, imagenet=None, settings=None, data_root=None, say=print
):
    """The recipe that `keras-ann train` runs, built from its parts in order.

    `name` (or, for own data, `DEFAULT_RECIPE`), then the data keys, the
    other changes, the loss option, the ImageNet choice and last the
    `key=value` settings. Own folder data on the default recipe with no
    scale set is trained at the training images' own size
    (`keras_ann.data.inspect.dataset_scale`), which is read from
    `data_root` and told through `say`.

    Args:
        name: a recipe name or a recipe file (`load_recipe`), or `None`
            for `DEFAULT_RECIPE`.
        data_keys: recipe keys of the data (`data`, `num_classes`,
            `class_names`, the folder layout and label encoding).
        changes: other recipe keys (`iterations`, `total_batch`,
            `crop_size`, `scale`, `load_from`, ...); `None` values ignored.
        loss: the heads' losses as `NAME[:WEIGHT],...` text (`--loss`).
        imagenet: the backbone's ImageNet checkpoint, a path, URL or
            `"none"` (`keras_ann.weights.imagenet.requested_backbone_init`),
            or `None` for the recipe's.
        settings: `key=value` texts (`apply_settings`), applied last.
        data_root: the dataset root, read for the own-data scale.
        say: called with the line that tells the own-data scale.

    Example:

    >>> train_recipe(changes={"iterations": 20, "lr": None}, settings=["lr=0.02"]).iterations
    20
    """
    from keras_ann.weights.imagenet import requested_backbone_init

    changes = {key: value for key, value in (changes or {}).items() if value is not None}
    data_keys = dict(data_keys or {})
    recipe = load_recipe(name or DEFAULT_RECIPE)
    if data_keys.get("data", recipe.data) == "folder" and recipe.data != "folder" and "num_classes" not in data_keys:
        raise ValueError("--dataset folder needs --num-classes K (the number of classes of your labels).")
    if name is None and data_keys.get("data", recipe.data) != recipe.data:
        data_keys.setdefault("class_weight", None)  # the base recipe's are its own data's: new data gets its own
    recipe = replace_data(recipe, **data_keys)
    if loss:
        from keras_ann.losses.combined import parse_loss_option

        changes["loss"] = parse_loss_option(loss)
    recipe = recipe.replace(**changes)
    recipe = requested_backbone_init(recipe, imagenet)
    if settings:
        recipe = apply_settings(recipe, settings)
    if recipe.data == "folder" and name is None and data_root:
        given = set(changes) | {s.split("=")[0].strip() for s in settings or []}
        recipe = _settings_from_data(recipe, data_root, given, say)
    return recipe


# Recipe keys that the data decides (`keras_ann.data.defaults`), and the
# keys that, given by the user, keep each from it.
_FROM_DATA_KEYS = {
    "train_scale": ("scale", "train_scale"), "test_scale": ("scale", "test_scale"),
    "crop_size": ("crop_size",), "total_batch": ("total_batch", "images_per_gpu"),
    "images_per_gpu": ("total_batch", "images_per_gpu"), "class_weight": ("class_weight",),
}  # fmt: skip


def _settings_from_data(recipe, data_root, given, say):
    """Own data on the default recipe: the scale, crop, batch and class
    weights that `keras_ann.data.defaults.defaults_from_data` chooses from
    the training split, except those the user gave; each choice is said."""
    from keras_ann.data.configs import build_dataset
    from keras_ann.data.defaults import defaults_from_data
    from keras_ann.data.label_scan import scan_labels

    dataset = build_dataset(recipe.data, data_root, recipe.train_split, num_classes=recipe.num_classes,
                            **recipe.data_options())  # fmt: skip
    scan = None if "class_weight" in given else scan_labels(dataset, verbose=0)
    if scan is not None and scan.problems:  # training's label check explains them, with the fix
        scan = None
    scale = recipe.train_scale if {"scale", "train_scale"} & given else None  # the crop fits the user's scale
    defaults = defaults_from_data(dataset, scan, batch=recipe.total_batch, scale=scale)
    changes = {k: v for k, v in defaults.changes.items() if not set(_FROM_DATA_KEYS[k]) & given}
    for key, note in defaults.notes.items():  # the choices not given by the user
        if not set(_FROM_DATA_KEYS[key]) & given:
            say(note)
    return recipe.replace(**changes)
