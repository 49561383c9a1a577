"""The reference's test protocol by default.

Presets and `train()`-trained models carry their test configuration (mode,
window, stride, test scale, class names, palette) in the saved model, and
`keras-ann evaluate` / `predict` use it unless flags say otherwise. Nothing
is downloaded: the 769x769 preset's architecture is built with random
weights and saved as `.keras` with the preset's test configuration; the
inference function is replaced by a spy that records how it is called.
"""

import os

import numpy as np
import pytest
from PIL import Image

from keras_ann import presets
from testing_utils import shared_path

PRESET = "ann_r50_d8_cityscapes_769x769_40k"


@pytest.fixture(scope="module")
def preset_model(tmp_path_factory):
    import keras

    import keras_ann

    preset = presets.get_preset(PRESET)
    model = keras_ann.ANNSegmenter(**preset.model_config(), test_protocol=preset.test_protocol())
    path = str(tmp_path_factory.mktemp("preset") / f"{PRESET}.keras")
    model.save(path)
    return path, keras.saving.load_model(path)


@pytest.fixture(scope="module")
def cityscapes_2048(tmp_path_factory):
    """One Cityscapes val image at the dataset's size, 2048x1024."""
    root = tmp_path_factory.mktemp("cityscapes")
    image_dir, label_dir = root / "leftImg8bit" / "val" / "lindau", root / "gtFine" / "val" / "lindau"
    image_dir.mkdir(parents=True)
    label_dir.mkdir(parents=True)
    ramp = np.broadcast_to(np.arange(2048, dtype=np.uint8)[None, :, None], (1024, 2048, 3))
    Image.fromarray(np.ascontiguousarray(ramp)).save(image_dir / "lindau_000000_000019_leftImg8bit.png")
    label = np.zeros((1024, 2048), np.uint8)
    Image.fromarray(label).save(label_dir / "lindau_000000_000019_gtFine_labelTrainIds.png")
    return root, image_dir / "lindau_000000_000019_leftImg8bit.png"


@pytest.fixture
def inference_spy(monkeypatch):
    """Replaces `inference.predict_logits` (which evaluate and predict call)
    with zeros of the right shape; records each call's image shape and
    window."""
    from keras_ann import inference

    calls = []

    def spy(model, images, mode="whole", crop_size=None, stride=None, batch_size=None):
        images = np.asarray(images)
        calls.append({"shape": images.shape, "mode": mode, "crop_size": crop_size, "stride": stride})
        return np.zeros(images.shape[:3] + (model.num_classes,), np.float32)

    monkeypatch.setattr(inference, "predict_logits", spy)
    return calls


def test_the_saved_model_carries_the_presets_test_protocol_and_data_contract(preset_model):
    _, model = preset_model
    assert model.get_config()["test_protocol"] == {
        "mode": "slide",
        "crop": [769, 769],
        "stride": [513, 513],
        "scale": [2049, 1025],
        "ratios": None,
        "flip": False,
        "data": "cityscapes_769x769",
        "class_names": list(presets.get_preset(PRESET).class_names),
        "palette": [list(c) for c in presets.get_preset(PRESET).palette],
        "label_map": None,
        "reduce_zero_label": False,
        "ignore_index": 255,
        "label_palette": None,
    }
    assert model.test_protocol == presets.get_preset(PRESET).test_protocol()


def test_evaluate_slides_769_513_over_2049x1025_with_no_flags(preset_model, cityscapes_2048, inference_spy, capsys):
    from keras_ann import cli

    path, _ = preset_model
    root, _ = cityscapes_2048
    cli.main(["evaluate", path, "--data-root", str(root)])
    assert inference_spy == [{"shape": (1, 1025, 2049, 3), "mode": "slide", "crop_size": (769, 769), "stride": (513, 513)}]
    out = capsys.readouterr().out
    assert "testing slide (769, 769) / (513, 513) at scale (2049, 1025) on cityscapes_769x769 val" in out
    assert "traffic light" in out  # the model's class names


@pytest.fixture
def loaded_once(preset_model, monkeypatch):
    """`keras-ann` loads the saved `.keras` file once per module (a 769x769
    R-50 takes long to deserialise): later commands get that loaded model."""
    from keras_ann import presets

    path, model = preset_model
    load = presets.load_model
    monkeypatch.setattr(presets, "load_model", lambda spec, **kw: model if spec == path else load(spec, **kw))
    return path


