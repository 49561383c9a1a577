"""Issue 29, round 3: misspelt arguments, `--set` values, flags and data
that were accepted and gave a raw traceback or a silently wrong run are
refused up front in one line naming the argument, key, flag or file."""

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import keras
import keras_ann
from keras_ann import cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _tiny_model(**kwargs):
    backbone = keras_ann.ResNetBackbone(depth=18, output_stride=8, stem_channels=8, base_channels=8)
    return keras_ann.ANNSegmenter(
        backbone, num_classes=3, head_channels=16, project_channels=8, auxiliary_channels=8, **kwargs
    )


def _last_line(text):
    return [line for line in text.splitlines() if line.strip()][-1]


# --------------------------------------------------------------------------
# 1. Strict arguments
# --------------------------------------------------------------------------


def test_a_misspelt_constructor_argument_is_refused_naming_the_close_match():
    with pytest.raises(TypeError, match=r"unknown keyword argument\(s\) 'num_clases' \(did you mean 'num_classes'\?\)"):
        _tiny_model(num_clases=5)


def test_the_base_model_arguments_name_dtype_and_trainable_still_work():
    model = _tiny_model(name="mine", dtype="float32", trainable=False)
    assert (model.name, model.trainable) == ("mine", False)


def test_a_misspelt_from_preset_override_is_refused_before_loading(tmp_path):
    path = str(tmp_path / "m.keras")
    _tiny_model().save(path)
    with pytest.raises(TypeError, match=r"from_preset got unknown keyword argument\(s\) 'num_clases' \(did you mean 'num_classes'\?\)"):
        keras_ann.ANNSegmenter.from_preset(path, num_clases=5)
    with pytest.raises(TypeError, match="'align_corner' \\(did you mean 'align_corners'"):
        keras_ann.ANNSegmenter.from_preset("no-such-file.keras", align_corner=True)  # before the file is looked for
    assert keras_ann.ANNSegmenter.from_preset(path, num_classes=5).num_classes == 5


@pytest.mark.parametrize("loss", ["mse", "mean_absolute_error", "binary_crossentropy"])
def test_compile_refuses_loss_names_that_do_not_take_class_ids_in_one_line(loss):
    with pytest.raises(ValueError, match=f"loss '{loss}' does not apply: the model outputs logits") as error:
        _tiny_model().compile(loss=loss)
    assert "\n" not in str(error.value)


# --------------------------------------------------------------------------
# 2. `--set key=value` checked as its flag; flags with values that broke later
# --------------------------------------------------------------------------

_PRINT = ["train", "ann_r18_d8_camvid_cpu", "--print-config"]
_FOLDER = ["train", "--dataset", "folder", "--num-classes", "3", "--print-config"]


