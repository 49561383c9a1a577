"""Opening model files safely: the one place a `.keras` file is loaded.

Every model path (`ANNSegmenter.from_preset(path)`, and so `convert`,
`evaluate`, `predict`, `export`, `train --from-preset`) comes here before
anything reads it:

- `check_model_path`: a regular file (or a link to one); a FIFO, a device
  or a socket would hang or stream forever and is refused by its kind.
- `sniff_model_file`: what the file holds, by its first bytes.
- `check_keras_archive`: a `.keras` zip is checked from its central
  directory before Keras opens it: at most `MAX_ENTRIES` entries, each
  entry's declared size within its bound (`config.json` and
  `metadata.json` a few MB, the weights `MAX_WEIGHTS_BYTES`, anything
  else `MAX_OTHER_BYTES`) and, above `RATIO_FLOOR_BYTES`, within
  `MAX_RATIO` times what the entry stores (Keras writes entries stored, at
  ratio 1). A zip entry never yields more than its declared size, so
  these bounds hold for what is read.
- `load_keras`: the configuration is read (bounded) and checked to hold
  the asked class, and to be of the current layout, before Keras
  deserialises anything; Keras then refuses lambdas (safe mode).
- `check_hdf5`: the weights (HDF5) may not read other files: external
  datasets, virtual datasets, external and soft links are refused from
  the file's metadata, before any data is read.

Files of the unreleased 0.1.0 layout (flat head layers, `synchronized` in
the configuration) are refused: nothing of keras-ann reads HDF5 itself.
"""

import contextlib
import io
import json
import os
import stat
import struct
import zipfile

from keras_ann.weights.pth_reader import CheckpointError

MAX_ENTRIES = 64
MAX_CONFIG_BYTES = 8 << 20  # config.json (about 20 kB for an ANN)
MAX_METADATA_BYTES = 1 << 20  # metadata.json (a few hundred bytes)
MAX_WEIGHTS_BYTES = 4 << 30  # model.weights.h5 (ResNet-101 ANN with optimiser state: about 0.6 GB)
MAX_OTHER_BYTES = 64 << 20  # assets/ and anything else
RATIO_FLOOR_BYTES = 16 << 20
MAX_RATIO = 20

_ENTRY_LIMITS = {"config.json": MAX_CONFIG_BYTES, "metadata.json": MAX_METADATA_BYTES}
_WEIGHTS = ("model.weights.h5", "model.weights.npz")

# What a model file is, by its first bytes and (for zips) its entries.
FILE_KINDS = {
    "keras": "a .keras model (zip)",
    "keras_weights": "a Keras weights file (.weights.h5, HDF5)",
    "torch_zip": "a PyTorch checkpoint (zip)",
    "torch_legacy": "a PyTorch checkpoint (legacy pickle)",
    "zip": "a zip archive that is neither a .keras model nor a PyTorch checkpoint",
    "truncated_zip": "a truncated or damaged zip archive",
    "empty": "an empty file",
    "unknown": "a file of unknown format",
}

_NOT_REGULAR = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISDIR, "a directory"),
)

OLD_LAYOUT_MESSAGE = (
    "{name} is in the layout of the unreleased keras-ann 0.1.0 (flat head layers, `synchronized` in its "
    "configuration), which is no longer read: convert the reference .pth again (`keras-ann convert`) or train "
    "the model again."
)


def _size(n):
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n} bytes"


def irregular_kind(path):
    """What `path` is when it is not a regular file after links (`"a
    FIFO (named pipe)"`, `"a directory"`, ...), else `None`."""
    mode = os.stat(path).st_mode
    for test, kind in _NOT_REGULAR:
        if test(mode):
            return kind
    return None if stat.S_ISREG(mode) else "not a regular file"


def check_model_path(path):
    """Refuse a model path that is not a regular file (after links).

    Raises:
        CheckpointError: naming the path and what it is.
    """
    kind = irregular_kind(path)
    if kind is not None:
        raise CheckpointError(f"{path} is {kind}, not a model file: give the path of a .keras or .pth file.")


