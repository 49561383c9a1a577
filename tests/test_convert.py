"""Converting reference (mmsegmentation) state dicts, presets, download."""

import hashlib
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from PIL import Image

import keras_ann
from testing_utils import require, shared_path
from keras_ann import presets
from keras_ann.weights import ConversionError, convert, download


def reference_state_dict(model, rng):
    """The state dict the reference would have for `model`'s architecture,
    with random values (the inverse of the conversion's mapping)."""
    state, seen = {}, {}
    for key, variable, transform in convert.segmenter_weight_map(model):
        if id(variable) in seen:  # APNB's shared projection: same values twice
            state[key] = state[seen[id(variable)]]
            continue
        value = rng.normal(0, 0.1, variable.shape).astype("float32")
        if key.endswith("running_var"):
            value = np.abs(value) + 0.5
        if transform is not None:  # (kh, kw, in, out) -> (out, in, kh, kw)
            value = np.transpose(value, (3, 2, 0, 1))
        state[key] = value
        seen[id(variable)] = key
        if key.endswith("running_var"):
            state[key.replace("running_var", "num_batches_tracked")] = np.array(7)
    return state


def save_pth(state_dict, path, wrap=True):
    torch = require("torch")
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state_dict.items()}
    torch.save({"state_dict": tensors, "meta": {"CLASSES": ("a", "b")}} if wrap else tensors, path)
    return path


@pytest.fixture(scope="module")
def r18_state():
    model = keras_ann.ANNSegmenter(backbone="resnet18_d8", num_classes=6)
    return model, reference_state_dict(model, np.random.default_rng(0))


def _images(seed=0, shape=(1, 41, 53, 3)):
    return np.random.default_rng(seed).uniform(0, 255, shape).astype("float32")


def test_every_variable_is_mapped_once(r18_state):
    model, _ = r18_state
    entries = convert.segmenter_weight_map(model)
    mapped = {id(v) for _, v, _ in entries}
    all_vars = {id(v) for v in model.training_graph.weights}
    assert mapped == all_vars
    keys = [k for k, _, _ in entries]
    assert len(keys) == len(set(keys))


def test_load_and_infer_from_state_dict(r18_state, tmp_path):
    model, state = r18_state
    path = save_pth(state, str(tmp_path / "r18.pth"))
    config = convert.infer_ann_config(state)
    assert config["backbone"] == "resnet18_d8" and config["num_classes"] == 6
    assert config["head_channels"] == 128 and config["project_channels"] == 64
    loaded = keras_ann.ANNSegmenter.from_preset(path)
    again = keras_ann.ANNSegmenter(backbone="resnet18_d8", num_classes=6)
    assert convert.load_reference_weights(again, state) == len(again.training_graph.weights)
    np.testing.assert_array_equal(loaded.predict(_images(), verbose=0), again.predict(_images(), verbose=0))
    # Values land where they belong (conv transpose, BN fields).
    kernel = loaded.backbone.get_layer("stage2_block1_conv1").kernel
    np.testing.assert_array_equal(np.asarray(kernel), state["backbone.layer2.0.conv1.weight"].transpose(2, 3, 1, 0))
    bn = loaded.decode_head.context.stages[0].key_project.bn
    np.testing.assert_array_equal(np.asarray(bn.moving_variance), state["decode_head.context.stages.0.key_project.bn.running_var"])


def test_module_prefix_and_bare_state_dict(r18_state, tmp_path):
    model, state = r18_state
    prefixed = {f"module.{k}": v for k, v in state.items()}
    path = save_pth(prefixed, str(tmp_path / "dp.pth"), wrap=False)
    loaded = keras_ann.ANNSegmenter.from_preset(path)
    ref = keras_ann.ANNSegmenter(backbone="resnet18_d8", num_classes=6)
    convert.load_reference_weights(ref, state)
    np.testing.assert_array_equal(loaded.predict(_images(1), verbose=0), ref.predict(_images(1), verbose=0))


def test_mismatches_are_listed_in_one_error(r18_state):
    _, state = r18_state
    broken = dict(state)
    del broken["backbone.layer3.1.conv2.weight"]
    broken["decode_head.extra.weight"] = np.zeros(3, "float32")
    broken["decode_head.bottleneck.conv.weight"] = np.zeros((128, 4, 3, 3), "float32")
    model = keras_ann.ANNSegmenter(backbone="resnet18_d8", num_classes=6)
    before = [np.asarray(w).copy() for w in model.weights]
    with pytest.raises(ConversionError) as info:
        convert.load_reference_weights(model, broken)
    message = str(info.value)
    assert "1 missing keys" in message and "backbone.layer3.1.conv2.weight" in message
    assert "1 unexpected keys" in message and "decode_head.extra.weight" in message
    assert "1 shape mismatches" in message and "decode_head.bottleneck.conv.weight" in message
    # Nothing was assigned.
    for w, b in zip(model.weights, before):
        np.testing.assert_array_equal(np.asarray(w), b)


