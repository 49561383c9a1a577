"""Pascal VOC 2012 segmentation, with the SBD-augmented set."""

import os

from keras_ann.data.configs import dataset_defaults
from keras_ann.data.errors import DatasetError
from keras_ann.data.io import require_files
from keras_ann.data.metainfo import VOC_CLASSES, VOC_PALETTE
from keras_ann.data.pipeline import SegmentationDataset

__all__ = ["PascalVOC"]

# split -> list of (label directory, list file)
_SPLITS = {
    "train": [("SegmentationClass", "train.txt")],
    "val": [("SegmentationClass", "val.txt")],
    "trainval": [("SegmentationClass", "trainval.txt")],
    "aug": [("SegmentationClassAug", "aug.txt")],
    # configs/_base_/datasets/pascal_voc12_aug.py: train.txt on
    # SegmentationClass concatenated with aug.txt on SegmentationClassAug.
    "train_aug": [("SegmentationClass", "train.txt"), ("SegmentationClassAug", "aug.txt")],
}
_ALIASES = {"trainaug": "train_aug", "voc12aug": "train_aug", "aug_train": "train_aug"}


def _find_voc_root(root):
    for candidate in (
        root,
        os.path.join(root, "VOC2012"),
        os.path.join(root, "VOCdevkit", "VOC2012"),
    ):
        if os.path.isdir(os.path.join(candidate, "JPEGImages")):
            return candidate
    raise DatasetError(
        f"Pascal VOC 2012 not found: no JPEGImages/ in {root}, {root}/VOC2012 or "
        f"{root}/VOCdevkit/VOC2012"
    )


def _read_ids(list_file):
    if not os.path.isfile(list_file):
        raise DatasetError(f"Pascal VOC split list not found: {list_file}")
    with open(list_file) as f:
        ids = [line.strip().split()[0] for line in f if line.strip()]
    if not ids:
        raise DatasetError(f"Pascal VOC split list is empty: {list_file}")
    return ids


class PascalVOC(SegmentationDataset):
    """Pascal VOC 2012, 21 classes, 255 ignored (mmseg's `PascalVOCDataset`).

    Reads `VOC2012/JPEGImages/<id>.jpg` with `<id>.png` from
    `SegmentationClass/` (palette PNGs, read as indices) for the ids of
    `ImageSets/Segmentation/<split>.txt`.  The SBD-augmented set, as mmseg's
    `tools/dataset_converters/voc_aug.py` prepares it, lives in
    `SegmentationClassAug/` with `ImageSets/Segmentation/aug.txt`; the
    `"train_aug"` split is the reference's voc12aug training set: `train.txt`
    (on `SegmentationClass`) followed by `aug.txt` (on
    `SegmentationClassAug`).

    Args:
        root: `VOCdevkit/VOC2012`, `VOCdevkit`, or the directory holding
            `VOCdevkit/`.
        split: `"train"`, `"val"`, `"trainval"`, `"aug"` or `"train_aug"`
            (aliases `"trainaug"`, `"voc12aug"`).
        **kwargs: more `SegmentationDataset` arguments (or overrides of
            the data config `"pascal_voc12_aug"`).

    Example:

    With the SBD set prepared, `PascalVOC(root, "train_aug")` has 12046
    images (1464 + 10582); here a stand-in with one image in each list:

    >>> import os, tempfile
    >>> import numpy as np
    >>> from PIL import Image
    >>> root = os.path.join(tempfile.mkdtemp(), "VOCdevkit", "VOC2012")
    >>> for d in ("JPEGImages", "SegmentationClass", "SegmentationClassAug", "ImageSets/Segmentation"):
    ...     os.makedirs(os.path.join(root, d))
    >>> for i, (labels, listed) in enumerate([("SegmentationClass", "train"), ("SegmentationClassAug", "aug")]):
    ...     Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(f"{root}/JPEGImages/2007_00000{i}.jpg")
    ...     Image.fromarray(np.full((20, 30), 15, np.uint8)).save(f"{root}/{labels}/2007_00000{i}.png")
    ...     with open(f"{root}/ImageSets/Segmentation/{listed}.txt", "w") as f:
    ...         print(f"2007_00000{i}", file=f)
    >>> ds = PascalVOC(os.path.dirname(os.path.dirname(root)), "train_aug")
    >>> len(ds), ds.num_classes, ds.class_names[15]
    (2, 21, 'person')
    """

    def __init__(self, root, split="train", **kwargs):
        split = _ALIASES.get(split, split)
        if split not in _SPLITS:
            raise ValueError(
                f"`split` must be one of {sorted(_SPLITS) + sorted(_ALIASES)}, got {split!r}."
            )
        self.root = _find_voc_root(os.fspath(root))
        self.split = split
        image_dir = os.path.join(self.root, "JPEGImages")
        files = []
        for label_dirname, list_name in _SPLITS[split]:
            label_dir = os.path.join(self.root, label_dirname)
            if not os.path.isdir(label_dir):
                raise DatasetError(f"Pascal VOC labels not found: no directory {label_dir}")
            ids = _read_ids(os.path.join(self.root, "ImageSets", "Segmentation", list_name))
            for i in ids:
                files.append(
                    (os.path.join(image_dir, i + ".jpg"), os.path.join(label_dir, i + ".png"))
                )
        require_files((p for pair in files for p in pair), f"Pascal VOC {split!r} image and label")
        settings = dataset_defaults("pascal_voc12_aug")
        settings.update(kwargs)
        super().__init__(
            files,
            num_classes=len(VOC_CLASSES),
            class_names=VOC_CLASSES,
            palette=VOC_PALETTE,
            name=f"pascal_voc/{split}",
            **settings,
        )