def sniff_model_file(path):
    """What a model file holds, from its content (not its name).

    Args:
        path: a file.

    Returns:
        A key of `FILE_KINDS`: `"keras"` (a zip with `config.json`),
        `"keras_weights"` (HDF5), `"torch_zip"` (a zip with
        `<name>/data.pkl`), `"torch_legacy"` (a pickle, `torch.save`'s
        format before PyTorch 1.6), `"zip"`, `"truncated_zip"`, `"empty"`
        or `"unknown"`.

    Example:

    >>> import os, tempfile, zipfile
    >>> path = os.path.join(tempfile.mkdtemp(), "ann.keras")
    >>> with zipfile.ZipFile(path, "w") as archive:  # what torch.save writes
    ...     archive.writestr("ann/data.pkl", b"")
    >>> sniff_model_file(path)
    'torch_zip'
    """
    check_model_path(path)
    with open(path, "rb") as f:
        head = f.read(8)
    if not head:
        return "empty"
    if head == b"\x89HDF\r\n\x1a\n":
        return "keras_weights"
    if head[0] == 0x80 and 2 <= head[1] <= 5:  # a pickle (protocol 2 to 5)
        return "torch_legacy"
    if head[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError):
            return "truncated_zip"
        if "config.json" in names:
            return "keras"
        if any(n.endswith("/data.pkl") or n == "data.pkl" for n in names):
            return "torch_zip"
        return "zip"
    return "unknown"


def refuse_mismatch(path, kind):
    """`CheckpointError` when the file's content (`kind`, of
    `sniff_model_file`) is not what its name says."""
    name = os.path.basename(path)
    is_keras = path.endswith(".keras")
    if kind == "keras_weights":
        raise CheckpointError(
            f"{name} is {FILE_KINDS[kind]}, not a model: build the model "
            "(e.g. `ANNSegmenter.from_preset(<preset>)`) and call `model.load_weights(path)`."
        )
    if is_keras and kind in ("torch_zip", "torch_legacy"):
        raise CheckpointError(
            f"{name} is {FILE_KINDS[kind]}, not a .keras model; use `keras-ann convert` "
            "or pass it with a .pth name."
        )
    if is_keras and kind != "keras":
        raise CheckpointError(
            f"{name} is {FILE_KINDS[kind]}, not a .keras model (a zip with config.json): "
            "save or download it again."
        )
    if not is_keras and kind == "keras":
        raise CheckpointError(
            f"{name} is {FILE_KINDS[kind]}, not a PyTorch checkpoint; give it the .keras extension "
            "(Keras loads only .keras files)."
        )


def check_keras_archive(path):
    """Check a `.keras` zip's entries against the bounds of this module.

    Raises:
        CheckpointError: one line naming the file, the entry and the limit.
    """
    name = os.path.basename(path)
    check_model_path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError) as error:
        raise CheckpointError(f"{name} is {FILE_KINDS['truncated_zip']} ({error}): save or download it again.") from None
    if len(infos) > MAX_ENTRIES:
        raise CheckpointError(
            f"{name} holds {len(infos)} zip entries, more than the {MAX_ENTRIES} a .keras model may have: "
            "refused as hostile or damaged; save or download it again."
        )
    for info in infos:
        entry = info.filename
        limit = _ENTRY_LIMITS.get(entry, MAX_WEIGHTS_BYTES if entry in _WEIGHTS else MAX_OTHER_BYTES)
        if info.file_size > limit:
            raise CheckpointError(
                f"{name}: its entry {entry} declares {_size(info.file_size)}, over the limit of {_size(limit)} "
                "for it: refused as a zip bomb or a damaged file; save or download it again."
            )
        if info.file_size > RATIO_FLOOR_BYTES and info.file_size > MAX_RATIO * info.compress_size:
            raise CheckpointError(
                f"{name}: its entry {entry} declares {_size(info.file_size)} from {_size(info.compress_size)} "
                f"stored, more than {MAX_RATIO} times (Keras stores entries uncompressed): refused as a zip bomb."
            )
    weights = [info for info in infos if info.filename == "model.weights.h5"]
    if weights:
        with _entry(path, weights[0]) as f:
            check_hdf5(f, name)


class _Window(io.RawIOBase):
    """A read-only, seekable view of `size` bytes of `file` from `start`
    (an entry stored uncompressed in a zip): HDF5 reads its metadata in
    place, where a `ZipExtFile` re-reads from the start at every backward
    seek (Python < 3.12)."""

    def __init__(self, file, start, size):
        super().__init__()
        self.file, self.start, self.size, self.position = file, start, size, 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def tell(self):
        return self.position

    def seek(self, offset, whence=io.SEEK_SET):
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.size}[whence]
        self.position = max(0, base + offset)
        return self.position

    def readinto(self, buffer):
        n = max(0, min(len(buffer), self.size - self.position))
        self.file.seek(self.start + self.position)
        data = self.file.read(n)
        buffer[: len(data)] = data
        self.position += len(data)
        return len(data)


@contextlib.contextmanager
def _entry(path, info):
    """A binary file object of a zip entry: a `_Window` on the file when
    the entry is stored, else the zip's own reader."""
    if info.compress_type == zipfile.ZIP_STORED:
        with open(path, "rb") as f:
            f.seek(info.header_offset)
            header = f.read(30)
            if len(header) == 30 and header[:4] == b"PK\x03\x04":
                names, extra = struct.unpack("<HH", header[26:30])
                yield _Window(f, info.header_offset + 30 + names + extra, info.file_size)
                return
    with zipfile.ZipFile(path) as archive, archive.open(info) as f:
        yield f


