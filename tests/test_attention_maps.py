"""Attention weights of AFNB / APNB and the image regions of their keys."""

import numpy as np
import pytest
from testing_utils import require

import keras
import keras_ann
from keras_ann import attention_maps
from keras_ann import layers as ann_layers


@pytest.mark.parametrize("size", [(7, 10), (13, 5), (8, 8), (2, 3)])
def test_pyramid_bins_are_pytorch_adaptive_pool_bins(size):
    torch = require("torch")
    height, width = size
    bins = attention_maps.pyramid_bins(size, (1, 3, 6, 8))
    assert bins.shape == (110, 4)
    # Pool one-hot maps with PyTorch: position p is in bin k iff bin k sees it.
    eye = torch.eye(height * width, dtype=torch.float64).reshape(height * width, 1, height, width)
    inside = torch.cat(
        [torch.nn.functional.adaptive_avg_pool2d(eye, s).reshape(height * width, s * s) for s in (1, 3, 6, 8)],
        dim=1,
    ).numpy() > 0
    rows, cols = np.divmod(np.arange(height * width), width)
    ours = (
        (rows[:, None] >= bins[None, :, 0])
        & (rows[:, None] < bins[None, :, 1])
        & (cols[:, None] >= bins[None, :, 2])
        & (cols[:, None] < bins[None, :, 3])
    )
    np.testing.assert_array_equal(ours, inside)


def test_bins_to_image_and_validation():
    boxes = attention_maps.bins_to_image(attention_maps.pyramid_bins((3, 4), (1, 3)), (3, 4), (30, 41))
    np.testing.assert_array_equal(boxes[0], [0, 30, 0, 41])  # the 1x1 bin: the whole image
    # Columns of a 3-bin split of 4 cells: [0,2) [1,3) [2,4) -> pixels floor/ceil of c * 41 / 4.
    np.testing.assert_array_equal(boxes[1:4, 2:], [[0, 21], [10, 31], [20, 41]])
    with pytest.raises(ValueError, match="bins"):
        attention_maps.bins_to_image(np.zeros((3, 3)), (3, 4), (30, 40))
    with pytest.raises(ValueError, match="image_size"):
        attention_maps.bins_to_image(boxes, (3, 4), (0, 40))
    with pytest.raises(ValueError, match="pool_scales"):
        attention_maps.pyramid_bins((3, 4), ())


def test_paint_keys_spreads_each_weight_over_its_region():
    key_size, image_size = (6, 5), (48, 37)
    whole = np.zeros(110)
    whole[0] = 1.0
    heat = attention_maps.paint_keys(whole, key_size, image_size)
    assert heat.shape == image_size
    np.testing.assert_allclose(heat, np.full(image_size, 1.0 / (48 * 37)))  # covers the whole image
    # One bin of the 8x8 grid: non-zero exactly on its image rectangle.
    k = 1 + 9 + 36 + 8 * 2 + 5  # scale 8, row 2, column 5
    one = np.zeros(110)
    one[k] = 0.5
    top, bottom, left, right = attention_maps.bins_to_image(
        attention_maps.pyramid_bins(key_size), key_size, image_size
    )[k]
    heat = attention_maps.paint_keys(one, key_size, image_size)
    expected = np.zeros(image_size)
    expected[top:bottom, left:right] = 0.5 / ((bottom - top) * (right - left))
    np.testing.assert_allclose(heat, expected, atol=1e-15)
    weights = np.random.default_rng(0).dirichlet(np.ones(110))
    np.testing.assert_allclose(attention_maps.paint_keys(weights, key_size, image_size).sum(), 1.0)
    # Relative to uniform attention: 1 everywhere for uniform weights, even where bins overlap.
    uniform = attention_maps.paint_keys(np.full(110, 1 / 110), key_size, image_size)
    assert uniform.max() > uniform.min() * 1.2  # 6 rows into 8 bins: overlaps are brighter
    np.testing.assert_allclose(
        attention_maps.paint_keys(np.full(110, 1 / 110), key_size, image_size, relative=True), 1.0
    )
    # On one key's rectangle alone, the relative map is num_keys * weight.
    one_relative = attention_maps.paint_keys(one, key_size, image_size, relative=True)
    assert one_relative.max() <= 110 * 0.5 and one_relative[top:bottom, left:right].min() > 0
    np.testing.assert_array_equal(one_relative > 0, expected > 0)
    with pytest.raises(ValueError, match="weights"):
        attention_maps.paint_keys(np.ones(50), key_size, image_size)


