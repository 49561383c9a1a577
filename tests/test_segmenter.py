"""ANNSegmenter and ResNetBackbone: architecture, API, training, saving."""

import os

import keras
import numpy as np
import pytest

import keras_ann
from keras_ann.backbones import ResNetBackbone


def torch_conv_size(size, kernel=3, stride=2, pad=1):
    return (size + 2 * pad - kernel) // stride + 1


def feature_size(size, output_stride):
    size = torch_conv_size(size)  # stem conv1, stride 2
    size = torch_conv_size(size)  # max pool, stride 2
    size = torch_conv_size(size)  # stage 2, stride 2
    if output_stride == 16:
        size = torch_conv_size(size)  # stage 3
    return size


def count(weights):
    return sum(int(np.prod(w.shape)) for w in weights)


@pytest.fixture(scope="module")
def small_model():
    keras.utils.set_random_seed(7)
    return keras_ann.ANNSegmenter(backbone="resnet18_d8", num_classes=5)


def test_r50_d8_parameter_count_equals_reference():
    model = keras_ann.ANNSegmenter(backbone="resnet50_d8", num_classes=19)
    # mmsegmentation 1.2.2, configs/ann/ann_r50-d8 with 19 classes and the
    # auxiliary head: 46,228,614 parameters (BN running statistics are
    # buffers there and non-trainable variables here).
    assert count(model.trainable_weights) == 46_228_614
    assert len(model.weights) == len({id(w) for w in model.weights})


def test_r101_d8_parameter_count():
    model = keras_ann.ANNSegmenter(backbone="resnet101_d8", num_classes=19)
    # 17 more stage-3 bottlenecks than R-50, 1,117,184 parameters each.
    assert count(model.trainable_weights) == 46_228_614 + 17 * 1_117_184


@pytest.mark.parametrize("output_stride", [8, 16])
@pytest.mark.parametrize("size", [(65, 65), (67, 93), (64, 128)])
def test_backbone_feature_sizes_follow_pytorch(output_stride, size):
    backbone = ResNetBackbone(depth=18, output_stride=output_stride)
    feats = backbone(np.zeros((1, *size, 3), "float32"))
    expect = tuple(feature_size(s, output_stride) for s in size)
    assert tuple(feats["stage4"].shape[1:3]) == expect
    assert tuple(feats["stage3"].shape[1:3]) == expect
    assert feats["stage4"].shape[-1] == 512 and feats["stage3"].shape[-1] == 256


def test_backbone_layout_and_init():
    backbone = ResNetBackbone(depth=50, output_stride=8)
    names = {layer.name for layer in backbone.layers}
    assert {"stem_conv1", "stem_conv2", "stem_conv3", "stem_pool"} <= names
    assert backbone.get_layer("stem_conv1").filters == 32
    assert backbone.get_layer("stem_conv3").filters == 64
    # Stride on the 3x3 conv, 1x1 projection shortcut on the first block.
    assert backbone.get_layer("stage2_block1_conv2").strides == (2, 2)
    assert backbone.get_layer("stage2_block1_conv1").strides == (1, 1)
    assert backbone.get_layer("stage2_block1_downsample_conv").kernel_size == (1, 1)
    # contract_dilation: the first block of a dilated stage uses half.
    assert backbone.get_layer("stage3_block1_conv2").dilation_rate == (1, 1)
    assert backbone.get_layer("stage3_block2_conv2").dilation_rate == (2, 2)
    assert backbone.get_layer("stage4_block1_conv2").dilation_rate == (2, 2)
    assert backbone.get_layer("stage4_block3_conv2").dilation_rate == (4, 4)
    bn = backbone.get_layer("stage1_block1_bn1")
    assert bn.epsilon == 1e-5 and bn.momentum == 0.9
    # zero_init_residual: last BN of each residual branch starts at 0.
    np.testing.assert_array_equal(np.asarray(backbone.get_layer("stage1_block1_bn3").gamma), 0.0)
    np.testing.assert_array_equal(np.asarray(backbone.get_layer("stem_bn3").gamma), 1.0)
    conv = np.asarray(backbone.get_layer("stage3_block2_conv2").kernel)
    fan_out = 3 * 3 * 256
    assert abs(conv.std() - np.sqrt(2 / fan_out)) < 0.05 * np.sqrt(2 / fan_out)


def test_backbone_by_name_and_errors():
    assert ResNetBackbone.from_name("resnet50_d16").output_stride == 16
    with pytest.raises(ValueError, match="resnet7_d8"):
        ResNetBackbone.from_name("resnet7_d8")
    with pytest.raises(ValueError, match="depth"):
        ResNetBackbone(depth=42)
    with pytest.raises(ValueError, match="output_stride"):
        ResNetBackbone(depth=18, output_stride=4)
    with pytest.raises(ValueError, match="backbone"):
        keras_ann.ANNSegmenter(backbone=3)


