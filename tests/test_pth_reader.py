"""Tests for keras_ann.weights.pth_reader.

Tests that need real `torch.save` output import torch lazily and skip when it
is missing; the hostile-pickle, corrupt-file and fuzz tests build torch-like
zip archives and legacy (pre-1.6) files by hand and never need torch.
"""

import builtins
import collections
import os
import pickle
import struct
import subprocess
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keras_ann.weights import pth_reader
from keras_ann.weights.pth_reader import (
    CheckpointError,
    extract_meta,
    extract_state_dict,
    load_torch_checkpoint,
)

# --------------------------------------------------------------------------
# A tiny protocol-2 pickle assembler, to craft torch-like (and hostile)
# pickles without torch.
# --------------------------------------------------------------------------


class G:
    """A global reference, pickled as GLOBAL 'module name'."""

    def __init__(self, module, name):
        self.module, self.name = module, name


class Call:
    """`func(*args)`, pickled as REDUCE."""

    def __init__(self, func, *args):
        self.func, self.args = func, args


class PersId:
    """A persistent id, pickled as BINPERSID."""

    def __init__(self, pid):
        self.pid = pid


class Build:
    """`obj` with BUILD state applied."""

    def __init__(self, obj, state):
        self.obj, self.state = obj, state


class Put:
    """`obj`, then stored in the memo as `index` (BINPUT)."""

    def __init__(self, obj, index):
        self.obj, self.index = obj, index


class Get:
    """The memo entry `index` (BINGET)."""

    def __init__(self, index):
        self.index = index


def assemble(obj):
    out = bytearray(b"\x80\x02")

    def emit(o):
        if isinstance(o, G):
            out.extend(f"c{o.module}\n{o.name}\n".encode())
        elif isinstance(o, Call):
            emit(o.func)
            emit(tuple(o.args))
            out.extend(b"R")
        elif isinstance(o, PersId):
            emit(o.pid)
            out.extend(b"Q")
        elif isinstance(o, Build):
            emit(o.obj)
            emit(o.state)
            out.extend(b"b")
        elif isinstance(o, Put):
            emit(o.obj)
            out.extend(b"q" + bytes([o.index]))
        elif isinstance(o, Get):
            out.extend(b"h" + bytes([o.index]))
        elif type(o) is tuple:
            out.extend(b"(")
            for item in o:
                emit(item)
            out.extend(b"t")
        elif type(o) is list:
            out.extend(b"](")
            for item in o:
                emit(item)
            out.extend(b"e")
        elif type(o) is dict:
            out.extend(b"}(")
            for k, v in o.items():
                emit(k)
                emit(v)
            out.extend(b"u")
        else:  # A primitive: reuse pickle's own encoding, minus PROTO/STOP.
            out.extend(pickle.dumps(o, protocol=2)[2:-1])

    emit(obj)
    out.extend(b".")
    return bytes(out)


def tensor(
    key, storage_type, numel, offset, size, stride, location="cpu",
    fmt="zip", view=None,
):
    """A `_rebuild_tensor_v2` call; `fmt="legacy"` gives a legacy 6-tuple pid."""
    pid = ("storage", G("torch", storage_type), key, location, numel)
    if fmt == "legacy":
        pid += (view,)
    storage = PersId(pid)
    return Call(
        G("torch._utils", "_rebuild_tensor_v2"),
        storage, offset, size, stride, False,
        Call(G("collections", "OrderedDict")),
    )


def write_archive(path, pkl, storages=None, byteorder=b"little", name="archive"):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{name}/data.pkl", pkl)
        if byteorder is not None:
            z.writestr(f"{name}/byteorder", byteorder)
        for key, data in (storages or {}).items():
            z.writestr(f"{name}/data/{key}", data)
        z.writestr(f"{name}/version", b"3\n")
    return path


def valid_archive_bytes(tmp_dir):
    """A small torch-like checkpoint built without torch."""
    w = np.arange(6, dtype="<f4")
    pkl = assemble({
        "state_dict": Call(G("collections", "OrderedDict"), [
            ("module.w", tensor("0", "FloatStorage", 6, 0, (2, 3), (3, 1))),
            ("module.wt", tensor("0", "FloatStorage", 6, 1, (2, 2), (1, 3))),
            ("module.n", tensor("1", "LongStorage", 1, 0, (), ())),
        ]),
        "meta": {"epoch": 3, "names": ["a", "b"]},
    })
    path = write_archive(
        os.path.join(tmp_dir, "valid.pth"), pkl,
        {"0": w.tobytes(), "1": np.array([7], "<i8").tobytes()},
    )
    with open(path, "rb") as f:
        return f.read()


def write_bytes(path, data):
    with open(path, "wb") as f:
        f.write(data)
    return str(path)


LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
SYS_INFO = {
    "protocol_version": 1001, "little_endian": True,
    "type_sizes": {"short": 2, "int": 4, "long": 8},
}


def legacy_header(sys_info=SYS_INFO, magic=LEGACY_MAGIC, version=1001):
    """The three header pickles (assembled, so they may hold hostile parts)."""
    return b"".join(assemble(v) for v in (magic, version, sys_info))


def legacy_bytes(
    pkl, storages=None, keys=None, sys_info=SYS_INFO, magic=LEGACY_MAGIC,
    version=1001,
):
    """A legacy torch.save file; `storages` maps key -> (numel, raw bytes)."""
    storages = storages or {}
    keys = list(storages) if keys is None else keys
    parts = [legacy_header(sys_info, magic, version), pkl, assemble(keys)]
    for numel, raw in storages.values():
        parts += [struct.pack("<q", numel), raw]
    return b"".join(parts)


def write_checkpoint(fmt, path, pkl, storages=None):
    """Writes `pkl` and `storages` (key -> array) in the zip or legacy format."""
    storages = storages or {}
    if fmt == "zip":
        return write_archive(path, pkl, {k: a.tobytes() for k, a in storages.items()})
    raw = {k: (a.size, a.tobytes()) for k, a in storages.items()}
    return write_bytes(path, legacy_bytes(pkl, raw))


FORMATS = ["zip", "legacy"]


def valid_legacy_bytes():
    """A small legacy checkpoint built without torch: views, NumPy meta."""
    return legacy_bytes(valid_legacy_pickle(), LEGACY_STORAGES)


def valid_legacy_pickle():
    return assemble({
        "state_dict": Call(G("collections", "OrderedDict"), [
            ("module.w", legacy_w(size=(2, 3), stride=(3, 1))),
            ("module.wt", legacy_w(offset=1, size=(2, 2), stride=(1, 3))),
            ("module.v", legacy_w(offset=1, size=(2,), view=("v", 2, 3))),
            ("module.n", legacy_w(1, 0, (), (), key="1", storage_type="LongStorage")),
        ]),
        "meta": {"epoch": 3, "lr": np.float64(0.5), "a": np.arange(3, dtype="<i2")},
    })


LEGACY_STORAGES = {
    "0": (6, np.arange(6, dtype="<f4").tobytes()),
    "1": (1, np.array([7], "<i8").tobytes()),
}


