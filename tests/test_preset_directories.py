"""Preset directories (KerasHub's layout): `save_to_preset`, `from_preset(DIR)`,
the bounded reading of each file, KerasHub's own loader, and `keras-ann
convert ... --preset` of the reference models (issue #32, items 1 and 3)."""

import contextlib
import hashlib
import io
import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from testing_utils import require

import keras_ann
from keras_ann import cli, presets
from keras_ann.models import preset_directory
from keras_ann.test_protocol import TestProtocol
from keras_ann.weights import CheckpointError

PROTOCOL = TestProtocol(data="folder", class_names=("bg", "cell"), palette=((0, 0, 0), (255, 0, 0)), label_map=((255, 1),))


def tiny_model(num_classes=2, seed=0):
    """An ANN on a ResNet-18-D8 of 8 base channels: a few hundred kB."""
    import keras

    keras.utils.set_random_seed(seed)
    backbone = keras_ann.ResNetBackbone(depth=18, output_stride=8, stem_channels=8, base_channels=8)
    return keras_ann.ANNSegmenter(backbone, num_classes=num_classes, test_protocol=PROTOCOL)


def images(seed=0, shape=(1, 40, 56, 3)):
    return np.random.default_rng(seed).uniform(0, 255, shape).astype("float32")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    model = tiny_model()
    directory = str(tmp_path_factory.mktemp("presets") / "cells")
    model.save_to_preset(directory)
    return model, directory


def _copy(directory, tmp_path):
    target = str(tmp_path / "copy")
    shutil.copytree(directory, target)
    return target


def test_save_to_preset_writes_kerashubs_layout_and_from_preset_reads_it_back(saved):
    model, directory = saved
    assert sorted(os.listdir(directory)) == ["README.md", "config.json", "metadata.json", "model.weights.h5"]
    with open(os.path.join(directory, "config.json")) as f:
        config = json.load(f)
    assert config["registered_name"] == "keras_ann>ANNSegmenter" and config["class_name"] == "ANNSegmenter"
    assert config["module"] == "keras_ann.models.ann_segmenter"
    assert "compile_config" not in json.dumps(config) and "build_config" not in json.dumps(config)
    metadata = preset_directory.read_metadata(directory)
    assert metadata["keras_ann_version"] == keras_ann.__version__ and metadata["keras_version"]
    assert metadata["parameter_count"] == model.count_params()
    assert TestProtocol.from_config(metadata["test_protocol"]) == PROTOCOL
    assert metadata["data_contract"] == {
        "data": "folder", "class_names": ["bg", "cell"], "palette": [[0, 0, 0], [255, 0, 0]], "label_map": [[255, 1]],
    }  # fmt: skip
    assert "evaluation" not in metadata and "reference" not in metadata
    with open(os.path.join(directory, "README.md")) as f:
        card = f.read()
    assert card.startswith("---\nlibrary_name: keras-ann\npipeline_tag: image-segmentation\n")
    assert "bg, cell" in card and "label_map: [[255, 1]]" in card

    loaded = keras_ann.ANNSegmenter.from_preset(directory)
    assert loaded.test_protocol == PROTOCOL
    np.testing.assert_array_equal(loaded.predict(images(), verbose=0), model.predict(images(), verbose=0))
    # Overrides as for .keras files: new classifiers, every other weight kept.
    three = keras_ann.ANNSegmenter.from_preset(directory, num_classes=3)
    assert three.num_classes == 3 and three.test_protocol.class_names is None
    np.testing.assert_array_equal(
        np.asarray(three.backbone.get_layer("stem_conv1").kernel), np.asarray(model.backbone.get_layer("stem_conv1").kernel)
    )


def test_a_preset_directory_keeps_the_evaluation_table(saved, tmp_path):
    from keras_ann.evaluation import evaluate_dataset

    model, _ = saved
    labels = (images(1)[..., 0] > 127).astype("uint8")
    results = evaluate_dataset(model, [(images(1), labels)], verbose=0)
    directory = str(tmp_path / "scored")
    model.save_to_preset(directory, evaluation=dict(results, data="folder", split="val", images=1))
    evaluation = preset_directory.read_metadata(directory)["evaluation"]
    assert (evaluation["data"], evaluation["split"], evaluation["images"]) == ("folder", "val", 1)
    assert evaluation["mIoU"] == pytest.approx(results["mIoU"]) and evaluation["aAcc"] == pytest.approx(results["aAcc"])
    assert [c["class"] for c in evaluation["per_class"]] == ["bg", "cell"]
    with open(os.path.join(directory, "README.md")) as f:
        card = f.read()
    assert "## Evaluation" in card and f"| {results['mIoU']:.2f} |" in card


def _write_external_link(path):
    import h5py

    with h5py.File(path, "a") as f:
        f["stolen"] = h5py.ExternalLink("/etc/passwd", "/")


