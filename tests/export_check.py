"""Export under the backend in KERAS_BACKEND; used by test_export.

Usage: python export_check.py OUT_DIR

Builds the tiny ANN of test_export (batch-norm statistics far from 0 / 1),
exports every format `keras_ann.export` writes from this backend, runs each
artifact on the runtime a user deploys with (ONNX Runtime, OpenVINO,
TensorFlow for a SavedModel) and checks its outputs against the model's own
`predict` on this backend; checks that the formats this backend cannot
write are refused naming the backends that can. Prints one `ok <check>`
line per check and finally `backend <name> ok`; any failure raises.

The shared helpers (`tiny_ann`, `assert_logits_match`,
`assert_labels_match`) are imported by test_export too.
"""

import os
import sys

import keras
import numpy as np

import keras_ann

RTOL = 1e-4  # of the largest logit, see test_export's docstring
NUM_CLASSES = 4


def tiny_ann():
    """A tiny ANN (ResNet-18-D8 at quarter width, AFNB + APNB) whose batch
    normalisation statistics are far from 0 / 1, so that a graph
    normalising with batch statistics, or folding them wrongly, would not
    match."""
    keras.utils.set_random_seed(3)
    backbone = keras_ann.ResNetBackbone(depth=18, output_stride=8, stem_channels=16, base_channels=16)
    model = keras_ann.ANNSegmenter(
        backbone, num_classes=NUM_CLASSES, head_channels=32, project_channels=16, auxiliary_channels=16
    )
    rng = np.random.default_rng(3)
    for layer in model._flatten_layers():
        if isinstance(layer, keras.layers.BatchNormalization):
            shape = layer.moving_mean.shape
            layer.moving_mean.assign(rng.normal(0.0, 0.5, shape).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.3, 2.0, shape).astype("float32"))
            layer.gamma.assign(rng.uniform(0.5, 1.5, shape).astype("float32"))
            layer.beta.assign(rng.normal(0.0, 0.2, shape).astype("float32"))
    return model


def assert_logits_match(actual, expected):
    actual = np.asarray(actual)
    assert actual.shape == expected.shape and actual.dtype == np.float32, (actual.shape, actual.dtype)
    np.testing.assert_allclose(actual, expected, rtol=0, atol=RTOL * np.abs(expected).max())


def assert_labels_match(labels, logits):
    """Equal to the argmax of `logits` except where its two largest logits
    are closer than the tolerance (a tie within round-off)."""
    labels = np.asarray(labels)
    assert labels.shape == logits.shape[:-1] and labels.dtype == np.int32, (labels.shape, labels.dtype)
    top2 = np.sort(logits, axis=-1)[..., -2:]
    near_tie = top2[..., 1] - top2[..., 0] <= RTOL * np.abs(logits).max()
    differ = labels != logits.argmax(-1)
    assert not np.any(differ & ~near_tie), f"{int((differ & ~near_tie).sum())} labels differ"
    assert near_tie.mean() < 0.01 and len(np.unique(labels)) > 1  # not a vacuous check