@pytest.mark.parametrize("size", [(67, 93), (33, 33), (64, 48)])
def test_predict_shapes_for_odd_sizes(small_model, size):
    images = np.random.default_rng(0).uniform(0, 255, (2, *size, 3)).astype("float32")
    logits = small_model.predict(images, verbose=0)
    assert logits.shape == (2, *size, 5) and logits.dtype == np.float32
    labels = small_model.predict_labels(images)
    assert labels.shape == (2, *size)
    np.testing.assert_array_equal(labels, logits.argmax(-1))


def test_auxiliary_head_only_in_training(small_model):
    images = np.zeros((1, 40, 40, 3), "float32")
    # A custom training loop gets the logits tensor; the auxiliary output
    # only when asked for.
    assert tuple(small_model(images, training=True).shape) == (1, 40, 40, 5)
    out = small_model(images, training=True, return_auxiliary=True)
    assert set(out) == {"logits", "aux_logits"}
    assert tuple(out["aux_logits"].shape) == (1, 40, 40, 5)
    assert tuple(small_model(images).shape) == (1, 40, 40, 5)
    inference_layers = {op.name for op in small_model.operations}
    assert "auxiliary_head" not in inference_layers and "decode_head" in inference_layers
    assert "auxiliary_head" in {op.name for op in small_model.training_graph.operations}
    # The auxiliary head's weights are trained and saved with the model.
    paths = {w.path for w in small_model.trainable_weights}
    assert any(p.startswith("auxiliary_head/conv_seg") for p in paths)


def test_model_without_auxiliary_head():
    model = keras_ann.ANNSegmenter(backbone="resnet18_d8", num_classes=3, auxiliary_head=False)
    assert model.training_graph is None
    out = model(np.zeros((1, 32, 32, 3), "float32"), training=True)
    assert tuple(out.shape) == (1, 32, 32, 3)
    with pytest.raises(ValueError, match="auxiliary_head=False"):
        model(np.zeros((1, 32, 32, 3), "float32"), training=True, return_auxiliary=True)


def test_normalisation_inside_the_model(small_model):
    norm = small_model.get_layer("normalize")
    x = np.array([[[[123.675, 116.28, 103.53], [182.07, 173.4, 160.905]]]], "float32")
    np.testing.assert_allclose(np.asarray(norm(x)), [[[[0, 0, 0], [1, 1, 1]]]], atol=1e-5)


def test_align_corners_controls_final_resize():
    keras.utils.set_random_seed(3)
    model = keras_ann.ANNSegmenter(backbone="resnet18_d8", num_classes=3, align_corners=True)
    images = np.random.default_rng(1).uniform(0, 255, (1, 41, 41, 3)).astype("float32")
    small = keras.Model(model.input, model.get_layer("decode_head").output)(images)
    want = keras_ann.ops.bilinear_resize(small, (41, 41), align_corners=True)
    np.testing.assert_allclose(np.asarray(model(images)), np.asarray(want), rtol=1e-6, atol=1e-6)


def test_config_round_trip(small_model):
    config = small_model.get_config()
    clone = keras_ann.ANNSegmenter.from_config(config)
    assert clone.get_config() == config
    clone.set_weights(small_model.get_weights())
    images = np.random.default_rng(2).uniform(0, 255, (1, 35, 45, 3)).astype("float32")
    np.testing.assert_array_equal(clone.predict(images, verbose=0), small_model.predict(images, verbose=0))


def test_keras_file_round_trip(tmp_path):
    model = keras_ann.ANNSegmenter(backbone="resnet18_d8", num_classes=4, align_corners=True)
    model.compile()
    images = np.random.default_rng(3).uniform(0, 255, (2, 48, 40, 3)).astype("float32")
    labels = np.random.default_rng(4).integers(0, 4, (2, 48, 40))
    model.fit(images, labels, epochs=1, batch_size=2, verbose=0)  # non-trivial BN stats
    path = os.path.join(tmp_path, "ann.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)  # safe mode: no lambdas needed
    assert isinstance(loaded, keras_ann.ANNSegmenter)
    np.testing.assert_array_equal(loaded.predict(images, verbose=0), model.predict(images, verbose=0))
    # The auxiliary head and the compiled state come back too.
    for a, b in zip(loaded.training_graph.weights, model.training_graph.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    loaded.fit(images, labels, epochs=1, batch_size=2, verbose=0)


def _train_loss(model, images, labels):
    out = model(images, training=True, return_auxiliary=True)
    return float(model.compute_loss(images, labels, out))


def test_one_training_step_lowers_the_loss():
    keras.utils.set_random_seed(11)
    model = keras_ann.ANNSegmenter(backbone="resnet18_d8", num_classes=3, dropout=0.0)
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9))
    rng = np.random.default_rng(5)
    images = rng.uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    labels = (images.mean(-1) > 127).astype("int32")
    labels[:, :6] = 255
    before = _train_loss(model, images, labels)
    model.train_on_batch(images, labels)
    after = _train_loss(model, images, labels)
    assert np.isfinite(before) and after < before


