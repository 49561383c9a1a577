"""AFNB, APNB, attention and pooling layers: shapes, formula, config, dtype."""

import keras
import numpy as np
import pytest

from keras_ann import layers as ann_layers
from numpy_reference import numpy_adaptive_avg_pool


def randomize(layer, rng):
    """Random weights and BN statistics, so that no zero init hides a bug."""
    for w in layer.weights:
        shape = tuple(w.shape)
        if w.path.endswith("moving_variance") or w.path.endswith("gamma"):
            value = rng.uniform(0.5, 1.5, shape)
        else:
            value = rng.normal(0.0, 0.2, shape)
        w.assign(value.astype("float32"))


def np_conv1x1(x, layer):
    kernel = np.asarray(layer.kernel)[0, 0]
    y = x @ kernel
    if layer.use_bias:
        y = y + np.asarray(layer.bias)
    return y


def np_conv_bn_relu(x, block, relu=True):
    y = np_conv1x1(x, block.conv)
    bn = block.bn
    y = (y - np.asarray(bn.moving_mean)) / np.sqrt(np.asarray(bn.moving_variance) + 1e-5)
    y = y * np.asarray(bn.gamma) + np.asarray(bn.beta)
    return np.maximum(y, 0) if relu else y


def np_pyramid(x, scales):
    n, _, _, c = x.shape
    return np.concatenate([numpy_adaptive_avg_pool(x, s, s).reshape(n, s * s, c) for s in scales], axis=1)


def np_attention(block, query_feats, key_feats):
    """The reference's SelfAttentionBlock.forward (mmseg order of operations:
    project, then pool keys and values) in float64 NumPy."""
    q = np_conv_bn_relu(query_feats, block.query_project)
    k = np_pyramid(np_conv_bn_relu(key_feats, block.key_project), block.key_pool_scales)
    v = np_pyramid(np_conv1x1(key_feats, block.value_project), block.key_pool_scales)
    n, h, w, c = q.shape
    sim = q.reshape(n, h * w, c) @ k.transpose(0, 2, 1) * c**-0.5
    sim = np.exp(sim - sim.max(-1, keepdims=True))
    sim = sim / sim.sum(-1, keepdims=True)
    context = (sim @ v).reshape(n, h, w, c)
    return np_conv1x1(context, block.out_project)


def test_pyramid_pooling_shape_and_values(rng):
    layer = ann_layers.PyramidPooling((1, 3, 6, 8))
    x = rng.normal(size=(2, 97, 97, 4)).astype("float32")
    out = np.asarray(layer(x))
    assert out.shape == (2, 110, 4)
    np.testing.assert_allclose(out, np_pyramid(x.astype(np.float64), (1, 3, 6, 8)), rtol=1e-4, atol=1e-5)


def test_pyramid_pooling_rejects_bad_scales():
    with pytest.raises(ValueError, match="pool_scales"):
        ann_layers.PyramidPooling((0, 3))


@pytest.mark.parametrize("share", [False, True])
def test_attention_matches_reference_formula(rng, share):
    q_ch = 12
    k_ch = 12 if share else 20
    block = ann_layers.AsymmetricNonLocalAttention(key_channels=8, out_channels=16, share_key_query=share)
    query = rng.normal(size=(2, 11, 13, q_ch)).astype("float32")
    key = query if share else rng.normal(size=(2, 9, 7, k_ch)).astype("float32")
    block([query, key])
    randomize(block, rng)
    got = np.asarray(block([query, key], training=False))
    want = np_attention(block, query.astype(np.float64), key.astype(np.float64))
    assert got.shape == (2, 11, 13, 16)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_attention_output_projection_starts_at_zero(rng):
    block = ann_layers.AsymmetricNonLocalAttention(key_channels=8, out_channels=16)
    x = rng.normal(size=(1, 6, 6, 12)).astype("float32")
    np.testing.assert_array_equal(np.asarray(block([x, x])), 0.0)


def test_initialisation_follows_reference(rng):
    block = ann_layers.AsymmetricNonLocalAttention(key_channels=256, out_channels=64)
    block.build([(None, None, None, 512), (None, None, None, 512)])
    value = np.asarray(block.value_project.kernel)
    bound = 1 / np.sqrt(512)
    assert np.abs(value).max() <= bound and np.abs(value).max() > 0.9 * bound
    assert np.abs(np.asarray(block.value_project.bias)).max() <= bound
    key = np.asarray(block.key_project.conv.kernel)
    # He normal with fan-out: std sqrt(2 / 256).
    assert abs(key.std() - np.sqrt(2 / 256)) < 0.05 * np.sqrt(2 / 256)
    np.testing.assert_array_equal(np.asarray(block.key_project.bn.gamma), 1.0)
    np.testing.assert_array_equal(np.asarray(block.key_project.bn.beta), 0.0)
    assert block.key_project.bn.epsilon == 1e-5 and block.key_project.bn.momentum == 0.9


