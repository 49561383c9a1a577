"""Reading and checking image / label files (Pillow).

Images are decoded like mmcv's `LoadImageFromFile` (colour, EXIF
orientation applied) and returned as RGB `uint8 [H, W, 3]`; labels like
mmseg's `LoadAnnotations` with the Pillow backend (`'unchanged'`: palette
PNGs give their indices) as `uint8 [H, W]`, then remapped by a 256-entry
lookup table built from `reduce_zero_label` and `label_map` (in the
reference's order: reduce first, then map).

Every failure raises `DatasetError` with the file name in the message.
"""

import concurrent.futures
import os
import warnings

import numpy as np
from PIL import Image, ImageOps

from keras_ann.data.errors import DatasetError, DatasetWarning
from keras_ann.data.rgb_labels import rgb_to_labels

__all__ = [
    "IMAGE_EXTENSIONS",
    "read_image",
    "read_label",
    "make_label_lut",
    "check_label_values",
    "out_of_range_fix",
    "single_channel_message",
    "load_sample",
    "require_files",
    "verify_files",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")

_EXIF_ORIENTATION = 0x0112
_SINGLE_CHANNEL_MODES = ("1", "L", "P", "I", "I;16", "I;16B", "I;16L", "I;16N")


def _path(p):
    return p.decode() if isinstance(p, (bytes, np.bytes_)) else os.fspath(p)


def _rgb8(im, path):
    """A Pillow image as RGB `uint8 [H, W, 3]`.

    16-bit greyscale (modes `I;16*`, and `I` holding 0..65535) keeps its
    high byte, as OpenCV's `imread(IMREAD_COLOR)` (the reference's reader)
    does; Pillow's own `convert("RGB")` would clip it to white. Other
    32-bit integer or float images are refused.
    """
    if im.mode.startswith("I"):
        array = np.asarray(im)
        if array.size and (array.min() < 0 or array.max() > 65535):
            raise DatasetError(
                f"Cannot read image {path}: 32-bit integer pixels (min {array.min()}, max "
                f"{array.max()}) do not fit in 16 bits; save it as an 8- or 16-bit image."
            )
        grey = (array.astype(np.uint32) >> 8).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=-1)
    if im.mode == "F":
        raise DatasetError(
            f"Cannot read image {path}: floating-point pixels (mode F) have no fixed range; "
            "save it as an 8- or 16-bit image."
        )
    if im.mode != "RGB":
        im = im.convert("RGB")
    return np.asarray(im, dtype=np.uint8)


def read_image(path):
    """Reads an image as RGB `uint8 [H, W, 3]` (EXIF orientation applied;
    16-bit greyscale scaled to 8 bits as OpenCV does).

    Args:
        path: str or bytes, the file.

    Returns:
        `np.ndarray` of dtype `uint8`.

    Raises:
        DatasetError: the file is missing, unreadable or corrupt.

    Example:

    >>> import os, tempfile
    >>> from PIL import Image
    >>> path = os.path.join(tempfile.mkdtemp(), "grey.png")
    >>> Image.fromarray(np.full((5, 7), 128, np.uint8)).save(path)  # one channel
    >>> image = read_image(path)
    >>> image.shape, image.dtype.name, int(image[0, 0, 2])
    ((5, 7, 3), 'uint8', 128)
    """
    path = _path(path)
    try:
        with Image.open(path) as im:
            return _rgb8(ImageOps.exif_transpose(im), path)
    except DatasetError:
        raise
    except FileNotFoundError as e:
        raise DatasetError(f"Image file not found: {path}") from e
    except Exception as e:  # PIL raises several types for bad data
        raise DatasetError(f"Cannot read image {path}: {type(e).__name__}: {e}") from e


def read_label(path, palette=None):
    """Reads a label map as `uint8 [H, W]` (palette PNGs give indices).

    Args:
        path: str or bytes, the file.
        palette: optional colour of each class (see `rgb_to_labels`): colour
            label files are then converted to class ids.

    Returns:
        `np.ndarray` of dtype `uint8`.

    Raises:
        DatasetError: missing, unreadable or corrupt file, a label with more
            than one channel, or values above 255.
    """
    path = _path(path)
    try:
        with Image.open(path) as im:
            mode = im.mode
            if mode not in _SINGLE_CHANNEL_MODES:
                if palette is None:
                    raise DatasetError(single_channel_message(path, mode))
                return colour_label(np.asarray(im.convert("RGB")), palette, path)
            array = np.asarray(im)
    except DatasetError:
        raise
    except FileNotFoundError as e:
        raise DatasetError(f"Label file not found: {path}") from e
    except Exception as e:
        raise DatasetError(f"Cannot read label {path}: {type(e).__name__}: {e}") from e
    if array.dtype != np.uint8:
        if array.size and (array.min() < 0 or array.max() > 255):
            raise DatasetError(
                f"Label {path} has values outside 0..255 (min {array.min()}, "
                f"max {array.max()}); labels must fit in 8 bits."
            )
        array = array.astype(np.uint8)
    return array