def test_training_loss_adds_weighted_auxiliary_loss():
    keras.utils.set_random_seed(12)
    model = keras_ann.ANNSegmenter(backbone="resnet18_d8", num_classes=3, dropout=0.0)
    model.compile()
    rng = np.random.default_rng(6)
    images = rng.uniform(0, 255, (1, 32, 32, 3)).astype("float32")
    labels = rng.integers(0, 3, (1, 32, 32))
    labels[0, 0] = 255
    out = model(images, training=True, return_auxiliary=True)
    loss_fn = keras_ann.SegmentationCrossEntropy()
    want = float(loss_fn(labels, out["logits"])) + 0.4 * float(loss_fn(labels, out["aux_logits"]))
    assert float(model.compute_loss(images, labels, out)) == pytest.approx(want, rel=1e-6)
    # The training step of `train_on_batch` (and `fit`) includes it.
    assert model.train_on_batch(images, labels, return_dict=True)["loss"] == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_fit_under_mixed_precision(policy):
    keras.mixed_precision.set_global_policy(policy)
    model = keras_ann.ANNSegmenter(backbone="resnet18_d8", num_classes=3)
    model.compile()
    rng = np.random.default_rng(7)
    images = rng.uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    labels = rng.integers(0, 3, (2, 32, 32))
    history = model.fit(images, labels, epochs=1, batch_size=2, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    logits = model(images)
    assert keras.backend.standardize_dtype(logits.dtype) == "float32"
    assert keras.backend.standardize_dtype(model.decode_head.context.compute_dtype) == policy.split("_")[1]
    if policy == "mixed_float16":
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)


def test_evaluate_ignores_255(small_model):
    small_model.compile()
    images = np.random.default_rng(8).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    labels = np.full((2, 32, 32), 255)
    labels[:, :4] = 1
    result = small_model.evaluate(images, labels, verbose=0, return_dict=True)
    assert np.isfinite(result["loss"]) and 0.0 <= result["mean_iou"] <= 100.0


def test_any_functional_backbone_with_named_outputs(tmp_path):
    inputs = keras.Input((None, None, 3))
    c3 = keras.layers.Conv2D(8, 3, strides=4, padding="same", name="c3_conv")(inputs)
    c3 = keras.layers.BatchNormalization(name="c3_bn")(c3)
    c4 = keras.layers.Conv2D(16, 3, strides=2, padding="same", name="c4_conv")(c3)
    backbone = keras.Model(inputs, {"c3": c3, "c4": c4}, name="tiny")
    model = keras_ann.ANNSegmenter(backbone=backbone, num_classes=2)
    assert model.feature_keys == ("c3", "c4")
    assert (model.head_channels, model.project_channels, model.auxiliary_channels) == (4, 2, 2)
    images = np.random.default_rng(8).uniform(0, 255, (1, 37, 29, 3)).astype("float32")
    assert model.predict(images, verbose=0).shape == (1, 37, 29, 2)
    # A run-time synchronisation is not saved (JAX and PyTorch refuse it).
    if keras.backend.backend() == "tensorflow":
        batch_norms = [w for w in model.training_graph.weights if w.path.endswith("moving_mean")]
        assert keras_ann.layers.set_synchronized_batch_norm(model) == len(batch_norms)
        assert backbone.get_layer("c3_bn").synchronized
    config = str(model.get_config())
    assert "'synchronized': False" in config and "'synchronized': True" not in config
    path = os.path.join(tmp_path, "tiny.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert not loaded.backbone.get_layer("c3_bn").synchronized
    np.testing.assert_allclose(loaded.predict(images, verbose=0), model.predict(images, verbose=0), rtol=1e-6)
    with pytest.raises(ValueError, match="named feature maps"):
        keras_ann.ANNSegmenter(backbone=keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 1)]))
    with pytest.raises(ValueError, match="two feature maps"):
        keras_ann.ANNSegmenter(backbone=keras.Model(inputs, {"c3": c3}))