def _break(kind, directory):
    config, weights = (os.path.join(directory, name) for name in ("config.json", "model.weights.h5"))
    if kind == "no config":
        os.remove(config)
    elif kind == "no weights":
        os.remove(weights)
    elif kind == "config not json":
        with open(config, "w") as f:
            f.write("{not json")
    elif kind == "another class":
        with open(config, "w") as f:
            json.dump({"module": "keras.src.models.functional", "class_name": "Functional", "config": {},
                       "registered_name": "Functional"}, f)  # fmt: skip
    elif kind == "old layout":
        with open(config) as f:
            data = json.load(f)
        data["config"]["synchronized"] = False
        with open(config, "w") as f:
            json.dump(data, f)
    elif kind == "weights not hdf5":
        with open(weights, "wb") as f:
            f.write(b"PK\x03\x04 not weights")
    elif kind == "weights with an external link":
        _write_external_link(weights)
    elif kind == "weights a fifo":
        os.remove(weights)
        os.mkfifo(weights)
    elif kind == "weights of another model":
        tiny_model(num_classes=5).save_weights(weights)


@pytest.mark.parametrize(
    "kind,message",
    [
        ("no config", "is not a preset directory: it has no config.json"),
        ("no weights", "is not a preset directory: it has no model.weights.h5"),
        ("config not json", "its config.json is not valid JSON"),
        ("another class", "holds a Keras Functional (Functional), not a keras_ann ANNSegmenter"),
        ("old layout", "unreleased keras-ann 0.1.0"),
        ("weights not hdf5", "its model.weights.h5 is not a Keras weights file (HDF5)"),
        ("weights with an external link", "refused, its weights read other files: stolen is an external link"),
        ("weights a fifo", "is a FIFO (named pipe)"),
        ("weights of another model", "its model.weights.h5 does not fit its config.json"),
    ],
)
def test_a_broken_preset_directory_is_one_error_naming_it_and_the_file(saved, tmp_path, kind, message):
    directory = _copy(saved[1], tmp_path)
    _break(kind, directory)
    with pytest.raises(CheckpointError) as error:
        keras_ann.ANNSegmenter.from_preset(directory)
    text = str(error.value)
    assert message in text and directory in text and "\n" not in text


def test_an_oversized_config_is_refused_before_it_is_read(saved, tmp_path, monkeypatch):
    directory = _copy(saved[1], tmp_path)
    monkeypatch.setitem(preset_directory._LIMITS, "config.json", 100)
    with pytest.raises(CheckpointError, match=r"config.json is .* over the limit of 100 bytes"):
        keras_ann.ANNSegmenter.from_preset(directory)


def _keras_hub():
    try:
        import keras_hub
    except ImportError as error:  # e.g. keras-hub 0.32 with Keras 3.15: get_keras_mask is gone
        pytest.skip(f"keras_hub does not import here: {error}")
    return keras_hub


def test_kerashubs_loader_reads_a_preset_directory_and_its_backbone_api_refuses_it(saved):
    keras_hub = _keras_hub()
    from keras_hub.src.utils.preset_utils import get_preset_loader

    model, directory = saved
    loader = get_preset_loader(directory)
    assert loader.check_backbone_class() is keras_ann.ANNSegmenter
    loaded = loader.load_backbone(keras_ann.ANNSegmenter, load_weights=True)
    np.testing.assert_array_equal(loaded.predict(images(), verbose=0), model.predict(images(), verbose=0))
    with pytest.raises(ValueError, match="not a subclass of calling class `Backbone`"):
        keras_hub.models.Backbone.from_preset(directory)


def _run(argv):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = cli.main(argv)
    return status, out.getvalue()


def test_predict_and_evaluate_take_a_preset_directory_and_use_its_protocol(saved, tmp_path):
    model, directory = saved
    root = tmp_path / "data"
    for kind in ("img_dir", "ann_dir"):
        (root / kind / "val").mkdir(parents=True)
    image = images(2, (1, 40, 56, 3))[0].astype("uint8")
    Image.fromarray(image).save(root / "img_dir" / "val" / "a.png")
    Image.fromarray(np.where(image[..., 0] > 127, 255, 0).astype("uint8")).save(root / "ann_dir" / "val" / "a.png")
    status, out = _run(["predict", directory, str(root / "img_dir" / "val" / "a.png"), "--output-dir", str(tmp_path / "out")])
    assert status == 0, out
    labels = np.asarray(Image.open(tmp_path / "out" / "a_labels.png"))
    np.testing.assert_array_equal(labels, model.predict_labels(image[None])[0])
    # evaluate: the data config, classes and label map (255 -> 1) are the preset's: no data flag.
    status, out = _run(["evaluate", directory, "--data-root", str(root)])
    assert status == 0, out
    assert "on folder val" in out and "|  cell " in out


def test_export_takes_a_preset_directory(saved, tmp_path):
    ort = require("onnxruntime")
    model, directory = saved
    out = str(tmp_path / "cells.onnx")
    status, text = _run(["export", directory, out, "--format", "onnx", "--outputs", "labels"])
    assert status == 0, text
    session = ort.InferenceSession(out)
    image = images(3)
    (labels,) = session.run(None, {session.get_inputs()[0].name: image})
    np.testing.assert_array_equal(labels, model.predict_labels(image))


# --------------------------------------------------------------------------
# The reference models as presets (convert --preset)
# --------------------------------------------------------------------------