def test_evaluate_flags_still_override(loaded_once, cityscapes_2048, inference_spy):
    from keras_ann import cli

    path = loaded_once
    root, _ = cityscapes_2048
    cli.main(["evaluate", path, "--data-root", str(root), "--mode", "whole", "--test-scale", "1024", "512"])
    cli.main(["evaluate", path, "--data-root", str(root), "--crop", "513", "513", "--stride", "341", "341"])
    assert inference_spy == [
        {"shape": (1, 512, 1024, 3), "mode": "whole", "crop_size": None, "stride": None},
        {"shape": (1, 1025, 2049, 3), "mode": "slide", "crop_size": (513, 513), "stride": (341, 341)},
    ]


def test_predict_uses_the_same_protocol_and_writes_full_size_labels(loaded_once, cityscapes_2048, inference_spy, tmp_path):
    from keras_ann import cli

    path = loaded_once
    _, image = cityscapes_2048
    cli.main(["predict", path, str(image), "--output-dir", str(tmp_path / "out")])
    cli.main(["predict", path, str(image), "--output-dir", str(tmp_path / "out2"), "--mode", "whole"])
    assert inference_spy == [
        {"shape": (1, 1025, 2049, 3), "mode": "slide", "crop_size": (769, 769), "stride": (513, 513)},
        {"shape": (1, 1025, 2049, 3), "mode": "whole", "crop_size": None, "stride": None},
    ]
    labels = np.asarray(Image.open(tmp_path / "out" / f"{image.stem}_labels.png"))
    assert labels.shape == (1024, 2048)


def test_a_model_without_test_configuration_needs_dataset(cityscapes_2048, tmp_path):
    import keras_ann
    from keras_ann import cli

    path = str(tmp_path / "plain.keras")
    keras_ann.ANNSegmenter(backbone="resnet18_d8", num_classes=19).save(path)
    root, _ = cityscapes_2048
    with pytest.raises(SystemExit, match="--dataset is required"):
        cli.main(["evaluate", path, "--data-root", str(root)])


def _three_class_folder(root, count=2):
    """mmseg's custom layout (`img_dir/<split>`, `ann_dir/<split>`): CamVid
    images at 120x90 with 3 classes (label % 3; void stays 255)."""
    camvid = shared_path("data", "camvid")
    names = sorted(os.listdir(os.path.join(camvid, "train")))[:count]
    for split in ("train", "val"):
        (root / "img_dir" / split).mkdir(parents=True)
        (root / "ann_dir" / split).mkdir(parents=True)
        for name in names:
            stem = os.path.splitext(name)[0]
            image = Image.open(os.path.join(camvid, "train", name)).convert("RGB").resize((120, 90), Image.BILINEAR)
            image.save(root / "img_dir" / split / f"{stem}.png")
            label = np.asarray(Image.open(os.path.join(camvid, "trainannot", stem + ".png")))
            label = np.where(label == 11, 255, label % 3).astype(np.uint8)
            Image.fromarray(label).resize((120, 90), Image.NEAREST).save(root / "ann_dir" / split / f"{stem}.png")
    return root


def test_a_model_trained_on_3_classes_is_evaluated_with_its_own_3_classes(tmp_path, capsys):
    import json

    from keras_ann import cli, recipes, training

    root = _three_class_folder(tmp_path / "three")
    recipe = recipes.get_recipe("ann_r18_d8_camvid_cpu").replace(
        data="folder", num_classes=3, crop_size=(32, 32), train_scale=(60, 45), test_scale=(60, 45),
        total_batch=2, iterations=1, val_interval=1,
    )
    work = tmp_path / "work"
    model, _ = training.train(recipe, str(root), str(work), imagenet_checkpoint="none", eval_steps=1, verbose=0)
    out = capsys.readouterr().out
    assert "random initialisation, training from scratch (ImageNet initialisation turned off" in out
    assert json.loads((work / "recipe.json").read_text())["backbone_init"] is None
    assert model.test_protocol.class_names == ("0", "1", "2") and model.test_protocol.data == "folder"
    # No --dataset: the model names its data config; its own 3 classes.
    cli.main(["evaluate", str(work / "latest.keras"), "--data-root", str(root)])
    out = capsys.readouterr().out
    assert "whole at scale (60, 45) on folder val" in out
    table = out[out.index("| Class"):out.index("Summary")].splitlines()[2:-1]
    assert [row.split("|")[1].strip() for row in table] == ["0", "1", "2"]
