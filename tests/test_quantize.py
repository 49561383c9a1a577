"""keras_ann.quantize and `keras-ann export --quantize int8`: an int8 ONNX
model calibrated on a few images, run by ONNX Runtime, agrees with the
float32 model, and bad arguments fail before the model is loaded.

Tolerance: int8 activations carry about 1/256 of each layer's calibrated
range of error, so logits move by a few percent of their range. The label
maps must still agree on nearly every pixel of calibration-like images
(measured here: above 99 %); a quantisation mistake (wrong scales, a
missing input normalisation, weights not per channel) gives noise.
"""

import os

import keras
import numpy as np
import pytest
from PIL import Image

import keras_ann
from keras_ann import cli
from keras_ann.quantize import quantize_onnx
from testing_utils import require

SIZE = (48, 64)


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(5)
    backbone = keras_ann.ResNetBackbone(depth=18, output_stride=8, stem_channels=16, base_channels=16)
    return keras_ann.ANNSegmenter(
        backbone, num_classes=4, head_channels=32, project_channels=16, auxiliary_channels=16
    )


def _smooth_images(count, seed):
    """Images with large uniform regions (as photos have), not white noise,
    whose activations a few calibration images represent well."""
    rng = np.random.default_rng(seed)
    low = rng.uniform(0, 255, (count, 6, 8, 3)).astype("float32")
    return np.stack([np.asarray(Image.fromarray(x.astype("uint8")).resize(SIZE[::-1], Image.BILINEAR)) for x in low])


@pytest.fixture(scope="module")
def onnx_pair(model, tmp_path_factory):
    require("onnxruntime")
    require("tf2onnx")
    from keras_ann.export import export_model

    tmp = tmp_path_factory.mktemp("int8")
    fp32 = export_model(model, tmp / "ann.onnx", format="onnx", input_size=SIZE, batch_size=1).path
    calibration = _smooth_images(8, seed=1).astype("float32")
    int8 = quantize_onnx(fp32, str(tmp / "ann_int8.onnx"), calibration)
    return fp32, int8


def _run(path, image):
    import onnxruntime

    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    return session.run(None, {"images": image[None].astype("float32")})[0][0]


def test_int8_model_is_quantised_and_agrees_with_float32(onnx_pair):
    import onnx

    fp32, int8 = onnx_pair
    graph = onnx.load(int8).graph
    ops = [node.op_type for node in graph.node]
    convs = sum(op == "Conv" for op in ops)
    assert convs > 20 and ops.count("DequantizeLinear") >= convs  # every conv has int8 weights
    weights = {init.name: init for init in graph.initializer}
    assert any(w.data_type == onnx.TensorProto.INT8 for w in weights.values())
    assert os.path.getsize(int8) < 0.5 * os.path.getsize(fp32)

    agree = []
    for image in _smooth_images(4, seed=2):
        a, b = _run(fp32, image), _run(int8, image)
        assert b.shape == a.shape == SIZE + (4,)
        agree.append(np.mean(a.argmax(-1) == b.argmax(-1)))
    assert np.mean(agree) > 0.95, agree


def test_quantize_refuses_bad_arguments(onnx_pair, tmp_path, model):
    from keras_ann.export import export_model

    fp32, _ = onnx_pair
    image = np.zeros(SIZE + (3,), np.float32)
    with pytest.raises(ValueError, match="`method` must be one of"):
        quantize_onnx(fp32, str(tmp_path / "q.onnx"), [image], method="kl")
    with pytest.raises(ValueError, match="is 10x10 but the model takes 48x64"):
        quantize_onnx(fp32, str(tmp_path / "q.onnx"), [np.zeros((10, 10, 3))])
    with pytest.raises(ValueError, match="NaN or infinite"):
        quantize_onnx(fp32, str(tmp_path / "q.onnx"), [np.full(SIZE + (3,), np.nan)])
    with pytest.raises(ValueError, match="is empty"):
        quantize_onnx(fp32, str(tmp_path / "q.onnx"), [])
    with pytest.raises(FileNotFoundError, match="No ONNX model"):
        quantize_onnx(str(tmp_path / "missing.onnx"), str(tmp_path / "q.onnx"), [image])
    dynamic = export_model(model, tmp_path / "any.onnx", format="onnx").path
    with pytest.raises(ValueError, match="needs a fixed size"):
        quantize_onnx(dynamic, str(tmp_path / "q.onnx"), [image])
    assert not (tmp_path / "q.onnx").exists()


def test_cli_exports_int8_from_a_folder_of_images(model, tmp_path, capsys):
    require("onnxruntime")
    require("tf2onnx")
    model.save(tmp_path / "ann.keras")
    folder = tmp_path / "calib"
    folder.mkdir()
    for i, image in enumerate(_smooth_images(3, seed=3)):  # any size: resized to --input-size
        Image.fromarray(image).resize((80, 60)).save(folder / f"{i}.png")
    out = tmp_path / "ann_int8.onnx"
    cli.main([
        "export", str(tmp_path / "ann.keras"), str(out), "--format", "onnx",
        "--input-size", str(SIZE[0]), str(SIZE[1]), "--quantize", "int8", "--calibration", str(folder),
    ])
    printed = capsys.readouterr().out
    assert f"wrote {out} (onnx, int8 convolutions" in printed and "calibrated on 3 images (minmax)" in printed
    assert _run(str(out), _smooth_images(1, seed=4)[0]).shape == SIZE + (4,)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--format", "saved_model"], "--quantize int8 needs --format onnx"),
        (["--format", "onnx"], "needs a fixed --input-size"),
        (["--format", "onnx", "--input-size", "48", "64"], "needs --calibration IMAGES"),
        (["--format", "onnx", "--input-size", "48", "64", "--calibration", "nowhere/*.png"], "no file matches"),
    ],
)
def test_cli_int8_bad_arguments_fail_before_loading(extra, message, tmp_path):
    missing = str(tmp_path / "missing.keras")  # never loaded: arguments fail first
    with pytest.raises(SystemExit, match=message):
        cli.main(["export", missing, str(tmp_path / "q.onnx"), "--quantize", "int8", *extra])
