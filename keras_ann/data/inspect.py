"""What `keras-ann train` would make of a dataset, before any training.

`inspect_dataset` reads the headers of the images and every label file once
(the label scan's reader and cache, `keras_ann.data.label_scan`) and
reports what a newcomer has to get right: the images' sizes and channels,
the label values found and the encoding they suggest (class ids, 0/255
binary masks, a void value, RGB colour masks), the scale training and
testing would use, and the flags to give. `data_scale` is the one rule for
the own-data default scale: the images' own (median) size, shrunk only when
the long side passes `MAX_LONG_SIDE`.

Example:

>>> import os, tempfile
>>> import numpy as np
>>> from PIL import Image
>>> root = tempfile.mkdtemp()
>>> for kind in ("img_dir/train", "ann_dir/train"):
...     os.makedirs(os.path.join(root, kind))
>>> for i in range(2):
...     Image.fromarray(np.zeros((512, 512, 3), np.uint8)).save(f"{root}/img_dir/train/{i}.png")
...     mask = np.zeros((512, 512), np.uint8); mask[100:200] = 255
...     Image.fromarray(mask).save(f"{root}/ann_dir/train/{i}.png")
>>> report = inspect_dataset("folder", root, "train", verbose=0)
>>> report.scale, report.encoding
((512, 512), '0/255 binary masks')
>>> report.flags()
['--num-classes 2', '--label-map 255:1']
"""

import collections
import dataclasses
import os

from PIL import Image

__all__ = ["MAX_LONG_SIDE", "DataReport", "data_scale", "dataset_scale", "image_sizes", "inspect_dataset"]

# Own data is trained and tested at its own size up to this long side (px);
# larger images are shrunk to it, keeping their aspect ratio.
MAX_LONG_SIDE = 1024


def image_sizes(paths):
    """`collections.Counter` of the `(height, width)` of image files, read
    from their headers (EXIF rotation applied, as the loader reads them)."""
    sizes = collections.Counter()
    for path in paths:
        with Image.open(path) as image:
            width, height = image.size
            orientation = image.getexif().get(0x0112, 1)
        sizes[(width, height) if orientation in (5, 6, 7, 8) else (height, width)] += 1
    return sizes