# Weight groups of a keras-ann 0.1.0 `.keras` file (flat head layers, read
# from a file saved by that version) -> their place in the current layout.
_LAYOUT_0_1_0 = {
    "layers/afnb/": "layers/ann_head/fusion/",
    "layers/conv_bn_re_lu/": "layers/ann_head/bottleneck/",
    "layers/apnb/": "layers/ann_head/context/",
    "layers/conv2d/": "layers/ann_head/conv_seg/",
    "training_graph/layers/conv_bn_re_lu_1/": "auxiliary_head/convs/conv_bn_re_lu/",
    "training_graph/layers/conv2d/": "auxiliary_head/conv_seg/",
}


def _write_0_1_0_file(model, path, tmp_path):
    """`model` saved as keras-ann 0.1.0 saved it: `synchronized` in the
    configs, no `feature_keys`, the head weights under the flat layers."""
    import json
    import zipfile

    import h5py

    current = os.path.join(tmp_path, "current.keras")
    model.save(current)
    with zipfile.ZipFile(current) as archive:
        config = json.loads(archive.read("config.json"))
        metadata = archive.read("metadata.json")
        weights = os.path.join(tmp_path, "current.weights.h5")
        with open(weights, "wb") as f:
            f.write(archive.read("model.weights.h5"))
    inner = config["config"]
    del inner["feature_keys"]
    inner["synchronized"] = True  # a multi-replica run of 0.1.0
    inner["backbone"]["config"]["synchronized"] = True
    old_weights = os.path.join(tmp_path, "old.weights.h5")
    with h5py.File(weights, "r") as new, h5py.File(old_weights, "w") as old:
        def copy(name, obj):
            if isinstance(obj, h5py.Dataset):
                target = name
                for old_prefix, new_prefix in _LAYOUT_0_1_0.items():
                    if name.startswith(new_prefix):
                        target = old_prefix + name[len(new_prefix):]
                old[target] = obj[...]
        new.visititems(copy)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", json.dumps(config))
        archive.writestr("metadata.json", metadata)
        archive.write(old_weights, "model.weights.h5")


def test_a_keras_file_of_the_unreleased_0_1_0_layout_is_refused_saying_what_to_do(tmp_path):
    # 0.1.0 was never released: its files are not converted (the converter
    # read their HDF5 weights itself, external datasets included).
    model = keras_ann.ANNSegmenter(
        "resnet18_d8", num_classes=3, head_channels=16, project_channels=8, auxiliary_channels=8
    )
    path = os.path.join(tmp_path, "old.keras")
    _write_0_1_0_file(model, path, tmp_path)
    with pytest.raises(ValueError, match=r"unreleased 0\.1\.0 layout"):
        keras.saving.load_model(path)
    with pytest.raises(ValueError, match=r"^old\.keras is in the layout of the unreleased keras-ann 0\.1\.0 .*"
                       r"keras-ann convert[^\n]*$"):
        keras_ann.ANNSegmenter.from_preset(path)


def test_from_preset_keras_file_with_new_class_count(tmp_path):
    keras.utils.set_random_seed(15)
    model = keras_ann.ANNSegmenter(
        "resnet18_d8", num_classes=3, head_channels=16, project_channels=8, auxiliary_channels=8
    )
    path = os.path.join(tmp_path, "three.keras")
    model.save(path)
    five = keras_ann.ANNSegmenter.from_preset(path, num_classes=5)
    assert five.num_classes == 5 and five.decode_head.conv_seg.kernel.shape == (1, 1, 16, 5)
    kept = 0
    for new, old in zip(five.training_graph.weights, model.training_graph.weights):
        assert new.path == old.path
        if "conv_seg" not in new.path:
            np.testing.assert_array_equal(np.asarray(new), np.asarray(old))
            kept += 1
    assert kept == len(model.training_graph.weights) - 4
    images = np.random.default_rng(16).uniform(0, 255, (1, 35, 29, 3)).astype("float32")
    assert five.predict(images, verbose=0).shape == (1, 35, 29, 5)
    # Settings without weights and dropping the auxiliary head keep every weight.
    plain = keras_ann.ANNSegmenter.from_preset(path, auxiliary_head=False, align_corners=True)
    assert plain.auxiliary_head is None and plain.align_corners
    np.testing.assert_array_equal(
        np.asarray(plain.decode_head.conv_seg.kernel), np.asarray(model.decode_head.conv_seg.kernel)
    )
    with pytest.raises(ValueError, match=r"(?s)head_channels.*decode_head/bottleneck"):
        keras_ann.ANNSegmenter.from_preset(path, head_channels=32)
    # A `.keras` file of another model is refused by name.
    other = os.path.join(tmp_path, "other.keras")
    keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]).save(other)
    with pytest.raises(ValueError, match=r"other\.keras holds a Keras Sequential .*not a keras_ann ANNSegmenter"):
        keras_ann.ANNSegmenter.from_preset(other)