def test_shared_projection_copies_must_agree(r18_state):
    _, state = r18_state
    broken = dict(state)
    key = "decode_head.context.stages.0.query_project.conv.weight"
    broken[key] = broken[key] + 1.0
    model = keras_ann.ANNSegmenter(backbone="resnet18_d8", num_classes=6)
    with pytest.raises(ConversionError, match="shared"):
        convert.load_reference_weights(model, broken)


def test_partial_loads(r18_state, tmp_path):
    model, state = r18_state
    # A new classifier for another number of classes.
    path = save_pth(state, str(tmp_path / "r18.pth"))
    eleven = keras_ann.ANNSegmenter.from_preset(path, num_classes=11)
    assert eleven.num_classes == 11
    np.testing.assert_array_equal(
        np.asarray(eleven.decode_head.bottleneck.conv.kernel),
        state["decode_head.bottleneck.conv.weight"].transpose(2, 3, 1, 0),
    )
    with pytest.raises(ConversionError, match="decode_head.conv_seg.weight"):
        convert.load_reference_weights(keras_ann.ANNSegmenter(backbone="resnet18_d8", num_classes=11), state)
    # Backbone only.
    other = keras_ann.ANNSegmenter(backbone="resnet18_d8", num_classes=3, head_channels=32)
    head_before = np.asarray(other.decode_head.bottleneck.conv.kernel).copy()
    convert.load_reference_weights(other, state, partial="backbone")
    np.testing.assert_array_equal(
        np.asarray(other.backbone.get_layer("stem_conv1").kernel), state["backbone.stem.0.weight"].transpose(2, 3, 1, 0)
    )
    np.testing.assert_array_equal(np.asarray(other.decode_head.bottleneck.conv.kernel), head_before)
    with pytest.raises(ValueError, match="partial"):
        convert.load_reference_weights(other, state, partial="head")


def test_imagenet_backbone(r18_state, tmp_path):
    model, state = r18_state
    imagenet = {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}
    imagenet["fc.weight"] = np.zeros((1000, 512), "float32")
    imagenet["fc.bias"] = np.zeros(1000, "float32")
    path = save_pth(imagenet, str(tmp_path / "resnet18_v1c.pth"), wrap=False)
    fresh = keras_ann.ANNSegmenter(backbone="resnet18_d8", num_classes=6)
    assert keras_ann.weights.load_imagenet_backbone(fresh, path) == len(fresh.backbone.weights)
    np.testing.assert_array_equal(
        np.asarray(fresh.backbone.get_layer("stage4_block2_bn2").moving_mean), state["backbone.layer4.1.bn2.running_mean"]
    )
    del imagenet["layer1.0.conv1.weight"]
    with pytest.raises(ConversionError, match="layer1.0.conv1.weight"):
        keras_ann.weights.load_imagenet_backbone(fresh, imagenet)


def test_infer_rejects_other_models():
    with pytest.raises(ConversionError, match="decode_head.conv_seg.weight"):
        convert.infer_ann_config({"backbone.layer1.0.conv1.weight": np.zeros((1,)), **{f"backbone.layer{s}.{b}.conv1.weight": 0 for s, n in zip((1, 2, 3, 4), (2, 2, 2, 2)) for b in range(n)}})
    with pytest.raises(ConversionError, match="blocks per stage"):
        convert.infer_ann_config({"backbone.layer1.0.conv1.weight": np.zeros((1,))})


def _register(monkeypatch, name, url):
    base = presets.PRESETS["ann_r50_d8_cityscapes_512x1024_40k"]
    recipe = base.recipe.replace(name=name, backbone="resnet18_d8")
    preset = presets.Preset(**{**base.__dict__, "name": name, "recipe": recipe, "url": url})
    monkeypatch.setitem(presets.PRESETS, name, preset)
    return preset