def require_files(paths, what):
    """Raises `DatasetError` when any of `paths` is not a file.

    Args:
        paths: iterable of file paths.
        what: how the message names them, e.g. `"ADE20K 'train' annotation"`.

    Example:

    >>> require_files(["ann/a.png"], "ADE20K 'val' annotation")
    Traceback (most recent call last):
    ...
    keras_ann.data.errors.DatasetError: ADE20K 'val' annotation files missing: 1 of 1, e.g. ann/a.png
    """
    paths = list(paths)
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise DatasetError(f"{what} files missing: {len(missing)} of {len(paths)}, e.g. {missing[0]}")


def make_label_lut(label_map=None, reduce_zero_label=False):
    """Builds the 256-entry lookup table applied to raw label values.

    `reduce_zero_label` maps 0 to 255 and `k` to `k - 1` (255 stays 255);
    `label_map` (`{old: new}`) is applied afterwards, as in mmseg.

    Args:
        label_map: optional dict of ints.
        reduce_zero_label: bool.

    Returns:
        `np.ndarray` `uint8 [256]`, or `None` when it is the identity.

    Example:

    >>> make_label_lut(reduce_zero_label=True)[[0, 1, 150, 255]]
    array([255,   0, 149, 255], dtype=uint8)
    """
    lut = np.arange(256, dtype=np.int64)
    if reduce_zero_label:
        lut = np.where(lut == 0, 255, lut - 1)
        lut = np.where(lut == 254, 255, lut)
    if label_map:
        before = lut.copy()
        for old, new in label_map.items():
            if not (0 <= int(old) <= 255 and 0 <= int(new) <= 255):
                raise ValueError(f"`label_map` entries must be in 0..255, got {old}: {new}.")
            lut[before == int(old)] = int(new)
    if np.array_equal(lut, np.arange(256)):
        return None
    return lut.astype(np.uint8)


def single_channel_message(path, mode):
    """The message for a label file that is not a single-channel image."""
    hint = (
        " Colour masks (one RGB colour per class) must be converted to class ids: "
        "`keras_ann.data.rgb_to_labels(mask, palette)` (on the command line "
        "`--label-palette`)."
        if mode in ("RGB", "RGBA", "RGBX", "CMYK", "YCbCr")
        else " Float labels must be saved as integer class ids (8-bit PNG)."
        if mode == "F"
        else ""
    )
    return f"Label {path} must be a single-channel image (mode L, P or I), got mode {mode!r}.{hint}"


def colour_label(rgb, palette, path):
    """`rgb_to_labels(rgb, palette)`, its errors as `DatasetError` naming `path`."""
    try:
        return rgb_to_labels(rgb, palette)
    except ValueError as e:
        hint = (
            " On the command line: give every class colour in --label-palette, and mark void colours with "
            "--ignore-colour R,G,B."
            if "not in the palette" in str(e) else ""
        )
        raise DatasetError(f"Colour label {path}: {e}{hint}") from e


def out_of_range_fix(values, num_classes, ignore_index=255):
    """How to fix label values outside `[0, num_classes)` (not the ignore
    index), for the messages of the dataset checks.

    Example:

    >>> out_of_range_fix([11], 11)
    'If 11 marks void (unlabelled) pixels, map it to the ignore index: label_map={11: 255} (`--label-map 11:255`); if the values are classes, raise num_classes to 12.'
    """
    values = sorted(int(v) for v in values)
    void = values[0] if len(values) == 1 else None
    text = (
        f"If {void} marks void (unlabelled) pixels, map it to the ignore index: "
        f"label_map={{{void}: {ignore_index}}} (`--label-map {void}:{ignore_index}`); "
        if void is not None
        else "Map void values to the ignore index with label_map={value: %d} "
        "(`--label-map value:%d`); " % (ignore_index, ignore_index)
    )
    return text + f"if the values are classes, raise num_classes to {values[-1] + 1}."


def check_label_values(label, num_classes, ignore_index=255, path="<label>"):
    """Raises `DatasetError` if `label` holds values outside `[0, num_classes)`
    other than `ignore_index`, naming each value, its pixel count and the fix.

    Args:
        label: integer array.
        num_classes: int.
        ignore_index: int.
        path: file name used in the message.

    Example:

    >>> import numpy as np
    >>> check_label_values(np.array([[0, 3]], np.uint8), 3, path="a.png")
    Traceback (most recent call last):
    ...
    keras_ann.data.errors.DatasetError: Label a.png has values outside [0, 3) other than the ignore index 255: 3 (1 pixels). If 3 marks void (unlabelled) pixels, map it to the ignore index: label_map={3: 255} (`--label-map 3:255`); if the values are classes, raise num_classes to 4.
    """
    counts = np.bincount(label.reshape(-1), minlength=256)
    bad = [int(v) for v in np.nonzero(counts)[0] if v >= num_classes and v != ignore_index]
    if bad:
        listed = ", ".join(f"{v} ({int(counts[v])} pixels)" for v in bad[:8])
        more = f" and {len(bad) - 8} more values" if len(bad) > 8 else ""
        raise DatasetError(
            f"Label {path} has values outside [0, {num_classes}) other than the "
            f"ignore index {ignore_index}: {listed}{more}. "
            + out_of_range_fix(bad, num_classes, ignore_index)
        )


