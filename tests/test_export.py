"""keras_ann.export and `keras-ann export`: SavedModel, LiteRT (TFLite),
ONNX and OpenVINO artifacts, reloaded with the runtimes a user deploys with
(TensorFlow, LiteRT's interpreter, ONNX Runtime, OpenVINO), give the Keras
model's outputs, on TensorFlow here and on JAX and PyTorch in one
subprocess each (tests/export_check.py).

Tolerance: an artifact runs the same float32 graph with other kernels
(TensorFlow's graph executor, LiteRT's XNNPACK, ONNX Runtime's MLAS,
OpenVINO's oneDNN) that sum in other orders, so logits differ by float32
round-off, measured at about 1e-6 of the largest logit here. We allow 1e-4
of the largest logit. A real export mistake (batch normalisation on batch
statistics, dropout left on, a missing input normalisation, a wrong
resize) moves logits by a large fraction of their range, orders of
magnitude above that.
"""

import importlib.util
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_ann
from export_check import NUM_CLASSES, assert_labels_match, assert_logits_match, openvino_session, tiny_ann
from keras_ann import cli
from keras_ann.export import SUPPORTED, export_model, validate_arguments
from testing_utils import require

HERE = os.path.dirname(os.path.abspath(__file__))


def _tiny_ann():
    backbone = keras_ann.ResNetBackbone(depth=18, output_stride=8, stem_channels=16, base_channels=16)
    return keras_ann.ANNSegmenter(
        backbone, num_classes=NUM_CLASSES, head_channels=32, project_channels=16, auxiliary_channels=16
    )


@pytest.fixture(scope="module")
def model():
    return tiny_ann()


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype("float32")


@pytest.fixture(scope="module")
def logits(model, images):
    return model.predict(images, verbose=0)


def _litert_interpreter(path):
    """LiteRT's interpreter with the builtin kernels only: the model needs
    no Flex (TF) ops."""
    interpreter = require("ai_edge_litert.interpreter")
    return interpreter.Interpreter(
        model_path=path,
        experimental_op_resolver_type=interpreter.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )


def test_saved_model_any_size_and_batch(model, images, logits, tmp_path):
    tf = require("tensorflow")
    result = export_model(model, tmp_path / "sm", format="saved_model")
    assert result.inputs == {"images": ((None, None, None, 3), "float32")}
    assert result.outputs == {"logits": ((None, None, None, NUM_CLASSES), "float32")}
    assert os.path.isdir(result.path) and result.size_bytes > 100_000

    loaded = tf.saved_model.load(result.path)
    assert list(loaded.signatures["serving_default"].structured_outputs) == ["logits"]
    assert_logits_match(loaded.serve(images)["logits"].numpy(), logits)
    # Inference-mode batch normalisation: an image's logits do not depend
    # on the rest of its batch.
    assert_logits_match(loaded.serve(images[1:])["logits"].numpy(), logits[1:])
    # 48x80 gives 6x10 feature maps: AFNB / APNB pool them to (1, 3, 6, 8)
    # bins with uneven, overlapping windows (10 -> 3, 6, 8) and more bins
    # than inputs (6 -> 8), from sizes known only at run time.
    other = np.random.default_rng(1).uniform(0, 255, (1, 48, 80, 3)).astype("float32")
    assert_logits_match(loaded.serve(other)["logits"].numpy(), model.predict(other, verbose=0))


def test_tflite_fixed_shape(model, images, logits, tmp_path):
    require("tensorflow")
    result = export_model(model, tmp_path / "ann.tflite", format="tflite", input_size=(64, 64), batch_size=2)
    assert result.inputs == {"images": ((2, 64, 64, 3), "float32")}
    assert result.outputs == {"logits": ((2, 64, 64, NUM_CLASSES), "float32")}

    interpreter = _litert_interpreter(result.path)
    assert interpreter.get_signature_list() == {
        "serving_default": {"inputs": ["images"], "outputs": ["logits"]}
    }
    outputs = interpreter.get_signature_runner()(images=images)
    assert_logits_match(outputs["logits"], logits)


