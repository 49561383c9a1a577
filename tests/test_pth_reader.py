"""Tests for keras_ann.weights.pth_reader.

Tests that need real `torch.save` output import torch lazily and skip when it
is missing; the hostile-pickle, corrupt-file and fuzz tests build torch-like
archives by hand and never need torch.
"""

import builtins
import collections
import os
import pickle
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


def tensor(key, storage_type, numel, offset, size, stride, location="cpu"):
    storage = PersId(("storage", G("torch", storage_type), key, location, numel))
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


# --------------------------------------------------------------------------
# Round trips through real torch.save.
# --------------------------------------------------------------------------


def torch_roundtrip(tmp_path, obj, **kwargs):
    torch = pytest.importorskip("torch")
    path = tmp_path / "ckpt.pth"
    torch.save(obj, path, **kwargs)
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
def test_roundtrip_dtypes(tmp_path, dtype, expected):
    torch = pytest.importorskip("torch")
    t = (torch.arange(-6, 6).reshape(3, 4) * 1.5).to(getattr(torch, dtype))
    out = torch_roundtrip(tmp_path, {"t": t})["t"]
    assert out.dtype == expected and out.shape == (3, 4)
    reference = t.float() if dtype == "bfloat16" else t
    np.testing.assert_array_equal(out, reference.numpy())
    assert out.flags.writeable


def test_bfloat16_is_exact_float32(tmp_path):
    torch = pytest.importorskip("torch")
    t = torch.tensor([1.0, -2.5, 3.14159, 1e30, -1e-30, float("inf")]).bfloat16()
    out = torch_roundtrip(tmp_path, {"t": t})["t"]
    np.testing.assert_array_equal(out, t.float().numpy())


def test_roundtrip_non_contiguous_views(tmp_path):
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
    out = torch_roundtrip(tmp_path, views)
    for name, view in views.items():
        np.testing.assert_array_equal(out[name], view.numpy(), err_msg=name)
        assert out[name].shape == tuple(view.shape)


def test_shared_storage_gives_independent_arrays(tmp_path):
    torch = pytest.importorskip("torch")
    base = torch.arange(12.0)
    out = torch_roundtrip(tmp_path, {"a": base.view(3, 4), "b": base[4:8]})
    np.testing.assert_array_equal(out["b"], [4, 5, 6, 7])
    out["a"][1, 0] = -1  # Copies: writing one must not change the other.
    assert out["b"][0] == 4


def test_parameter_and_real_state_dict(tmp_path):
    torch = pytest.importorskip("torch")
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    p = torch.nn.Parameter(torch.randn(2, 3))
    tagged = torch.nn.Parameter(torch.ones(2))
    tagged.tag = "x"  # Saved through _rebuild_parameter_with_state.
    out = torch_roundtrip(
        tmp_path, {"p": p, "tagged": tagged, "sd": net.state_dict()}
    )
    np.testing.assert_array_equal(out["p"], p.detach().numpy())
    np.testing.assert_array_equal(out["tagged"], [1, 1])
    sd = out["sd"]  # Carries torch's `_metadata` (pickled as BUILD).
    assert isinstance(sd, collections.OrderedDict)
    assert list(sd) == list(net.state_dict())
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(sd[k], v.numpy())
    assert sd["1.num_batches_tracked"].dtype == np.int64


def test_state_dict_with_meta_and_dataparallel_prefix(tmp_path):
    torch = pytest.importorskip("torch")
    net = torch.nn.Linear(3, 2)
    meta = {
        "name": "net", "epoch": 7, "lr": 0.5, "shape": (1, 2),
        "classes": ["a", "b"], "cfg": {"depth": 18, "x": None}, "none": None,
    }
    ckpt = torch_roundtrip(
        tmp_path,
        {"state_dict": torch.nn.DataParallel(net).state_dict(), "meta": meta},
    )
    assert extract_meta(ckpt) == meta
    sd = extract_state_dict(ckpt)
    assert list(sd) == ["weight", "bias"]
    np.testing.assert_array_equal(sd["weight"], net.weight.detach().numpy())


def test_plain_values_in_meta(tmp_path):
    value = {
        "b": b"\x00\xffab", "e": b"", "s": {1, 2}, "f": frozenset("x"), "c": 1 - 2j,
    }
    assert torch_roundtrip(tmp_path, value) == value


def test_legacy_format_from_torch(tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "legacy.pth"
    torch.save({"w": torch.ones(2)}, path, _use_new_zipfile_serialization=False)
    with pytest.raises(CheckpointError, match="legacy") as info:
        load_torch_checkpoint(path)
    assert str(path) in str(info.value)


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
def test_hostile_pickle_is_refused(tmp_path, protocol, make, refused):
    marker = tmp_path / "PWNED"
    # Hide the payload next to legitimate content, as an attacker would.
    obj = {"state_dict": collections.OrderedDict(), "payload": make(marker)}
    path = write_archive(tmp_path / "evil.pth", pickle.dumps(obj, protocol=protocol))
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
        (G("numpy.core.multiarray", "_reconstruct"), "_reconstruct"),
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
def test_out_of_bounds_tensors_are_refused(
    tmp_path, offset, size, stride, numel, match
):
    pkl = assemble({"w": tensor("0", "FloatStorage", numel, offset, size, stride)})
    storage = np.zeros(numel, "<f4").tobytes()
    path = write_archive(tmp_path / "oob.pth", pkl, {"0": storage})
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


def test_repeated_views_cannot_exhaust_memory(tmp_path, monkeypatch):
    # One storage rebuilt as a full view again and again: each copy costs
    # memory, so the total is capped (slack shrunk to keep the test light).
    monkeypatch.setattr(pth_reader, "_OUTPUT_SLACK_BYTES", 1 << 20)
    view = tensor("0", "FloatStorage", 1 << 14, 0, (1 << 14,), (1,))
    storages = {"0": bytes(1 << 16)}
    path = write_archive(tmp_path / "v.pth", assemble([view] * 9), storages)
    assert len(load_torch_checkpoint(path)) == 9  # 1 MiB + 8 x 64 KiB fits.
    path = write_archive(tmp_path / "v.pth", assemble([view] * 30), storages)
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


def test_memoized_arguments_cannot_amplify(tmp_path):
    # set(big_list) called many times on the same memoized list.
    items = b"]q\x00(" + b"K\x01" * 1000 + b"e"
    calls = b"c__builtin__\nset\nq\x01" + b"h\x01h\x00\x85R0" * 5000
    pkl = b"\x80\x02" + items + calls + b"N."
    path = write_archive(tmp_path / "amp.pth", pkl)
    with pytest.raises(CheckpointError, match="far more data"):
        load_torch_checkpoint(path)


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_plain_values_every_protocol(tmp_path, protocol):
    value = {
        "set": {1, 2}, "frozenset": frozenset({"a"}), "bytes": b"\x00\xff",
        "nested": (1, (2.5, None), [3, "x"]), "complex": 1 - 2j, True: False,
        "ordered": collections.OrderedDict([("b", 1), ("a", [])]), (1, "k"): 0,
    }
    path = write_archive(tmp_path / "p.pth", pickle.dumps(value, protocol=protocol))
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
def test_unsafe_dict_keys_are_refused(tmp_path, pkl):
    path = write_archive(tmp_path / "k.pth", pkl)
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
