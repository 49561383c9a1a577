"""Safe reader for PyTorch checkpoint files.

`torch.load` unpickles arbitrary objects, so a malicious `.pth` file can run
any code on the machine that opens it. This module reads the same files
without importing torch and without ever calling anything that is not on a
short allow-list: the only objects it can rebuild are tensors (as NumPy
arrays), plain Python containers and values, and NumPy scalars and arrays of
plain numeric or bool dtypes.

Two formats are supported. The zip format written by `torch.save` since
PyTorch 1.6 looks like this:

```
<name>/data.pkl     pickle of the saved object; tensors refer to storages
                    through persistent ids
<name>/data/<key>   raw bytes of one storage
<name>/byteorder    b"little" or b"big" (absent in old files: little)
<name>/version      format version
```

The legacy format written by `torch.save` before PyTorch 1.6 (and since
then with `_use_new_zipfile_serialization=False`) is a sequence of pickles
followed by the storages:

```
pickle  magic number 0x1950a86a20f9469cfc6c
pickle  protocol version 1001
pickle  {"protocol_version": 1001, "little_endian": ..., "type_sizes": ...}
pickle  the saved object; storages are persistent ids
        ("storage", <type>, root_key, location, numel, view_metadata)
pickle  list of the root storage keys, in the order the storages follow
then, for each key: int64 element count (little-endian), then the raw
        elements (little-endian: torch converts them when it writes)
```

The object pickle comes before the storages it refers to, and their sizes
depend on element types named only inside it, so a legacy file is read in
two passes over that pickle: a dry run that only checks tensors against the
sizes the pickle declares and collects the storage types, then (once the
storages are located and checked against the file) the real run.
"""

from __future__ import annotations

import _compat_pickle
import collections
import io
import math
import os
import pickle
import pickletools
import zipfile
from collections.abc import Iterable, Mapping
from typing import Any, Callable, NoReturn, Union

import numpy as np

__all__ = [
    "CheckpointError",
    "extract_meta",
    "extract_state_dict",
    "load_torch_checkpoint",
]

PathLike = Union[str, "os.PathLike[str]"]

SUPPORTED_FORMATS = (
    "the zip archive written by torch.save() since PyTorch 1.6 "
    "(entries '<name>/data.pkl' and '<name>/data/<key>'), and the legacy "
    "format written by torch.save() before PyTorch 1.6 or with "
    "_use_new_zipfile_serialization=False (a pickle of the magic number "
    "0x1950a86a20f9469cfc6c, further pickles, then the raw storages)"
)

# The legacy format starts with a pickle of this number, then one of
# this protocol version.
_LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL_VERSION = 1001
# Its pickle takes 15 bytes with protocol 2, 26 with a protocol-4 frame.
_MAX_MAGIC_PICKLE = 64

# Bounds on the memory a file may make us allocate (a crafted file could
# otherwise ask for terabytes by expanding a tiny storage with zero strides,
# or by rebuilding one large view over and over). Tensor copies may total
# this slack plus `_OUTPUT_PER_STORED_BYTE` times the bytes of the storages
# read; legitimate files (views, tied weights, `expand`) stay far below.
_OUTPUT_SLACK_BYTES = 1 << 30
_OUTPUT_PER_STORED_BYTE = 8
# Likewise, compressed zip entries (torch writes them stored, but accepts
# deflated ones) may inflate to this slack plus this many times the file.
_MAX_INFLATION = 64

# NumPy arrays have at most 64 dimensions.
_MAX_NDIM = 64


class CheckpointError(ValueError):
    """A checkpoint is malformed, unsupported, or refused as unsafe."""


class _StorageType:
    """Tag for a `torch.<X>Storage` global: the element type of a storage.

    Instances are not callable, so the pickle cannot use them for anything
    except naming the dtype of a persistent storage.
    """

    __slots__ = ("name", "raw", "kind")

    def __init__(self, name: str, raw: str, kind: str = "plain"):
        self.name = name
        self.raw = raw  # NumPy type code of the stored bytes, no byte order.
        self.kind = kind  # "plain", "bool" or "bfloat16".

    @property
    def itemsize(self) -> int:
        return np.dtype(self.raw).itemsize

    def raw_dtype(self, byteorder: str) -> np.dtype:
        return np.dtype(self.raw).newbyteorder("<" if byteorder == "little" else ">")

    def finalize(self, raw: np.ndarray) -> np.ndarray:
        """Turns raw storage elements into the user-facing array."""
        if self.kind == "bool":
            return raw != 0
        if self.kind == "bfloat16":
            return (raw.astype(np.uint32) << 16).view(np.float32)
        return raw.astype(raw.dtype.newbyteorder("="), copy=False)

    def __repr__(self) -> str:
        return f"torch.{self.name}"


_STORAGE_TYPES = {
    t.name: t
    for t in (
        _StorageType("FloatStorage", "f4"),
        _StorageType("DoubleStorage", "f8"),
        _StorageType("HalfStorage", "f2"),
        _StorageType("BFloat16Storage", "u2", "bfloat16"),
        _StorageType("LongStorage", "i8"),
        _StorageType("IntStorage", "i4"),
        _StorageType("ShortStorage", "i2"),
        _StorageType("CharStorage", "i1"),
        _StorageType("ByteStorage", "u1"),
        _StorageType("BoolStorage", "u1", "bool"),
        _StorageType("ComplexFloatStorage", "c8"),
        _StorageType("ComplexDoubleStorage", "c16"),
    )
}


class _Storage:
    """A storage read from the archive: a flat array of raw elements."""

    __slots__ = ("type", "data")

    def __init__(self, storage_type: _StorageType, data: np.ndarray):
        self.type = storage_type
        self.data = data

    def __repr__(self) -> str:
        return f"<{self.type!r} of {self.data.size} elements>"


