"""`benchmarks/op_profile.py`: a step's time by kind of operation, read
from TensorFlow's and PyTorch's own profilers (`vs_mmseg.py --profile`)."""

import os
import sys

import keras
import numpy as np
import pytest

from testing_utils import require

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
import op_profile  # noqa: E402


@pytest.mark.parametrize(
    "name,op_type,category",
    [
        ("model/conv/convolution", "_MklNativeFusedConv2D", "convolution forward"),
        ("gradient_tape/model/conv/Conv2DBackpropFilter", "_MklNativeConv2DBackpropFilter", "convolution backward"),
        ("gradient_tape/model/conv/Conv2DBackpropInput", "Conv2DBackpropInput", "convolution backward"),
        ("model/bn/FusedBatchNormV3", "_MklNativeFusedBatchNormV3", "batch norm"),
        ("model/head/einsum/Einsum", "_MklEinsum", "matrix products (attention, 1x1 as matmul)"),
        ("torch_sgd/ResourceApplyMomentum", "ResourceApplyMomentum", "optimizer update"),
        ("compile_loss/segmentation_cross_entropy/LogSoftmax", "LogSoftmax", "loss"),
        ("model/relu/Relu", "Relu", "elementwise & activations"),
        ("model/Cast", "Cast", "casts & copies"),
        ("model/pool/MaxPool", "MaxPool", "pooling & resize"),
    ],
)
def test_tensorflow_ops_fall_into_their_categories(name, op_type, category):
    assert op_profile.tensorflow_category(name, op_type) == category


@pytest.mark.parametrize(
    "name,category",
    [
        ("aten::mkldnn_convolution", "convolution forward"),
        ("aten::convolution_backward", "convolution backward"),
        ("aten::native_batch_norm", "batch norm"),
        ("aten::bmm", "matrix products (attention, 1x1 as matmul)"),
        ("aten::nll_loss2d_forward", "loss"),
        ("aten::clamp_min_", "elementwise & activations"),
        ("aten::_to_copy", "casts & copies"),
        ("aten::upsample_bilinear2d", "pooling & resize"),
        ("Optimizer.step#SGD.step", "optimizer update"),
    ],
)
def test_torch_ops_fall_into_their_categories(name, category):
    assert op_profile.torch_category(name) == category


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TensorFlow's profiler")
def test_a_tensorflow_training_step_is_profiled_by_category():
    model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(8, 3), keras.layers.ReLU(),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2)])  # fmt: skip
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    x, y = np.ones((4, 16, 16, 3), "float32"), np.zeros((4,), "int32")
    model.train_on_batch(x, y)
    result = op_profile.profile_tensorflow(lambda: model.train_on_batch(x, y), runs=2)
    assert set(result["categories"]) == set(op_profile.CATEGORIES)
    assert result["categories"]["convolution forward"] > 0
    assert result["categories"]["convolution backward"] > 0
    assert result["op_sum_s"] == pytest.approx(sum(result["categories"].values()))
    assert result["wall_s"] > 0 and result["top_ops"]
    assert sum(result["wall_shares"].values()) == pytest.approx(result["wall_s"])


def test_a_torch_training_step_is_profiled_by_category():
    torch = require("torch")
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8), torch.nn.ReLU())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x = torch.ones(2, 3, 16, 16)

    def step():
        loss = model(x).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    step()
    result = op_profile.profile_torch(step, runs=2)
    categories = result["categories"]
    for category in ("convolution forward", "convolution backward", "batch norm", "optimizer update"):
        assert categories[category] > 0, (category, result["top_ops"])
    assert result["op_sum_s"] == pytest.approx(sum(categories.values()))
    assert sum(result["wall_shares"].values()) == pytest.approx(result["wall_s"])