def test_apnb_shares_key_and_query_projection():
    apnb = ann_layers.APNB(key_channels=8, out_channels=16)
    apnb.build((None, None, None, 16))
    stage = apnb.stages[0]
    assert stage.query_project is stage.key_project
    afnb = ann_layers.AFNB(key_channels=8, out_channels=32)
    afnb.build([(None, None, None, 16), (None, None, None, 32)])
    assert afnb.stages[0].query_project is not afnb.stages[0].key_project


def test_afnb_and_apnb_match_reference_formula(rng):
    afnb = ann_layers.AFNB(key_channels=8, out_channels=24)
    low = rng.normal(size=(2, 10, 9, 16)).astype("float32")
    high = rng.normal(size=(2, 10, 9, 24)).astype("float32")
    afnb([low, high])
    randomize(afnb, rng)
    context = np_attention(afnb.stages[0], high.astype(np.float64), low.astype(np.float64))
    want = np_conv_bn_relu(np.concatenate([context, high], -1), afnb.bottleneck, relu=False)
    np.testing.assert_allclose(np.asarray(afnb([low, high])), want, rtol=1e-4, atol=1e-4)
    assert (want < 0).any()  # no activation after AFNB

    apnb = ann_layers.APNB(key_channels=8, out_channels=16)
    x = rng.normal(size=(2, 7, 12, 16)).astype("float32")
    apnb(x)
    randomize(apnb, rng)
    context = np_attention(apnb.stages[0], x.astype(np.float64), x.astype(np.float64))
    want = np_conv_bn_relu(np.concatenate([context, x], -1), apnb.bottleneck, relu=True)
    np.testing.assert_allclose(np.asarray(apnb(x)), want, rtol=1e-4, atol=1e-4)


def test_query_scales_sum_contexts(rng):
    apnb = ann_layers.APNB(key_channels=8, out_channels=16, query_scales=(1, 2))
    x = rng.normal(size=(1, 9, 10, 16)).astype("float32")
    assert tuple(apnb(x).shape) == (1, 9, 10, 16)
    assert len(apnb.stages) == 2 and apnb.stages[1].query_scale == 2
    randomize(apnb, rng)
    # Query down-sampling changes the context, so the two stages differ.
    c0 = np.asarray(apnb.stages[0]([x, x]))
    c1 = np.asarray(apnb.stages[1]([x, x]))
    assert c1.shape == c0.shape and np.abs(c0 - c1).max() > 1e-3


@pytest.mark.parametrize(
    "layer,inputs",
    [
        (ann_layers.PyramidPooling((1, 2)), [(1, 5, 5, 3)]),
        (ann_layers.ConvBNReLU(4, 3, strides=2, dilation_rate=1), [(1, 8, 8, 3)]),
        (ann_layers.AsymmetricNonLocalAttention(4, 6, query_scale=2), [[(1, 8, 8, 5), (1, 6, 6, 7)]]),
        (ann_layers.AFNB(4, 6, query_scales=(1,), key_pool_scales=(1, 2)), [[(1, 6, 6, 5), (1, 6, 6, 6)]]),
        (ann_layers.APNB(4, 6, query_scales=(1, 2)), [(1, 6, 6, 6)]),
        (ann_layers.ResizeLike(align_corners=True), [[(1, 3, 3, 2), (1, 7, 5, 3)]]),
        (ann_layers.TorchBatchNormalization(epsilon=1e-5, momentum=0.9), [(2, 3, 3, 4)]),
    ],
)
def test_layer_config_round_trip(rng, layer, inputs):
    def make(shape):
        if isinstance(shape, list):
            return [make(s) for s in shape]
        return rng.normal(size=shape).astype("float32")

    x = make(inputs[0])
    out = layer(x)
    if layer.weights:
        randomize(layer, rng)
        out = layer(x)
    config = layer.get_config()
    clone = layer.__class__.from_config(config)
    clone(x)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(np.asarray(clone(x)), np.asarray(out), rtol=1e-6, atol=1e-6)
    assert clone.get_config() == config
    # Registered for `.keras` saving under the package name.
    assert keras.saving.get_registered_object(f"keras_ann>{layer.__class__.__name__}") is layer.__class__


