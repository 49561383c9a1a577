"""Batch norm folded into the convolutions for inference (issue 16 item 2):
`fold_batch_norm` and `ConvBNReLU`'s folded inference path give the logits
of the unfolded model, in float64 to round-off."""

import keras
import numpy as np
import pytest

import keras_ann
from keras_ann.layers.conv_bn import ConvBNReLU
from keras_ann.models.batch_norm_folding import count_batch_norm, fold_batch_norm, fold_functional


def random_statistics(model, seed=0):
    """Batch-norm weights and statistics far from their initial values, so
    that a wrong fold cannot hide behind gamma 1, beta 0, mean 0, var 1."""
    rng = np.random.default_rng(seed)
    for layer in model._flatten_layers(include_self=True, recursive=True):
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.gamma.shape[0]
            layer.set_weights(
                [rng.uniform(0.5, 1.5, c), rng.normal(0, 0.2, c), rng.normal(0, 0.2, c), rng.uniform(0.3, 3, c)]
            )
    return model


def tiny_segmenter(**kwargs):
    backbone = keras_ann.ResNetBackbone(
        depth=18, output_stride=8, stem_channels=8, base_channels=8, dtype=kwargs.get("dtype")
    )
    return random_statistics(keras_ann.ANNSegmenter(backbone=backbone, num_classes=3, **kwargs))


def images(n=2, h=33, w=41, seed=1):
    return np.random.default_rng(seed).uniform(0, 255, (n, h, w, 3))


def test_folded_segmenter_equals_the_original_in_float64():
    model = tiny_segmenter(dtype="float64")
    folded = fold_batch_norm(model)
    x = images()
    expected = model.predict_on_batch(x)
    got = folded.predict_on_batch(x)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12 * np.abs(expected).max())
    assert count_batch_norm(model.backbone) == 22
    assert count_batch_norm(folded.backbone) == 0
    # The original is unchanged and still trains with its batch norm.
    assert count_batch_norm(model.backbone) == 22
    assert folded.num_classes == 3 and folded.test_protocol == model.test_protocol


def test_folded_segmenter_under_mixed_bfloat16_stays_close():
    model = tiny_segmenter(dtype="mixed_bfloat16")
    reference = tiny_segmenter(dtype="float32")
    reference.set_weights(model.get_weights())
    x = images()
    expected = reference.predict_on_batch(x)
    got = fold_batch_norm(model).predict_on_batch(x)
    unfolded = model.predict_on_batch(x)
    assert got.dtype == np.float32
    # Folding rounds the folded kernel to bfloat16 once instead of each
    # feature map, so it is no further from float32 than the unfolded model.
    error = np.abs(got - expected).max()
    assert error <= 2 * np.abs(unfolded - expected).max() + 1e-6
    assert error < 0.1 * np.abs(expected).max()


def test_conv_bn_relu_folds_in_inference_and_trains_with_batch_statistics():
    layer = ConvBNReLU(6, kernel_size=3, strides=2, dtype="float64")
    x = np.random.default_rng(0).normal(size=(2, 9, 9, 4))
    layer(x)
    random_statistics(layer)
    unfolded = np.maximum(np.asarray(layer.bn(layer.conv(layer.pad(x) if layer.pad else x), training=False)), 0)
    np.testing.assert_allclose(np.asarray(layer(x, training=False)), unfolded, rtol=1e-13, atol=1e-13)
    # A frozen batch norm is in inference even in a training call.
    layer.bn.trainable = False
    np.testing.assert_allclose(np.asarray(layer(x, training=True)), unfolded, rtol=1e-13, atol=1e-13)
    # Trainable, a training call normalises with the batch's statistics
    # and updates the moving ones.
    layer.bn.trainable = True
    before = np.asarray(layer.bn.moving_mean).copy()
    out = np.asarray(layer(x, training=True))
    assert not np.allclose(out, unfolded)
    assert not np.allclose(np.asarray(layer.bn.moving_mean), before)


def test_folded_segmenter_saves_and_loads(tmp_path):
    folded = fold_batch_norm(tiny_segmenter(dtype="float64"))
    path = str(tmp_path / "folded.keras")
    folded.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, keras_ann.ANNSegmenter)
    assert count_batch_norm(loaded.backbone) == 0
    x = images(n=1)
    np.testing.assert_array_equal(loaded.predict_on_batch(x), folded.predict_on_batch(x))