def load_sample(
    image_path, label_path, *, lut=None, num_classes=None, ignore_index=255, palette=None
):
    """Reads and checks one (image, label) pair.

    Args:
        image_path: str or bytes.
        label_path: str or bytes.
        lut: optional `uint8 [256]` table from `make_label_lut`.
        num_classes: optional int; when given the label values are checked.
        ignore_index: int.
        palette: optional class colours for colour label files (see
            `read_label`).

    Returns:
        `(image uint8 [H, W, 3], label uint8 [H, W])`.

    Raises:
        DatasetError: unreadable file, size mismatch (naming both files and
            sizes) or bad label values (naming the file and the values).
    """
    image_path, label_path = _path(image_path), _path(label_path)
    image = read_image(image_path)
    label = read_label(label_path, palette)
    if image.shape[:2] != label.shape[:2]:
        raise DatasetError(
            f"Image and label sizes differ: {image_path} is "
            f"{image.shape[1]}x{image.shape[0]} (WxH) but {label_path} is "
            f"{label.shape[1]}x{label.shape[0]}."
        )
    if lut is not None:
        label = lut[label]
    if num_classes is not None:
        check_label_values(label, num_classes, ignore_index, label_path)
    return image, label


def _header(path, kind, palette=None):
    try:
        with Image.open(path) as im:
            size = im.size
            mode = im.mode
            orientation = 1
            # JPEG/TIFF/WebP keep EXIF in the header; Pillow would decode a
            # whole PNG to find its eXIf chunk, so PNGs are not checked here.
            if kind == "image" and im.format in ("JPEG", "MPO", "TIFF", "WEBP"):
                orientation = im.getexif().get(_EXIF_ORIENTATION, 1)
    except FileNotFoundError as e:
        raise DatasetError(f"{kind.capitalize()} file not found: {path}") from e
    except Exception as e:
        raise DatasetError(f"Cannot read {kind} {path}: {type(e).__name__}: {e}") from e
    if orientation in (5, 6, 7, 8):
        size = size[::-1]
    if kind == "label" and mode not in _SINGLE_CHANNEL_MODES and palette is None:
        raise DatasetError(single_channel_message(path, mode))
    return size


def _verify_pair(pair, level, lut, num_classes, ignore_index, palette=None):
    image_path, label_path = pair
    if level == "full":
        load_sample(
            image_path,
            label_path,
            lut=lut,
            num_classes=num_classes,
            ignore_index=ignore_index,
            palette=palette,
        )
        return
    image_size = _header(image_path, "image")
    label_size = _header(label_path, "label", palette)
    if image_size != label_size:
        raise DatasetError(
            f"Image and label sizes differ: {image_path} is {image_size[0]}x{image_size[1]} "
            f"(WxH) but {label_path} is {label_size[0]}x{label_size[1]}."
        )


def verify_files(
    files,
    level="header",
    *,
    lut=None,
    num_classes=None,
    ignore_index=255,
    skip_bad=False,
    num_workers=None,
    palette=None,
):
    """Checks (image, label) pairs before training starts.

    `"header"` opens every file's header only (unreadable or non-image
    files, image/label size mismatch; about a millisecond a pair);
    `"full"` decodes every pair and checks the label values too;
    `"none"` checks nothing.

    Args:
        files: list of `(image_path, label_path)`.
        level: `"none"`, `"header"` or `"full"`.
        lut: optional label lookup table (for `"full"`).
        num_classes: optional int (for `"full"`).
        ignore_index: int.
        skip_bad: bool; drop bad pairs with a `DatasetWarning` instead of
            raising.
        num_workers: threads (Pillow releases the GIL while decoding).
        palette: optional class colours for colour label files.

    Returns:
        The list of good pairs (all of them unless `skip_bad`).

    Raises:
        DatasetError: naming every bad file (first 10), unless `skip_bad`.
    """
    if level not in ("none", "header", "full"):
        raise ValueError(f"`verify` must be 'none', 'header' or 'full', got {level!r}.")
    files = list(files)
    if level == "none" or not files:
        return files
    workers = num_workers or min(8, (os.cpu_count() or 1) * 2)

    def check(pair):
        try:
            _verify_pair(pair, level, lut, num_classes, ignore_index, palette)
            return None
        except DatasetError as e:
            return str(e)

    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        problems = list(pool.map(check, files))
    bad = [(pair, msg) for pair, msg in zip(files, problems) if msg is not None]
    if not bad:
        return files
    if not skip_bad:
        lines = "\n  ".join(msg for _, msg in bad[:10])
        more = f"\n  ... and {len(bad) - 10} more" if len(bad) > 10 else ""
        raise DatasetError(f"{len(bad)} bad sample(s) found:\n  {lines}{more}")
    for _, msg in bad:
        warnings.warn(f"Skipping bad sample: {msg}", DatasetWarning, stacklevel=3)
    return [pair for pair, msg in zip(files, problems) if msg is None]