def check_hdf5(file, name):
    """Refuse an HDF5 file (a path or a binary file object) that reads
    other files: external datasets, virtual datasets, external or soft
    links. Only its metadata is read.

    Raises:
        CheckpointError: naming `name`, the object and what it points at.
    """
    import h5py

    problems = []

    def visit(path, link):
        if isinstance(link, h5py.ExternalLink):
            problems.append(f"{path} is an external link to {link.filename}")
        elif isinstance(link, h5py.SoftLink):
            problems.append(f"{path} is a soft link to {link.path}")

    def dataset(path, obj):
        if isinstance(obj, h5py.Dataset):
            if obj.external:
                problems.append(f"{path} is stored in another file ({obj.external[0][0]})")
            elif obj.is_virtual:
                problems.append(f"{path} is a virtual dataset")

    try:
        with h5py.File(file, "r") as f:
            f.visititems_links(visit)
            if not problems:
                f.visititems(dataset)
    except OSError as error:
        raise CheckpointError(f"{name}: its weights are not a readable HDF5 file ({error}).") from None
    if problems:
        raise CheckpointError(
            f"{name}: refused, its weights read other files: {problems[0]} (HDF5 external data is never read)."
        )


def read_keras_config(path):
    """The `config.json` of a `.keras` file, after `check_keras_archive`."""
    check_keras_archive(path)
    name = os.path.basename(path)
    try:
        with zipfile.ZipFile(path) as archive:
            return json.loads(archive.read("config.json"))
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as error:
        raise CheckpointError(f"{name}: cannot read its config.json ({type(error).__name__}: {error}).") from error


def check_model_config(cls, config, name):
    """Refuse a model configuration (`config.json` of a `.keras` file or a
    preset directory) that does not hold a `cls` of the current layout,
    before Keras deserialises anything.

    Raises:
        CheckpointError: naming `name` and what it holds.
    """
    class_name = config.get("class_name") if isinstance(config, dict) else None
    registered = config.get("registered_name") if isinstance(config, dict) else None
    if class_name != cls.__name__ and registered != f"keras_ann>{cls.__name__}":
        raise CheckpointError(
            f"{name} holds a Keras {class_name or type(config).__name__!s} "
            f"({registered or 'unregistered'}), not a keras_ann {cls.__name__}."
        )
    inner = config.get("config")
    if isinstance(inner, dict) and "synchronized" in inner:
        raise CheckpointError(OLD_LAYOUT_MESSAGE.format(name=name))


def load_keras(cls, path, overrides=None):
    """The `cls` model (an `ANNSegmenter`) of the `.keras` file `path`.

    The archive is checked (`check_keras_archive`), its configuration is
    read and checked to hold a `cls` of the current layout before Keras
    deserialises anything, then Keras loads it in safe mode. `overrides`
    as in `keras_ann.models.keras_file.apply_overrides`.

    Raises:
        CheckpointError: one line naming the file and what is wrong.
    """
    import keras

    from keras_ann.models.keras_file import apply_overrides

    name = os.path.basename(path)
    check_model_config(cls, read_keras_config(path), name)
    try:
        model = keras.saving.load_model(path)
    except Exception as error:  # Keras raises many types for damaged archives
        text = " ".join(str(error).split())  # one line
        raise CheckpointError(
            f"{name} cannot be loaded ({type(error).__name__}: {text[:300]}); it may be truncated: "
            "save or download it again."
        ) from error
    if not isinstance(model, cls):
        raise CheckpointError(f"{name} holds a {type(model).__name__}, not a keras_ann {cls.__name__}.")
    return apply_overrides(cls, model, path, **(overrides or {}))


def load_model_file(cls, path, overrides=None):
    """`cls` from a model file: a `.keras` (`load_keras`) or a reference
    `.pth` (its state dict converted), recognised by content.

    Raises:
        CheckpointError: the file is not a regular file, or its content is
            not what its name says, or it is refused (see `load_keras`).
    """
    refuse_mismatch(path, sniff_model_file(path))
    if path.endswith(".keras"):
        return load_keras(cls, path, overrides)
    from keras_ann.weights import convert, pth_reader

    state_dict = pth_reader.extract_state_dict(pth_reader.load_torch_checkpoint(path))
    config = convert.infer_ann_config(state_dict)
    inferred_classes = config["num_classes"]
    config.update(overrides or {})
    model = cls(**config)
    partial = None if config["num_classes"] == inferred_classes else "new_classifier"
    convert.load_reference_weights(model, state_dict, partial=partial, source=path)
    return model