def test_attention_scores_are_the_weights_the_block_uses(rng):
    block = ann_layers.AsymmetricNonLocalAttention(key_channels=8, out_channels=6)
    query = rng.normal(size=(2, 9, 7, 12)).astype("float32")
    key = rng.normal(size=(2, 11, 5, 10)).astype("float32")
    block([query, key])
    block.out_project.set_weights([rng.normal(size=(1, 1, 8, 6)).astype("float32"), np.zeros(6, "float32")])
    scores = keras.ops.convert_to_numpy(block.attention_scores([query, key]))
    assert scores.shape == (2, 9, 7, 110)
    np.testing.assert_allclose(scores.sum(-1), 1.0, rtol=1e-5)
    # Rebuild the output from the scores: attention @ values -> output projection.
    values = keras.ops.convert_to_numpy(
        block.value_project(keras.ops.expand_dims(block.key_sampler(key), 2))
    )[:, :, 0]
    context = np.einsum("bhws,bsc->bhwc", scores, values)
    want = np.einsum("bhwc,co->bhwo", context, block.out_project.get_weights()[0][0, 0])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(block([query, key])), want, rtol=1e-4, atol=1e-5)


def test_block_attention_of_a_segmenter():
    model = keras_ann.ANNSegmenter("resnet18_d8", num_classes=3, query_scales=(1, 2))
    images = np.random.default_rng(0).uniform(0, 255, (2, 64, 40, 3)).astype("float32")
    context = attention_maps.block_attention(model, images, "context")
    assert context.block == "decode_head.context"
    assert context.weights.shape == (2, 8, 5, 110)
    assert context.query_size == context.key_size == (8, 5) and context.image_size == (64, 40)
    np.testing.assert_allclose(context.weights.sum(-1), 1.0, rtol=1e-5)
    assert context.query_index((0, 0)) == (0, 0) and context.query_index((63, 39)) == (7, 4)
    assert context.query_index((17, 9)) == (2, 1)  # rows of 8 pixels, columns of 8 pixels
    np.testing.assert_array_equal(context.for_pixel((17, 9), index=1), context.weights[1, 2, 1])
    grids = context.per_scale((17, 9))
    assert [g.shape for g in grids] == [(1, 1), (3, 3), (6, 6), (8, 8)]
    heat = context.heatmap((17, 9))
    assert heat.shape == (64, 40) and heat.min() > 0  # the 1x1 key reaches every pixel
    np.testing.assert_allclose(heat.sum(), 1.0, rtol=1e-5)
    # The second query scale max-pools the queries by 2.
    pooled = attention_maps.block_attention(model, images, "context", stage=1)
    assert pooled.weights.shape == (2, 4, 2, 110) and pooled.query_index((63, 39)) == (3, 1)
    fusion = attention_maps.block_attention(model, images[:1], "fusion")
    assert fusion.block == "decode_head.fusion" and fusion.weights.shape == (1, 8, 5, 110)
    with pytest.raises(ValueError, match="block"):
        attention_maps.block_attention(model, images, "decode_bottleneck")
    with pytest.raises(ValueError, match="block"):
        attention_maps.block_attention(model, images, "nothing")
    with pytest.raises(ValueError, match="stage"):
        attention_maps.block_attention(model, images, "context", stage=2)
    with pytest.raises(ValueError, match="pixel"):
        context.query_index((64, 0))