def data_scale(sizes, max_long=MAX_LONG_SIDE):
    """The `(long, short)` scale for images of `sizes` (a `Counter` of
    `(height, width)`, or a list of them): their median size, shrunk to
    `max_long` on the long side when larger, keeping the aspect ratio.

    Example:

    >>> data_scale([(360, 480), (360, 480), (720, 960)])
    (480, 360)
    >>> data_scale([(3000, 4000)])
    (1024, 768)
    """
    sizes = list(sizes.elements()) if isinstance(sizes, collections.Counter) else list(sizes)
    if not sizes:
        raise ValueError("data_scale: no image sizes given.")
    long_sides = sorted(max(h, w) for h, w in sizes)
    short_sides = sorted(min(h, w) for h, w in sizes)
    long, short = long_sides[len(sizes) // 2], short_sides[len(sizes) // 2]
    if long > max_long:
        long, short = max_long, max(1, round(short * max_long / long))
    return int(long), int(short)


def dataset_scale(config, root, split="train", **options):
    """`(scale, sizes)`: `data_scale` of the images of a dataset's split
    (read from their headers) and the `Counter` of their sizes.

    Args:
        config: a data config name.
        root: the dataset root.
        split: the split whose images decide.
        **options: `build_dataset` options (the folder layout, classes).
    """
    from keras_ann.data.configs import build_dataset

    dataset = build_dataset(config, root, split, **options)
    sizes = image_sizes(path for path, _ in dataset.files)
    return data_scale(sizes), sizes


@dataclasses.dataclass
class DataReport:
    """What `inspect_dataset` found. Attributes: `name` (the dataset),
    `files`, `image_sizes` and `image_modes` (`Counter`s), `label_values`
    (raw value -> pixels, grey-level label files), `colours` (RGB colour ->
    pixels, colour label files), `encoding` (in words), `num_classes` and
    `label_map` (what the labels suggest), `scale` (`(long, short)`),
    `problems` and `notes` (the label scan's, for the suggested
    settings)."""

    name: str
    files: int
    image_sizes: collections.Counter
    image_modes: collections.Counter
    label_values: dict
    colours: dict
    encoding: str
    num_classes: int
    label_map: tuple
    label_palette: tuple
    scale: tuple
    crop: tuple
    problems: list
    notes: list

    def flags(self):
        """The data flags of `keras-ann train` this report suggests."""
        flags = [f"--num-classes {self.num_classes}"]
        if self.label_map:
            flags.append("--label-map " + " ".join(f"{raw}:{new}" for raw, new in self.label_map))
        if self.label_palette:
            flags.append("--label-palette " + " ".join(",".join(map(str, c)) for c in self.label_palette))
        return flags

    def summary(self):
        """The report as lines of text."""
        sizes = ", ".join(f"{w}x{h} ({n})" for (h, w), n in self.image_sizes.most_common(4))
        more = f" and {len(self.image_sizes) - 4} more sizes" if len(self.image_sizes) > 4 else ""
        modes = ", ".join(f"{mode} ({n})" for mode, n in self.image_modes.most_common())
        lines = [
            f"{self.name}: {self.files} image/label pairs",
            f"images: {sizes}{more} (width x height); modes {modes}",
        ]
        if self.colours:
            shown = ", ".join(f"{r},{g},{b}" for (r, g, b) in list(self.colours)[:12])
            lines.append(f"labels: RGB colour masks, {len(self.colours)} colours: {shown}")
        else:
            total = max(sum(self.label_values.values()), 1)
            shown = ", ".join(f"{v} ({100 * n / total:.1f} %)" for v, n in sorted(self.label_values.items())[:20])
            more = f" and {len(self.label_values) - 20} more" if len(self.label_values) > 20 else ""
            lines.append(f"labels: values {shown}{more}")
        lines += [
            f"encoding: {self.encoding}",
            f"scale: {self.scale[0]}x{self.scale[1]} (long x short: the images' own size"
            + (f", shrunk to {MAX_LONG_SIDE} px on the long side" if max(max(s) for s in self.image_sizes) > MAX_LONG_SIDE
               else "") + "; --scale LONG SHORT changes it)",
            f"crop: {self.crop[0]}x{self.crop[1]} (the training crop, at most the scaled image)",
        ]  # fmt: skip
        lines += [f"problem: {p}" for p in self.problems] + [f"note: {n}" for n in self.notes]
        lines.append("suggested flags: " + " ".join(self.flags()))
        return lines


def _encoding(values, colours, num_classes=None, ignore_index=255):
    """`(encoding in words, num_classes, label_map, label_palette)` the raw
    label values (or colours) suggest."""
    from keras_ann.checks import is_binary_mask_encoding

    if colours:
        palette = tuple(sorted(colours, key=lambda c: -colours[c]))
        return f"RGB colour masks ({len(palette)} colours, most frequent first)", len(palette), None, palette
    present = sorted(values)
    if is_binary_mask_encoding(present, 2, ignore_index) and num_classes in (None, 2):
        return f"0/{ignore_index} binary masks", 2, ((ignore_index, 1),), None
    classes = [v for v in present if v != ignore_index]
    k = num_classes or (max(classes) + 1 if classes else 1)
    void = f", void {ignore_index} (ignored)" if ignore_index in present else ""
    gaps = sorted(set(range(k)) - set(classes))
    missing = f"; absent: {gaps[:10]}" if gaps else ""
    return f"class ids 0..{k - 1}{void}{missing}", k, None, None


def inspect_dataset(config, root, split="train", *, crop_size=None, verbose=1, **options):
    """What `train` would see in `split` of a dataset.

    Args:
        config: a data config name (`"folder"`, `"camvid"`, ...).
        root: the dataset root.
        split: the split to read.
        crop_size: the recipe's training crop `(h, w)` (default: the data
            config's).
        verbose: 1 shows the label scan's progress bar.
        **options: `build_dataset` options (the folder layout, and
            `num_classes`, `label_map`, ... when known; otherwise they are
            inferred from the labels).

    Returns:
        A `DataReport`.
    """
    from keras_ann.data.configs import build_dataset, get_data_config
    from keras_ann.data.label_scan import LabelScan, scan_label_files

    config = get_data_config(config)
    known = options.get("num_classes")
    listing = dict(options, verify="none")  # the files only: their contents are what we report
    if config.classes is None and known is None:  # the files only: the classes are what we look for
        listing.update(num_classes=255, class_names=None, palette=None)
    dataset = build_dataset(config, root, split, **listing)
    images, labels = zip(*dataset.files)
    entries, cached = scan_label_files(labels, verbose=verbose, palette=options.get("label_palette"))
    values, colours = collections.Counter(), collections.Counter()
    for entry in entries:
        for value, count in (entry.get("values") or {}).items():
            values[int(value)] += count
        if not entry.get("grey", True):
            for r, g, b, count in entry.get("colours", []):
                colours[(r, g, b)] += count
    ignore = options.get("ignore_index", 255)
    encoding, k, label_map, label_palette = _encoding(dict(values), dict(colours), known, ignore)
    label_map = tuple(options["label_map"].items()) if options.get("label_map") else label_map
    scan = LabelScan(
        labels, entries, k, ignore_index=ignore, label_map=dict(label_map) if label_map else None,
        reduce_zero_label=options.get("reduce_zero_label", False), name=f"{config.name} {split}", cached=cached,
    )  # fmt: skip
    sizes = image_sizes(images)
    scale = data_scale(sizes)
    if crop_size is None and config.loader == "folder":  # as train chooses it for own data
        from keras_ann.data.defaults import crop_and_batch

        crop = crop_and_batch(scale, k or 2)[0]
    else:
        crop = tuple(min(side, scale[1]) for side in crop_size or config.crop_size)  # within the scaled image
    modes = collections.Counter()
    for path in images:
        with Image.open(path) as image:
            modes[image.mode] += 1
    return DataReport(
        name=f"{config.name} {split} ({os.path.normpath(os.fspath(root))})",
        files=len(images), image_sizes=sizes, image_modes=modes, label_values=dict(values), colours=dict(colours),
        encoding=encoding, num_classes=k, label_map=label_map, label_palette=label_palette, scale=scale, crop=crop,
        problems=list(scan.problems), notes=list(scan.notes),
    )  # fmt: skip
