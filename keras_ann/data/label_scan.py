"""A scan of a dataset's label files before training: class frequencies and label mistakes.

`check_dataset_labels(train_data, val_data)` reads every label file of the
datasets once, prints a class-frequency table (pixels and images per class)
and refuses, before the first training step, the label mistakes that would
otherwise train silently or fail only after hours (e.g. in the first
evaluation):

- 0/255 binary masks with `num_classes=2` (255 is the ignore value, so the
  foreground would be ignored): fix `label_map={255: 1}` (`--label-map 255:1`);
- RGB colour masks (3-channel label files): convert them with
  `keras_ann.data.rgb_to_labels` (`--label-palette`);
- values >= `num_classes` other than the ignore value, with the pixel and
  file counts per value and some file names;
- non-integer (float) label files, values above 255, unreadable files.

It warns (`DatasetWarning`) when a class never occurs in the training
labels, when label 0 looks like void (frequent in a dataset of many classes,
or a thin frame along the image borders: hint `reduce_zero_label=True`,
`--reduce-zero-label`), and when masks look interpolated (pixels on ramps
between two classes, as a bilinear resize by a factor up to about 3 leaves
them; larger factors leave staircases this check does not see, but their
in-between values are still refused when they are not classes).

**Cache.** What is read from each file (its raw value histogram, before
`label_map` / `reduce_zero_label`, so one scan serves every label setting)
is kept in one JSON file per list of label files, in
`<cache>/label_scans/<hash of the label paths>.json`, where `<cache>` is
`$KERAS_ANN_HOME` or `~/.cache/keras_ann` (the preset cache; the dataset
directory may be read-only). A file whose size or modification time
(nanoseconds) changed since is read again; the others are not. Pass
`cache_dir=False` to read every file each time.
"""

import concurrent.futures
import hashlib
import json
import os
import tempfile
import warnings

import numpy as np
from PIL import Image

from keras_ann.checks import binary_mask_fix, is_binary_mask_encoding
from keras_ann.data.errors import DatasetError, DatasetWarning
from keras_ann.data.io import colour_label, make_label_lut, out_of_range_fix

__all__ = ["LabelScan", "check_dataset_labels", "scan_label_files", "scan_labels"]