def test_conv_padding_equals_pytorch(rng):
    torch = pytest.importorskip("torch")
    for kernel, stride, dilation, size in [(3, 2, 1, 8), (3, 2, 1, 9), (3, 1, 2, 10), (3, 1, 4, 7), (1, 2, 1, 8)]:
        layer = ann_layers.ConvBNReLU(5, kernel, strides=stride, dilation_rate=dilation, activation=None)
        x = rng.normal(size=(1, size, size, 3)).astype("float32")
        got = np.asarray(layer(x, training=False))
        conv = torch.nn.Conv2d(3, 5, kernel, stride, padding=dilation * (kernel - 1) // 2, dilation=dilation, bias=False)
        conv.weight.data = torch.from_numpy(np.asarray(layer.conv.kernel).transpose(3, 2, 0, 1).copy())
        ref = conv(torch.from_numpy(x).permute(0, 3, 1, 2)).detach().permute(0, 2, 3, 1).numpy()
        ref = ref / np.sqrt(1 + 1e-5)
        assert got.shape == ref.shape, (kernel, stride, dilation, size)
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_blocks_run_under_mixed_precision(rng, policy):
    keras.mixed_precision.set_global_policy(policy)
    apnb = ann_layers.APNB(key_channels=8, out_channels=16)
    x = rng.normal(size=(1, 9, 9, 16)).astype("float32")
    y = apnb(x)
    assert keras.backend.standardize_dtype(y.dtype) == policy.split("_")[1]
    assert np.isfinite(np.asarray(keras.ops.cast(y, "float32"))).all()
    resize = ann_layers.ResizeLike(dtype="float32")
    out = resize([y, x])
    assert keras.backend.standardize_dtype(out.dtype) == "float32"


# === TorchBatchNormalization: the fused training kernel (TensorFlow) ===


def _batch_norm(dtype, seed=0, channels=6):
    """A batch norm with weights and moving statistics away from their
    initial values (the same for every dtype)."""
    rng = np.random.default_rng(seed)
    weights = [rng.uniform(0.5, 1.5, channels), rng.normal(0, 0.2, channels),
               rng.normal(0, 0.2, channels), rng.uniform(0.5, 2, channels)]  # fmt: skip
    bn = ann_layers.TorchBatchNormalization(epsilon=1e-5, momentum=0.9, dtype=dtype)
    bn.build((None, None, None, channels))
    bn.set_weights(weights)
    return bn


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="the fused kernel is TensorFlow's")
@pytest.mark.parametrize("dtype,tolerance", [("float32", 1e-5), ("mixed_bfloat16", 3e-2)])
def test_training_batch_norm_takes_the_fused_kernel_with_torch_statistics(dtype, tolerance):
    """float32 and 16-bit training calls run TensorFlow's fused kernel; its
    output, gradients and PyTorch-style moving statistics (unbiased
    variance, updated twice) equal the general path's in float64."""
    import tensorflow as tf

    fused, reference = _batch_norm(dtype), _batch_norm("float64")
    x = np.random.default_rng(1).normal(1.0, 2.0, (2, 5, 7, 6))
    if dtype == "mixed_bfloat16":
        x = np.asarray(tf.cast(tf.cast(x, tf.bfloat16), tf.float64))  # the same rounded input for both
    assert fused._fused_training(x, None) and not reference._fused_training(x, None)
    spec = tf.TensorSpec(x.shape, tf.float32)
    graph = tf.function(lambda t: fused(t, training=True)).get_concrete_function(spec).graph
    assert "FusedBatchNormV3" in {op.type for op in graph.get_operations()}
    fused.set_weights(reference.get_weights())  # the traced call updated the statistics

    weights = np.random.default_rng(2).normal(size=x.shape)
    x32, x64 = tf.constant(x, tf.float32), tf.constant(x, tf.float64)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([x32, x64])
        y_fused = fused(x32, training=True, statistics_updates=2)
        y_reference = reference(x64, training=True, statistics_updates=2)
        loss_fused = tf.reduce_sum(tf.cast(y_fused, tf.float64) * weights)
        loss_reference = tf.reduce_sum(y_reference * weights)
    assert y_fused.dtype == fused.compute_dtype
    close = dict(rtol=tolerance, atol=tolerance)
    np.testing.assert_allclose(np.asarray(tf.cast(y_fused, tf.float64)), np.asarray(y_reference), **close)
    for name in ("moving_mean", "moving_variance"):
        np.testing.assert_allclose(
            np.asarray(getattr(fused, name)), np.asarray(getattr(reference, name)), rtol=1e-5, atol=1e-6
        )
    for a, b in ((x32, x64), (fused.gamma, reference.gamma), (fused.beta, reference.beta)):
        np.testing.assert_allclose(
            np.asarray(tape.gradient(loss_fused, a)), np.asarray(tape.gradient(loss_reference, b)), **close
        )


def test_batch_norm_outside_the_fused_kernel_keeps_the_general_path():
    bn = _batch_norm("mixed_bfloat16")
    x = np.zeros((2, 3, 3, 6), "float32")
    assert bn._fused_training(x, None) == (keras.backend.backend() == "tensorflow")
    assert not bn._fused_training(x, np.ones((2, 3, 3), bool))  # masks
    assert not bn._fused_training(np.zeros((2, 6), "float32"), None)  # not 4-D
    assert not _batch_norm("float64")._fused_training(x, None)  # float64: the reference's precision
    bn.synchronized = True
    assert not bn._fused_training(x, None)  # across replicas