def test_every_reference_model_is_recognised_by_its_published_name_and_carries_its_recipe_and_scores(tmp_path):
    for preset in presets.PRESETS.values():
        path = tmp_path / preset.file_name
        path.write_bytes(b"not the published bytes")
        assert presets.identify_reference(str(path)) is preset
        card = presets.reference_card(preset)
        assert card["recipe"] == preset.recipe.to_config() and card["url"] == preset.url
        assert (card["published"]["mIoU"], card["published"]["mIoU_ms_flip"]) == (preset.miou, preset.miou_ms_flip)
        assert len(preset.test_protocol().class_names) == preset.num_classes
    assert presets.identify_reference(str(tmp_path / "mine.pth"), sha256="0" * 64) is None


def test_convert_preset_writes_a_reference_model_whose_logits_are_mmsegmentations(mmseg_ann, tmp_path):
    preset = presets.PRESETS["ann_r50_d8_cityscapes_769x769_40k"]
    reference = mmseg_ann.build_reference_ann(depth=50, num_classes=19, align_corners=True, seed=5)
    pth = str(tmp_path / preset.file_name)  # the published name, random weights
    mmseg_ann.save_state_dict(reference, pth)
    directory = str(tmp_path / "r50_769")
    status, out = _run(["convert", pth, directory, "--preset"])
    assert status == 0, out
    assert "reference model ann_r50_d8_cityscapes_769x769_40k (published mIoU 78.89)" in out
    assert "is not the published file" in out

    model = keras_ann.ANNSegmenter.from_preset(directory)
    assert model.align_corners and model.test_protocol == preset.test_protocol()
    x = images(5, (1, 65, 97, 3))
    want = mmseg_ann.reference_logits(reference, x)
    got = model.predict(x, verbose=0)
    assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()

    metadata = preset_directory.read_metadata(directory)
    assert metadata["reference"]["name"] == preset.name and metadata["reference"]["recipe"] == preset.recipe.to_config()
    assert metadata["reference"]["published"]["mIoU_ms_flip"] == 80.46
    assert metadata["test_protocol"]["mode"] == "slide" and metadata["data_contract"]["class_names"][0] == "road"
    provenance = metadata["provenance"]
    with open(pth, "rb") as f:
        assert provenance["sha256"] == hashlib.sha256(f.read()).hexdigest()
    assert provenance["source_file"] == preset.file_name and provenance["matches_published"] is False
    state_keys = set(reference.state_dict())
    assert set(provenance["keys_mapped"]) | set(provenance["keys_ignored"]) == state_keys
    assert all(key.endswith("num_batches_tracked") for key in provenance["keys_ignored"])
    assert provenance["keys_mapped"]["backbone.layer2.0.conv1.weight"].endswith("stage2_block1_conv1/kernel")
    with open(os.path.join(directory, "README.md")) as f:
        card = f.read()
    assert "these weights are not the released ones" in card and "78.89 single-scale" in card


@pytest.fixture(scope="module")
def r18_pth(tmp_path_factory):
    from test_convert import reference_state_dict, save_pth

    model = keras_ann.ANNSegmenter(backbone="resnet18_d8", num_classes=6)
    state = reference_state_dict(model, np.random.default_rng(0))
    return state, save_pth(state, str(tmp_path_factory.mktemp("pth") / "mine.pth"))


def test_convert_preset_of_another_pth_records_its_provenance_without_reference(r18_pth, tmp_path):
    state, pth = r18_pth
    directory = str(tmp_path / "mine")
    status, out = _run(["convert", pth, directory, "--preset"])
    assert status == 0, out
    assert "not one of the released reference models" in out
    metadata = preset_directory.read_metadata(directory)
    assert "reference" not in metadata and metadata["provenance"]["matches_published"] is None
    assert len(metadata["provenance"]["keys_mapped"]) + len(metadata["provenance"]["keys_ignored"]) == len(state)
    np.testing.assert_array_equal(
        keras_ann.ANNSegmenter.from_preset(directory).predict(images(), verbose=0),
        keras_ann.ANNSegmenter.from_preset(pth).predict(images(), verbose=0),
    )


def test_convert_preset_refuses_a_pth_that_is_not_the_named_reference_model(r18_pth, tmp_path, capsys):
    _, pth = r18_pth
    status, _ = _run(["convert", pth, str(tmp_path / "x"), "--preset", "ann_r50_d8_ade20k_512x512_80k"])
    err = capsys.readouterr().err.strip()
    assert status == 1 and len(err.splitlines()) == 1
    assert "mine.pth holds a resnet18_d8 ANN with 6 classes, not the reference model ann_r50_d8_ade20k_512x512_80k" in err
    status, _ = _run(["convert", pth, str(tmp_path / "x"), "--preset", "ann_r50"])
    assert status == 1 and "Unknown preset 'ann_r50'" in capsys.readouterr().err


def test_convert_without_preset_still_refuses_a_directory_as_output(r18_pth, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["convert", r18_pth[1], str(tmp_path)])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"keras-ann convert: error: output must be a file name, but {tmp_path} is a directory"
    )
