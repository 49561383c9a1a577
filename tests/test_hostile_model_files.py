"""Hostile model files: `.keras` archives that read other files through
HDF5 external datasets, zip bombs, FIFOs and devices as model paths. Each
is refused in one line naming the file (and the limit), before anything
large is read. (`.pth` files: `test_pth_reader.py`.)"""

import json
import os
import re
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import keras
import keras_ann
from keras_ann import cli
from keras_ann.models import loading
from keras_ann.weights.pth_reader import CheckpointError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECRET = b"root:x:0:0:root:/root:/bin/bash\n"


def _tiny_model(num_classes=3):
    backbone = keras_ann.ResNetBackbone(depth=18, output_stride=8, stem_channels=8, base_channels=8)
    return keras_ann.ANNSegmenter(
        backbone, num_classes=num_classes, head_channels=16, project_channels=8, auxiliary_channels=8
    )


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A tiny model's `.keras` file and its entries."""
    path = str(tmp_path_factory.mktemp("saved") / "tiny.keras")
    _tiny_model().save(path)
    with zipfile.ZipFile(path) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    return path, entries


def _write_zip(path, entries, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return str(path)


# keras-ann 0.1.0's weight paths (flat head layers) -> the current ones.
_LAYOUT_0_1_0 = {
    "layers/afnb/": "layers/ann_head/fusion/",
    "layers/conv_bn_re_lu/": "layers/ann_head/bottleneck/",
    "layers/apnb/": "layers/ann_head/context/",
    "layers/conv2d/": "layers/ann_head/conv_seg/",
    "training_graph/layers/conv_bn_re_lu_1/": "auxiliary_head/convs/conv_bn_re_lu/",
    "training_graph/layers/conv2d/": "auxiliary_head/conv_seg/",
}


def _old_path(name):
    for old, new in _LAYOUT_0_1_0.items():
        if name.startswith(new):
            return old + name[len(new):]
    return name


def _with_external_dataset(weights, tmp_path, target, old_layout):
    """`weights` (HDF5 bytes) with its first float dataset replaced by an
    external dataset over the file `target`; `old_layout`: under 0.1.0's
    paths."""
    import h5py

    rename = _old_path if old_layout else (lambda name: name)

    source, hostile = tmp_path / "source.h5", tmp_path / "hostile.h5"
    source.write_bytes(weights)
    with h5py.File(source, "r") as old, h5py.File(hostile, "w") as new:
        names = []
        old.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
        replaced = None
        for name in names:
            data = old[name][...]
            if replaced is None and data.dtype == np.float32 and data.size >= 8:
                replaced = name
                new.create_dataset(
                    rename(name), data.shape, data.dtype, external=[(str(target), 0, h5py.h5f.UNLIMITED)]
                )
            else:
                new[rename(name)] = data
    return hostile.read_bytes()


def _hostile_keras(saved, tmp_path, target, old_layout=True):
    """The tiny model's file, its weights reading `target` through an
    external dataset; `old_layout`: with 0.1.0's `synchronized` key."""
    _, entries = saved
    entries = dict(entries)
    config = json.loads(entries["config.json"])
    if old_layout:  # as 0.1.0 saved it
        del config["config"]["feature_keys"]
        config["config"]["synchronized"] = True
    entries["config.json"] = json.dumps(config).encode()
    entries["model.weights.h5"] = _with_external_dataset(entries["model.weights.h5"], tmp_path, target, old_layout)
    return _write_zip(tmp_path / "evil.keras", entries)


def _cli(*args, timeout=120):
    env = dict(os.environ, PYTHONPATH=ROOT, CUDA_VISIBLE_DEVICES="")
    env.pop("KERAS_ANN_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "keras_ann.cli", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def test_convert_of_an_old_layout_file_reading_a_secret_through_hdf5_refuses_and_writes_nothing(saved, tmp_path):
    secret = tmp_path / "passwd"
    secret.write_bytes(SECRET * 65536)
    evil = _hostile_keras(saved, tmp_path, secret)
    out = tmp_path / "out.keras"
    result = _cli("convert", evil, str(out))
    assert result.returncode == 1, result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert re.search(r"evil\.keras: refused, its weights read other files: .* is stored in another file .*passwd", last), last
    # (The 0.1.0 converter, now removed, wrote the secret into out.keras.)
    assert not out.exists()
    assert "root:x:0:0" not in result.stdout + result.stderr


def test_a_current_layout_file_with_an_external_dataset_on_a_fifo_is_refused_without_hanging(saved, tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    for old_layout in (True, False):
        evil = _hostile_keras(saved, tmp_path, fifo, old_layout=old_layout)
        # A read of the FIFO would block forever: the test's timeout says so.
        result = _cli("convert", evil, str(tmp_path / "out.keras"), timeout=90)
        assert result.returncode == 1, result.stderr[-3000:]
        last = result.stderr.strip().splitlines()[-1]
        assert re.search(r"evil\.keras: refused, its weights read other files: .* is stored in another file .*pipe", last), last
        assert not (tmp_path / "out.keras").exists()


def test_an_old_layout_file_is_refused_in_one_line_saying_what_to_do(saved, tmp_path, capsys):
    _, entries = saved
    config = json.loads(entries["config.json"])
    config["config"]["synchronized"] = True
    path = _write_zip(tmp_path / "old.keras", dict(entries, **{"config.json": json.dumps(config)}))
    with pytest.raises(CheckpointError, match=r"old\.keras is in the layout of the unreleased.*keras-ann convert"):
        keras_ann.ANNSegmenter.from_preset(path)
    assert cli.main(["convert", path, str(tmp_path / "out.keras")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "old.keras" in err, err


def _declare(path, entry, size):
    """Patch the uncompressed size that the zip at `path` declares for
    `entry` (local header and central directory), as a crafted archive
    does, without writing that much."""
    data = bytearray(open(path, "rb").read())
    name = entry.encode()
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        start = 0
        while (start := data.find(signature, start)) >= 0:
            name_offset = 30 if signature == b"PK\x03\x04" else 46
            if data[start + name_offset : start + name_offset + len(name)] == name:
                data[start + offset : start + offset + 4] = size.to_bytes(4, "little")
            start += 4
    open(path, "wb").write(bytes(data))
    return path


def test_zip_bombs_and_oversized_entries_are_refused_naming_the_entry_and_the_limit(saved, tmp_path, capsys):
    _, entries = saved
    bomb = _write_zip(  # 40 MiB of zeros: about 40 kB stored
        tmp_path / "bomb.keras", dict(entries, **{"model.weights.h5": bytes(40 << 20)}), zipfile.ZIP_DEFLATED
    )
    declared = _declare(_write_zip(tmp_path / "declared.keras", entries), "model.weights.h5", 3 << 30)
    config = json.loads(entries["config.json"])
    padded = json.dumps(config).encode()[:-1] + b" " * (9 << 20) + b"}"  # valid JSON, 9 MiB
    padding = _write_zip(tmp_path / "padded.keras", dict(entries, **{"config.json": padded}), zipfile.ZIP_DEFLATED)
    many = _write_zip(tmp_path / "many.keras", dict(entries, **{f"assets/{i}": b"" for i in range(100)}))
    cases = {
        bomb: r"bomb\.keras: its entry model\.weights\.h5 declares 40\.0 MiB from .* more than 20 times",
        declared: r"declared\.keras: its entry model\.weights\.h5 declares 3\.0 GiB from .* more than 20 times",
        padding: r"padded\.keras: its entry config\.json declares 9\.0 MiB, over the limit of 8\.0 MiB",
        many: r"many\.keras holds 103 zip entries, more than the 64",
    }
    for path, message in cases.items():
        with pytest.raises(CheckpointError, match=message):
            keras_ann.ANNSegmenter.from_preset(path)
        assert cli.main(["convert", path, str(tmp_path / "out.keras")]) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and re.search(message, err), err


def test_fifos_and_devices_given_as_model_files_are_refused_by_their_kind(saved, tmp_path):
    fifo = str(tmp_path / "model.keras")
    os.mkfifo(fifo)
    device = str(tmp_path / "zero.keras")
    os.symlink("/dev/zero", device)
    for path, kind in ((fifo, "a FIFO (named pipe)"), (device, "a character device")):
        with pytest.raises(CheckpointError, match=re.escape(f"{path} is {kind}, not a model file")):
            keras_ann.ANNSegmenter.from_preset(path)
    # A directory is read as a preset directory (tests/test_preset_directories.py).
    with pytest.raises(CheckpointError, match=re.escape(f"{tmp_path} is not a preset directory: it has no config.json")):
        keras_ann.ANNSegmenter.from_preset(str(tmp_path))


def test_a_sound_keras_file_still_loads_through_the_checks_stored_or_compressed(saved, tmp_path):
    path, entries = saved
    compressed = _write_zip(tmp_path / "compressed.keras", entries, zipfile.ZIP_DEFLATED)
    for sound in (path, compressed):
        loading.check_keras_archive(sound)
        assert isinstance(keras_ann.ANNSegmenter.from_preset(sound), keras_ann.ANNSegmenter)
    # The weights' metadata is read from a compressed entry too.
    secret = tmp_path / "passwd"
    secret.write_bytes(SECRET * 65536)
    evil = _hostile_keras(saved, tmp_path, secret, old_layout=False)
    with zipfile.ZipFile(evil) as archive:
        hostile = {name: archive.read(name) for name in archive.namelist()}
    evil = _write_zip(tmp_path / "evil_compressed.keras", hostile, zipfile.ZIP_DEFLATED)
    with pytest.raises(CheckpointError, match=r"evil_compressed\.keras: refused, its weights read other files"):
        loading.check_keras_archive(evil)

