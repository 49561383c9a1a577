"""Safe reader for PyTorch checkpoint files.

`torch.load` unpickles arbitrary objects, so a malicious `.pth` file can run
any code on the machine that opens it. This module reads the same files
without importing torch and without ever calling anything that is not on a
short allow-list: the only objects it can rebuild are tensors (as NumPy
arrays) and plain Python containers and values.

The zip format written by `torch.save` (PyTorch >= 1.6) looks like this:

```
<name>/data.pkl     pickle of the saved object; tensors refer to storages
                    through persistent ids
<name>/data/<key>   raw bytes of one storage
<name>/byteorder    b"little" or b"big" (absent in old files: little)
<name>/version      format version
```
"""

from __future__ import annotations

import _compat_pickle
import collections
import io
import math
import os
import pickle
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
    "(entries '<name>/data.pkl' and '<name>/data/<key>')"
)

# `torch.save(..., _use_new_zipfile_serialization=False)` starts with a
# protocol-2 pickle of this magic number.
_LEGACY_MAGIC = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19"

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
    """Unpickles one archive; knows its path for error messages."""

    def __init__(self, path: str, archive: zipfile.ZipFile, file_size: int):
        self.path = path
        self.archive = archive
        self.read_budget = _OUTPUT_SLACK_BYTES + _MAX_INFLATION * file_size
        self.prefix = ""
        self.byteorder = "little"
        self.storages: dict[str, _Storage] = {}
        self.output_budget = _OUTPUT_SLACK_BYTES  # Bytes of tensors left.
        self.call_budget = 0  # Calls plus items passed to them; see `call`.
        callables: dict[tuple[str, str], Callable[..., Any]] = {
            ("collections", "OrderedDict"): self.ordered_dict,
            ("torch._utils", "_rebuild_tensor_v2"): self.rebuild_tensor,
            ("torch._utils", "_rebuild_parameter"): self.rebuild_parameter,
            ("torch._utils", "_rebuild_parameter_with_state"): self.rebuild_parameter,
            ("builtins", "set"): self.plain_set,
            ("builtins", "frozenset"): self.plain_frozenset,
            ("builtins", "bytes"): _empty_bytes,
            ("builtins", "complex"): _complex,
            ("_codecs", "encode"): _bytes_from_latin1,
        }
        self.callables = callables
        self.globals: dict[tuple[str, str], Any] = dict(callables)
        for name, storage_type in _STORAGE_TYPES.items():
            self.globals[("torch", name)] = storage_type

    def fail(self, message: str) -> NoReturn:
        raise CheckpointError(f"cannot load {self.path}: {message}")

    def refuse(self, message: str) -> NoReturn:
        raise CheckpointError(f"refusing to load {self.path}: {message}")

    def read(self, info: zipfile.ZipInfo) -> bytes:
        self.read_budget -= info.file_size
        if self.read_budget < 0:
            self.refuse("its entries inflate to far more than its own size.")
        data = self.archive.read(info)
        if len(data) != info.file_size:
            self.fail(f"the entry {_describe(info.filename)} is truncated.")
        return data

    def load(self) -> Any:
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
        self.call_budget = 2 * len(data) + 64
        return _RestrictedUnpickler(data, self).load()

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
            elif type(item) not in _SCALARS or budget < 0:
                self.refuse(
                    f"a dict key or set item is {_describe(item)}; only "
                    "strings, numbers, bytes, None and small tuples of them "
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
        # torch attaches a `_metadata` attribute (module versions) to state
        # dicts; it is pickled as BUILD on the OrderedDict and dropped here.
        target = self.stack[-1]
        if type(target) is not collections.OrderedDict or type(state) is not dict:
            self.loader.refuse("the pickle sets the state of a non-dict object.")

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
    themselves. bfloat16 tensors are returned as **float32** (exactly, by
    widening the 16 bits), because NumPy has no bfloat16 dtype; bool tensors
    as `bool`. Files saved on a GPU load fine: device locations are ignored.

    Nothing in the file is executed. The pickle may reference only the
    tensor-rebuilding functions, the `torch.*Storage` dtype tags and plain
    container types; anything else is refused before it is called. The
    attributes torch attaches to state dicts (`_metadata`) and parameters
    are dropped. A crafted file also cannot exhaust memory or crash the
    interpreter: tensor copies and inflated zip entries are bounded by the
    file's size (plus 1 GiB), and dict keys must be small plain values.
    Tensors whose dtype has no legacy storage class (uint16/32/64, float8;
    saved via `_rebuild_tensor_v3`) and sparse or quantized tensors are
    refused like any other unknown global.

    Args:
        path: Path of a `.pth`/`.pt`/`.bin` file in the zip format written
            by `torch.save` since PyTorch 1.6.

    Returns:
        The saved object, usually a dict such as a state dict or
        `{"state_dict": ..., "meta": ...}`.

    Raises:
        FileNotFoundError: If `path` does not exist.
        CheckpointError: If the file is not in a supported format (for
            example the legacy pre-1.6 format or a TorchScript archive), is
            truncated or corrupt, describes a tensor outside its storage,
            references any global that is not a tensor or plain container,
            or would need far more memory than its size justifies. The
            message names the file.

    Example:

    >>> ckpt = load_torch_checkpoint("resnet18.pth")  # doctest: +SKIP
    >>> weights = extract_state_dict(ckpt)  # doctest: +SKIP
    >>> weights["fc.weight"].shape  # doctest: +SKIP
    (1000, 512)
    """
    path = os.fspath(path)
    with open(path, "rb") as file:
        # From here on every failure is a property of the (untrusted) bytes:
        # report it as a CheckpointError naming the file.
        try:
            if not zipfile.is_zipfile(file):
                file.seek(0)
                if file.read(len(_LEGACY_MAGIC)) == _LEGACY_MAGIC:
                    kind = "the legacy (pre-1.6) torch.save format"
                else:
                    kind = "not a zip archive"
                raise CheckpointError(
                    f"cannot load {path}: it is {kind}. Supported: "
                    f"{SUPPORTED_FORMATS}. Re-save legacy files with a recent "
                    "PyTorch: torch.save(torch.load(f), f)."
                )
            file_size = file.seek(0, os.SEEK_END)
            file.seek(0)
            with zipfile.ZipFile(file) as archive:
                return _Loader(path, archive, file_size).load()
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
