"""The CamVid-from-scratch recipe (`ann_r18_d16_camvid_cpu_1h`, BENCHMARKS.md)
end to end on four images and two iterations: through the folder-dataset
command line as `benchmarks/camvid_from_scratch.sh` runs it, then the
report (table, curves, picture) of `benchmarks/camvid_from_scratch.py`."""

import contextlib
import importlib.util
import io
import json
import os
import pathlib

import pytest
from PIL import Image
from testing_utils import camvid_subset

from keras_ann import cli, recipes

SCRIPT = pathlib.Path(__file__).resolve().parent.parent / "benchmarks" / "camvid_from_scratch.py"
RECIPE = "ann_r18_d16_camvid_cpu_1h"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("camvid_from_scratch", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_recipe_is_listed_and_trains_at_full_resolution():
    recipe = recipes.get_recipe(RECIPE)
    assert RECIPE in recipes.RECIPES
    assert recipe.backbone == "resnet18_d16" and recipe.backbone_init is None
    assert recipe.train_scale == recipe.test_scale == (480, 360) and recipe.test_mode == "whole"
    assert len(recipe.class_weight) == recipe.num_classes == 11
    for bad in ([1.0] * 3, [1.0] * 10 + [-1.0], ["heavy"] * 11, 2.0):
        with pytest.raises(ValueError, match="`class_weight` must be 11 non-negative numbers"):
            recipe.replace(class_weight=bad)
    # Another class count (your own data on this recipe) says how to drop them.
    with pytest.raises(ValueError, match=r"must be 3 non-negative numbers .*`--set class_weight=null`"):
        recipes.replace_data(recipe, data="folder", num_classes=3)
    assert recipes.replace_data(recipe, data="folder", num_classes=3, class_weight=None).class_weight is None


def test_the_class_weights_reach_the_compiled_loss():
    from keras_ann import ANNSegmenter
    from keras_ann.training import compile_for_recipe

    recipe = recipes.get_recipe(RECIPE)
    model = compile_for_recipe(ANNSegmenter(backbone="resnet18_d16", num_classes=11), recipe)
    assert tuple(model.loss.class_weight) == recipe.class_weight


def test_the_recipe_runs_through_the_folder_command_line_and_is_reported(bench, tmp_path):
    camvid = camvid_subset(tmp_path, 4)
    folder = bench.make_layout(camvid, str(tmp_path / "camvid11"))
    assert sorted(os.listdir(os.path.join(folder, "ann_dir", "val"))) == sorted(os.listdir(os.path.join(camvid, "valannot")))
    work = str(tmp_path / "camvid_seed0")
    argv = [
        "train", RECIPE, "--precision", "mixed_bfloat16", "--seed", "0",
        "--dataset", "folder", "--data-root", folder, "--num-classes", "11", "--label-map", "11:255",
        "--classes", ",".join(bench.CLASSES), "--work-dir", work,
        "--iterations", "2", "--eval-interval", "2", "--batch-size", "2",
    ]  # fmt: skip
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(argv) == 0, out.getvalue()
    with open(os.path.join(work, "recipe.json")) as f:
        run = json.load(f)
    want = recipes.get_recipe(RECIPE).to_config()
    for key in ("backbone", "crop_size", "train_scale", "test_scale", "lr", "class_weight", "ratio_range"):
        assert run[key] == want[key], key
    assert run["data"] == "folder" and run["label_map"] == [[11, 255]]

    table = bench.markdown([work])
    assert "| val mIoU |" in table and "| bicyclist IoU |" in table and "| iterations | 2 |" in table
    curves, picture = str(tmp_path / "curves.png"), str(tmp_path / "picture.png")
    assert bench.main(["report", work, "--data-root", camvid, "--curves", curves, "--picture", picture, "--images", "0,1"]) == 0
    assert Image.open(curves).size[0] > 500
    assert Image.open(picture).size[1] > 200  # two rows of image, ground truth, prediction


def test_the_layout_refuses_a_folder_that_is_not_camvid(bench, tmp_path):
    with pytest.raises(SystemExit, match="is not a directory: is .* CamVid's SegNet release"):
        bench.make_layout(str(tmp_path), str(tmp_path / "out"))


def test_keras_ann_recipes_lists_every_recipe_with_its_settings(capsys):
    assert cli.main(["recipes"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["name", "data", "backbone", "init", "crop", "batch", "iters", "lr", "test"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:]}
    assert set(rows) == set(recipes.RECIPES)
    assert rows[RECIPE] == ["camvid", "resnet18_d16", "scratch", "256x256", "8", "2500", "0.05", "whole", "480x360"]
    assert rows["ann_r50_d8_cityscapes_769x769_40k"][2:4] == ["ImageNet", "769x769"]