def test_from_preset_downloads_verifies_caches_and_works_offline(r18_state, tmp_path, file_server, monkeypatch, capsys):
    _, state = r18_state
    state = dict(state)
    state["decode_head.conv_seg.weight"] = np.zeros((19, 128, 1, 1), "float32")
    state["decode_head.conv_seg.bias"] = np.arange(19, dtype="float32")
    state["auxiliary_head.conv_seg.weight"] = np.zeros((19, 64, 1, 1), "float32")
    state["auxiliary_head.conv_seg.bias"] = np.zeros(19, "float32")
    root, base_url = file_server
    blob = str(root / "tmp.pth")
    save_pth(state, blob)
    digest = hashlib.sha256(open(blob, "rb").read()).hexdigest()[:8]
    name = f"ann_r18_test_20200101-{digest}.pth"
    os.rename(blob, root / name)
    _register(monkeypatch, "ann_r18_test", f"{base_url}/{name}")
    cache = str(tmp_path / "cache")
    model = keras_ann.ANNSegmenter.from_preset("ann_r18_test", cache_dir=cache)
    assert "Downloading" in capsys.readouterr().out
    assert os.path.exists(os.path.join(cache, "presets", name))
    assert os.path.exists(os.path.join(cache, "presets", "ann_r18_test.weights.h5"))
    assert model.predict_labels(_images(2)).max() == 18  # bias argmax
    # The preset's test configuration travels with the model.
    assert model.test_protocol == presets.PRESETS["ann_r50_d8_cityscapes_512x1024_40k"].test_protocol()
    assert model.test_protocol.scale == (2048, 1024) and len(model.test_protocol.class_names) == 19
    # Offline: the server's file is gone, the cache serves.
    os.remove(root / name)
    again = keras_ann.ANNSegmenter.from_preset("ann_r18_test", cache_dir=cache, align_corners=True)
    assert again.align_corners is True
    np.testing.assert_array_equal(
        np.asarray(again.decode_head.conv_seg.bias), np.asarray(model.decode_head.conv_seg.bias)
    )


def test_download_with_wrong_hash_is_deleted(tmp_path, file_server, monkeypatch):
    root, base_url = file_server
    (root / "ann_bad_20200101-deadbeef.pth").write_bytes(b"not the published file")
    _register(monkeypatch, "ann_bad", f"{base_url}/ann_bad_20200101-deadbeef.pth")
    cache = tmp_path / "cache"
    with pytest.raises(download.HashMismatchError, match="deadbeef"):
        keras_ann.ANNSegmenter.from_preset("ann_bad", cache_dir=str(cache), verbose=False)
    assert not any(p.is_file() for p in cache.rglob("*"))


def test_a_released_model_without_network_is_one_error_naming_url_file_cache_and_convert(tmp_path, monkeypatch, capsys):
    import socket

    from keras_ann import cli

    with socket.socket() as probe:  # a port nothing listens on: the connection is refused, as offline
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/ann_r18_offline_20200101-0123abcd.pth"
    _register(monkeypatch, "ann_r18_offline", url)
    cache = tmp_path / "cache"
    with pytest.raises(download.DownloadError) as info:
        keras_ann.ANNSegmenter.from_preset("ann_r18_offline", cache_dir=str(cache), verbose=False)
    message = str(info.value)
    for part in (url, str(cache / "presets" / "ann_r18_offline_20200101-0123abcd.pth"),
                 "keras-ann convert ann_r18_offline_20200101-0123abcd.pth"):  # fmt: skip
        assert part in message
    assert not any(p.is_file() for p in cache.rglob("*"))
    # The command line: that message in one line, no traceback.
    monkeypatch.setenv("KERAS_ANN_HOME", str(cache))
    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    assert cli.main(["predict", "ann_r18_offline", str(image), "--output-dir", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("keras-ann predict: error: ann_r18_offline: could not download")


def test_unknown_preset_and_missing_file():
    with pytest.raises(ValueError, match="ann_r50_d8_cityscapes_512x1024_40k"):
        keras_ann.ANNSegmenter.from_preset("ann_r7")
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        keras_ann.ANNSegmenter.from_preset("/nowhere.pth")


def test_preset_registry_matches_reference_table():
    with open(shared_path("reference", "seed_ann_results.md")) as f:
        table = f.read()
    assert len(presets.PRESETS) == 16
    for preset in presets.PRESETS.values():
        assert preset.sha256_prefix and len(preset.sha256_prefix) == 8
        assert len(preset.class_names) == preset.num_classes == len(preset.palette)
        if preset.crop_size == (769, 769):
            assert preset.align_corners and preset.test_mode == "slide" and preset.test_stride == (513, 513)
        assert preset.url in table and f"{preset.miou:.2f}" in table


def test_cli_convert(r18_state, tmp_path):
    _, state = r18_state
    path = save_pth(state, str(tmp_path / "r18.pth"))
    out = str(tmp_path / "r18.keras")
    result = subprocess.run(
        [sys.executable, "-m", "keras_ann.cli", "convert", path, out, "--align-corners", "true"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "6 classes" in result.stdout
    loaded = keras.saving.load_model(out)
    assert loaded.align_corners is True
    direct = keras_ann.ANNSegmenter.from_preset(path, align_corners=True)
    np.testing.assert_array_equal(loaded.predict(_images(3), verbose=0), direct.predict(_images(3), verbose=0))