# NumPy objects in pickles (e.g. `numpy.float64` values in mmcv's `meta`).
# Only these dtypes, spelled as NumPy pickles them (`dtype.str` without the
# byte order), may be created: fixed-size numbers and bools, whose values
# are plain bytes. Object, string, void (structured), datetime and
# platform-dependent (long double) dtypes are refused.
_NUMPY_CODES = (
    "b1", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8",
    "f2", "f4", "f8", "c8", "c16",
)
_NUMPY_SCALAR_TYPES = frozenset(np.dtype(code).type for code in _NUMPY_CODES)
# The BUILD state of such a dtype: (3, byteorder, subarray, names, fields,
# elsize, alignment, flags); all but the byte order are fixed.
_NUMPY_DTYPE_STATE_TAIL = (None, None, None, -1, -1, 0)


class _Tag:
    """A non-callable stand-in for a global used only as a marker."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return self.name


_NDARRAY = _Tag("numpy.ndarray")


class _DtypeRecord:
    """A dtype the pickle made through `numpy.dtype`, and its checked state."""

    __slots__ = ("dtype", "code", "clean")

    def __init__(self, dtype: np.dtype, code: str):
        self.dtype = dtype  # The object the pickle holds (a private copy).
        self.code = code
        self.clean: Union[np.dtype, None] = None  # Set by a valid BUILD.


# Pickle protocol 2 encodes a few plain values through globals. These
# wrappers accept exactly what the pickler emits and nothing more.
def _bytes_from_latin1(text: Any, encoding: Any) -> bytes:
    if type(text) is not str or type(encoding) is not str or encoding not in (
        "latin1", "latin-1"
    ):
        raise ValueError("_codecs.encode is only allowed as str -> latin-1 bytes")
    return text.encode("latin-1")


def _empty_bytes(*args: Any) -> bytes:
    if args:
        raise ValueError("bytes() is only allowed without arguments")
    return b""


def _complex(real: Any = 0.0, imag: Any = 0.0) -> complex:
    if not all(type(x) in (int, float) for x in (real, imag)):
        raise ValueError("complex() is only allowed with real numbers")
    return complex(real, imag)


_INT64_LIMIT = 1 << 63
_SCALARS = (str, bytes, int, float, complex, bool, type(None))
# NumPy scalars hash like numbers, without recursion.
_KEY_SCALARS = frozenset(_SCALARS) | _NUMPY_SCALAR_TYPES
# Hashing or comparing a deeply nested tuple recurses in C and can crash
# the interpreter, and a tuple that reuses itself (via the memo) can take
# exponential time to hash; dict keys and set items are kept small.
_MAX_KEY_NODES = 256


def _describe(value: Any, limit: int = 100) -> str:
    """Describes an untrusted value briefly, never via a full `repr`.

    A pickle can build objects whose `repr` is exponentially large or
    recurses deeply enough to crash, so only scalars are shown verbatim.
    """
    if type(value) in (str, bytes):
        text = repr(value[:limit])
    elif type(value) is int and abs(value) < _INT64_LIMIT:
        text = repr(value)
    elif type(value) in (float, bool, type(None), _StorageType, _Storage):
        text = repr(value)
    elif type(value) is tuple and len(value) <= 8 and limit > 30:
        text = "(" + ", ".join(_describe(v, 30) for v in value) + ")"
    else:
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _int_tuple(value: Any, what: str) -> tuple[int, ...]:
    if type(value) not in (tuple, list) or len(value) > _MAX_NDIM:
        raise ValueError(f"the tensor {what} {_describe(value)} is not a shape")
    if any(type(v) is not int or not 0 <= v < _INT64_LIMIT for v in value):
        raise ValueError(
            f"the tensor {what} {_describe(tuple(value))} is not a tuple of "
            "non-negative 64-bit ints"
        )
    return tuple(value)


class _Loader:
    """Unpickles one checkpoint file; knows its path for error messages."""

    def __init__(self, path: str, file_size: int):
        self.path = path
        self.file_size = file_size
        self.archive: Union[zipfile.ZipFile, None] = None  # Zip format only.
        self.read_budget = _OUTPUT_SLACK_BYTES + _MAX_INFLATION * file_size
        self.prefix = ""
        self.byteorder = "little"
        self.storages: dict[str, _Storage] = {}
        self.output_budget = _OUTPUT_SLACK_BYTES  # Bytes of tensors left.
        self.call_budget = 0  # Calls plus items passed to them; see `call`.
        # Legacy format: persistent ids are 6-tuples; views of root storages
        # by view key; storage data once located (None during the dry run).
        self.legacy = False
        self.allow_storages = True
        self.views: dict[str, tuple[tuple[str, int, int], _Storage]] = {}
        self.legacy_data: Union[dict[str, np.ndarray], None] = None
        # NumPy objects made by the current pickle, by id (kept alive here so
        # that ids stay unique): dtypes, and arrays still awaiting BUILD.
        self.np_dtypes: dict[int, _DtypeRecord] = {}
        self.np_pending: dict[int, np.ndarray] = {}
        callables: dict[tuple[str, str], Callable[..., Any]] = {
            ("collections", "OrderedDict"): self.ordered_dict,
            ("torch._utils", "_rebuild_tensor"): self.rebuild_tensor,
            ("torch._utils", "_rebuild_tensor_v2"): self.rebuild_tensor,
            ("torch._utils", "_rebuild_parameter"): self.rebuild_parameter,
            ("torch._utils", "_rebuild_parameter_with_state"): self.rebuild_parameter,
            ("builtins", "set"): self.plain_set,
            ("builtins", "frozenset"): self.plain_frozenset,
            ("builtins", "bytes"): _empty_bytes,
            ("builtins", "complex"): _complex,
            ("_codecs", "encode"): _bytes_from_latin1,
            ("numpy", "dtype"): self.numpy_dtype,
        }
        for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            callables[(module, "scalar")] = self.numpy_scalar
            callables[(module, "_reconstruct")] = self.numpy_reconstruct
        self.callables = callables
        self.globals: dict[tuple[str, str], Any] = dict(callables)
        self.globals[("numpy", "ndarray")] = _NDARRAY
        for name, storage_type in _STORAGE_TYPES.items():
            self.globals[("torch", name)] = storage_type

    def fail(self, message: str) -> NoReturn:
        raise CheckpointError(f"cannot load {self.path}: {message}")

    def refuse(self, message: str) -> NoReturn:
        raise CheckpointError(f"refusing to load {self.path}: {message}")

    def unpickle(self, data: bytes, storages: bool) -> Any:
        """Runs the restricted unpickler over one complete pickle."""
        self.call_budget = 2 * len(data) + 64
        self.allow_storages = storages
        self.np_dtypes, self.np_pending = {}, {}
        return _RestrictedUnpickler(data, self).load()

    # The zip format.

    def read(self, info: zipfile.ZipInfo) -> bytes:
        assert self.archive is not None
        self.read_budget -= info.file_size
        if self.read_budget < 0:
            self.refuse("its entries inflate to far more than its own size.")
        data = self.archive.read(info)
        if len(data) != info.file_size:
            self.fail(f"the entry {_describe(info.filename)} is truncated.")
        return data

    def load_zip(self, archive: zipfile.ZipFile) -> Any:
        self.archive = archive
        names = self.archive.namelist()
        pickles = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
        if not pickles:
            self.fail(
                "it is a zip archive without a '<name>/data.pkl' entry, so it "
                f"was not written by torch.save(). Supported: {SUPPORTED_FORMATS}."
            )
        if len(pickles) > 1:
            self.fail(f"the archive holds {len(pickles)} '<name>/data.pkl' entries.")
        self.prefix = pickles[0][: -len("data.pkl")]
        if self.prefix + "constants.pkl" in names:
            self.fail(
                "it is a TorchScript archive (torch.jit.save), which is not "
                f"supported. Supported: {SUPPORTED_FORMATS}."
            )
        if self.prefix + "byteorder" in names:
            record = self.read(self.archive.getinfo(self.prefix + "byteorder")).strip()
            if record not in (b"little", b"big"):
                self.fail(f"unknown byteorder record {_describe(record)}.")
            self.byteorder = record.decode()
        data = self.read(self.archive.getinfo(pickles[0]))
        return self.unpickle(data, storages=True)

    # The legacy format.

    def pickle_end(self, data: bytes, start: int, what: str) -> int:
        """Finds where the pickle starting at `start` ends, executing nothing.

        `pickletools.genops` only decodes opcodes and their arguments (each
        bounded by the bytes present), so this cannot call or allocate
        anything the file controls beyond its own size.
        """
        stream = io.BytesIO(data)
        stream.seek(start)
        try:
            for _ in pickletools.genops(stream):
                pass
        except Exception as exc:  # pylint: disable=broad-exception-caught
            self.fail(
                f"the {what} pickle at byte {start} is corrupt or truncated "
                f"({type(exc).__name__}: {_describe(str(exc), 120)})."
            )
        return stream.tell()

    def header_pickle(self, data: bytes, start: int, what: str) -> tuple[Any, int]:
        end = self.pickle_end(data, start, what)
        return self.unpickle(data[start:end], storages=False), end

    def not_a_checkpoint(self, why: str) -> NoReturn:
        self.fail(
            f"it is not a zip archive, and {why}, so it is not a legacy "
            f"torch.save file either. Supported: {SUPPORTED_FORMATS}."
        )

    def load_legacy(self, data: bytes) -> Any:
        self.legacy = True
        try:
            end = self.pickle_end(data, 0, "first")
        except CheckpointError:
            self.not_a_checkpoint("it does not start with a complete pickle")
        if end > _MAX_MAGIC_PICKLE:  # Not worth unpickling: it is no number.
            self.not_a_checkpoint(
                f"its first pickle ({end} bytes) is not the magic number"
            )
        magic = self.unpickle(data[:end], storages=False)
        if type(magic) is not int or magic != _LEGACY_MAGIC_NUMBER:
            self.not_a_checkpoint(
                f"its first pickle holds {_describe(magic)}, not the magic number"
            )
        version, end = self.header_pickle(data, end, "protocol version")
        if type(version) is not int or version != _LEGACY_PROTOCOL_VERSION:
            self.fail(
                f"it is a legacy torch.save file of protocol version "
                f"{_describe(version)}, not {_LEGACY_PROTOCOL_VERSION}. "
                f"Supported: {SUPPORTED_FORMATS}."
            )
        sys_info, start = self.header_pickle(data, end, "system information")
        self.check_sys_info(sys_info)

        # Pass 1 (dry run): check tensors against the storage sizes that the
        # persistent ids declare and learn each storage's type; no copies.
        end = self.pickle_end(data, start, "object")
        obj_pickle = data[start:end]
        self.output_budget = _OUTPUT_SLACK_BYTES + _OUTPUT_PER_STORED_BYTE * len(data)
        self.unpickle(obj_pickle, storages=True)
        roots, self.storages, self.views = self.storages, {}, {}

        keys, position = self.header_pickle(data, end, "storage keys")
        self.check_storage_keys(keys, roots)
        self.legacy_data = {}
        stored_bytes = 0
        for key in keys:
            storage = roots[key]
            numel, itemsize = storage.data.size, storage.data.itemsize
            header = data[position : position + 8]
            if len(header) != 8:
                self.fail(f"the file is truncated before storage {_describe(key)}.")
            count = int.from_bytes(header, "little", signed=True)
            if count != numel:
                self.fail(
                    f"storage {_describe(key)} should hold {numel} elements, but "
                    f"its header in the file says {count}."
                )
            position += 8
            nbytes = numel * itemsize
            if position + nbytes > len(data):
                self.fail(
                    f"the file is truncated inside storage {_describe(key)} "
                    f"({nbytes} bytes at byte {position}, file size {len(data)})."
                )
            dtype = storage.type.raw_dtype("little")
            self.legacy_data[key] = (
                np.frombuffer(data, dtype, count=numel, offset=position)
                if numel else np.empty(0, dtype)
            )
            position += nbytes
            stored_bytes += nbytes
        if position != len(data):
            self.fail(
                f"it has {len(data) - position} unexpected bytes after its last "
                "storage."
            )

        # Pass 2: the same pickle again, now with the storage data.
        self.output_budget = (
            _OUTPUT_SLACK_BYTES + _OUTPUT_PER_STORED_BYTE * stored_bytes
        )
        return self.unpickle(obj_pickle, storages=True)

    def check_sys_info(self, sys_info: Any) -> None:
        # torch itself ignores this record. Its `little_endian` entry tells
        # the byte order of the machine that wrote the file, not of the
        # storages: torch's writeFileRaw converts element counts and data to
        # little-endian on big-endian machines, and torch.load reads them as
        # little-endian. The entries are checked for sanity only.
        if type(sys_info) is not dict:
            self.fail(
                f"its legacy header holds {_describe(sys_info)} instead of the "
                "system information dict."
            )
        checks = (
            ("protocol_version", lambda v: type(v) is int
             and v == _LEGACY_PROTOCOL_VERSION),
            ("little_endian", lambda v: type(v) is bool),
            ("type_sizes", lambda v: type(v) is dict),
        )
        for name, check in checks:
            if name in sys_info and not check(sys_info[name]):
                self.fail(
                    f"its legacy header has a bad {name!r} entry "
                    f"{_describe(sys_info[name])}."
                )

    def check_storage_keys(self, keys: Any, roots: dict[str, _Storage]) -> None:
        if type(keys) is not list or any(type(k) is not str for k in keys):
            self.fail(
                f"its list of storage keys is {_describe(keys)}, not a list of "
                "strings."
            )
        listed = set(keys)
        if len(listed) != len(keys):
            self.fail("its list of storage keys repeats a key.")
        for key in keys:
            if key not in roots:
                self.fail(f"storage {_describe(key)} is listed but never used.")
        for key in roots:
            if key not in listed:
                self.fail(f"storage {_describe(key)} is used but its data is missing.")

    # Globals and calls.

    def resolve_global(self, module: str, name: str) -> Any:
        try:
            return self.globals[(module, name)]
        except KeyError:
            self.refuse(
                f"the pickle references the global {_describe(f'{module}.{name}')}, "
                "which is not a tensor or a plain container."
            )

    def call(self, func: Any, args: Any) -> Any:
        if not any(func is allowed for allowed in self.callables.values()):
            self.refuse(
                f"the pickle tries to call {_describe(func)}, which is not an "
                "allowed tensor or container constructor."
            )
        if type(args) is not tuple:
            self.fail("the pickle calls a function with malformed arguments.")
        # Every call and every item it receives costs a byte of the pickle,
        # unless the pickle reuses (memoizes) one big argument many times.
        sized = (str, bytes, tuple, list, dict, set, frozenset)
        self.call_budget -= 1 + sum(len(a) for a in args if type(a) in sized)
        if self.call_budget < 0:
            self.refuse("the pickle builds far more data than it contains.")
        try:
            return func(*args)
        except CheckpointError:
            raise
        except (TypeError, ValueError) as exc:
            self.fail(f"bad arguments for {getattr(func, '__name__', '?')}: {exc}")

    # Plain containers.

    def plain_key(self, key: Any) -> Any:
        """Checks that `key` is a small hashable made of plain scalars."""
        pending, budget = [key], _MAX_KEY_NODES
        while pending:
            item = pending.pop()
            budget -= 1
            if type(item) is tuple and len(item) < budget:
                pending.extend(item)
            elif type(item) not in _KEY_SCALARS or budget < 0:
                self.refuse(
                    f"a dict key or set item is {_describe(item)}; only "
                    "strings, numbers (NumPy scalars included), bytes, None "
                    "and small tuples of them "
                    "are allowed."
                )
        return key

    def plain_items(self, items: Any) -> list[Any]:
        if type(items) not in (list, tuple, set, frozenset, dict, str, bytes):
            raise TypeError(f"cannot build a set from {_describe(items)}")
        return [self.plain_key(item) for item in items]

    def plain_set(self, items: Any = ()) -> set[Any]:
        return set(self.plain_items(items))

    def plain_frozenset(self, items: Any = ()) -> frozenset[Any]:
        return frozenset(self.plain_items(items))

    def ordered_dict(self, pairs: Any = ()) -> collections.OrderedDict:
        if type(pairs) in (dict, collections.OrderedDict):
            return collections.OrderedDict(pairs)  # Keys were checked.
        if type(pairs) not in (list, tuple):
            raise TypeError(f"cannot build an OrderedDict from {_describe(pairs)}")
        result = collections.OrderedDict()
        for pair in pairs:
            if type(pair) not in (tuple, list) or len(pair) != 2:
                raise TypeError("OrderedDict items must be (key, value) pairs")
            result[self.plain_key(pair[0])] = pair[1]
        return result

    def container(self, target: Any, kinds: tuple[type, ...]) -> Any:
        if type(target) not in kinds:
            self.fail(f"the pickle adds items to {_describe(target)}.")
        return target

    # Tensors.

    def load_storage(self, pid: Any) -> _Storage:
        if not self.allow_storages:
            self.fail(
                f"a header pickle of the legacy format holds the persistent id "
                f"{_describe(pid)}."
            )
        if self.legacy:
            return self.load_legacy_storage(pid)
        if not (type(pid) is tuple and len(pid) == 5 and type(pid[0]) is str
                and pid[0] == "storage"):
            self.fail(f"unsupported persistent id {_describe(pid)}.")
        _, storage_type, key, _location, numel = pid
        if not isinstance(storage_type, _StorageType):
            self.fail(f"the persistent id {_describe(pid)} names no storage type.")
        if type(key) is not str or type(numel) is not int:
            self.fail(f"malformed persistent id {_describe(pid)}.")
        if not 0 <= numel < _INT64_LIMIT:
            self.fail(f"malformed persistent id {_describe(pid)}.")
        storage = self.storages.get(key)
        if storage is not None:
            if storage.type is not storage_type:
                self.fail(f"storage {_describe(key)} is used as two different types.")
            return storage
        entry = f"{self.prefix}data/{key}"
        assert self.archive is not None
        try:
            info = self.archive.getinfo(entry)
        except KeyError:
            self.fail(f"the archive has no entry {_describe(entry)} for a storage.")
        nbytes = numel * storage_type.itemsize
        if info.file_size != nbytes:
            self.fail(
                f"storage {_describe(key)} should hold {numel} elements "
                f"({nbytes} bytes) but its entry holds {info.file_size} bytes."
            )
        dtype = storage_type.raw_dtype(self.byteorder)
        data = np.frombuffer(self.read(info), dtype=dtype)
        storage = self.storages[key] = _Storage(storage_type, data)
        self.output_budget += _OUTPUT_PER_STORED_BYTE * nbytes
        return storage

    def load_legacy_storage(self, pid: Any) -> _Storage:
        """Resolves ('storage', type, root_key, location, numel, view)."""
        if not (type(pid) is tuple and len(pid) == 6 and type(pid[0]) is str
                and pid[0] == "storage"):
            self.fail(f"unsupported persistent id {_describe(pid)}.")
        _, storage_type, key, location, numel, view = pid
        if not isinstance(storage_type, _StorageType):
            self.fail(f"the persistent id {_describe(pid)} names no storage type.")
        if (type(key) is not str or type(location) not in (str, bytes)
                or type(numel) is not int or not 0 <= numel < _INT64_LIMIT):
            self.fail(f"malformed persistent id {_describe(pid)}.")
        root = self.storages.get(key)
        if root is None:
            if key in self.views:
                self.fail(f"storage key {_describe(key)} names a storage and a view.")
            if self.legacy_data is None:  # Dry run: sizes only, no data.
                if numel * storage_type.itemsize > self.file_size:
                    self.fail(
                        f"storage {_describe(key)} claims {numel} elements, more "
                        f"than the whole file ({self.file_size} bytes) holds."
                    )
                data = np.broadcast_to(np.zeros((), storage_type.raw), (numel,))
            else:
                data = self.legacy_data.get(key)
                if data is None:
                    self.fail(f"storage {_describe(key)} has no data in the file.")
            root = self.storages[key] = _Storage(storage_type, data)
        if root.type is not storage_type:
            self.fail(f"storage {_describe(key)} is used as two different types.")
        if root.data.size != numel:
            self.fail(
                f"storage {_describe(key)} is declared with {root.data.size} "
                f"and with {numel} elements."
            )
        if view is None:
            return root
        # Storage views (PyTorch < 1.0): elements [offset, offset + size) of
        # the root storage, shared by every persistent id naming the view.
        if not (type(view) is tuple and len(view) == 3):
            self.fail(f"malformed storage view {_describe(view)}.")
        view_key, offset, size = view
        if (type(view_key) is not str or type(offset) is not int
                or type(size) is not int or offset < 0 or size < 0):
            self.fail(f"malformed storage view {_describe(view)}.")
        if offset + size > numel:
            self.fail(
                f"the storage view {_describe(view)} reaches past the "
                f"{numel} elements of storage {_describe(key)}."
            )
        if view_key in self.storages:
            self.fail(
                f"storage key {_describe(view_key)} names a storage and a view."
            )
        known = self.views.get(view_key)
        if known is not None:
            if known[0] != (key, offset, size) or known[1].type is not storage_type:
                self.fail(f"the storage view {_describe(view_key)} is declared twice.")
            return known[1]
        storage = _Storage(storage_type, root.data[offset : offset + size])
        self.views[view_key] = ((key, offset, size), storage)
        return storage

    def rebuild_tensor(
        self,
        storage: Any,
        storage_offset: Any,
        size: Any,
        stride: Any,
        requires_grad: Any = False,
        backward_hooks: Any = None,
        metadata: Any = None,
    ) -> np.ndarray:
        del requires_grad, backward_hooks, metadata  # Meaningless in NumPy.
        if not isinstance(storage, _Storage):
            self.fail(f"a tensor is built from {_describe(storage)}, not a storage.")
        if type(storage_offset) is not int or not 0 <= storage_offset < _INT64_LIMIT:
            self.fail(f"bad tensor storage offset {_describe(storage_offset)}.")
        shape = _int_tuple(size, "size")
        strides = _int_tuple(stride, "stride")
        if len(shape) != len(strides):
            self.fail(f"tensor size {shape} does not match its stride {strides}.")
        available = storage.data.size
        numel = math.prod(shape)
        if numel == 0:
            if storage_offset > available:
                self.fail(f"tensor offset {storage_offset} is past its storage.")
            return storage.type.finalize(np.empty(shape, storage.data.dtype))
        last = storage_offset + sum((n - 1) * s for n, s in zip(shape, strides))
        if last >= available:
            self.fail(
                f"a tensor of size {shape}, stride {strides} and offset "
                f"{storage_offset} reads element {last} of a storage holding "
                f"only {available} elements."
            )
        if self.legacy and self.legacy_data is None:
            return np.empty(0, np.float32)  # Dry run: checked, not copied.
        itemsize = storage.data.itemsize
        self.output_budget -= numel * itemsize
        if self.output_budget < 0:
            self.refuse(
                f"a tensor of size {shape} would take the arrays built from "
                "this file far beyond the size of its stored data."
            )
        # Size-1 dimensions may carry any stride; they never move the pointer.
        byte_strides = tuple(
            s * itemsize if n > 1 else 0 for n, s in zip(shape, strides)
        )
        view = np.lib.stride_tricks.as_strided(
            storage.data[storage_offset:], shape, byte_strides, writeable=False
        )
        return storage.type.finalize(view.copy())

    def rebuild_parameter(self, data: Any, *_: Any) -> np.ndarray:
        # `requires_grad`, hooks and any Python attributes are dropped.
        if not isinstance(data, np.ndarray):
            self.fail(f"a parameter wraps {_describe(data)}, not a tensor.")
        return data

    # NumPy objects. These wrappers accept exactly what NumPy's own pickles
    # hold and hand NumPy nothing but dtype codes from `_NUMPY_CODES`, byte
    # orders, shapes and byte strings checked here to have the right length.

    def numpy_dtype(self, code: Any, align: Any = False, copy: Any = True) -> np.dtype:
        """`numpy.dtype(code, align, copy)`, as pickled by `dtype.__reduce__`."""
        if type(code) is not str or code not in _NUMPY_CODES:
            hint = (
                " Object arrays hold arbitrary pickled Python objects."
                if type(code) is str and code.startswith("O") else ""
            )
            self.refuse(
                f"the pickle asks for the NumPy dtype {_describe(code)}; only "
                f"the numeric and bool dtypes {', '.join(_NUMPY_CODES)} are "
                f"allowed.{hint}"
            )
        for flag in (align, copy):
            if type(flag) not in (bool, int) or flag not in (0, 1):
                raise TypeError(f"bad numpy.dtype flag {_describe(flag)}")
        # A private copy, like NumPy's unpickling makes: BUILD may set its
        # byte order without touching NumPy's shared builtin dtype.
        dtype = np.dtype(code, False, True)
        self.np_dtypes[id(dtype)] = _DtypeRecord(dtype, code)
        return dtype

    def build_dtype(self, dtype: np.dtype, state: Any) -> None:
        record = self.np_dtypes.get(id(dtype))
        if record is None or record.dtype is not dtype:
            self.refuse("the pickle sets the state of a NumPy dtype it did not make.")
        if record.clean is not None:
            self.refuse("the pickle sets the state of a NumPy dtype twice.")
        itemsize = dtype.itemsize
        orders = ("|", "<", ">") if itemsize == 1 else ("<", ">")
        valid = (
            type(state) is tuple and len(state) == 8
            and type(state[0]) is int and state[0] == 3
            and type(state[1]) is str and state[1] in orders
            and all(s is None for s in state[2:5])
            and all(type(s) is int for s in state[5:])
            and state[5:] == _NUMPY_DTYPE_STATE_TAIL[3:]
        )
        if not valid:
            self.refuse(
                f"the pickle gives the NumPy dtype {record.code!r} the state "
                f"{_describe(state)}, which is not that of a plain numeric dtype."
            )
        order = "|" if itemsize == 1 else state[1]
        # The state passed on is rebuilt from checked values only.
        dtype.__setstate__((3, order) + _NUMPY_DTYPE_STATE_TAIL)
        record.clean = np.dtype(order + record.code)

    def checked_dtype(self, dtype: Any) -> np.dtype:
        """The clean dtype behind a dtype object the pickle made and built."""
        record = self.np_dtypes.get(id(dtype))
        if record is None or record.dtype is not dtype:
            raise TypeError(f"{_describe(dtype)} is not a NumPy dtype")
        if record.clean is None:
            raise TypeError("a NumPy dtype is used before its state is set")
        return record.clean

    def numpy_scalar(self, dtype: Any, data: Any = None) -> Any:
        """`numpy.core.multiarray.scalar(dtype, raw_bytes)`."""
        clean = self.checked_dtype(dtype)
        if type(data) is not bytes or len(data) != clean.itemsize:
            raise ValueError(
                f"a NumPy {clean} scalar needs {clean.itemsize} bytes, not "
                f"{_describe(data)}"
            )
        if clean.kind == "b":
            return np.bool_(data != b"\0")
        return np.frombuffer(data, clean)[0]  # Always a native-order scalar.

    def numpy_reconstruct(self, subtype: Any, shape: Any, typecode: Any) -> np.ndarray:
        """`_reconstruct(numpy.ndarray, (0,), b"b")`: an array awaiting BUILD."""
        if subtype is not _NDARRAY:
            raise TypeError(
                f"only numpy.ndarray can be rebuilt, not {_describe(subtype)}"
            )
        if not (type(shape) is tuple and len(shape) == 1 and type(shape[0]) is int
                and shape[0] == 0 and type(typecode) in (bytes, str)
                and typecode in (b"b", "b")):
            raise ValueError("_reconstruct takes only the arguments NumPy pickles")
        array = np.empty((0,), np.int8)
        self.np_pending[id(array)] = array
        return array

    def build_array(self, array: np.ndarray, state: Any) -> None:
        """ndarray BUILD: (1, shape, dtype, is_fortran, raw bytes)."""
        if not (type(state) is tuple and len(state) == 5):
            self.fail(f"malformed NumPy array state {_describe(state)}.")
        version, shape, dtype, fortran, raw = state
        if type(version) is not int or version != 1:
            self.fail(f"unknown NumPy array state version {_describe(version)}.")
        if type(shape) is not tuple or len(shape) > _MAX_NDIM or any(
            type(n) is not int or not 0 <= n < _INT64_LIMIT for n in shape
        ):
            self.fail(f"the NumPy array shape {_describe(shape)} is not a shape.")
        try:
            clean = self.checked_dtype(dtype)
        except TypeError as exc:
            self.refuse(f"a NumPy array has a dtype it may not have: {exc}.")
        if type(fortran) not in (bool, int) or fortran not in (0, 1):
            self.fail(f"bad NumPy array order flag {_describe(fortran)}.")
        nbytes = math.prod(shape) * clean.itemsize
        if type(raw) is not bytes or len(raw) != nbytes:
            self.fail(
                f"a NumPy array of shape {shape} and dtype {clean} needs "
                f"{nbytes} bytes of data, not {_describe(raw, 40)}."
            )
        self.output_budget -= nbytes
        if self.output_budget < 0:
            self.refuse(
                f"a NumPy array of shape {shape} would take the arrays built "
                "from this file far beyond the size of its stored data."
            )
        native = clean.newbyteorder("=")
        if not clean.isnative:
            raw = np.frombuffer(raw, clean).astype(native).tobytes()
        array.__setstate__((1, shape, native, bool(fortran), raw))


def _opcode_refuser(name: str) -> Callable[["_RestrictedUnpickler"], None]:
    def refuse(unpickler: "_RestrictedUnpickler") -> None:
        unpickler.loader.refuse(
            f"the pickle uses the {name} opcode, which torch.save never "
            "emits for tensors and plain containers."
        )

    return refuse


_DICTS = (dict, collections.OrderedDict)


class _RestrictedUnpickler(pickle._Unpickler):  # pylint: disable=protected-access
    """Pure-Python unpickler whose every call goes through `_Loader`.

    The pure-Python implementation is used (rather than the C one) because
    it lets us police every opcode that calls, instantiates, hashes or
    mutates objects, not only `find_class`.
    """

    dispatch = dict(pickle._Unpickler.dispatch)  # pylint: disable=protected-access

    def __init__(self, data: bytes, loader: _Loader):
        super().__init__(io.BytesIO(data), encoding="utf-8")
        self.loader = loader

    def find_class(self, module: str, name: str) -> Any:
        if self.proto < 3:  # Python 2 names, e.g. "__builtin__.set".
            module, name = _compat_pickle.NAME_MAPPING.get(
                (module, name), (module, name)
            )
            module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        return self.loader.resolve_global(module, name)

    def persistent_load(self, pid: Any) -> Any:
        return self.loader.load_storage(pid)

    def _load_reduce(self) -> None:
        args = self.stack.pop()
        self.stack[-1] = self.loader.call(self.stack[-1], args)

    def _load_build(self) -> None:
        state = self.stack.pop()
        target = self.stack[-1]
        loader = self.loader
        if type(target) is collections.OrderedDict and type(state) is dict:
            # torch attaches a `_metadata` attribute (module versions) to
            # state dicts; it is pickled as BUILD on the OrderedDict and
            # dropped here.
            return
        if isinstance(target, np.dtype):
            loader.build_dtype(target, state)
        elif type(target) is np.ndarray and loader.np_pending.get(id(target)) is target:
            del loader.np_pending[id(target)]  # At most one BUILD per array.
            loader.build_array(target, state)
        else:
            loader.refuse(
                f"the pickle sets the state of {_describe(target)}, which is "
                "not a dict, a NumPy dtype or a NumPy array being rebuilt."
            )

    def _set_items(self, target: Any, items: list[Any]) -> None:
        target = self.loader.container(target, _DICTS)
        if len(items) % 2:
            self.loader.fail("the pickle has a dict key without a value.")
        for i in range(0, len(items), 2):
            target[self.loader.plain_key(items[i])] = items[i + 1]

    def _load_dict(self) -> None:
        items = self.pop_mark()
        self.append({})
        self._set_items(self.stack[-1], items)

    def _load_setitem(self) -> None:
        value, key = self.stack.pop(), self.stack.pop()
        self._set_items(self.stack[-1], [key, value])

    def _load_setitems(self) -> None:
        items = self.pop_mark()
        self._set_items(self.stack[-1], items)

    def _load_additems(self) -> None:
        items = self.pop_mark()
        target = self.loader.container(self.stack[-1], (set,))
        target.update(self.loader.plain_items(items))

    def _load_frozenset(self) -> None:
        items = self.pop_mark()  # Rebinds `self.append`: call it first.
        self.append(self.loader.plain_frozenset(items))

    def _load_append(self) -> None:
        value = self.stack.pop()
        self.loader.container(self.stack[-1], (list,)).append(value)

    def _load_appends(self) -> None:
        items = self.pop_mark()
        self.loader.container(self.stack[-1], (list,)).extend(items)

    dispatch[pickle.REDUCE[0]] = _load_reduce
    dispatch[pickle.BUILD[0]] = _load_build
    dispatch[pickle.DICT[0]] = _load_dict
    dispatch[pickle.SETITEM[0]] = _load_setitem
    dispatch[pickle.SETITEMS[0]] = _load_setitems
    dispatch[pickle.ADDITEMS[0]] = _load_additems
    dispatch[pickle.FROZENSET[0]] = _load_frozenset
    dispatch[pickle.APPEND[0]] = _load_append
    dispatch[pickle.APPENDS[0]] = _load_appends
    # Opcodes that instantiate classes, look up the global extension
    # registry, or (BYTEARRAY8) allocate a size read from the file up front.
    for _name in (
        "INST", "OBJ", "NEWOBJ", "NEWOBJ_EX", "EXT1", "EXT2", "EXT4",
        "BYTEARRAY8", "NEXT_BUFFER", "READONLY_BUFFER",
    ):
        dispatch[getattr(pickle, _name)[0]] = _opcode_refuser(_name)
    del _name


def load_torch_checkpoint(path: PathLike) -> Any:
    """Reads a file written by `torch.save`, without torch and without risk.

    Tensors come back as NumPy arrays (copies honouring the saved offset and
    strides); `nn.Parameter`s become plain arrays too. Dicts, `OrderedDict`s,
    lists, tuples, sets, strings, numbers, bytes and `None` come back as
    themselves, and so do NumPy scalars and arrays of numeric or bool dtypes
    (e.g. `numpy.float64` values in mmcv's `meta`; arrays come back in native
    byte order). bfloat16 tensors are returned as **float32** (exactly, by
    widening the 16 bits), because NumPy has no bfloat16 dtype; bool tensors
    as `bool`. Files saved on a GPU load fine: device locations are ignored.

    Both formats of `torch.save` are read: the zip archive (PyTorch >= 1.6)
    and the legacy format (PyTorch < 1.6, or
    `_use_new_zipfile_serialization=False`), storage views included.

    Nothing in the file is executed. The pickle may reference only the
    tensor-rebuilding functions, the `torch.*Storage` dtype tags, plain
    container types and NumPy's scalar/array/dtype reconstructors (through
    wrappers that accept only numeric and bool dtypes and byte strings of
    the exact size); anything else, object arrays included, is refused
    before it is called. The attributes torch attaches to state dicts
    (`_metadata`) and parameters are dropped. A crafted file also cannot
    exhaust memory or crash the interpreter: tensor and array copies and
    inflated zip entries are bounded by the file's size (plus 1 GiB), and
    dict keys must be small plain values. Tensors whose dtype has no legacy
    storage class (uint16/32/64, float8; saved via `_rebuild_tensor_v3`) and
    sparse or quantized tensors are refused like any other unknown global.

    Args:
        path: Path of a `.pth`/`.pt`/`.bin` file written by `torch.save`,
            in the zip or the legacy format.

    Returns:
        The saved object, usually a dict such as a state dict or
        `{"state_dict": ..., "meta": ...}`.

    Raises:
        FileNotFoundError: If `path` does not exist.
        CheckpointError: If the file is not in a supported format (for
            example a TorchScript archive), is truncated or corrupt,
            describes a tensor outside its storage, references any global
            that is not a tensor, a plain container or an allowed NumPy
            reconstructor, or would need far more memory than its size
            justifies. The message names the file.

    Example:

    >>> import os, tempfile
    >>> import torch  # only to write a checkpoint here; reading needs no torch
    >>> path = os.path.join(tempfile.mkdtemp(), "resnet18.pth")
    >>> torch.save({"state_dict": {"fc.weight": torch.ones(10, 512)}, "meta": {}}, path)
    >>> ckpt = load_torch_checkpoint(path)
    >>> weights = extract_state_dict(ckpt)
    >>> type(weights["fc.weight"]).__name__, weights["fc.weight"].shape
    ('ndarray', (10, 512))
    """
    path = os.fspath(path)
    with open(path, "rb") as file:
        # From here on every failure is a property of the (untrusted) bytes:
        # report it as a CheckpointError naming the file.
        try:
            file_size = file.seek(0, os.SEEK_END)
            file.seek(0)
            # Like torch, tell the formats apart by their first bytes (zip
            # detection alone could be fooled by storage bytes near the end
            # of a legacy file): a legacy file starts with PROTO (0x80), the
            # opcode of pickle protocols >= 2.
            if file.read(1) != b"\x80":
                file.seek(0)
                if zipfile.is_zipfile(file):
                    file.seek(0)
                    with zipfile.ZipFile(file) as archive:
                        return _Loader(path, file_size).load_zip(archive)
                file.seek(0)
                if file.read(4) == b"PK\x03\x04":
                    # A zip's first entry but no end record: the end is
                    # missing (it was called "not a zip archive ... not a
                    # legacy torch.save file either").
                    _Loader(path, file_size).fail(
                        f"it starts as a zip archive (as torch.save writes) but its end is missing "
                        f"({file_size} bytes): it looks truncated, e.g. an interrupted download; "
                        f"download it again."
                    )
                _Loader(path, file_size).not_a_checkpoint(
                    "it does not start with a pickle"
                )
            file.seek(0)
            data = file.read()
            return _Loader(path, len(data)).load_legacy(data)
        except CheckpointError:
            raise
        except Exception as exc:  # pylint: disable=broad-exception-caught
            raise CheckpointError(
                f"cannot load {path}: the file is corrupt or truncated "
                f"({type(exc).__name__}: {_describe(str(exc), 200)})"
            ) from exc


_STATE_DICT_KEYS = ("state_dict", "model")


def extract_state_dict(
    checkpoint: Any, strip_prefixes: Iterable[str] = ("module.",)
) -> dict[str, np.ndarray]:
    """Finds the state dict in a loaded checkpoint and normalizes its keys.

    Accepts a bare state dict (a dict whose values are all arrays) or a dict
    holding one under `"state_dict"` (as written by mmcv/mmengine and many
    training scripts) or `"model"` (torchvision reference scripts). A leading
    prefix from `strip_prefixes` is removed from each key, e.g. the
    `"module."` that `nn.DataParallel` adds.

    Args:
        checkpoint: The object returned by `load_torch_checkpoint`.
        strip_prefixes: Prefixes to remove from the start of keys; at most
            one is removed per key (the first that matches).

    Returns:
        A new dict mapping parameter names to NumPy arrays, in file order.

    Raises:
        CheckpointError: If no state dict is found, an entry is not an array,
            a key is not a string, or stripping makes two keys collide.

    Example:

    >>> extract_state_dict({"state_dict": {"module.w": np.zeros(2)}})
    {'w': array([0., 0.])}
    """
    if isinstance(strip_prefixes, str):
        strip_prefixes = (strip_prefixes,)
    prefixes = tuple(strip_prefixes)
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(
            f"expected a checkpoint dict, got {type(checkpoint).__name__}."
        )
    state, where = checkpoint, "the checkpoint"
    for key in _STATE_DICT_KEYS:
        if isinstance(checkpoint.get(key), Mapping):
            state, where = checkpoint[key], f"checkpoint[{key!r}]"
            break
    bad = {
        k: type(v).__name__
        for k, v in state.items()
        if not isinstance(k, str) or not isinstance(v, np.ndarray)
    }
    if bad:
        shown = ", ".join(f"{k!r} ({t})" for k, t in list(bad.items())[:5])
        raise CheckpointError(
            f"{where} is not a state dict: {len(bad)} entries are not "
            f"name -> array pairs: {shown}. Expected a dict of arrays or a "
            f"dict with a {' or '.join(map(repr, _STATE_DICT_KEYS))} entry."
        )
    result: dict[str, np.ndarray] = {}
    for name, value in state.items():
        for prefix in prefixes:
            if prefix and name.startswith(prefix):
                name = name[len(prefix):]
                break
        if name in result:
            raise CheckpointError(f"two entries of {where} map to {name!r}.")
        result[name] = value
    return result


def extract_meta(checkpoint: Any) -> Any:
    """Returns `checkpoint["meta"]` untouched, or `None` if there is none.

    Args:
        checkpoint: The object returned by `load_torch_checkpoint`.

    Returns:
        The `"meta"` entry of a dict checkpoint (often a dict of plain
        values such as the class names or the training config), else `None`.

    Example:

    >>> extract_meta({"state_dict": {}, "meta": {"epoch": 12}})
    {'epoch': 12}
    """
    return checkpoint.get("meta") if isinstance(checkpoint, Mapping) else None