def openvino_session(path):
    """An OpenVINO CPU model computing in float32 (the CPU plugin's default
    on CPUs with bfloat16 instructions is bfloat16) and a function of the
    images returning `{output name: array}`."""
    import openvino as ov

    compiled = ov.Core().compile_model(path, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    assert [i.get_names() for i in compiled.inputs] == [{"images"}]
    return compiled, lambda images: {o.get_any_name(): v for o, v in compiled(images).items()}


def _onnx_run(path, images):
    import onnxruntime

    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["images"]
    (name,) = [o.name for o in session.get_outputs()]
    return name, session.run(None, {"images": images})[0]


def _refused(format, backend, can, **kwargs):
    from keras_ann.export import export_model

    try:
        export_model(_MODEL, "unused." + {"tflite": "tflite", "openvino": "xml"}.get(format, "x"), format=format, **kwargs)
    except ValueError as error:
        message = str(error)
        assert f"from the {backend} backend" in message and f"KERAS_BACKEND={can}" in message, message
        print("ok refused", format, "-", message)
        return
    raise AssertionError(f"{format} was not refused on {backend}")


def check_torch(model, images, logits, out_dir):
    from keras_ann.export import export_model
    from keras_ann.quantize import quantize_onnx

    # ONNX, any batch at a fixed size (Keras takes torch.onnx's TorchScript
    # exporter for a dynamic axis), then int8 from it.
    path = export_model(model, os.path.join(out_dir, "ann.onnx"), format="onnx", input_size=(64, 64)).path
    name, actual = _onnx_run(path, images)
    assert name == "logits", name
    assert_logits_match(actual, logits)
    assert_logits_match(_onnx_run(path, images[:1])[1], logits[:1])
    print("ok onnx logits")
    int8 = quantize_onnx(path, os.path.join(out_dir, "ann_int8.onnx"), list(images))
    _, quantised = _onnx_run(int8, images)
    assert quantised.shape == logits.shape and np.mean(quantised.argmax(-1) == logits.argmax(-1)) > 0.8
    print("ok onnx int8")

    # ONNX label maps, any size.
    path = export_model(model, os.path.join(out_dir, "labels.onnx"), format="onnx", output="labels").path
    name, actual = _onnx_run(path, images)
    assert name == "labels", name
    assert_labels_match(actual, logits)
    other = np.random.default_rng(1).uniform(0, 255, (1, 48, 80, 3)).astype("float32")
    assert_labels_match(_onnx_run(path, other)[1], np.asarray(model.predict(other, verbose=0)))
    print("ok onnx labels any size")

    # OpenVINO.
    path = export_model(model, os.path.join(out_dir, "ann.xml"), format="openvino", input_size=(64, 64)).path
    _, run = openvino_session(path)
    outputs = run(images)
    assert list(outputs) == ["logits"], list(outputs)
    assert_logits_match(outputs["logits"], logits)
    print("ok openvino logits")

    _refused("saved_model", "torch", "tensorflow")
    _refused("tflite", "torch", "tensorflow", input_size=(64, 64))


def check_jax(model, images, logits, out_dir):
    import tensorflow as tf

    from keras_ann.export import export_model

    for output in ("logits", "labels"):
        path = os.path.join(out_dir, f"sm_{output}")
        result = export_model(model, path, output=output, input_size=(64, 64))
        assert result.inputs == {"images": ((None, 64, 64, 3), "float32")}, result.inputs
        loaded = tf.saved_model.load(path)
        for batch in (images, images[:1]):  # any batch size
            actual = loaded.serve(batch)[output].numpy()
            if output == "logits":
                assert_logits_match(actual, logits[: len(batch)])
            else:
                assert_labels_match(actual, logits[: len(batch)])
        print("ok saved_model", output)

    from keras_ann import cli

    try:  # the command line refuses before loading the model
        cli.main(["export", "missing.keras", "ann.tflite", "--format", "tflite", "--input-size", "64", "64"])
    except SystemExit as error:
        assert "keras-ann export: error: format='tflite' cannot be exported from the jax backend" in str(error), error
        assert "KERAS_BACKEND=tensorflow" in str(error)
        print("ok refused tflite by the command line")
    else:
        raise AssertionError("keras-ann export --format tflite was not refused on jax")
    _refused("saved_model", "jax", "tensorflow")  # any image size
    _refused("tflite", "jax", "tensorflow", input_size=(64, 64))
    _refused("onnx", "jax", "tensorflow", input_size=(64, 64))
    _refused("openvino", "jax", "torch", input_size=(64, 64))


_MODEL = None


def main(out_dir):
    global _MODEL
    model = _MODEL = tiny_ann()
    images = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    logits = np.asarray(model.predict(images, verbose=0))
    backend = keras.config.backend()
    {"torch": check_torch, "jax": check_jax}[backend](model, images, logits, out_dir)
    print("backend", backend, "ok")


if __name__ == "__main__":
    main(*sys.argv[1:])