# --------------------------------------------------------------------------
# Round trips through real torch.save.
# --------------------------------------------------------------------------


@pytest.fixture(params=FORMATS)
def save_format(request):
    return request.param


def torch_roundtrip(tmp_path, obj, save_format="zip"):
    torch = pytest.importorskip("torch")
    path = tmp_path / "ckpt.pth"
    torch.save(obj, path, _use_new_zipfile_serialization=save_format == "zip")
    if save_format == "legacy":  # Make sure the legacy reader was exercised.
        assert path.read_bytes()[:2] == b"\x80\x02"
    return load_torch_checkpoint(path)


@pytest.mark.parametrize(
    "dtype, expected",
    [
        ("float32", np.float32), ("float64", np.float64),
        ("float16", np.float16), ("bfloat16", np.float32),
        ("int64", np.int64), ("int32", np.int32), ("int16", np.int16),
        ("int8", np.int8), ("uint8", np.uint8), ("bool", np.bool_),
        ("complex64", np.complex64),
    ],
)
def test_roundtrip_dtypes(tmp_path, dtype, expected, save_format):
    torch = pytest.importorskip("torch")
    t = (torch.arange(-6, 6).reshape(3, 4) * 1.5).to(getattr(torch, dtype))
    out = torch_roundtrip(tmp_path, {"t": t}, save_format)["t"]
    assert out.dtype == expected and out.shape == (3, 4)
    reference = t.float() if dtype == "bfloat16" else t
    np.testing.assert_array_equal(out, reference.numpy())
    assert out.flags.writeable


def test_bfloat16_is_exact_float32(tmp_path, save_format):
    torch = pytest.importorskip("torch")
    t = torch.tensor([1.0, -2.5, 3.14159, 1e30, -1e-30, float("inf")]).bfloat16()
    out = torch_roundtrip(tmp_path, {"t": t}, save_format)["t"]
    np.testing.assert_array_equal(out, t.float().numpy())


def test_roundtrip_non_contiguous_views(tmp_path, save_format):
    torch = pytest.importorskip("torch")
    base = torch.arange(60.0).reshape(3, 4, 5)
    views = {
        "transposed": base.transpose(0, 2),
        "sliced": base[1:, 2:, ::2],
        "offset_1d": base.flatten()[7:19:3],
        "expanded": torch.arange(3.0).reshape(3, 1).expand(3, 4),
        "scalar": base[2, 3, 4],
        "empty": base[:, :0],
    }
    out = torch_roundtrip(tmp_path, views, save_format)
    for name, view in views.items():
        np.testing.assert_array_equal(out[name], view.numpy(), err_msg=name)
        assert out[name].shape == tuple(view.shape)


def test_shared_storage_gives_independent_arrays(tmp_path, save_format):
    torch = pytest.importorskip("torch")
    base = torch.arange(12.0)
    out = torch_roundtrip(
        tmp_path, {"a": base.view(3, 4), "b": base[4:8]}, save_format
    )
    np.testing.assert_array_equal(out["b"], [4, 5, 6, 7])
    out["a"][1, 0] = -1  # Copies: writing one must not change the other.
    assert out["b"][0] == 4


def test_parameter_and_real_state_dict(tmp_path, save_format):
    torch = pytest.importorskip("torch")
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    p = torch.nn.Parameter(torch.randn(2, 3))
    tagged = torch.nn.Parameter(torch.ones(2))
    tagged.tag = "x"  # Saved through _rebuild_parameter_with_state.
    out = torch_roundtrip(
        tmp_path, {"p": p, "tagged": tagged, "sd": net.state_dict()}, save_format
    )
    np.testing.assert_array_equal(out["p"], p.detach().numpy())
    np.testing.assert_array_equal(out["tagged"], [1, 1])
    sd = out["sd"]  # Carries torch's `_metadata` (pickled as BUILD).
    assert isinstance(sd, collections.OrderedDict)
    assert list(sd) == list(net.state_dict())
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(sd[k], v.numpy())
    assert sd["1.num_batches_tracked"].dtype == np.int64


def test_state_dict_with_meta_and_dataparallel_prefix(tmp_path, save_format):
    torch = pytest.importorskip("torch")
    net = torch.nn.Linear(3, 2)
    meta = {
        "name": "net", "epoch": 7, "lr": 0.5, "shape": (1, 2),
        "classes": ["a", "b"], "cfg": {"depth": 18, "x": None}, "none": None,
    }
    ckpt = torch_roundtrip(
        tmp_path,
        {"state_dict": torch.nn.DataParallel(net).state_dict(), "meta": meta},
        save_format,
    )
    assert extract_meta(ckpt) == meta
    sd = extract_state_dict(ckpt)
    assert list(sd) == ["weight", "bias"]
    np.testing.assert_array_equal(sd["weight"], net.weight.detach().numpy())


def test_plain_values_in_meta(tmp_path, save_format):
    value = {
        "b": b"\x00\xffab", "e": b"", "s": {1, 2}, "f": frozenset("x"), "c": 1 - 2j,
    }
    assert torch_roundtrip(tmp_path, value, save_format) == value


