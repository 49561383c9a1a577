"""Spatial ops against PyTorch's definitions (NumPy) and PyTorch itself."""

import numpy as np
import pytest

from keras_ann import ops as ann_ops
from numpy_reference import numpy_adaptive_avg_pool, numpy_bilinear


@pytest.mark.parametrize("size,scale", [(97, 8), (97, 6), (97, 3), (5, 3), (2, 8), (64, 8), (13, 1)])
def test_adaptive_pooling_matches_pytorch_bins(rng, size, scale):
    x = rng.normal(size=(2, size, size + 3, 4)).astype("float32")
    got = np.asarray(ann_ops.adaptive_avg_pool2d(x, scale))
    want = numpy_adaptive_avg_pool(x.astype(np.float64), scale, scale)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_adaptive_pooling_differs_from_strided_pooling_when_not_divisible(rng):
    # 97 = 8 * 12 + 1: PyTorch's bins overlap, strided windows would not.
    x = rng.normal(size=(1, 97, 97, 1)).astype("float32")
    got = np.asarray(ann_ops.adaptive_avg_pool2d(x, 8))
    strided = x[:, :96, :96].reshape(1, 8, 12, 8, 12, 1).mean(axis=(2, 4))
    assert np.abs(got - strided).max() > 1e-3


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize(
    "in_hw,out_hw", [((7, 9), (56, 72)), ((13, 13), (97, 101)), ((13, 11), (5, 4)), ((4, 4), (1, 1)), ((1, 3), (5, 7))]
)
def test_bilinear_resize_matches_definition(rng, align_corners, in_hw, out_hw):
    x = rng.normal(size=(2, *in_hw, 3)).astype("float32")
    got = np.asarray(ann_ops.bilinear_resize(x, out_hw, align_corners))
    want = numpy_bilinear(x.astype(np.float64), *out_hw, align_corners)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("in_hw,out_hw", [((64, 128), (512, 1024)), ((97, 97), (769, 769)), ((33, 17), (20, 9))])
def test_bilinear_resize_matches_torch(rng, align_corners, in_hw, out_hw):
    torch = pytest.importorskip("torch")
    x = rng.normal(size=(1, *in_hw, 3)).astype("float32")
    got = np.asarray(ann_ops.bilinear_resize(x, out_hw, align_corners))
    ref = torch.nn.functional.interpolate(
        torch.from_numpy(x).permute(0, 3, 1, 2), size=out_hw, mode="bilinear", align_corners=align_corners
    )
    np.testing.assert_allclose(got, ref.permute(0, 2, 3, 1).numpy(), rtol=1e-5, atol=2e-6)


@pytest.mark.parametrize("size", [(97, 97), (64, 128), (5, 7), (2, 3)])
def test_adaptive_pooling_matches_torch(rng, size):
    torch = pytest.importorskip("torch")
    x = rng.normal(size=(2, *size, 3)).astype("float32")
    for scale in (1, 3, 6, 8):
        got = np.asarray(ann_ops.adaptive_avg_pool2d(x, scale))
        ref = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(x).permute(0, 3, 1, 2), scale)
        np.testing.assert_allclose(got, ref.permute(0, 2, 3, 1).numpy(), rtol=1e-5, atol=1e-6)


def test_same_size_resize_is_identity(rng):
    x = rng.normal(size=(1, 5, 6, 2)).astype("float32")
    for align_corners in (False, True):
        np.testing.assert_array_equal(np.asarray(ann_ops.bilinear_resize(x, (5, 6), align_corners)), x)


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("in_size,out_size", [(97, 769), (64, 512), (128, 1024), (13, 5), (3, 1)])
def test_interpolation_weights_equal_torch_bit_for_bit(align_corners, in_size, out_size):
    torch = pytest.importorskip("torch")
    basis = torch.eye(in_size).reshape(in_size, 1, in_size, 1)
    ref = torch.nn.functional.interpolate(basis, size=(out_size, 1), mode="bilinear", align_corners=align_corners)
    ref = ref[:, 0, :, 0].T.numpy()
    got = np.asarray(ann_ops.bilinear_interpolation_matrix(in_size, out_size, align_corners))
    np.testing.assert_array_equal(got, ref)


def test_dynamic_shape_matrices_equal_static_ones():
    tf = pytest.importorskip("tensorflow")
    for align_corners in (False, True):
        fn = tf.function(
            lambda n, m, ac=align_corners: ann_ops.bilinear_interpolation_matrix(n, m, ac),
            input_signature=[tf.TensorSpec([], tf.int32)] * 2,
        )
        for in_size, out_size in [(97, 769), (13, 5), (4, 1)]:
            np.testing.assert_array_equal(
                fn(in_size, out_size).numpy(),
                np.asarray(ann_ops.bilinear_interpolation_matrix(in_size, out_size, align_corners)),
            )
    pool = tf.function(
        lambda n: ann_ops.adaptive_pooling_matrix(n, 8), input_signature=[tf.TensorSpec([], tf.int32)]
    )
    for in_size in (97, 5, 64):
        np.testing.assert_allclose(
            pool(in_size).numpy(), np.asarray(ann_ops.adaptive_pooling_matrix(in_size, 8)), rtol=1e-7
        )


@pytest.mark.parametrize(
    "kernel_size,dilation,padding,shape",
    [(3, 1, "same", (2, 7, 9, 5)), (3, 2, "valid", (1, 11, 8, 4)), (3, 4, "same", (1, 13, 10, 2)),
     (1, 1, "valid", (2, 5, 6, 3)), (5, 1, "same", (1, 8, 8, 3)), (2, 1, "same", (1, 6, 7, 2))],
)
def test_conv2d_as_matmul_equals_the_convolution_in_float64(rng, kernel_size, dilation, padding, shape):
    import keras

    x = rng.normal(size=shape)
    kernel = rng.normal(size=(kernel_size, kernel_size, shape[-1], 6))
    want = np.asarray(keras.ops.conv(x, kernel, padding=padding, dilation_rate=dilation))
    got = np.asarray(ann_ops.conv2d_as_matmul(x, kernel, dilation, padding))
    assert got.shape == want.shape and got.dtype == np.float64
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12 * np.abs(want).max())


def test_conv2d_as_matmul_names_a_bad_padding(rng):
    with pytest.raises(ValueError, match="`padding` must be 'valid' or 'same', got 'causal'"):
        ann_ops.conv2d_as_matmul(np.zeros((1, 4, 4, 2)), np.zeros((3, 3, 2, 1)), padding="causal")