@pytest.mark.parametrize(
    "argv, named",
    [
        (_PRINT + ["--set", "iterations=0"], "`iterations` must be a positive integer, got 0"),
        (_PRINT + ["--set", "iterations=abc"], "`iterations` must be a positive integer, got 'abc'"),
        (_PRINT + ["--set", "iterations=-4"], "`iterations` must be a positive integer, got -4"),
        (_PRINT + ["--set", "val_interval=0"], "`val_interval` must be a positive integer, got 0"),
        (_PRINT + ["--set", "crop_size=[0,0]"], "`crop_size` must be a pair of positive integers"),
        (_PRINT + ["--set", "scale=[0,5]"], "`train_scale` must be a pair of positive integers"),
        (_PRINT + ["--set", "total_batch=0"], "`total_batch` must be a positive integer, got 0"),
        (_PRINT + ["--set", "images_per_gpu=1.5"], "`images_per_gpu` must be a positive integer, got 1.5"),
        (_PRINT + ["--set", "momentum=x"], "`momentum` must be a number in [0, 1), got 'x'"),
        (_PRINT + ["--set", "momentum=1"], "`momentum` must be a number in [0, 1), got 1"),
        (_PRINT + ["--set", "lr=-1"], "`lr` must be a positive number, got -1"),
        (_PRINT + ["--set", "weight_decay=-0.1"], "`weight_decay` must be a non-negative number, got -0.1"),
        (_PRINT + ["--set", "dropout=1.5"], "`dropout` must be a number in [0, 1), got 1.5"),
        (_PRINT + ["--set", "flip_prob=2"], "`flip_prob` must be a probability in [0, 1], got 2"),
        (_PRINT + ["--set", "align_corners=maybe"], "`align_corners` must be true or false, got 'maybe'"),
        (_PRINT + ["--set", "ignore_index=300"], "`ignore_index` must be a label value 0..255"),
        (_FOLDER[:3] + ["--num-classes", "300", "--print-config"], "--num-classes must be at most 256"),
        (_FOLDER + ["--ignore-index", "300"], "--ignore-index must be a label value 0..255"),
        (_FOLDER + ["--split-file", "splits/{split}_{x}.txt"], "--split-file must hold {split} and no other"),
        (_FOLDER + ["--split-file", "{0}"], "--split-file must hold {split} and no other"),
        (_FOLDER + ["--classes", "a,a,b"], "--classes must name each class once"),
        (_FOLDER + ["--label-map", "255:1", "--label-map", "255:2"], "`label_map` maps a raw value twice"),
        (["export", "m.keras", "out.onnx", "--format", "onnx", "--opset", "3"],
         "`opset` 3 is outside the opsets tf2onnx supports, 14 to"),
    ],
)
def test_each_flag_and_set_key_with_a_bad_value_is_refused_in_one_line_naming_it(argv, named, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    code = exit_.value.code
    text = code if isinstance(code, str) else capsys.readouterr().err
    assert code != 0
    assert "Traceback" not in text
    line = _last_line(text)
    assert line.startswith(f"keras-ann {argv[0]}: error: ") and named in line, line


def test_the_recipe_checks_its_numbers_from_python_and_recipe_files_too(tmp_path):
    from keras_ann.recipes import get_recipe, load_recipe

    with pytest.raises(ValueError, match="`val_interval` must be a positive integer, got 0"):
        get_recipe("ann_r18_d8_camvid_cpu").replace(val_interval=0)
    path = tmp_path / "r.json"
    path.write_text(__import__("json").dumps(dict(get_recipe("ann_r18_d8_camvid_cpu").to_config(), lr=-1)))
    with pytest.raises(ValueError, match=r"r.json: Recipe .*`lr` must be a positive number, got -1"):
        load_recipe(str(path))


def test_repeated_label_map_flags_add_up(capsys):
    cli.main(_FOLDER + ["--label-map", "255:1", "--label-map", "11:255"])
    config = __import__("json").loads(capsys.readouterr().out)
    assert config["label_map"] == [[255, 1], [11, 255]]


def test_duplicate_class_names_are_refused_by_the_test_protocol_and_the_recipe():
    from keras_ann.recipes import get_recipe
    from keras_ann.test_protocol import TestProtocol

    with pytest.raises(ValueError, match="`class_names` must be distinct .* got 'a' more than once"):
        TestProtocol(class_names=["a", "a", "b"])
    with pytest.raises(ValueError, match="`class_names` must be distinct"):
        get_recipe("ann_r18_d8_camvid_cpu").replace(data="folder", num_classes=3, class_names=("a", "a", "b"))


# --------------------------------------------------------------------------
# 3. Silent wrong results
# --------------------------------------------------------------------------


def _folder(root, labels, split="train", size=16):
    os.makedirs(root / "img_dir" / split, exist_ok=True)
    os.makedirs(root / "ann_dir" / split, exist_ok=True)
    for i, label in enumerate(labels):
        Image.fromarray(np.full((size, size, 3), 40 * i, np.uint8)).save(root / "img_dir" / split / f"{i}.png")
        Image.fromarray(np.asarray(label, np.uint8)).save(root / "ann_dir" / split / f"{i}.png")
    return root


@pytest.mark.parametrize("num_classes", [2, 3])
def test_a_split_with_no_labelled_pixel_is_refused_by_the_label_scan(tmp_path, num_classes):
    from keras_ann.data import FolderDataset
    from keras_ann.data.errors import DatasetError
    from keras_ann.data.label_scan import check_dataset_labels

    root = _folder(tmp_path, [np.full((16, 16), 255)] * 3)
    dataset = FolderDataset(str(root / "img_dir" / "train"), str(root / "ann_dir" / "train"), num_classes=num_classes)
    with pytest.raises(DatasetError, match="No label file in .* holds a labelled pixel: all 768 pixels .* are 255 "
                       r"\(ignore index 255.*--label-map RAW:NEW, e.g. 255:1"):  # fmt: skip
        check_dataset_labels(dataset, cache_dir=False, verbose=0)


# --------------------------------------------------------------------------
# 4. predict goes on past unreadable files
# --------------------------------------------------------------------------


def test_predict_names_each_unreadable_file_writes_the_others_and_exits_non_zero(tmp_path, capsys):
    model = _tiny_model()
    model_path = str(tmp_path / "m.keras")
    model.save(model_path)
    images = tmp_path / "in"
    images.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a", "c"):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(images / f"{name}.png")
    Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(images / "b.png")
    data = (images / "b.png").read_bytes()
    (images / "b.png").write_bytes(data[: len(data) // 2])  # truncated
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_:
        cli.main(["predict", model_path, str(images), "--output-dir", str(out)])
    assert exit_.value.code == f"keras-ann predict: error: 1 of 3 images could not be read (named above); the other 2 were written to {out}"
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("keras-ann")]
    assert len(err) == 1 and "b.png" in err[0] and err[0].startswith("keras-ann predict: error: ")
    assert sorted(os.listdir(out)) == ["a_labels.png", "a_overlay.png", "c_labels.png", "c_overlay.png"]