_VERSION = 2
_COLOUR_MODES = ("RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "LAB", "HSV", "LA", "PA", "La")
_EXAMPLES = 3
# A pixel strictly between its two neighbours (along a row or a column) is
# on a ramp between two classes: a nearest-neighbour mask has such pixels
# only where a region is one pixel thin; a bilinearly resized one at almost
# every class boundary.
_RAMP_FRACTION = 0.25
_RAMP_MIN_PIXELS = 32


def _ramps(values):
    """(ramp pixels, boundary pixels) along the rows and columns (every
    fourth of them in images of 256 pixels and more: the fractions are
    what matters)."""
    step = 4 if min(values.shape) >= 256 else 1
    v = values.astype(np.int16)
    ramps = edges = 0
    for d in (np.diff(v[::step], axis=1), np.diff(v[:, ::step], axis=0).T):
        rising, falling = d > 0, d < 0
        ramps += int(np.count_nonzero(rising[:, :-1] & rising[:, 1:]))
        ramps += int(np.count_nonzero(falling[:, :-1] & falling[:, 1:]))
        edges += int(np.count_nonzero(d))
    return ramps, edges


def _frame(values):
    if min(values.shape) < 3:
        return values.reshape(-1)
    return np.concatenate([values[0], values[-1], values[1:-1, 0], values[1:-1, -1]])


def _histogram(values):
    values = values.reshape(-1)
    if values.size and values.min() >= 0 and values.max() < 65536:
        counts = np.bincount(values.astype(np.int64))
        keys = np.nonzero(counts)[0]
        return {int(k): int(counts[k]) for k in keys}
    keys, counts = np.unique(values, return_counts=True)
    return {int(k): int(c) for k, c in zip(keys, counts)}


def _read_entry(path, palette=None):
    """What the scan keeps of one label file (JSON-serialisable)."""
    histogram = None
    try:
        with Image.open(path) as im:
            mode = im.mode
            array = np.asarray(im)
            if mode in ("L", "P"):
                histogram = im.histogram()  # in C, faster than NumPy
            if palette is not None and (array.ndim == 3 or mode in _COLOUR_MODES):
                array = colour_label(np.asarray(im.convert("RGB")), palette, path)
    except DatasetError as e:
        return {"error": str(e)}
    except FileNotFoundError:
        return {"error": "file not found"}
    except Exception as e:  # PIL raises several types for bad data
        return {"error": f"{type(e).__name__}: {e}"}
    entry = {"mode": mode, "shape": list(array.shape[:2])}
    if array.ndim == 3 or (mode in _COLOUR_MODES and palette is None):
        colours = array.reshape(-1, array.shape[-1]) if array.ndim == 3 else array.reshape(-1, 1)
        rgb = colours[:, :3] if colours.shape[1] >= 3 else colours[:, :1].repeat(3, 1)
        entry["grey"] = bool(np.all(rgb == rgb[:, :1]))
        rgb = rgb.astype(np.int64)
        unique, counts = np.unique((rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2], return_counts=True)
        order = np.argsort(-counts)[:8]
        entry["colours"] = [
            [int(unique[i]) >> 16, (int(unique[i]) >> 8) & 255, int(unique[i]) & 255, int(counts[i])]
            for i in order
        ]
        entry["num_colours"] = int(len(unique))
        return entry
    if array.dtype.kind == "b":
        array = array.astype(np.uint8)
    if array.dtype.kind == "f":
        finite = np.isfinite(array)
        integral = finite & (array == np.round(np.where(finite, array, 0)))
        if not np.all(integral):
            bad = array[~integral]
            entry["non_integer"] = int(bad.size)
            entry["non_integer_examples"] = [float(x) for x in np.unique(bad)[:3]]
            return entry
        array = array.astype(np.int64)
    if histogram is not None and array.dtype == np.uint8 and array.ndim == 2:
        entry["values"] = {str(k): int(c) for k, c in enumerate(histogram) if c}
    else:
        entry["values"] = {str(k): c for k, c in _histogram(array).items()}
    frame = _frame(array)
    entry["frame_zero"] = float(np.count_nonzero(frame == 0) / max(frame.size, 1))
    entry["ramps"], entry["edges"] = _ramps(array)
    return entry


def _stat(path):
    try:
        st = os.stat(path)
        return [int(st.st_size), int(st.st_mtime_ns)]
    except OSError:
        return None


def _cache_path(cache_dir, paths, palette=None):
    if cache_dir is False:
        return None
    if cache_dir is None:
        from keras_ann.weights.download import cache_dir as default_cache_dir

        cache_dir = os.path.join(default_cache_dir(), "label_scans")
    key = "\0".join(os.path.abspath(p) for p in paths)
    if palette is not None:  # entries of colour files are then class ids
        items = palette.items() if isinstance(palette, dict) else ((c, i) for i, c in enumerate(palette))
        key += "\0palette:" + repr(sorted((tuple(int(c) for c in colour), int(i)) for colour, i in items))
    digest = hashlib.sha256(key.encode()).hexdigest()
    return os.path.join(os.fspath(cache_dir), digest[:32] + ".json")


def _read_cache(path):
    if path is None:
        return {}
    try:
        with open(path) as f:
            cached = json.load(f)
        if cached.get("version") == _VERSION and isinstance(cached.get("files"), dict):
            return cached["files"]
    except (OSError, ValueError, AttributeError):
        pass  # absent or damaged: scanned again and rewritten
    return {}


def _write_cache(path, files):
    directory = os.path.dirname(path)
    try:
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump({"version": _VERSION, "files": files}, f)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError as e:
        warnings.warn(f"Label scan not cached ({path}): {e}", DatasetWarning, stacklevel=3)


def scan_label_files(paths, *, cache_dir=None, verbose=1, num_workers=None, palette=None):
    """Reads every label file once (or takes it from the cache).

    Args:
        paths: label file paths.
        cache_dir: directory of the scan cache (`None`: the default, see
            the module docstring; `False`: no cache).
        verbose: 1 shows a progress bar while files are read, 0 nothing.
        num_workers: reading threads (Pillow releases the GIL).
        palette: optional class colours: colour label files are converted
            with `rgb_to_labels` (unknown colours are an error).

    Returns:
        `(entries, cached)`: a list of per-file dicts (raw values, before any
        label mapping) in the order of `paths`, and how many of them came
        from the cache.
    """
    import keras

    paths = [os.fspath(p) for p in paths]
    cache_path = _cache_path(cache_dir, paths, palette)
    cached = _read_cache(cache_path)
    stats = [_stat(p) for p in paths]
    entries = [None] * len(paths)
    todo = []
    for i, (path, stat) in enumerate(zip(paths, stats)):
        old = cached.get(path)
        if stat is not None and isinstance(old, dict) and old.get("stat") == stat:
            entries[i] = old
        else:
            todo.append(i)
    if todo:
        bar = keras.utils.Progbar(len(todo), interval=0.5, unit_name="label") if verbose else None
        workers = num_workers or min(8, (os.cpu_count() or 1) * 2)
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            for done, (i, entry) in enumerate(
                zip(todo, pool.map(lambda i: _read_entry(paths[i], palette), todo)), 1
            ):
                entry["stat"] = stats[i]
                entries[i] = entry
                if bar is not None:
                    bar.update(done)
        if cache_path is not None:
            _write_cache(
                cache_path,
                {p: e for p, e in zip(paths, entries) if e.get("stat") is not None and "error" not in e},
            )
    return entries, len(paths) - len(todo)


def _names(paths, total=None, limit=_EXAMPLES):
    paths = list(paths)
    total = len(paths) if total is None else int(total)
    more = f" and {total - limit} more" if total > limit else ""
    return ", ".join(paths[:limit]) + more


def _percent(part, whole):
    return f"{100.0 * part / whole:.1f}%" if whole else "-"


class LabelScan:
    """What the label files of one dataset hold, after its label mapping.

    Built by `scan_labels`. Attributes:

    - `pixels`: `int64 [256]`, pixels per label value (after `label_map` /
      `reduce_zero_label`);
    - `images`: `int64 [256]`, label files holding each value;
    - `problems`: messages of the mistakes that make training wrong (each
      names the cause, the files and the fix); `raise_for_problems()`
      raises them;
    - `notes`: messages of what looks suspicious (a label 0 that looks like
      void, interpolated masks);
    - `absent`: the classes that never occur (`absent_note()` words it).

    Args:
        paths: the label files.
        entries: their scan entries (`scan_label_files`).
        num_classes: int.
        ignore_index: int.
        label_map: optional `{raw: new}`.
        reduce_zero_label: bool.
        class_names: optional names for the table.
        name: the dataset's name, for the messages.
        cached: how many entries came from the cache.
        skip_bad: bool; mistakes confined to some files (unreadable, colour,
            out-of-range values, ...) become notes, as the pipeline skips
            those files.
    """

    def __init__(
        self,
        paths,
        entries,
        num_classes,
        *,
        ignore_index=255,
        label_map=None,
        reduce_zero_label=False,
        class_names=None,
        name="dataset",
        cached=0,
        skip_bad=False,
    ):
        self.paths = list(paths)
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self.label_map = dict(label_map) if label_map else None
        self.reduce_zero_label = bool(reduce_zero_label)
        self.class_names = (
            tuple(class_names) if class_names else tuple(str(i) for i in range(self.num_classes))
        )
        self.name = name
        self.cached = int(cached)
        self.skip_bad = bool(skip_bad)
        lut = make_label_lut(self.label_map, self.reduce_zero_label)
        self._lut = np.arange(256) if lut is None else lut.astype(np.int64)
        self.pixels = np.zeros(256, np.int64)
        self.images = np.zeros(256, np.int64)
        self.problems, self.notes = [], []
        self._collect(entries)

    def _collect(self, entries):
        errors, colour, grey, floats, wide = [], [], [], [], {}
        examples = {v: [] for v in range(256)}
        ramp_files, zero_frame_files, raw_zero_files = [], 0, 0
        for path, entry in zip(self.paths, entries):
            if "error" in entry:
                errors.append(f"{path} ({entry['error']})")
            elif "colours" in entry:
                (grey if entry["grey"] else colour).append((path, entry))
            elif "non_integer" in entry:
                floats.append((path, entry))
            else:
                raw = {int(k): c for k, c in entry["values"].items()}
                over = {k: c for k, c in raw.items() if k < 0 or k > 255}
                for k, c in over.items():
                    count = wide.setdefault(k, [0, []])
                    count[0] += c
                    count[1].append(path)
                present = set()
                for k, c in raw.items():
                    if 0 <= k <= 255:
                        v = int(self._lut[k])
                        self.pixels[v] += c
                        present.add(v)
                for v in present:
                    self.images[v] += 1
                    if len(examples[v]) < _EXAMPLES + 1:
                        examples[v].append(path)
                ramps = entry["ramps"]
                if ramps >= _RAMP_MIN_PIXELS and ramps > _RAMP_FRACTION * max(entry["edges"], 1):
                    ramp_files.append(path)
                if 0 in raw:
                    raw_zero_files += 1
                    if entry["frame_zero"] >= 0.9 and raw[0] <= 0.25 * sum(raw.values()):
                        zero_frame_files += 1
        n = len(self.paths)
        where = f"in {self.name}"
        if errors:
            self._file_problem(
                f"{len(errors)} of {n} label files {where} cannot be read or converted: {_names(errors)}. "
                "Replace, fix or remove them."
            )
        if colour:
            path, entry = colour[0]
            common = ", ".join(str(tuple(c[:3])) for c in entry["colours"][:5])
            self._file_problem(
                f"{len(colour)} of {n} label files {where} are colour images (mode {entry['mode']!r}), "
                f"e.g. {_names(p for p, _ in colour)}: labels must be single-channel class ids, "
                f"one value per class. Convert colour masks with "
                f"`keras_ann.data.rgb_to_labels(mask, palette)` (palette: the RGB colour of each "
                f"class; on the command line `--label-palette`, and `--ignore-colour` for void "
                f"colours); the most frequent colours in "
                f"{path} are {common} ({entry['num_colours']} colours in all)."
            )
        if grey:
            self._file_problem(
                f"{len(grey)} of {n} label files {where} are stored with colour channels "
                f"(mode {grey[0][1]['mode']!r}) that all hold the same value, e.g. "
                f"{_names(p for p, _ in grey)}: save them as single-channel PNGs, e.g. "
                f"`Image.open(path).convert('L').save(path)`."
            )
        if floats:
            count = sum(e["non_integer"] for _, e in floats)
            values = floats[0][1]["non_integer_examples"]
            self._file_problem(
                f"{len(floats)} of {n} label files {where} hold non-integer values "
                f"({count} pixels, e.g. {values} in {floats[0][0]}): labels are class ids. Masks "
                f"resized with bilinear interpolation or normalised get such values: resize masks "
                f"with nearest-neighbour interpolation and save them as 8-bit PNGs."
            )
        if wide:
            parts = "; ".join(
                f"{k} ({c} pixels in {len(ps)} files, e.g. {_names(ps)})"
                for k, (c, ps) in sorted(wide.items())[:5]
            )
            self._file_problem(
                f"label files {where} hold values outside 0..255: {parts}. Labels must fit in "
                f"8 bits: map them to class ids 0..{self.num_classes - 1} (and {self.ignore_index} "
                f"for void) and save 8-bit PNGs."
            )
        self._check_values(examples, n, ramp_files)
        if ramp_files and not any("interpolat" in p for p in self.problems):
            self.notes.append(
                f"{len(ramp_files)} of {n} label files {where} look interpolated (many pixels lie "
                f"between two classes at class boundaries, as after a bilinear resize or JPEG), "
                f"e.g. {_names(ramp_files)}: those pixels get wrong classes. Resize masks with "
                f"nearest-neighbour interpolation and save them as PNG."
            )
        self._check_zero(raw_zero_files, zero_frame_files, n)

    def _check_values(self, examples, n, ramp_files):
        k, ignore = self.num_classes, self.ignore_index
        where = f"in {self.name}"
        present = [v for v in range(256) if self.pixels[v]]
        if present and not any(self.pixels[:k]):
            # Trained on, the loss was 0 at every step and the run "succeeded".
            values = ", ".join(str(v) for v in present[:8])
            self.problems.append(
                f"No label file {where} holds a labelled pixel: all {int(self.pixels.sum())} pixels of its "
                f"{n} files are {values} (ignore index {ignore}; classes are 0..{k - 1}), so there is "
                f"nothing to learn or score. Map the values that mark classes to class ids (--label-map "
                f"RAW:NEW, e.g. {present[0]}:1, or --label-palette for colour masks), or fix the label "
                f"files."
            )
            return
        if 0 <= ignore <= 255 and is_binary_mask_encoding(present, k, ignore):
            self.problems.append(
                f"The labels {where} hold only 0 and {ignore} ({ignore} in {self.images[ignore]} of {n} "
                f"files, {_percent(self.pixels[ignore], self.pixels.sum())} of the pixels, e.g. "
                f"{_names(examples[ignore], self.images[ignore])}), but {ignore} is the ignore "
                f"index: with num_classes=2 the foreground would be ignored and class 1 never "
                f"learnt. {binary_mask_fix(ignore)}"
            )
            return
        bad = [v for v in present if v >= k and v != ignore]
        if not bad:
            return
        parts = "; ".join(
            f"{v} ({self.pixels[v]} pixels in {self.images[v]} files, "
            f"e.g. {_names(examples[v], self.images[v])})"
            for v in bad[:8]
        )
        more = f"; and {len(bad) - 8} more values" if len(bad) > 8 else ""
        fix = out_of_range_fix(bad, k, ignore)
        if len(bad) >= 8 or ramp_files:
            fix = (
                f"{len(bad)} distinct values out of range"
                + (f", and {len(ramp_files)} files with ramps between classes" if ramp_files else "")
                + ": the masks look resized with interpolation or saved as JPEG; resize masks "
                "with nearest-neighbour interpolation and save them as PNG. Otherwise: " + fix
            )
        elif bad == [k] and self.pixels[0] and not self.reduce_zero_label and self._lut[0] == 0:
            fix = (
                f"The values run 0..{k} ({k + 1} values for {k} classes): if 0 means "
                f"'unlabelled/other' (as in ADE20K), pass reduce_zero_label=True "
                f"(`--reduce-zero-label`), which ignores 0 and maps 1..{k} to 0..{k - 1}. "
                "Otherwise: " + fix
            )
        self._file_problem(
            f"The labels {where} hold values outside [0, {k}) other than the ignore index "
            f"{ignore}: {parts}{more}. {fix}"
        )

    def _check_zero(self, raw_zero_files, zero_frame_files, n):
        if self.reduce_zero_label or self._lut[0] != 0 or not raw_zero_files:
            return
        hint = (
            "If 0 means 'unlabelled/other', pass reduce_zero_label=True (`--reduce-zero-label`): "
            f"0 is then ignored and 1..{self.num_classes} become the classes 0..{self.num_classes - 1}."
        )
        if self.num_classes >= 50 and raw_zero_files >= 0.5 * n:
            self.notes.append(
                f"Label 0 occurs in {raw_zero_files} of {n} label files of {self.name}, a dataset of "
                f"{self.num_classes} classes: datasets like ADE20K use 0 for 'other'. " + hint
            )
        elif zero_frame_files >= max(1, 0.5 * n):
            self.notes.append(
                f"Label 0 looks like void in {self.name}: in {zero_frame_files} of {n} label files it "
                "covers the image borders but little else (padding or an unlabelled frame). " + hint
            )

    @property
    def absent(self):
        """The classes in `[0, num_classes)` that no label file holds."""
        return [v for v in range(self.num_classes) if not self.pixels[v]]

    def absent_note(self):
        """A message naming the classes that never occur, or `None`."""
        absent = self.absent
        if not absent:
            return None
        listed = ", ".join(f"{v} ({self.class_names[v]!r})" for v in absent[:10])
        more = f" and {len(absent) - 10} more" if len(absent) > 10 else ""
        return (
            f"{len(absent)} of {self.num_classes} classes never occur in the labels of "
            f"{self.name}: {listed}{more}. Check num_classes, label_map and reduce_zero_label."
        )

    def _file_problem(self, message):
        """A mistake in some files: with `skip_bad` the pipeline skips those
        files, so it is a note, not a refusal."""
        if self.skip_bad:
            self.notes.append(message + " These files are skipped (skip_bad=True).")
        else:
            self.problems.append(message)

    def raise_for_problems(self):
        """Raises `DatasetError` with every problem found (if any)."""
        if self.problems:
            raise DatasetError("\n".join(self.problems))

    def table(self):
        """The class-frequency table (pixels and images per class), a string."""
        total = int(self.pixels.sum())
        rows = [(v, self.class_names[v]) for v in range(self.num_classes)]
        rows += [
            (v, "(ignored)" if v == self.ignore_index else "(out of range)")
            for v in range(self.num_classes, 256)
            if self.pixels[v] or (v == self.ignore_index)
        ]
        width = max(len(label) for _, label in rows + [(0, "class")])
        lines = [
            f"Labels of {self.name}: {len(self.paths)} files ({self.cached} from the cache), "
            f"{total} pixels",
            f"{'id':>4}  {'class':<{width}}  {'pixels':>12}  {'share':>6}  {'images':>6}",
        ]
        for v, label in rows:
            lines.append(
                f"{v:>4}  {label:<{width}}  {self.pixels[v]:>12}  {_percent(self.pixels[v], total):>6}  "
                f"{self.images[v]:>6}"
            )
        return "\n".join(lines)


def scan_labels(dataset, *, cache_dir=None, verbose=1):
    """Scans the label files of a dataset.

    Args:
        dataset: a `SegmentationDataset` (its `files`, `num_classes`,
            `ignore_index`, `label_map`, `reduce_zero_label`, `label_palette`,
            `class_names` and `name` are used).
        cache_dir: the scan cache directory, `None` for the default,
            `False` for none (see the module docstring).
        verbose: 1 shows a progress bar while files are read.

    Returns:
        A `LabelScan`.

    Example:

    Two CamVid-layout label files, one all sky (0), one all road (3):

    >>> import os, tempfile
    >>> import numpy as np
    >>> from PIL import Image
    >>> from keras_ann.data import camvid
    >>> root = tempfile.mkdtemp()
    >>> os.makedirs(f"{root}/val"); os.makedirs(f"{root}/valannot")
    >>> for i, label in enumerate((0, 3)):
    ...     Image.fromarray(np.zeros((36, 48, 3), np.uint8)).save(f"{root}/val/{i}.png")
    ...     Image.fromarray(np.full((36, 48), label, np.uint8)).save(f"{root}/valannot/{i}.png")
    >>> scan = scan_labels(camvid(root, "val"), cache_dir=False, verbose=0)
    >>> int(scan.pixels[0]), int(scan.pixels[3])
    (1728, 1728)
    """
    if not hasattr(dataset, "files"):
        raise TypeError(
            "scan_labels needs a dataset of label files (a SegmentationDataset), "
            f"got {type(dataset).__name__}."
        )
    paths = [label for _, label in dataset.files]
    entries, cached = scan_label_files(
        paths, cache_dir=cache_dir, verbose=verbose, palette=getattr(dataset, "label_palette", None)
    )
    return LabelScan(
        paths,
        entries,
        dataset.num_classes,
        ignore_index=dataset.ignore_index,
        label_map=dataset.label_map,
        reduce_zero_label=dataset.reduce_zero_label,
        class_names=dataset.class_names,
        name=dataset.name,
        cached=cached,
        skip_bad=getattr(dataset, "skip_bad", False),
    )


def check_dataset_labels(train_data, val_data=None, *, cache_dir=None, verbose=1, print_fn=print, before="training"):
    """Scans the training (and validation) labels before training starts.

    Prints each class-frequency table, warns (`DatasetWarning`) of what
    looks suspicious, and raises one `DatasetError` listing every label
    mistake of both splits, so a bad validation label is found before
    training, not at the first evaluation.

    Args:
        train_data: the training `SegmentationDataset`.
        val_data: optional evaluation `SegmentationDataset` (scanned in
            full).
        cache_dir: scan cache directory (`None`: default; `False`: none).
        verbose: 0 silent, 1 progress bars and tables.
        print_fn: prints the tables.
        before: what the check comes before, for the error (`"training"`,
            `"scoring"`).

    Returns:
        The `LabelScan`s, `(train, val)` (`val` is `None` without
        `val_data`).

    Raises:
        DatasetError: naming each cause, the files and the fix.

    Example:

    A label value 20 in an 11-class dataset is refused before training:

    >>> import os, tempfile
    >>> import numpy as np
    >>> from PIL import Image
    >>> from keras_ann.data import camvid
    >>> root = tempfile.mkdtemp()
    >>> for split in ("train", "val"):
    ...     os.makedirs(f"{root}/{split}"); os.makedirs(f"{root}/{split}annot")
    ...     Image.fromarray(np.zeros((36, 48, 3), np.uint8)).save(f"{root}/{split}/0.png")
    ...     Image.fromarray(np.full((36, 48), 20, np.uint8)).save(f"{root}/{split}annot/0.png")
    >>> check_dataset_labels(camvid(root, "train"), camvid(root, "val"), cache_dir=False, verbose=0)
    Traceback (most recent call last):
    ...
    keras_ann.data.errors.DatasetError: Label check failed before training: ...
    """
    scans = []
    for data in (train_data, val_data):
        if data is None:
            scans.append(None)
            continue
        scan = scan_labels(data, cache_dir=cache_dir, verbose=verbose)
        if verbose:
            print_fn(scan.table())
        scans.append(scan)
    train_scan, val_scan = scans
    problems = [p for s in scans if s is not None for p in s.problems]
    # Classes absent from a small validation split are common; absent from
    # the training labels they are a mistake worth a warning.
    notes = list(train_scan.notes)
    if train_scan.absent and not problems:
        notes.append(train_scan.absent_note())
    notes += val_scan.notes if val_scan is not None else []
    for note in notes:
        warnings.warn(note, DatasetWarning, stacklevel=2)
    if problems:
        raise DatasetError(f"Label check failed before {before}:\n- " + "\n- ".join(problems))
    return train_scan, val_scan
