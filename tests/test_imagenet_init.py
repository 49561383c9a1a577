"""ImageNet initialisation by default, as the reference's configs: the
recipe's ResNet-V1c checkpoint is downloaded (cache, hash of the published
name, atomic write, offline once cached) and loaded into the backbone before
training; `--imagenet PATH` and `--imagenet none` replace it.

Offline: the checkpoint is an mmseg `ResNetV1c` with random weights, saved
with `torch.save` and served from 127.0.0.1.
"""

import hashlib
import json
import os

import numpy as np
import pytest

from keras_ann import recipes
from keras_ann.weights import download
from keras_ann.weights.imagenet import resolve_backbone_init
from testing_utils import camvid_subset


def _v1c_checkpoint(mmseg_ann, directory, depth):
    """An ImageNet-layout ResNet-V1c checkpoint (`stem.*`, `layer*`, `fc.*`)
    of mmseg's own `ResNetV1c`, random weights and BN statistics, saved with
    `torch.save` under its published-style name `resnet<depth>_v1c-<sha>.pth`."""
    import torch

    models = mmseg_ann._import_mmseg()
    torch.manual_seed(depth)
    net = models.build(dict(type="ResNetV1c", depth=depth))
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.1)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0, 0.1)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    width = 2048 if depth >= 50 else 512
    state["fc.weight"] = torch.zeros(1000, width)
    state["fc.bias"] = torch.zeros(1000)
    path = directory / "tmp.pth"
    torch.save(state, path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:8]
    named = directory / f"resnet{depth}_v1c-{digest}.pth"
    os.rename(path, named)
    return named, {k: v.numpy() for k, v in state.items()}


@pytest.fixture(scope="module")
def r18_v1c(mmseg_ann, tmp_path_factory):
    return _v1c_checkpoint(mmseg_ann, tmp_path_factory.mktemp("r18"), 18)


@pytest.fixture(scope="module")
def r50_v1c(mmseg_ann, tmp_path_factory):
    return _v1c_checkpoint(mmseg_ann, tmp_path_factory.mktemp("r50"), 50)


def _assert_backbone_holds(values, state):
    for key, value in values.items():
        want = state[key]
        want = want.transpose(2, 3, 1, 0) if want.ndim == 4 else want
        np.testing.assert_array_equal(value, want, err_msg=key)
    assert "stem.0.weight" in values and "layer4.1.bn2.running_var" in values


def _backbone_values(backbone):
    from keras_ann.weights import convert

    return {key: np.array(variable) for key, variable, _ in convert.backbone_weight_map(backbone, prefix="")}


def _tiny(recipe, url=None):
    changes = dict(crop_size=(64, 64), train_scale=(96, 72), test_scale=(96, 72), total_batch=2, iterations=1, val_interval=1)
    if url is not None:
        changes["backbone_init"] = url
    return recipes.get_recipe(recipe).replace(**changes)


def test_train_downloads_and_loads_the_recipes_checkpoint_before_the_first_step(
    r18_v1c, file_server, tmp_path, monkeypatch, capsys
):
    import keras_ann.weights
    from keras_ann import training

    blob, state = r18_v1c
    root, base = file_server
    os.link(blob, root / blob.name)
    url = f"{base}/{blob.name}"
    monkeypatch.setenv("KERAS_ANN_HOME", str(tmp_path / "home"))
    # A recipe whose ImageNet checkpoint is served here (tiny crops, 1 iteration).
    recipe = _tiny("ann_r18_d8_camvid_cpu", url)
    loaded = {}
    real = keras_ann.weights.load_imagenet_backbone

    def spy(model, checkpoint):
        count = real(model, checkpoint)
        loaded.update(path=checkpoint, values=_backbone_values(model.backbone), count=(count, len(model.backbone.weights)))
        return count

    monkeypatch.setattr(keras_ann.weights, "load_imagenet_backbone", spy)
    work = tmp_path / "work"
    training.train(recipe, camvid_subset(tmp_path, 2), str(work), eval_steps=1, verbose=0)
    out = capsys.readouterr().out
    assert f"Downloading {url}" in out and f"ImageNet weights from {url}" in out
    cached = tmp_path / "home" / "imagenet" / blob.name
    assert loaded["path"] == str(cached) and cached.read_bytes() == blob.read_bytes()
    # When the run starts, the backbone holds the checkpoint: every variable.
    assert loaded["count"][0] == loaded["count"][1]
    _assert_backbone_holds(loaded["values"], state)
    saved = json.loads((work / "recipe.json").read_text())
    assert saved["backbone_init"] == url
    # Offline once cached: the server's file is gone, the cache serves.
    os.remove(root / blob.name)
    again, path = resolve_backbone_init(recipe, verbose=False)
    assert path == str(cached) and again.backbone_init == url


def test_an_r50_recipe_checkpoint_loads_into_the_recipes_backbone(r50_v1c, file_server, tmp_path):
    import keras_ann
    from keras_ann.weights import load_imagenet_backbone

    blob, state = r50_v1c
    root, base = file_server
    os.link(blob, root / blob.name)
    recipe = recipes.get_recipe("ann_r50_d8_cityscapes_769x769_40k").replace(backbone_init=f"{base}/{blob.name}")
    _, path = resolve_backbone_init(recipe, cache=str(tmp_path / "cache"), verbose=False)
    backbone = keras_ann.ResNetBackbone.from_name(recipe.backbone)
    assert load_imagenet_backbone(backbone, path) == len(backbone.weights)
    _assert_backbone_holds(_backbone_values(backbone), state)


def test_a_wrong_hash_is_refused_and_nothing_is_kept(file_server, tmp_path, monkeypatch):
    from keras_ann import training

    root, base = file_server
    (root / "resnet50_v1c-deadbeef.pth").write_bytes(b"not the published file")
    monkeypatch.setenv("KERAS_ANN_HOME", str(tmp_path / "home"))
    recipe = _tiny("ann_r50_d8_cityscapes_512x1024_40k", f"{base}/resnet50_v1c-deadbeef.pth")
    work = tmp_path / "work"
    with pytest.raises(download.HashMismatchError, match="deadbeef.*deleted"):
        training.train(recipe, str(tmp_path / "no-data"), str(work), verbose=0)
    assert not any(p.is_file() for p in (tmp_path / "home").rglob("*"))
    assert not work.exists()  # refused before anything was written


def test_imagenet_none_a_local_path_and_a_missing_one(r18_v1c, tmp_path, capsys):
    blob, _ = r18_v1c
    recipe = recipes.get_recipe("ann_r50_d8_cityscapes_512x1024_40k")
    assert recipe.backbone_init == recipes.IMAGENET_CHECKPOINTS["resnet50_d8"]
    scratch, path = resolve_backbone_init(recipe, "none")
    assert scratch.backbone_init is None and path is None
    assert "random initialisation, training from scratch (ImageNet initialisation turned off" in capsys.readouterr().out
    local, path = resolve_backbone_init(recipe, str(blob), verbose=False)  # --imagenet PATH
    assert local.backbone_init == str(blob) and path == str(blob)
    with pytest.raises(FileNotFoundError, match="nowhere.pth.*'none' to train from scratch"):
        resolve_backbone_init(recipe, str(tmp_path / "nowhere.pth"))
    # The CamVid CPU recipe has no ImageNet checkpoint (no R-18-V1c): said so.
    camvid, path = resolve_backbone_init(recipes.get_recipe("ann_r18_d8_camvid_cpu"))
    assert camvid.backbone_init is None and path is None
    assert "has no ImageNet checkpoint for resnet18_d8" in capsys.readouterr().out