def test_legacy_format_from_torch(tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "legacy.pth"
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    meta = {"mmcv_version": "1.0.2", "time": "Tue Jun  2 2020", "iter": 80000}
    ckpt = {"meta": meta, "state_dict": net.state_dict()}
    torch.save(ckpt, path, _use_new_zipfile_serialization=False)
    assert not zipfile.is_zipfile(path)
    out = load_torch_checkpoint(path)
    assert extract_meta(out) == meta
    sd = extract_state_dict(out)
    assert list(sd) == list(net.state_dict())
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(sd[k], v.numpy())


def test_legacy_little_endian_flag_matches_torch(tmp_path):
    # torch writes legacy storages little-endian whatever the machine (the
    # flag records the writer's byte order) and torch.load ignores the flag;
    # so must we.
    torch = pytest.importorskip("torch")
    path = tmp_path / "be.pth"
    value = {"w": torch.arange(5.0), "n": torch.arange(3)}
    torch.save(value, path, _use_new_zipfile_serialization=False)
    data = path.read_bytes()
    flag = b"little_endianq\x02\x88"
    assert data.count(flag) == 1
    path.write_bytes(data.replace(flag, b"little_endianq\x02\x89"))
    reference = torch.load(path, weights_only=False)
    out = load_torch_checkpoint(path)
    for k in value:
        np.testing.assert_array_equal(out[k], reference[k].numpy())


def test_truncated_legacy_torch_checkpoint(tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "real.pth"
    torch.save({"w": torch.randn(64, 64)}, path, _use_new_zipfile_serialization=False)
    data = path.read_bytes()
    for cut in (len(data) - 1, len(data) // 2, 300, 100, 20, 10, 1):
        cut_path = write_bytes(tmp_path / "real_cut.pth", data[:cut])
        with pytest.raises(CheckpointError, match="real_cut.pth"):
            load_torch_checkpoint(cut_path)


def test_handmade_legacy_file_matches_torch(tmp_path):
    # Checks the test writer (and storage views, which torch no longer
    # writes but still reads) against torch.load.
    torch = pytest.importorskip("torch")
    path = write_bytes(tmp_path / "hand.pth", valid_legacy_bytes())
    reference = torch.load(path, weights_only=False)
    out = load_torch_checkpoint(path)
    for k, v in reference["state_dict"].items():
        np.testing.assert_array_equal(out["state_dict"][k], v.numpy(), err_msg=k)
    assert out["meta"]["epoch"] == 3 and out["meta"]["lr"] == 0.5
    np.testing.assert_array_equal(out["meta"]["a"], reference["meta"]["a"])


NUMPY_META = {
    "f8": np.float64(0.1), "f4": np.float32(-2.5), "f2": np.float16(1.5),
    "i8": np.int64(-(2**40)), "i4": np.int32(7), "i2": np.int16(-3),
    "i1": np.int8(-128), "u1": np.uint8(255), "u2": np.uint16(65535),
    "u4": np.uint32(2**32 - 1), "u8": np.uint64(2**64 - 1),
    "b": np.bool_(True), "c8": np.complex64(1 - 2j), "c16": np.complex128(3j),
    "nan": np.float64("nan"),
    np.int64(5): "numpy key",
    "arange": np.arange(6, dtype=np.int64).reshape(2, 3),
    "big_endian": np.arange(5, dtype=">i4"),
    "fortran": np.asfortranarray(np.arange(12.0).reshape(3, 4)),
    "bools": np.array([True, False, True]),
    "half": np.array([0.5, -1], np.float16),
    "complex": np.array([1 + 1j], np.complex64),
    "u16": np.array([1, 65535], np.uint16),
    "scalar_array": np.array(3.25),
    "empty": np.zeros((0, 4), np.float32),
    "list": [np.float64(1.0), np.int64(2)],
}


def assert_numpy_meta_equal(out):
    assert set(out) == set(NUMPY_META)
    for key, expected in NUMPY_META.items():
        got = out[key]
        assert type(got) is type(expected), key
        if isinstance(expected, np.ndarray):
            assert got.dtype == expected.dtype.newbyteorder("=") and got.dtype.isnative
            assert got.shape == expected.shape and got.flags.writeable
            np.testing.assert_array_equal(got, expected, err_msg=str(key))
        elif isinstance(expected, np.generic):
            np.testing.assert_array_equal(got, expected, err_msg=str(key))
            assert got.dtype == expected.dtype
        else:
            assert got == expected


def test_numpy_scalars_and_arrays_in_meta(tmp_path, save_format):
    torch = pytest.importorskip("torch")
    shared = np.arange(4.0)
    ckpt = {
        "state_dict": {"w": torch.ones(2)},
        "meta": dict(NUMPY_META), "same": [shared, shared],
    }
    out = torch_roundtrip(tmp_path, ckpt, save_format)
    assert_numpy_meta_equal(out["meta"])
    assert out["same"][0] is out["same"][1]  # Memoized: one array.
    np.testing.assert_array_equal(out["same"][0], shared)


def test_numpy_object_array_is_refused(tmp_path, save_format):
    torch = pytest.importorskip("torch")
    path = tmp_path / "obj.pth"
    ckpt = {"meta": {"names": np.array(["a", 1], dtype=object)}}
    torch.save(ckpt, path, _use_new_zipfile_serialization=save_format == "zip")
    with pytest.raises(CheckpointError, match="'O8'.*Object arrays") as info:
        load_torch_checkpoint(path)
    assert str(info.value).startswith(f"refusing to load {path}: ")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_torchscript_archive_is_refused(tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), path)
    with pytest.raises(CheckpointError, match="TorchScript"):
        load_torch_checkpoint(path)


# --------------------------------------------------------------------------
# Hand-built archives (no torch needed).
# --------------------------------------------------------------------------


def test_handmade_archive_and_gpu_location(tmp_path):
    data = np.arange(6, dtype="<f4")
    pkl = assemble({"w": tensor("0", "FloatStorage", 6, 1, (2, 2), (1, 3), "cuda:0")})
    path = write_archive(tmp_path / "x.pth", pkl, {"0": data.tobytes()}, byteorder=None)
    np.testing.assert_array_equal(load_torch_checkpoint(path)["w"], [[1, 4], [2, 5]])


@pytest.mark.parametrize(
    "storage_type, raw, expected",
    [
        ("FloatStorage", np.array([1.5, -2], ">f4"), np.array([1.5, -2], np.float32)),
        ("LongStorage", np.array([1, -2], ">i8"), np.array([1, -2], np.int64)),
        (
            "BFloat16Storage",
            np.array([0x3FC0, 0xC000], ">u2"),
            np.array([1.5, -2], np.float32),
        ),
    ],
)
def test_big_endian_byteorder(tmp_path, storage_type, raw, expected):
    pkl = assemble({"w": tensor("0", storage_type, 2, 0, (2,), (1,))})
    path = write_archive(
        tmp_path / "be.pth", pkl, {"0": raw.tobytes()}, byteorder=b"big"
    )
    out = load_torch_checkpoint(path)["w"]
    assert out.dtype == expected.dtype and out.dtype.isnative
    np.testing.assert_array_equal(out, expected)


def test_missing_file():
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        load_torch_checkpoint("/nonexistent/dir/nope.pth")


class Evil:
    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("protocol", [2, 4])
@pytest.mark.parametrize(
    "make, refused",
    [
        (lambda m: Evil(os.system, f"touch {m}"), os.system.__module__ + ".system"),
        (
            lambda m: Evil(builtins.eval, f"__import__('os').system('touch {m}')"),
            ".eval",
        ),
        (lambda m: Evil(subprocess.Popen, ["touch", str(m)]), "subprocess.Popen"),
        (lambda m: Evil(builtins.exec, f"open({str(m)!r}, 'w')"), ".exec"),
    ],
)
def test_hostile_pickle_is_refused(tmp_path, fmt, protocol, make, refused):
    marker = tmp_path / "PWNED"
    # Hide the payload next to legitimate content, as an attacker would.
    obj = {"state_dict": collections.OrderedDict(), "payload": make(marker)}
    pkl = pickle.dumps(obj, protocol=protocol)
    path = write_checkpoint(fmt, tmp_path / "evil.pth", pkl)
    with pytest.raises(CheckpointError) as info:
        load_torch_checkpoint(path)
    message = str(info.value)
    assert message.startswith(f"refusing to load {path}: ")
    assert refused in message and "not a tensor or a plain container" in message
    assert not marker.exists()


@pytest.mark.parametrize(
    "obj, refused",
    [
        (
            Call(G("__builtin__", "getattr"), G("os", "path"), "join"),
            "'builtins.getattr'",
        ),
        (Call(G("posix", "system"), "true"), "posix.system"),
        (G("torch._utils", "_rebuild_tensor_v2.__globals__"), "__globals__"),
        (G("torch", "load"), "torch.load"),
        (G("numpy", "load"), "numpy.load"),
        (G("numpy.core.numeric", "_frombuffer"), "_frombuffer"),
        (G("numpy.core.multiarray", "fromstring"), "fromstring"),
        (G("numpy", "matrix"), "numpy.matrix"),
        (G("torch.serialization", "_get_layout"), "_get_layout"),
    ],
)
def test_non_allowed_globals_are_refused(tmp_path, obj, refused):
    path = write_archive(tmp_path / "g.pth", assemble({"x": obj}))
    with pytest.raises(CheckpointError, match="refusing to load") as info:
        load_torch_checkpoint(path)
    assert refused in str(info.value) and str(path) in str(info.value)


def test_only_allowed_callables_are_called(tmp_path):
    storage = PersId(("storage", G("torch", "FloatStorage"), "0", "cpu", 1))
    for func in (storage, G("torch", "FloatStorage")):
        pkl = assemble(Call(func, "x"))
        path = write_archive(tmp_path / "c.pth", pkl, {"0": b"\0" * 4})
        with pytest.raises(CheckpointError, match="tries to call"):
            load_torch_checkpoint(path)


@pytest.mark.parametrize(
    "pkl",
    [
        b"\x80\x02ccollections\nOrderedDict\n)\x81.",  # NEWOBJ
        b"(icollections\nOrderedDict\n.",  # INST
        b"\x80\x02\x82\x01.",  # EXT1
        b"\x80\x05\x96\xff\xff\xff\xff\xff\x00\x00\x00.",  # BYTEARRAY8, 1 TiB
        assemble(Build([], {"append": 1})),  # BUILD on a non-dict
    ],
)
def test_instantiation_opcodes_are_refused(tmp_path, pkl):
    path = write_archive(tmp_path / "op.pth", pkl)
    with pytest.raises(CheckpointError, match="refusing to load"):
        load_torch_checkpoint(path)


@pytest.mark.parametrize(
    "offset, size, stride, numel, match",
    [
        (5, (2,), (1,), 6, "reads element 6"),  # Offset pushes past the end.
        (0, (2, 3), (3, 2), 6, "reads element 7"),  # Stride too large.
        (0, (4,), (1,), 3, "reads element 3"),  # Size too large.
        (5, (2,), (1 << 62,), 6, "reads element"),
        (0, (3, 1 << 62), (1, 1 << 62), 6, "reads element"),  # Huge stride.
        (10**30, (1,), (1,), 6, "offset"),  # Beyond int64.
        (-1, (2,), (1,), 6, "offset"),
        (0, (2,), (-1,), 6, "non-negative"),
        (0, (2,), (1 << 63,), 6, "64-bit"),
        (0, (2, 2), (1,), 6, "does not match"),
        (0, (2.0,), (1,), 6, "non-negative 64-bit ints"),
        (0, 2, (1,), 6, "not a shape"),
        (7, (0,), (1,), 6, "past its storage"),
        (0, (1 << 20, 1 << 20), (0, 0), 6, "far beyond"),  # Memory bomb.
        (0, (1,) * 65, (1,) * 65, 6, "not a shape"),  # Too many dims.
    ],
)
@pytest.mark.parametrize("fmt", FORMATS)
def test_out_of_bounds_tensors_are_refused(
    tmp_path, fmt, offset, size, stride, numel, match
):
    pkl = assemble({
        "w": tensor("0", "FloatStorage", numel, offset, size, stride, fmt=fmt)
    })
    storages = {"0": np.zeros(numel, "<f4")}
    path = write_checkpoint(fmt, tmp_path / "oob.pth", pkl, storages)
    with pytest.raises(CheckpointError, match=match) as info:
        load_torch_checkpoint(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "storages, numel, match",
    [
        ({}, 6, "no entry"),
        ({"0": b"\0" * 20}, 6, "should hold 6 elements"),
    ],
)
def test_storage_entry_problems(tmp_path, storages, numel, match):
    pkl = assemble({"w": tensor("0", "FloatStorage", numel, 0, (6,), (1,))})
    path = write_archive(tmp_path / "s.pth", pkl, storages)
    with pytest.raises(CheckpointError, match=match):
        load_torch_checkpoint(path)


@pytest.mark.parametrize("fmt", FORMATS)
def test_repeated_views_cannot_exhaust_memory(tmp_path, monkeypatch, fmt):
    # One storage rebuilt as a full view again and again: each copy costs
    # memory, so the total is capped (slack shrunk to keep the test light).
    monkeypatch.setattr(pth_reader, "_OUTPUT_SLACK_BYTES", 1 << 20)
    view = tensor("0", "FloatStorage", 1 << 14, 0, (1 << 14,), (1,), fmt=fmt)
    storages = {"0": np.zeros(1 << 14, "<f4")}
    path = write_checkpoint(fmt, tmp_path / "v.pth", assemble([view] * 9), storages)
    assert len(load_torch_checkpoint(path)) == 9  # 1 MiB + 8 x 64 KiB fits.
    path = write_checkpoint(fmt, tmp_path / "v.pth", assemble([view] * 30), storages)
    with pytest.raises(CheckpointError, match="far beyond"):
        load_torch_checkpoint(path)


def test_deflated_archive_and_zip_bomb(tmp_path, monkeypatch):
    monkeypatch.setattr(pth_reader, "_OUTPUT_SLACK_BYTES", 1 << 20)
    pkl = assemble({"w": tensor("0", "ByteStorage", 4 << 20, 0, (4,), (1,))})
    path = tmp_path / "deflated.pth"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("archive/data.pkl", pkl)
        z.writestr("archive/data/0", bytes(4 << 20))  # 4 MiB -> 4 KiB.
    with pytest.raises(CheckpointError, match="inflate"):
        load_torch_checkpoint(path)
    monkeypatch.setattr(pth_reader, "_OUTPUT_SLACK_BYTES", 8 << 20)
    np.testing.assert_array_equal(load_torch_checkpoint(path)["w"], [0, 0, 0, 0])


@pytest.mark.parametrize("fmt", FORMATS)
def test_memoized_arguments_cannot_amplify(tmp_path, fmt):
    # set(big_list) called many times on the same memoized list.
    items = b"]q\x00(" + b"K\x01" * 1000 + b"e"
    calls = b"c__builtin__\nset\nq\x01" + b"h\x01h\x00\x85R0" * 5000
    pkl = b"\x80\x02" + items + calls + b"N."
    path = write_checkpoint(fmt, tmp_path / "amp.pth", pkl)
    with pytest.raises(CheckpointError, match="far more data"):
        load_torch_checkpoint(path)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_plain_values_every_protocol(tmp_path, fmt, protocol):
    value = {
        "set": {1, 2}, "frozenset": frozenset({"a"}), "bytes": b"\x00\xff",
        "nested": (1, (2.5, None), [3, "x"]), "complex": 1 - 2j, True: False,
        "ordered": collections.OrderedDict([("b", 1), ("a", [])]), (1, "k"): 0,
    }
    pkl = pickle.dumps(value, protocol=protocol)
    path = write_checkpoint(fmt, tmp_path / "p.pth", pkl)
    out = load_torch_checkpoint(path)
    assert out == value and type(out["ordered"]) is collections.OrderedDict


DEEP_TUPLE = b")" + b"\x85" * 200_000  # ((((...),),),): hashing it crashes CPython.
WIDE_DAG = b")" + b"q\x00h\x00\x86" * 100  # t = (t, t), 2**100 nodes.


@pytest.mark.parametrize(
    "pkl",
    [
        b"\x80\x02}" + DEEP_TUPLE + b"Ns.",  # SETITEM
        b"\x80\x02(" + DEEP_TUPLE + b"Nd.",  # DICT (protocol 0/1)
        b"\x80\x04\x8f(" + DEEP_TUPLE + b"\x90.",  # ADDITEMS
        b"\x80\x04(" + WIDE_DAG + b"\x91.",  # FROZENSET
        b"\x80\x02c__builtin__\nset\n]" + WIDE_DAG + b"a\x85R.",  # set(...)
        b"\x80\x02ccollections\nOrderedDict\n]" + WIDE_DAG + b"N\x86a\x85R.",
    ],
)
@pytest.mark.parametrize("fmt", FORMATS)
def test_unsafe_dict_keys_are_refused(tmp_path, pkl, fmt):
    path = write_checkpoint(fmt, tmp_path / "k.pth", pkl)
    with pytest.raises(CheckpointError, match="dict key or set item"):
        load_torch_checkpoint(path)


def test_storage_reused_with_another_type(tmp_path):
    pkl = assemble([
        tensor("0", "FloatStorage", 2, 0, (2,), (1,)),
        tensor("0", "IntStorage", 2, 0, (2,), (1,)),
    ])
    path = write_archive(tmp_path / "t.pth", pkl, {"0": b"\0" * 8})
    with pytest.raises(CheckpointError, match="two different types"):
        load_torch_checkpoint(path)


def test_truncated_checkpoint(tmp_path):
    data = valid_archive_bytes(tmp_path)
    assert load_torch_checkpoint(write_bytes(tmp_path / "ok.pth", data))
    path = write_bytes(tmp_path / "cut.pth", data[: len(data) // 2])
    with pytest.raises(CheckpointError) as info:
        load_torch_checkpoint(path)
    assert str(path) in str(info.value)


def test_a_truncated_zip_checkpoint_is_called_truncated_and_downloaded_again(tmp_path):
    data = valid_archive_bytes(tmp_path)
    path = write_bytes(tmp_path / "cut.pth", data[: len(data) // 2])
    with pytest.raises(CheckpointError) as info:
        load_torch_checkpoint(path)
    message = str(info.value)
    assert "looks truncated" in message and "download it again" in message and str(path) in message
    assert "not a zip archive" not in message and "\n" not in message


def test_truncated_torch_checkpoint(tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "real.pth"
    torch.save({"w": torch.randn(64, 64)}, path)
    data = path.read_bytes()
    cut = write_bytes(tmp_path / "real_cut.pth", data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="real_cut.pth"):
        load_torch_checkpoint(cut)


def test_corrupted_storage_fails_crc(tmp_path):
    data = bytearray(valid_archive_bytes(tmp_path))
    index = data.index(np.arange(6, dtype="<f4").tobytes()) + 5
    data[index] ^= 0xFF
    path = write_bytes(tmp_path / "crc.pth", bytes(data))
    with pytest.raises(CheckpointError, match="corrupt"):
        load_torch_checkpoint(path)


@pytest.mark.parametrize(
    "content, match",
    [
        (os.urandom(1000), "not a zip archive"),
        (b"", "not a zip archive"),
        (b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19.\x80\x02}q\x00.", "legacy"),
    ],
)
def test_not_a_zip(tmp_path, content, match):
    path = write_bytes(tmp_path / "junk.pth", content)
    with pytest.raises(CheckpointError, match=match) as info:
        load_torch_checkpoint(path)
    assert str(path) in str(info.value) and "Supported" in str(info.value)


def test_zip_without_checkpoint(tmp_path):
    path = tmp_path / "other.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("readme.txt", "hello")
    with pytest.raises(CheckpointError, match="data.pkl"):
        load_torch_checkpoint(path)


def test_bad_byteorder_record(tmp_path):
    path = write_archive(tmp_path / "bo.pth", assemble({}), byteorder=b"middle")
    with pytest.raises(CheckpointError, match="byteorder"):
        load_torch_checkpoint(path)


# --------------------------------------------------------------------------
# Hand-built legacy files (no torch needed).
# --------------------------------------------------------------------------


def legacy_w(numel=6, offset=0, size=(6,), stride=(1,), key="0", view=None,
             storage_type="FloatStorage"):
    return tensor(key, storage_type, numel, offset, size, stride, fmt="legacy",
                  view=view)


def test_legacy_storage_views(tmp_path):
    pkl = assemble({
        "root": legacy_w(),
        "a": legacy_w(offset=1, size=(2,), view=("v", 2, 3)),
        "b": legacy_w(size=(3,), view=("v", 2, 3)),
        "c": legacy_w(offset=0, size=(2, 2), stride=(1, 2), view=("u", 1, 4)),
        "empty": legacy_w(offset=0, size=(0,), view=("e", 6, 0)),
    })
    data = legacy_bytes(pkl, {"0": (6, np.arange(6, dtype="<f4").tobytes())})
    out = load_torch_checkpoint(write_bytes(tmp_path / "views.pth", data))
    np.testing.assert_array_equal(out["root"], np.arange(6))
    np.testing.assert_array_equal(out["a"], [3, 4])
    np.testing.assert_array_equal(out["b"], [2, 3, 4])
    np.testing.assert_array_equal(out["c"], [[1, 3], [2, 4]])
    assert out["empty"].shape == (0,)


def test_legacy_v1_tensors_and_no_storages(tmp_path):
    storage = PersId(("storage", G("torch", "LongStorage"), "k", "cpu", 3, None))
    pkl = assemble({
        "v1": Call(G("torch._utils", "_rebuild_tensor"), storage, 1, (2,), (1,)),
        "x": [1, "two"],
    })
    raw = np.array([5, 6, 7], "<i8").tobytes()
    out = load_torch_checkpoint(
        write_bytes(tmp_path / "v1.pth", legacy_bytes(pkl, {"k": (3, raw)}))
    )
    np.testing.assert_array_equal(out["v1"], [6, 7])
    empty = write_bytes(tmp_path / "none.pth", legacy_bytes(assemble({"a": None})))
    assert load_torch_checkpoint(empty) == {"a": None}


W6 = np.arange(6, dtype="<f4").tobytes()
GOOD = {"0": (6, W6)}


def legacy_case(pkl=None, storages=GOOD, **kwargs):
    return legacy_bytes(assemble({"w": legacy_w()}) if pkl is None else pkl,
                        storages, **kwargs)


@pytest.mark.parametrize(
    "data, match",
    [
        (legacy_case(magic=12345), "not the magic number.*Supported"),
        (b"\x80\x02}q\x00.", "not the magic number"),
        (pickle.dumps(list(range(100))), r"\(\d+ bytes\) is not the magic"),
        (pickle.dumps(LEGACY_MAGIC, protocol=5) + b"junk", "protocol version pickle"),
        (b"\x80\x02K\x01", "does not start with a complete pickle"),
        (legacy_case(version=1000), "legacy.*protocol version 1000.*Supported"),
        (legacy_case(sys_info=[1]), "system information"),
        (legacy_case(sys_info={"little_endian": "yes"}), "'little_endian'"),
        (legacy_case(sys_info={"protocol_version": 2}), "'protocol_version'"),
        (legacy_case(sys_info={"type_sizes": 8}), "'type_sizes'"),
        (legacy_case(keys=[]), "storage '0' is used but its data is missing"),
        (legacy_case(keys=["0", "1"]), "'1' is listed but never used"),
        (legacy_case(keys=["0", "0"]), "repeats a key"),
        (legacy_case(keys="0"), "not a list of strings"),
        (legacy_case(keys=[0]), "not a list of strings"),
        (legacy_case(storages={"0": (5, W6)}), "header in the file says 5"),
        (legacy_case(storages={"0": (-1, W6)}), "header in the file says -1"),
        (legacy_case(storages={"0": (6, W6[:-1])}), "truncated inside storage"),
        (legacy_case()[:-30], "truncated before storage"),
        (legacy_case(storages={"0": (6, W6 + b"x")}), "1 unexpected bytes"),
        (
            legacy_case(assemble({"w": legacy_w(numel=1 << 40, size=(2,))})),
            "claims 1099511627776 elements",
        ),
        (
            legacy_case(assemble({"w": tensor("0", "FloatStorage", 6, 0, (6,), (1,))})),
            "unsupported persistent id",
        ),
        (
            legacy_case(assemble({"w": legacy_w(), "x": legacy_w(numel=5, size=(5,))})),
            "declared with 6 and with 5 elements",
        ),
        (
            legacy_case(assemble({"w": legacy_w(), "x": legacy_w(
                storage_type="IntStorage")})),
            "two different types",
        ),
        (
            legacy_case(assemble({"w": legacy_w(size=(2,), view=("v", 5, 2))})),
            "reaches past the 6 elements",
        ),
        (
            legacy_case(assemble({"w": legacy_w(size=(2,), view=("v", 0, -1))})),
            "malformed storage view",
        ),
        (
            legacy_case(assemble({"w": legacy_w(size=(2,), view=["v", 0, 2])})),
            "malformed storage view",
        ),
        (
            legacy_case(assemble([
                legacy_w(size=(2,), view=("v", 0, 2)),
                legacy_w(size=(2,), view=("v", 1, 2)),
            ])),
            "'v' is declared twice",
        ),
        (
            legacy_case(assemble([legacy_w(size=(2,), view=("0", 0, 2))])),
            "names a storage and a view",
        ),
        (
            legacy_case(assemble({"w": legacy_w(size=(3,), view=("v", 4, 2))})),
            "reads element 2 of a storage holding only 2",
        ),
        (
            legacy_case(sys_info=PersId("x")),
            "header pickle of the legacy format holds the persistent id",
        ),
        (
            legacy_case(sys_info=Call(G("os", "system"), "true")),
            "refusing to load.*os.system",
        ),
        (
            legacy_case(magic=Call(G("builtins", "eval"), "1")),
            "refusing to load.*eval",
        ),
        (
            legacy_header() + assemble({"w": legacy_w()})[:-1],
            "object pickle .* corrupt",
        ),
        (legacy_header(), r"object pickle at byte \d+ is corrupt"),
        (legacy_case()[:15], "protocol version pickle at byte 15 is corrupt"),
    ],
)
def test_malformed_legacy_files(tmp_path, data, match):
    path = write_bytes(tmp_path / "bad.pth", data)
    with pytest.raises(CheckpointError, match=match) as info:
        load_torch_checkpoint(path)
    assert str(path) in str(info.value)


def test_legacy_base_cases_are_valid(tmp_path):
    # The malformed cases above are one change away from these.
    out = load_torch_checkpoint(write_bytes(tmp_path / "ok.pth", legacy_case()))
    np.testing.assert_array_equal(out["w"], np.arange(6))
    pkl = assemble({"w": legacy_w(size=(2,), view=("v", 4, 2))})
    out = load_torch_checkpoint(write_bytes(tmp_path / "ok.pth", legacy_case(pkl)))
    np.testing.assert_array_equal(out["w"], [4, 5])


def test_legacy_file_with_zip_trailer_bytes_is_still_legacy(tmp_path):
    # Storage bytes that look like a zip end-of-central-directory record must
    # not make a legacy file look like a zip archive.
    with zipfile.ZipFile(tmp_path / "tiny.zip", "w") as z:
        z.writestr("a", b"")
    trailer = (tmp_path / "tiny.zip").read_bytes()
    raw = np.frombuffer(trailer + bytes(-len(trailer) % 4), "<f4")
    pkl = assemble({"w": legacy_w(numel=raw.size, size=(raw.size,))})
    data = legacy_bytes(pkl, {"0": (raw.size, raw.tobytes())})
    path = write_bytes(tmp_path / "tricky.pth", data)
    assert zipfile.is_zipfile(path)
    np.testing.assert_array_equal(load_torch_checkpoint(path)["w"], raw)


# --------------------------------------------------------------------------
# NumPy objects in pickles (no torch needed).
# --------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4])
def test_numpy_values_every_protocol(tmp_path, fmt, protocol):
    pkl = pickle.dumps(NUMPY_META, protocol=protocol)
    out = load_torch_checkpoint(write_checkpoint(fmt, tmp_path / "np.pth", pkl))
    assert_numpy_meta_equal(out)


def test_numpy_protocol_5_arrays_are_refused(tmp_path):
    # Protocol 5 pickles arrays out of band (as writable BYTEARRAY8 buffers
    # for _frombuffer); torch.save never uses it by default. Scalars work.
    scalars = {"f": np.float64(2.5), "i": np.int8(-1)}
    path = write_archive(tmp_path / "p5.pth", pickle.dumps(scalars, protocol=5))
    assert load_torch_checkpoint(path) == scalars
    path = write_archive(tmp_path / "p5.pth", pickle.dumps(np.zeros(2), protocol=5))
    with pytest.raises(CheckpointError, match="refusing to load"):
        load_torch_checkpoint(path)


STATE_TAIL = (None, None, None, -1, -1, 0)


def np_dtype(code, state=(3, "<", None, None, None, -1, -1, 0), args=(False, True)):
    return Build(Call(G("numpy", "dtype"), code, *args), state)


def np_scalar(dtype, data, module="numpy.core.multiarray"):
    return Call(G(module, "scalar"), dtype, data)


def np_array(state, module="numpy._core.multiarray"):
    empty = Call(G(module, "_reconstruct"), G("numpy", "ndarray"), (0,), b"b")
    return Build(empty, state)


def test_handmade_numpy_objects(tmp_path):
    f8 = np_dtype("f8")
    pkl = assemble({
        "old": np_scalar(f8, np.float64(1.25).tobytes()),
        "new": np_scalar(f8, np.float64(-3).tobytes(), "numpy._core.multiarray"),
        "be": np_scalar(np_dtype("i4", (3, ">") + STATE_TAIL), b"\x00\x00\x01\x00"),
        "bool": np_scalar(np_dtype("b1", (3, "|") + STATE_TAIL), b"\x02"),
        "py2_flags": np_scalar(np_dtype("u1", args=(0, 1)), b"\x07"),
        "array": np_array((
            1, (2,), np_dtype("i2", (3, ">") + STATE_TAIL), False, b"\x00\x01\x00\x02"
        )),
        "dtype": np_dtype("c8"),
    })
    out = load_torch_checkpoint(write_archive(tmp_path / "np.pth", pkl))
    assert out["old"] == 1.25 and type(out["old"]) is np.float64
    assert out["new"] == -3
    assert out["be"] == 256 and type(out["be"]) is np.int32
    assert out["bool"] is np.True_
    assert out["py2_flags"] == 7 and type(out["py2_flags"]) is np.uint8
    np.testing.assert_array_equal(out["array"], [1, 2])
    assert out["array"].dtype == np.int16 and out["array"].dtype.isnative
    assert out["dtype"] == np.complex64
    assert np.dtype("c8") is not out["dtype"]  # NumPy's own dtype untouched.


@pytest.mark.parametrize(
    "obj, match",
    [
        # Dtypes other than plain numbers and bools.
        *[
            (np_dtype(code), "asks for the NumPy dtype")
            for code in ("O8", "O", "V4", "U3", "S2", "M8", "m8", "f16", "c32",
                         "<f8", "i3", "f8,i4", b"f8", 8, None)
        ],
        (np_dtype("f8", args=(False, 2)), "flag"),
        (np_dtype("f8", args=(False, True, 1)), "bad arguments"),
        # Dtype states that are not those of plain numeric dtypes.
        (np_dtype("f8", (3, "<", None, None, None, -1, -1, 63)), "not that of a plain"),
        (np_dtype("f8", (3, "|") + STATE_TAIL), "not that of a plain"),
        (np_dtype("f8", (3, "x") + STATE_TAIL), "not that of a plain"),
        (np_dtype("f8", (4, "<") + STATE_TAIL + (None,)), "not that of a plain"),
        (np_dtype("f8", (3, "<", None, ("a",), {"a": 1}, 8, 1, 16)), "not that of a"),
        (np_dtype("f8", (3, "<", None, None, None, 8, -1, 0)), "not that of a plain"),
        (np_dtype("f8", (3, "<", None, None, None, -1, -1, False)), "not that of"),
        (np_dtype("f8", [3, "<", None, None, None, -1, -1, 0]), "not that of a plain"),
        (np_dtype("f8", {"a": 1}), "not that of a plain"),
        (Build(np_dtype("f8"), (3, ">") + STATE_TAIL), "NumPy dtype twice"),
        # Scalars.
        (np_scalar(np_dtype("f8"), b"\x00" * 7), "needs 8 bytes"),
        (np_scalar(np_dtype("f8"), "\x00" * 8), "needs 8 bytes"),
        (np_scalar("f8", b"\x00" * 8), "not a NumPy dtype"),
        (np_scalar(Call(G("numpy", "dtype"), "f8", False, True), b"\x00" * 8),
         "before its state is set"),
        (Call(G("numpy.core.multiarray", "scalar"), np_dtype("f8")), "needs 8 bytes"),
        # Arrays.
        (np_array((1, (2, 3), np_dtype("f8"), False, bytes(47))), "needs 48 bytes"),
        (np_array((1, (2, 3), np_dtype("f8"), False, [0.0] * 6)), "needs 48 bytes"),
        (np_array((1, (2,), "f8", False, bytes(16))), "may not have"),
        (np_array((1, (2,), np_dtype("O8"), False, [1, 2])), "'O8'"),
        (np_array((2, (2,), np_dtype("u1"), False, bytes(2))), "state version"),
        (np_array((1, (-2,), np_dtype("u1"), False, b"")), "not a shape"),
        (np_array((1, (1,) * 65, np_dtype("u1"), False, b"\0")), "not a shape"),
        (np_array((1, [2], np_dtype("u1"), False, b"\0\0")), "not a shape"),
        (np_array((1, (2,), np_dtype("u1"), 2, b"\0\0")), "order flag"),
        (np_array((1, (2,), np_dtype("u1"), False)), "malformed NumPy array"),
        (np_array({"a": 1}), "malformed NumPy array"),
        (
            Call(G("numpy.core.multiarray", "_reconstruct"),
                 G("collections", "OrderedDict"), (0,), b"b"),
            "only numpy.ndarray",
        ),
        (
            Call(G("numpy.core.multiarray", "_reconstruct"),
                 G("numpy", "ndarray"), (1 << 40,), b"b"),
            "only the arguments NumPy pickles",
        ),
        (Call(G("numpy", "ndarray"), (3,)), "tries to call"),
        (
            Build(Put(np_array((1, (2,), np_dtype("u1"), False, b"\0\0")), 200),
                  (1, (3,), Get(200), False, b"\0\0\0")),
            "sets the state of <ndarray>",
        ),
        (
            Build(Call(G("collections", "OrderedDict")), (1, (1,), None, False, b"")),
            "sets the state of",
        ),
    ],
)
def test_bad_numpy_objects_are_refused(tmp_path, obj, match):
    path = write_archive(tmp_path / "np.pth", assemble({"x": obj}))
    with pytest.raises(CheckpointError, match=match) as info:
        load_torch_checkpoint(path)
    assert str(path) in str(info.value)


def test_build_on_a_tensor_is_refused(tmp_path):
    w = tensor("0", "FloatStorage", 2, 0, (2,), (1,))
    pkl = assemble(Build(w, (1, (1,), np_dtype("f4"), False, b"\0" * 4)))
    path = write_archive(tmp_path / "b.pth", pkl, {"0": bytes(8)})
    with pytest.raises(CheckpointError, match="sets the state of <ndarray>"):
        load_torch_checkpoint(path)


@pytest.mark.parametrize("fmt", FORMATS)
def test_memoized_array_data_cannot_exhaust_memory(tmp_path, monkeypatch, fmt):
    monkeypatch.setattr(pth_reader, "_OUTPUT_SLACK_BYTES", 1 << 20)
    raw, dtype = Put(bytes(1 << 16), 200), Put(np_dtype("u1"), 201)
    first = np_array((1, (1 << 16,), dtype, False, raw))
    again = np_array((1, (1 << 16,), Get(201), False, Get(200)))
    ok = assemble([first] + [again] * 8)
    path = write_checkpoint(fmt, tmp_path / "m.pth", ok)
    assert len(load_torch_checkpoint(path)) == 9
    bomb = assemble([first] + [again] * 30)
    with pytest.raises(CheckpointError, match="far beyond"):
        load_torch_checkpoint(write_checkpoint(fmt, tmp_path / "m.pth", bomb))


# --------------------------------------------------------------------------
# extract_state_dict / extract_meta (no torch needed).
# --------------------------------------------------------------------------


def test_extract_state_dict_variants():
    w, b = np.ones(2), np.zeros(1)
    assert extract_state_dict({"w": w, "b": b}).keys() == {"w", "b"}
    ckpt = {"state_dict": {"module.w": w, "b": b}, "meta": {"epoch": 1}}
    out = extract_state_dict(ckpt)
    assert list(out) == ["w", "b"] and out["w"] is w
    assert extract_meta(ckpt) is ckpt["meta"]
    assert list(extract_state_dict({"model": {"w": w}, "epoch": 3})) == ["w"]
    assert list(extract_state_dict({"module.w": w}, strip_prefixes=())) == ["module.w"]
    assert list(extract_state_dict({"x.w": w}, strip_prefixes="x.")) == ["w"]
    assert extract_meta({"w": w}) is None and extract_meta(w) is None


@pytest.mark.parametrize(
    "checkpoint, match",
    [
        (
            {"state_dict": {"w": np.ones(1), "n": 3}},
            r"checkpoint\['state_dict'\].*'n' \(int\)",
        ),
        ({"w": np.ones(1), "epoch": 3}, "not a state dict"),
        ({"module.w": np.ones(1), "w": np.ones(1)}, "map to 'w'"),
        (np.ones(2), "expected a checkpoint dict"),
    ],
)
def test_extract_state_dict_errors(checkpoint, match):
    with pytest.raises(CheckpointError, match=match):
        extract_state_dict(checkpoint)


# --------------------------------------------------------------------------
# Fuzzing: malformed input may only ever raise CheckpointError.
# --------------------------------------------------------------------------

FUZZ = settings(
    max_examples=200, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module")
def valid_bytes(fuzz_dir):
    return valid_archive_bytes(str(fuzz_dir))


def load_or_checkpoint_error(path):
    try:
        load_torch_checkpoint(path)
    except CheckpointError:
        pass


@FUZZ
@given(
    st.one_of(
        st.binary(max_size=2048),
        st.binary(max_size=512).map(lambda b: b"PK\x03\x04" + b),
        st.binary(max_size=512).map(lambda b: b"\x80\x02" + b),
        st.binary(max_size=512).map(lambda b: legacy_header() + b),
    )
)
def test_fuzz_random_bytes(fuzz_dir, data):
    load_or_checkpoint_error(write_bytes(fuzz_dir / "random.pth", data))


mutations = st.lists(
    st.tuples(st.integers(min_value=0), st.integers(min_value=0, max_value=255)),
    min_size=1, max_size=8,
)


def mutate(data, edits, cut):
    data = bytearray(data)
    for position, value in edits:
        data[position % len(data)] = value
    return bytes(data[: max(1, cut % (len(data) + 1))])


@FUZZ
@given(edits=mutations, cut=st.integers(min_value=0))
def test_fuzz_mutated_archive(fuzz_dir, valid_bytes, edits, cut):
    data = mutate(valid_bytes, edits, cut)
    load_or_checkpoint_error(write_bytes(fuzz_dir / "mutated.pth", data))


@FUZZ
@given(edits=mutations, cut=st.integers(min_value=0))
def test_fuzz_mutated_pickle_in_valid_zip(fuzz_dir, valid_bytes, edits, cut):
    # Re-zip so that CRCs are right and the mutation reaches the unpickler.
    path = fuzz_dir / "source.pth"
    path.write_bytes(valid_bytes)
    with zipfile.ZipFile(path) as z:
        entries = {n: z.read(n) for n in z.namelist()}
    entries["archive/data.pkl"] = mutate(entries["archive/data.pkl"], edits, cut)
    target = fuzz_dir / "mutated_pickle.pth"
    with zipfile.ZipFile(target, "w") as z:
        for name, content in entries.items():
            z.writestr(name, content)
    load_or_checkpoint_error(target)


@FUZZ
@given(edits=mutations, cut=st.integers(min_value=0))
def test_fuzz_mutated_legacy_file(fuzz_dir, edits, cut):
    data = mutate(valid_legacy_bytes(), edits, cut)
    load_or_checkpoint_error(write_bytes(fuzz_dir / "mutated_legacy.pth", data))


@FUZZ
@given(edits=mutations, cut=st.integers(min_value=0))
def test_fuzz_mutated_pickle_in_valid_legacy_file(fuzz_dir, edits, cut):
    # Headers, key list and storages stay valid: the mutation reaches both
    # passes over the object pickle.
    pkl = mutate(valid_legacy_pickle(), edits, cut)
    data = legacy_bytes(pkl, LEGACY_STORAGES)
    load_or_checkpoint_error(write_bytes(fuzz_dir / "mutated_legacy_pkl.pth", data))


@FUZZ
@given(
    edits=mutations, cut=st.integers(min_value=0),
    protocol=st.sampled_from([2, 4]),
)
def test_fuzz_mutated_numpy_pickle(fuzz_dir, edits, cut, protocol):
    pkl = mutate(pickle.dumps(NUMPY_META, protocol=protocol), edits, cut)
    load_or_checkpoint_error(write_archive(fuzz_dir / "mutated_np.pth", pkl))


def test_fuzz_legacy_base_is_valid(fuzz_dir):
    path = write_bytes(fuzz_dir / "legacy_base.pth", valid_legacy_bytes())
    ckpt = load_torch_checkpoint(path)
    sd = extract_state_dict(ckpt)
    np.testing.assert_array_equal(sd["w"], np.arange(6).reshape(2, 3))
    np.testing.assert_array_equal(sd["wt"], [[1, 4], [2, 5]])
    np.testing.assert_array_equal(sd["v"], [3, 4])
    assert sd["n"].shape == () and sd["n"] == 7
    meta = extract_meta(ckpt)
    assert meta["epoch"] == 3 and meta["lr"] == 0.5 and type(meta["lr"]) is np.float64
    np.testing.assert_array_equal(meta["a"], [0, 1, 2])
    assert meta["a"].dtype == np.int16


def test_fuzz_base_is_valid(valid_bytes, fuzz_dir):
    ckpt = load_torch_checkpoint(write_bytes(fuzz_dir / "base.pth", valid_bytes))
    sd = extract_state_dict(ckpt)
    np.testing.assert_array_equal(sd["w"], np.arange(6).reshape(2, 3))
    np.testing.assert_array_equal(sd["wt"], [[1, 4], [2, 5]])
    assert sd["n"].shape == () and sd["n"] == 7
    assert extract_meta(ckpt) == {"epoch": 3, "names": ["a", "b"]}


def test_assembler_sanity():
    value = (1 << 40, -5, 2.5, "é", None, True, [1, {"a": ()}])
    assert pickle.loads(assemble(value)) == value