def test_a_dtype_given_to_the_segmenter_survives_its_config(tmp_path):
    # Functional models take the global policy whatever `dtype` says; the
    # config must name the policy the layers were built with.
    model = keras_ann.ANNSegmenter(backbone="resnet18_d8", num_classes=3, dtype="float64")
    assert model.get_config()["dtype"]["config"]["name"] == "float64"
    assert model.backbone.get_config()["dtype"]["config"]["name"] == "float64"
    path = str(tmp_path / "float64.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert {w.dtype for w in loaded.weights} == {"float64"}
    bf16 = keras_ann.ANNSegmenter(backbone="resnet18_d8", num_classes=3, dtype="mixed_bfloat16")
    assert keras_ann.ANNSegmenter.from_config(bf16.get_config()).decode_head.compute_dtype == "bfloat16"


def test_only_conv_batch_norm_pairs_are_folded():
    inputs = keras.Input((8, 8, 3), dtype="float64")
    a = keras.layers.Conv2D(4, 3, padding="same", use_bias=True, dtype="float64", name="biased")(inputs)
    a = keras.layers.BatchNormalization(dtype="float64", name="bn_a")(a)
    shared = keras.layers.Conv2D(4, 1, use_bias=False, dtype="float64", name="shared")(a)
    b = keras.layers.BatchNormalization(dtype="float64", name="bn_b")(shared)  # the conv has 2 consumers
    c = keras.layers.Add(dtype="float64")([b, shared])
    d = keras.layers.BatchNormalization(dtype="float64", name="bn_after_add")(c)  # not after a conv
    model = random_statistics(keras.Model(inputs, {"out": d}))
    folded = fold_functional(model)
    assert {layer.name for layer in folded.layers if isinstance(layer, keras.layers.BatchNormalization)} == {
        "bn_b",
        "bn_after_add",
    }
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 3))
    np.testing.assert_allclose(folded(x)["out"], model(x)["out"], rtol=1e-12, atol=1e-12)


def test_fold_batch_norm_refuses_other_models():
    with pytest.raises(TypeError, match="ANNSegmenter"):
        fold_batch_norm(keras.Sequential([keras.layers.Dense(2)]))


def test_the_cli_folds_the_model_it_predicts_and_evaluates_with(tmp_path):
    from keras_ann.presets import load_model  # as the commands load models

    model = tiny_segmenter()
    path = str(tmp_path / "model.keras")
    model.save(path)
    for_inference = load_model(path, inference=True)
    assert count_batch_norm(for_inference.backbone) == 0
    assert count_batch_norm(load_model(path).backbone) == 22  # convert, train: unfolded
    x = images(n=1).astype("float32")
    np.testing.assert_allclose(
        for_inference.predict_on_batch(x), model.predict_on_batch(x), rtol=1e-4, atol=1e-4
    )


@pytest.mark.parametrize("dilation", [1, 2])
def test_a_wide_folded_convolution_runs_as_one_matrix_product(dilation):
    # From MATMUL_MIN_CHANNELS input channels, in float32, the folded
    # convolution is `conv2d_as_matmul` on TensorFlow (faster there): the
    # same values as the convolution, and no convolution op in the graph.
    from keras_ann.layers.conv_bn import MATMUL_MIN_CHANNELS

    x = np.random.default_rng(0).normal(size=(2, 6, 7, MATMUL_MIN_CHANNELS)).astype("float32")
    layer = ConvBNReLU(8, kernel_size=3, dilation_rate=dilation, dtype="float32")
    layer(x)
    random_statistics(layer)
    unfolded = np.maximum(np.asarray(layer.bn(layer.conv(layer.pad(x) if layer.pad else x), training=False)), 0)
    got = np.asarray(layer(x, training=False))
    np.testing.assert_allclose(got, unfolded, rtol=1e-5, atol=1e-5 * np.abs(unfolded).max())
    if keras.backend.backend() != "tensorflow":
        assert not layer._convolves_as_matmul(x)
        return
    import tensorflow as tf

    def op_types(conv_layer, inputs):
        conv_layer(inputs)
        graph = tf.function(lambda t: conv_layer(t, training=False)).get_concrete_function(inputs).graph
        return {op.type for op in graph.get_operations()}

    wide = op_types(layer, x)
    assert "Conv2D" not in wide and "MatMul" in wide
    # Traced for any batch and size (a SavedModel's signature): the same
    # values, to float32 round-off (a traced graph's fused ops round
    # differently from an eager call's).
    spec = tf.TensorSpec((None, None, None, MATMUL_MIN_CHANNELS), "float32")
    dynamic = tf.function(lambda t: layer(t, training=False), input_signature=[spec])
    np.testing.assert_allclose(dynamic(x).numpy(), got, rtol=1e-5, atol=1e-5 * np.abs(got).max())
    assert "MatMul" in {op.type for op in dynamic.get_concrete_function().graph.get_operations()}
    # One channel fewer, a stride, a 1x1 kernel or bfloat16: the convolution.
    for narrow, inputs in (
        (ConvBNReLU(8, kernel_size=3, dilation_rate=dilation, dtype="float32"), x[..., 1:]),
        (ConvBNReLU(8, kernel_size=3, strides=2, dtype="float32"), x),
        (ConvBNReLU(8, kernel_size=1, dtype="float32"), x),
        (ConvBNReLU(8, kernel_size=3, dtype="mixed_bfloat16"), x),
    ):
        assert "Conv2D" in op_types(narrow, inputs)
