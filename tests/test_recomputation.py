"""Recomputation in training (`ResNetBackbone(remat=True)`, or of some of
its parts): the backward pass recomputes each segment's activations, the
training is the same, the moving statistics are updated once, and the
weights are the plain model's.
The reference comparison is in test_train_step_parity; JAX and PyTorch in
test_backends."""

import json

import numpy as np
import pytest
import tensorflow as tf

import keras
import keras_ann
from keras_ann.backbones import ResNetBackbone, set_remat
from keras_ann.backbones.resnet import SEGMENTS, remat_segments
from keras_ann.layers.recomputation import assign, recomputed


def _segmenter(remat, dtype="float64", seed=3):
    keras.utils.set_random_seed(seed)
    backbone = ResNetBackbone.from_name("resnet18_d8", remat=remat, dtype=dtype)
    return keras_ann.ANNSegmenter(backbone=backbone, num_classes=5, dropout=0.0, dtype=dtype)


def _batch(dtype="float64"):
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (2, 40, 56, 3)).astype(dtype)
    labels = rng.integers(0, 5, (2, 40, 56)).astype("int32")
    return images, labels


def test_a_recomputed_function_runs_again_in_the_backward_pass_and_assigns_once():
    calls = []
    count = keras.Variable(0.0, trainable=False)
    weight = keras.Variable(3.0)

    def fn(x):
        calls.append(1)
        assign(count, count + 1.0)
        return keras.ops.sin(x * weight)

    x = tf.constant(0.5)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = recomputed(fn)(x)
    grads = tape.gradient(y, [x, weight.value])
    assert len(calls) == 2  # the forward pass, then the recomputation
    assert float(count) == 1.0
    np.testing.assert_allclose([float(g) for g in grads], [3 * np.cos(1.5), 0.5 * np.cos(1.5)], rtol=1e-6)


def test_training_with_recomputation_equals_training_without_it():
    images, labels = _batch()
    # All of the backbone recomputed, and only its stem and stage 1 (the
    # other stages running as they are, in the same training call).
    models = [_segmenter(setting) for setting in (False, True, "stem,stage1")]
    for model in models:
        model.compile(optimizer=keras_ann.optimizers.TorchSGD(0.01, momentum=0.9, weight_decay=5e-4))
        for _ in range(2):
            model.train_on_batch(images, labels)
    plain = models[0]
    moving = [i for i, w in enumerate(plain.weights) if w.path.endswith(("moving_mean", "moving_variance"))]
    assert len(moving) == 2 * (3 + 8 * 2 + 3) + 2 * 6 + 2 * 1  # backbone, ANN head, auxiliary head
    for remat in models[1:]:
        assert [w.path for w in plain.weights] == [w.path for w in remat.weights]
        for i, (a, b) in enumerate(zip(plain.weights, remat.weights)):
            a, b = np.asarray(a), np.asarray(b)
            # A moving statistic updated twice would be off by ~10 % of the
            # batch statistic, not by round-off.
            message = f"remat={remat.backbone.remat}: {plain.weights[i].path}"
            np.testing.assert_allclose(b, a, rtol=1e-11, atol=1e-13 * np.abs(a).max(), err_msg=message)
        # Round-off is relative to the logits' scale: an element near 0 may
        # differ by 2e-17 where the largest logit is 1e-2.
        want = np.asarray(plain.predict(images, verbose=0))
        np.testing.assert_allclose(
            np.asarray(remat.predict(images, verbose=0)), want, rtol=1e-10, atol=1e-13 * np.abs(want).max()
        )


def _count_convolutions(model, images, labels):
    @tf.function
    def gradients(x, y):
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            loss = keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
        return tape.gradient(loss, model.trainable_weights)

    graph = gradients.get_concrete_function(images, labels).graph

    def count(g):  # the graph's own and its nested functions' (the recomputed blocks)
        nested = sum(count(f.graph) for f in getattr(g, "_functions", {}).values() if hasattr(f, "graph"))
        return sum(op.type == "Conv2D" for op in g.get_operations()) + nested

    return count(graph)


@pytest.mark.parametrize(
    "remat, recomputed_convolutions",
    [
        (True, 3 + 8 * 2 + 3),  # stem, 8 basic blocks, 3 downsample shortcuts
        ("stem,stage1", 3 + 2 * 2),  # stem, stage 1's 2 basic blocks (no shortcut)
        (("stage4",), 2 * 2 + 1),  # stage 4's 2 blocks and its shortcut
    ],
)
def test_the_backward_pass_recomputes_the_parts_asked_for(remat, recomputed_convolutions):
    images, labels = _batch("float32")
    plain = _count_convolutions(_segmenter(False, "float32"), images, labels)
    remat = _count_convolutions(_segmenter(remat, "float32"), images, labels)
    assert remat == plain + recomputed_convolutions


def test_recomputation_changes_neither_the_weights_nor_inference(tmp_path):
    images, _ = _batch("float32")
    remat = _segmenter(True, "float32")
    plain = _segmenter(False, "float32", seed=4)
    path = str(tmp_path / "remat.weights.h5")
    remat.save_weights(path)
    plain.load_weights(path)
    np.testing.assert_array_equal(np.asarray(plain.predict(images, verbose=0)), np.asarray(remat.predict(images, verbose=0)))
    config = remat.backbone.get_config()
    assert config["remat"] is True
    assert ResNetBackbone.from_config(config).remat is True
    set_remat(remat.backbone, "stage1,stem")
    config = json.loads(json.dumps(remat.backbone.get_config()))  # as a .keras file stores it
    assert config["remat"] == ["stem", "stage1"]
    assert ResNetBackbone.from_config(config).remat == ("stem", "stage1")


@pytest.mark.parametrize(
    "remat, segments",
    [(True, SEGMENTS), (False, ()), (None, ()), ("stage2, stem", ("stem", "stage2")),
     (["stage4", "stage4"], ("stage4",)), (SEGMENTS, SEGMENTS), ([], ())],
)
def test_remat_names_the_parts_to_recompute(remat, segments):
    assert remat_segments(remat) == segments


@pytest.mark.parametrize(
    "remat, message",
    [("stem,layer1", r"got 'stem,layer1', where 'layer1' is not one of them"), ("", r"got ''\."),
     (" , ", r"got ' , '\."), ("all", "'all' is not one of them"), (["stem", 1], "1 is not one of them")],
)
def test_remat_refuses_a_part_that_does_not_exist(remat, message):
    with pytest.raises(ValueError, match=r"`remat` takes True, False or the backbone's parts to recompute, from "
                       r"stem, stage1, stage2, stage3, stage4 .*" + message):
        ResNetBackbone(depth=18, remat=remat)


def test_remat_is_refused_for_a_backbone_without_it():
    images = keras.Input((None, None, 3))
    features = keras.layers.Conv2D(4, 3, name="conv")(images)
    backbone = keras.Model(images, {"low": features, "high": features}, name="tiny")
    set_remat(backbone, False)  # nothing to turn off
    with pytest.raises(ValueError, match=r"`remat=True` needs a keras-ann `ResNetBackbone`.*Functional \(tiny\)"):
        set_remat(backbone, True)