def test_onnx_any_batch(model, images, logits, tmp_path):
    ort = require("onnxruntime")
    require("tf2onnx")
    result = export_model(model, tmp_path / "ann.onnx", format="onnx", input_size=(64, 64))
    assert result.inputs == {"images": ((None, 64, 64, 3), "float32")}

    session = ort.InferenceSession(result.path, providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["images"]
    assert [o.name for o in session.get_outputs()] == ["logits"]
    (actual,) = session.run(None, {"images": images})
    assert_logits_match(actual, logits)
    (single,) = session.run(None, {"images": images[:1]})
    assert_logits_match(single, logits[:1])


def test_openvino_any_size_and_batch(model, images, logits, tmp_path):
    require("openvino")
    result = export_model(model, tmp_path / "ann.xml", format="openvino")
    assert result.inputs == {"images": ((None, None, None, 3), "float32")}
    assert os.path.isfile(tmp_path / "ann.bin") and result.size_bytes > os.path.getsize(result.path)

    _, run = openvino_session(result.path)
    outputs = run(images)
    assert list(outputs) == ["logits"]
    assert_logits_match(outputs["logits"], logits)
    assert_logits_match(run(images[1:])["logits"], logits[1:])
    other = np.random.default_rng(1).uniform(0, 255, (1, 48, 80, 3)).astype("float32")
    assert_logits_match(run(other)["logits"], model.predict(other, verbose=0))


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_exports_from_jax_and_pytorch_run_like_the_keras_model(backend, tmp_path):
    """Every format Keras exports from the backend, run on its runtime,
    equals that backend's Keras model; the other formats are refused
    naming the backends that can write them (tests/export_check.py, one
    subprocess per backend)."""
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed")
    for module in ("onnxruntime", "openvino", "tensorflow"):
        require(module)
    env = dict(os.environ, KERAS_BACKEND=backend, PYTHONPATH=os.pathsep.join([os.path.dirname(HERE), HERE]))
    env.setdefault("CUDA_VISIBLE_DEVICES", "")
    result = subprocess.run(
        [sys.executable, os.path.join(HERE, "export_check.py"), str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    assert f"backend {backend} ok" in result.stdout
    lines = [line.split() for line in result.stdout.splitlines() if line.startswith("ok ")]
    checked = {words[1] for words in lines if words[1] != "refused"}
    supported = {format for format, b in SUPPORTED if b == backend}
    assert checked == supported, result.stdout  # every pair Keras supports is run
    refused = {words[2] for words in lines if words[1] == "refused"}
    assert refused | supported >= {"saved_model", "tflite", "onnx", "openvino"}


@pytest.mark.parametrize("format", ["onnx", "tflite"])
def test_a_bfloat16_trained_model_exports_in_float32(model, images, logits, format, tmp_path):
    """A model built under `mixed_bfloat16` (as `keras-ann train --precision
    mixed_bfloat16` saves it) exports to ONNX and TFLite, whose writers
    have no bfloat16: in float32, with the same weights; the model itself
    keeps its policy. (Before, tf2onnx raised "unsupported numpy dtype
    'bfloat16'" and the TFLite converter "Could not translate MLIR".)"""
    require("tensorflow")
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        mixed = _tiny_ann()
    finally:
        keras.config.set_dtype_policy("float32")
    mixed.set_weights(model.get_weights())
    assert mixed.compute_dtype == "bfloat16"
    if format == "onnx":
        ort = require("onnxruntime")
        require("tf2onnx")
        result = export_model(mixed, tmp_path / "ann.onnx", format="onnx", input_size=(64, 64))
        session = ort.InferenceSession(result.path, providers=["CPUExecutionProvider"])
        (actual,) = session.run(None, {"images": images})
    else:
        result = export_model(mixed, tmp_path / "ann.tflite", format="tflite", input_size=(64, 64), batch_size=2)
        actual = _litert_interpreter(result.path).get_signature_runner()(images=images)["logits"]
    assert result.inputs["images"][1] == "float32" and result.outputs["logits"][1] == "float32"
    assert_logits_match(actual, logits)  # the float32 model's logits
    assert mixed.compute_dtype == "bfloat16"
    assert {layer.dtype_policy.name for layer in mixed.backbone.layers} == {"mixed_bfloat16"}


def test_cli_exports_label_maps(model, images, logits, tmp_path, capsys):
    tf = require("tensorflow")
    model.save(tmp_path / "ann.keras")
    path = str(tmp_path / "labels_sm")
    cli.main(["export", str(tmp_path / "ann.keras"), path, "--outputs", "labels", "--input-size", "64", "64"])
    printed = capsys.readouterr().out
    assert f"wrote {path} (saved_model, " in printed
    assert "input:  images (?, 64, 64, 3) float32" in printed
    assert "output: labels (?, 64, 64) int32" in printed

    loaded = tf.saved_model.load(path)
    assert_labels_match(loaded.serve(images)["labels"].numpy(), logits)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"format": "pb"}, "`format` must be one of"),
        ({"output": "probabilities"}, "`output` must be one of"),
        ({"input_size": (64,)}, "`input_size` must be"),
        ({"input_size": (64, 0)}, "`input_size` must be"),
        ({"batch_size": 1.5}, "`batch_size` must be"),
        ({"format": "tflite"}, "needs a fixed `input_size"),
        ({"format": "saved_model", "opset": 17}, "`opset` applies to format='onnx' only"),
        ({"format": "openvino"}, "must end with '.xml' for format='openvino'"),
    ],
)
def test_bad_arguments_raise(kwargs, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        validate_arguments(tmp_path / "out", **kwargs)


def test_bad_arguments_raise_before_exporting(model, tmp_path):
    with pytest.raises(ValueError, match="must end with '.tflite'"):
        export_model(model, tmp_path / "ann.bin", format="tflite", input_size=(64, 64))
    with pytest.raises(ValueError, match="`output` must be one of"):
        export_model(model, tmp_path / "sm", output="softmax")
    assert not os.listdir(tmp_path)


def test_cli_rejects_bad_arguments_before_loading(tmp_path, capsys):
    missing = str(tmp_path / "missing.keras")  # never loaded: arguments fail first
    with pytest.raises(SystemExit, match="needs a fixed `input_size"):
        cli.main(["export", missing, str(tmp_path / "ann.tflite"), "--format", "tflite"])
    with pytest.raises(SystemExit):
        cli.main(["export", missing, str(tmp_path / "out"), "--format", "torchscript"])
    assert "invalid choice: 'torchscript'" in capsys.readouterr().err


def test_onnx_gets_convolutions_where_tensorflow_runs_matrix_products(tmp_path):
    # A wide folded convolution (MATMUL_MIN_CHANNELS input channels) is a
    # matrix product on TensorFlow (`ConvBNReLU`); ONNX Runtime gets a
    # convolution, which it runs, and quantises, as one.
    ort = require("onnxruntime")
    onnx = require("onnx")
    require("tf2onnx")
    from keras_ann.layers.conv_bn import MATMUL_MIN_CHANNELS, ConvBNReLU

    inputs = keras.Input((None, None, 3))
    wide = keras.layers.Conv2D(MATMUL_MIN_CHANNELS, 1, name="widen")(inputs)
    model = keras.Model(inputs, ConvBNReLU(4, kernel_size=3, name="wide")(wide))
    images = np.random.default_rng(0).uniform(0, 1, (1, 6, 7, 3)).astype("float32")
    expected = np.asarray(model(images, training=False))
    result = export_model(model, tmp_path / "wide.onnx", format="onnx", input_size=(6, 7))
    nodes = [node.op_type for node in onnx.load(result.path).graph.node]
    assert nodes.count("Conv") == 2 and "MatMul" not in nodes
    (actual,) = ort.InferenceSession(result.path, providers=["CPUExecutionProvider"]).run(None, {"images": images})
    assert_logits_match(actual, expected)
