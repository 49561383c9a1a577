"""`keras-ann inspect DATA_ROOT`: what `train` would do with the data, before
any training, and the own-data scale that follows the images' size."""

import contextlib
import io
import json
import os

import numpy as np
import pytest
from PIL import Image

from keras_ann import cli
from keras_ann.data.inspect import data_scale, inspect_dataset


def _folder(root, make_label, size=(64, 96), count=2, colour=False):
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        (root / "img_dir" / split).mkdir(parents=True)
        (root / "ann_dir" / split).mkdir(parents=True)
        for i in range(count):
            Image.fromarray(rng.integers(0, 255, size + (3,), dtype=np.uint8)).save(root / "img_dir" / split / f"{i}.png")
            label = make_label(size, i)
            Image.fromarray(label, "RGB" if colour else None).save(root / "ann_dir" / split / f"{i}.png")
    return str(root)


def _run(argv):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = cli.main(argv)
    return status, out.getvalue()


def _binary(size, i):
    mask = np.zeros(size, np.uint8)
    mask[10:30, 20 + i : 40 + i] = 255
    return mask


def test_inspect_names_0_255_masks_and_the_flags_that_train_them(tmp_path):
    root = _folder(tmp_path / "binary", _binary)
    status, out = _run(["inspect", root])
    assert status == 0
    assert "encoding: 0/255 binary masks" in out
    assert "images: 96x64 (2) (width x height); modes RGB (2)" in out
    assert "scale: 96x64" in out  # the images' own size: nothing shrunk
    assert "--num-classes 2 --label-map 255:1" in out
    assert f"train with: keras-ann train --dataset folder --data-root {root} --num-classes 2 --label-map 255:1" in out


def test_inspect_finds_class_ids_with_a_void_value(tmp_path):
    root = _folder(tmp_path / "ids", lambda size, i: (np.arange(size[0] * size[1]) % 4).reshape(size).astype(np.uint8)
                   * np.uint8(1) + np.uint8(0) if i else np.full(size, 255, np.uint8))  # fmt: skip
    report = inspect_dataset("folder", root, "train", verbose=0)
    assert report.encoding == "class ids 0..3, void 255 (ignored)" and report.num_classes == 4
    assert report.flags() == ["--num-classes 4"]


def test_inspect_sees_rgb_colour_masks_and_suggests_their_palette(tmp_path):
    def colours(size, i):
        mask = np.zeros(size + (3,), np.uint8)
        mask[: size[0] // 2] = (128, 64, 128)  # most frequent
        mask[size[0] // 2 :, :10] = (0, 0, 142)
        return mask

    root = _folder(tmp_path / "rgb", colours, colour=True)
    report = inspect_dataset("folder", root, "train", verbose=0)
    assert report.encoding.startswith("RGB colour masks (3 colours")
    assert report.label_palette[0] == (128, 64, 128)
    assert report.flags()[1].startswith("--label-palette 128,64,128 ")
    assert any("colour" in p.lower() for p in report.problems)


def test_the_own_data_scale_is_the_images_size_up_to_1024_on_the_long_side():
    assert data_scale([(512, 512)] * 3) == (512, 512)
    assert data_scale([(360, 480), (720, 960), (360, 480)]) == (480, 360)
    assert data_scale([(3000, 4000)]) == (1024, 768)
    with pytest.raises(ValueError, match="no image sizes"):
        data_scale([])


def test_train_on_own_data_keeps_full_resolution_and_says_so(tmp_path, capsys):
    root = _folder(tmp_path / "big", _binary, size=(200, 300))
    status, out = _run(["train", "--dataset", "folder", "--data-root", root, "--num-classes", "2",
                        "--label-map", "255:1", "--print-config"])  # fmt: skip
    assert status == 0
    config = json.loads(out)
    assert config["train_scale"] == [300, 200] and config["test_scale"] == [300, 200]  # not the CamVid recipe's
    assert "scale: 300x200 (long x short: the training images' own size" in capsys.readouterr().err
    # An explicit scale wins, and a named recipe keeps its own.
    status, out = _run(["train", "--dataset", "folder", "--data-root", root, "--num-classes", "2",
                        "--label-map", "255:1", "--scale", "150", "100", "--print-config"])  # fmt: skip
    assert json.loads(out)["train_scale"] == [150, 100]
