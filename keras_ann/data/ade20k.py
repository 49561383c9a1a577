"""ADE20K (the SceneParsing `ADEChallengeData2016` release, 150 classes)."""

import glob
import os

from keras_ann.data.configs import dataset_defaults
from keras_ann.data.errors import DatasetError
from keras_ann.data.io import require_files
from keras_ann.data.metainfo import ADE20K_CLASSES, ADE20K_PALETTE
from keras_ann.data.pipeline import SegmentationDataset

__all__ = ["ADE20K"]

_SPLITS = {
    "train": "training",
    "training": "training",
    "val": "validation",
    "validation": "validation",
}


class ADE20K(SegmentationDataset):
    """ADE20K / SceneParse150 (mmseg's `ADE20KDataset`).

    Reads `ADEChallengeData2016/images/<split>/*.jpg` with the `.png` of the
    same stem in `ADEChallengeData2016/annotations/<split>/`.  The
    annotations use 0 for "other" and 1..150 for the classes; as mmseg's
    `reduce_zero_label=True`, 0 becomes 255 (ignored) and `k` becomes `k - 1`.

    Args:
        root: `ADEChallengeData2016` itself or its parent directory.
        split: `"train"` / `"training"` or `"val"` / `"validation"`.
        **kwargs: more `SegmentationDataset` arguments (`verify`,
            `skip_bad`, or overrides of the data config `"ade20k"`).

    Example:

    On the release `ADE20K(root, "val")` has 2000 images; here a one-image
    stand-in in the same layout:

    >>> import os, tempfile
    >>> import numpy as np
    >>> from PIL import Image
    >>> root = os.path.join(tempfile.mkdtemp(), "ADEChallengeData2016")
    >>> for d in ("images/validation", "annotations/validation"):
    ...     os.makedirs(os.path.join(root, d))
    >>> stem = "ADE_val_00000001"
    >>> Image.fromarray(np.zeros((32, 48, 3), np.uint8)).save(f"{root}/images/validation/{stem}.jpg")
    >>> Image.fromarray(np.full((32, 48), 3, np.uint8)).save(f"{root}/annotations/validation/{stem}.png")
    >>> ds = ADE20K(os.path.dirname(root), "val")
    >>> len(ds), ds.num_classes, ds.class_names[2]
    (1, 150, 'sky')
    """

    def __init__(self, root, split="train", **kwargs):
        if split not in _SPLITS:
            raise ValueError(f"`split` must be one of {sorted(_SPLITS)}, got {split!r}.")
        root = os.fspath(root)
        nested = os.path.join(root, "ADEChallengeData2016")
        self.root = nested if os.path.isdir(nested) else root
        self.split = _SPLITS[split]
        image_dir = os.path.join(self.root, "images", self.split)
        label_dir = os.path.join(self.root, "annotations", self.split)
        if not os.path.isdir(image_dir):
            raise DatasetError(f"ADE20K split {split!r} not found: no directory {image_dir}")
        if not os.path.isdir(label_dir):
            raise DatasetError(
                f"ADE20K annotations for {split!r} not found: no directory {label_dir}"
            )
        images = sorted(glob.glob(os.path.join(image_dir, "*.jpg")))
        if not images:
            raise DatasetError(f"ADE20K split {split!r} is empty: no *.jpg in {image_dir}")
        labels = [
            os.path.join(label_dir, os.path.splitext(os.path.basename(p))[0] + ".png")
            for p in images
        ]
        require_files(labels, f"ADE20K {split!r} annotation")
        settings = dataset_defaults("ade20k")
        settings.update(kwargs)
        super().__init__(
            list(zip(images, labels)),
            num_classes=len(ADE20K_CLASSES),
            class_names=ADE20K_CLASSES,
            palette=ADE20K_PALETTE,
            name=f"ade20k/{self.split}",
            **settings,
        )
