"""Cityscapes (`leftImg8bit` + `gtFine`)."""

import glob
import os

from keras_ann.data.configs import dataset_defaults
from keras_ann.data.errors import DatasetError
from keras_ann.data.io import require_files
from keras_ann.data.metainfo import (
    CITYSCAPES_CLASSES,
    CITYSCAPES_LABEL_ID_TO_TRAIN_ID,
    CITYSCAPES_PALETTE,
)
from keras_ann.data.pipeline import SegmentationDataset

__all__ = ["Cityscapes", "cityscapes_label_id_map", "train_ids_to_label_ids"]

_IMAGE_SUFFIX = "_leftImg8bit.png"
_TRAIN_ID_SUFFIX = "_gtFine_labelTrainIds.png"
_LABEL_ID_SUFFIX = "_gtFine_labelIds.png"

# `recipe` -> the data config (`keras_ann.data.configs`) of its settings.
_RECIPES = {"512x1024": "cityscapes", "769x769": "cityscapes_769x769"}


def cityscapes_label_id_map():
    """`{label_id: train_id}` for all 256 values (unlisted ids -> 255).

    Returns:
        dict of ints, to use as `label_map` with `*_gtFine_labelIds.png`.
    """
    return {i: CITYSCAPES_LABEL_ID_TO_TRAIN_ID.get(i, 255) for i in range(256)}


def train_ids_to_label_ids(labels):
    """Train ids (0..18, as the model predicts) to Cityscapes label ids
    (7, 8, 11, ..., 33: the values of `*_gtFine_labelIds.png` and of the
    test server's submissions); the inverse of
    `CITYSCAPES_LABEL_ID_TO_TRAIN_ID`.

    Args:
        labels: integer array of train ids in 0..18.

    Returns:
        uint8 array of the same shape.

    Example:

    >>> import numpy as np
    >>> train_ids_to_label_ids(np.array([[0, 1], [10, 18]])).tolist()
    [[7, 8], [23, 33]]
    """
    import numpy as np

    table = np.zeros(len(CITYSCAPES_CLASSES), np.uint8)
    for label_id, train_id in CITYSCAPES_LABEL_ID_TO_TRAIN_ID.items():
        table[train_id] = label_id
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() >= len(table)):
        raise ValueError(f"Cityscapes train ids are 0..{len(table) - 1}, got values {labels.min()}..{labels.max()}.")
    return table[labels]


class Cityscapes(SegmentationDataset):
    """Cityscapes fine annotations, 19 classes (mmseg's `CityscapesDataset`).

    Reads `root/leftImg8bit/<split>/<city>/*_leftImg8bit.png` and the label of
    the same stem in `root/gtFine/<split>/<city>/`: `*_gtFine_labelTrainIds.png`
    (made by cityscapesScripts' `createTrainIdLabelImgs`), or, when those are
    absent, `*_gtFine_labelIds.png` with the 34 label ids mapped to the 19
    train ids (everything else to 255).

    Args:
        root: the directory holding `leftImg8bit/` and `gtFine/`.
        split: `"train"`, `"val"` or `"test"`.
        recipe: `"512x1024"` (default) or `"769x769"`: the pipeline
            settings (train scale, crop size, test scale, ...) of the data
            config `"cityscapes"` or `"cityscapes_769x769"`.
        label_type: `"auto"` (default), `"trainIds"` or `"labelIds"`.
        **kwargs: more `SegmentationDataset` arguments (`verify`,
            `skip_bad`, or overrides of the recipe).

    Example:

    On the release `Cityscapes(root, "val")` has 500 images; here a
    one-image stand-in in the same layout, with `labelIds` labels only:

    >>> import os, tempfile
    >>> import numpy as np
    >>> from PIL import Image
    >>> root = tempfile.mkdtemp()
    >>> for d in ("leftImg8bit/val/lindau", "gtFine/val/lindau"):
    ...     os.makedirs(os.path.join(root, d))
    >>> stem = "val/lindau/lindau_000000_000019"
    >>> Image.fromarray(np.zeros((32, 64, 3), np.uint8)).save(f"{root}/leftImg8bit/{stem}_leftImg8bit.png")
    >>> Image.fromarray(np.full((32, 64), 7, np.uint8)).save(f"{root}/gtFine/{stem}_gtFine_labelIds.png")
    >>> ds = Cityscapes(root, "val")
    >>> len(ds), ds.num_classes, ds.label_type
    (1, 19, 'labelIds')
    """

    def __init__(self, root, split="train", *, recipe="512x1024", label_type="auto", **kwargs):
        if recipe not in _RECIPES:
            raise ValueError(f"`recipe` must be one of {sorted(_RECIPES)}, got {recipe!r}.")
        if label_type not in ("auto", "trainIds", "labelIds"):
            raise ValueError(
                f"`label_type` must be 'auto', 'trainIds' or 'labelIds', got {label_type!r}."
            )
        self.root = os.fspath(root)
        self.split = split
        image_dir = os.path.join(self.root, "leftImg8bit", split)
        label_dir = os.path.join(self.root, "gtFine", split)
        if not os.path.isdir(image_dir):
            raise DatasetError(f"Cityscapes split {split!r} not found: no directory {image_dir}")
        images = sorted(glob.glob(os.path.join(image_dir, "*", "*" + _IMAGE_SUFFIX)))
        if not images:
            raise DatasetError(
                f"Cityscapes split {split!r} is empty: no */*{_IMAGE_SUFFIX} in {image_dir}"
            )
        if not os.path.isdir(label_dir):
            raise DatasetError(
                f"Cityscapes labels for {split!r} not found: no directory {label_dir}"
            )

        def label_path(image, suffix):
            rel = os.path.relpath(image, image_dir)
            return os.path.join(label_dir, rel[: -len(_IMAGE_SUFFIX)] + suffix)

        train_ids = [label_path(p, _TRAIN_ID_SUFFIX) for p in images]
        label_ids = [label_path(p, _LABEL_ID_SUFFIX) for p in images]
        if label_type == "auto":
            if all(os.path.isfile(p) for p in train_ids):
                label_type = "trainIds"
            elif all(os.path.isfile(p) for p in label_ids):
                label_type = "labelIds"
            else:
                missing = [p for p in train_ids if not os.path.isfile(p)]
                raise DatasetError(
                    f"Cityscapes {split!r}: {len(missing)} image(s) have neither "
                    f"{_TRAIN_ID_SUFFIX} nor {_LABEL_ID_SUFFIX} labels in {label_dir}, "
                    f"e.g. {missing[0]}"
                )
        labels = train_ids if label_type == "trainIds" else label_ids
        require_files(labels, f"Cityscapes {split!r} label")
        self.label_type = label_type
        settings = dataset_defaults(_RECIPES[recipe])
        settings.update(kwargs)
        super().__init__(
            list(zip(images, labels)),
            num_classes=len(CITYSCAPES_CLASSES),
            class_names=CITYSCAPES_CLASSES,
            palette=CITYSCAPES_PALETTE,
            label_map=cityscapes_label_id_map() if label_type == "labelIds" else None,
            name=f"cityscapes/{split}",
            **settings,
        )
