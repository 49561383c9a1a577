"""Export an `ANNSegmenter` as a self-contained inference artifact.

TensorFlow-only module (it needs the TensorFlow Keras backend), written on
Keras's and TensorFlow's own exporters:

- `"saved_model"`: a TensorFlow SavedModel written by
  `keras.export.ExportArchive` (what `model.export()` uses); reload it with
  `tf.saved_model.load(path).serve(images)`.
- `"tflite"`: that SavedModel converted by `tf.lite.TFLiteConverter`, as
  Keras's LiteRT exporter does, restricted to the builtin op set, so it runs
  in any LiteRT / TFLite interpreter without the Flex (TF ops) delegate.
- `"onnx"`: the same inference function converted by `tf2onnx`, as Keras's
  ONNX exporter does on TensorFlow; run it with `onnxruntime`. Needs the
  `export` extra (`pip install "keras-ann[export]"`).

`model.export()` itself is not called because it exports the model's
`call()` alone; the `"labels"` output needs an argmax after it, and a
wrapper model around the segmenter makes Keras re-trace the graph about
twice as often (16 instead of 7 CPU seconds for a small model).

The exported graph is the model's inference graph: raw RGB in (pixel values
in [0, 255], `float32`; the ImageNet normalisation is inside), batch
normalisation with its moving statistics, dropout off, no auxiliary head,
and out either the logits at the input size or, with `output="labels"`,
the `int32` label map (their argmax over the classes). The input is named
`"images"` and the output `"logits"` or `"labels"` in every format.

Shapes: SavedModel and ONNX artifacts accept any batch size, and any image
size when `input_size=None` (the exact interpolation and pooling matrices
are then computed in the graph from the run-time size; with a fixed
`input_size` they are constants, as in `model.predict`). TFLite artifacts
have a fixed shape, `(batch_size or 1, H, W, 3)`: mobile runtimes and their
GPU delegates want static shapes, and TensorFlow 2.21's converter writes
the unknown batch size into the static shapes of the tensors it makes when
lowering the einsums of the resize and pooling matrices, and the interpreter
then refuses to load the file.
"""

import contextlib
import dataclasses
import os
import warnings

FORMATS = ("saved_model", "tflite", "onnx")
OUTPUTS = ("logits", "labels")


@dataclasses.dataclass(frozen=True)
class ExportedModel:
    """What `export_model` wrote.

    Attributes:
        path: the file (TFLite, ONNX) or directory (SavedModel) written.
        format: `"saved_model"`, `"tflite"` or `"onnx"`.
        size_bytes: total size on disk.
        inputs: `{name: (shape, dtype)}` of the artifact's inputs, `None`
            for a dimension of any size.
        outputs: `{name: (shape, dtype)}` of its outputs.
    """

    path: str
    format: str
    size_bytes: int
    inputs: dict
    outputs: dict

    def summary(self):
        """One line per fact, as `keras-ann export` prints them."""

        def signature(specs):
            return ", ".join(
                f"{name} {_format_shape(shape)} {dtype}" for name, (shape, dtype) in specs.items()
            )

        return (
            f"wrote {self.path} ({self.format}, {self.size_bytes / 2**20:.1f} MB)\n"
            f"  input:  {signature(self.inputs)}\n"
            f"  output: {signature(self.outputs)}"
        )


def export_model(
    model,
    path,
    format="saved_model",
    output="logits",
    input_size=None,
    batch_size=None,
    opset=None,
    fold_batch_norm=True,
):
    """Export a segmentation model for inference outside Keras.

    Args:
        model: a built `keras_ann.ANNSegmenter` (or any Keras model mapping
            `(batch, H, W, 3)` raw RGB images to `(batch, H, W, classes)`
            logits).
        path: where to write: a directory for `"saved_model"`, a file for
            the others (ending in `.tflite` for `"tflite"`).
        format: `"saved_model"`, `"tflite"` or `"onnx"`. Defaults to
            `"saved_model"`.
        output: `"logits"` (float, `(batch, H, W, classes)`) or `"labels"`
            (`int32` argmax, `(batch, H, W)`). Defaults to `"logits"`.
        input_size: `(H, W)` of the input images, or `None` for any size
            (SavedModel and ONNX only; TFLite needs a fixed size).
        batch_size: int, a fixed batch size, or `None` for any batch size
            (SavedModel and ONNX; TFLite then uses a batch of 1).
        opset: int, the ONNX opset (`format="onnx"` only); `None` uses
            tf2onnx's default.
        fold_batch_norm: bool, export an `ANNSegmenter` with its batch norm
            folded into the convolutions (`keras_ann.fold_batch_norm`: the
            same logits up to round-off, fewer operations). Defaults to
            `True`.

    A model that computes in bfloat16 (trained under `mixed_bfloat16`)
    is written in float32 to ONNX and TFLite, which have no bfloat16
    kernels for it (tf2onnx cannot even write its constants): a copy is
    built under the float32 policy with the same (float32) weights.
    SavedModel keeps the model's precision.

    Returns:
        An `ExportedModel` with the path, size and input/output signature.

    Example:

    ```python
    model = keras_ann.ANNSegmenter("resnet18_d8", num_classes=5)
    export_model(model, "ann_onnx/model.onnx", format="onnx", input_size=(512, 512))

    import onnxruntime
    session = onnxruntime.InferenceSession("ann_onnx/model.onnx")
    images = np.random.uniform(0, 255, (1, 512, 512, 3)).astype("float32")
    (logits,) = session.run(None, {"images": images})
    ```
    """
    import keras

    input_size, batch_size, path = validate_arguments(path, format, output, input_size, batch_size, opset)
    if keras.config.backend() != "tensorflow":
        raise ValueError(
            "keras_ann.export needs the TensorFlow backend (KERAS_BACKEND=tensorflow), "
            f"got {keras.config.backend()!r}."
        )
    if not isinstance(model, keras.Model) or not getattr(model, "inputs", None):
        raise ValueError(
            f"`model` must be a functional keras.Model such as an ANNSegmenter, got {type(model).__name__}."
        )
    if format in ("onnx", "tflite"):
        model = float32_model(model)
    dtype = model.inputs[0].dtype
    if fold_batch_norm:
        from keras_ann.models.ann_segmenter import ANNSegmenter
        from keras_ann.models.batch_norm_folding import fold_batch_norm as fold

        model = fold(model) if isinstance(model, ANNSegmenter) else model

    import tensorflow as tf

    from keras_ann.layers.conv_bn import plain_convolutions

    spec = tf.TensorSpec((batch_size,) + (input_size or (None, None)) + (3,), dtype, name="images")

    def serve(images):
        # Outside `fit()`, and with `training=False`: batch normalisation
        # uses its moving statistics, dropout is the identity, and the
        # ANNSegmenter returns the logits alone (no auxiliary head).
        logits = model(images, training=False)
        if output == "labels":
            # `tf.argmax` rather than `keras.ops.argmax`, whose extra test
            # for -0.0 (a bitcast and a bitwise and) has no TFLite builtin.
            return {"labels": tf.argmax(logits, axis=-1, output_type=tf.int32)}
        return {"logits": logits}

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    # A SavedModel runs on TensorFlow, where a wide folded convolution is
    # faster as a matrix product (`ConvBNReLU`); ONNX Runtime and TFLite
    # get the convolution, which they run (and quantise) as one.
    with contextlib.nullcontext() if format == "saved_model" else plain_convolutions():
        if format == "onnx":
            _write_onnx(tf.function(serve, input_signature=[spec]), spec, path, opset)
        else:
            archive = keras.export.ExportArchive()
            archive.track(model)
            archive.add_endpoint("serve", serve, input_signature=[spec])
            if format == "saved_model":
                archive.write_out(path, verbose=False)
            else:
                _write_tflite(archive, path)

    if output == "labels":
        outputs = {"labels": (tuple(spec.shape[:3]), "int32")}
    else:
        logits = model.outputs[0]
        shape = tuple(spec.shape[:3]) + (logits.shape[-1],)
        outputs = {"logits": (shape, keras.backend.standardize_dtype(logits.dtype))}
    return ExportedModel(
        path=path,
        format=format,
        size_bytes=_size_on_disk(path),
        inputs={"images": (tuple(spec.shape), spec.dtype.name)},
        outputs=outputs,
    )


def validate_arguments(path, format="saved_model", output="logits", input_size=None, batch_size=None, opset=None):
    """Check `export_model`'s arguments without building or loading anything.

    Raises a `ValueError` naming the offending argument (and an
    `ImportError` for ONNX without `tf2onnx` / `onnx`); `keras-ann export`
    calls it before loading the model.

    Returns:
        `(input_size, batch_size, path)`, normalised: a tuple or `None`,
        the batch size (1 for TFLite when `None`), a `str` path.

    Example:

    >>> validate_arguments("model.tflite", "tflite", input_size=[64, 96])
    ((64, 96), 1, 'model.tflite')
    """
    if format not in FORMATS:
        raise ValueError(f"`format` must be one of {FORMATS}, got {format!r}.")
    if output not in OUTPUTS:
        raise ValueError(f"`output` must be one of {OUTPUTS}, got {output!r}.")
    from keras_ann.checks import check_pair, check_positive_int

    if input_size is not None:
        input_size = check_pair(input_size, "input_size")
    if batch_size is not None:
        batch_size = check_positive_int(batch_size, "batch_size")
    if opset is not None and format != "onnx":
        raise ValueError(f"`opset` applies to format='onnx' only, got format={format!r}.")
    path = os.fspath(path)
    if format == "tflite":
        if input_size is None:
            raise ValueError(
                "format='tflite' needs a fixed `input_size=(height, width)`: TFLite models "
                "exported here have static shapes."
            )
        if not path.endswith(".tflite"):
            raise ValueError(f"`path` must end with '.tflite' for format='tflite', got {path!r}.")
        batch_size = batch_size or 1
    if format == "onnx":
        _require("tf2onnx", "format='onnx'")
        _require("onnx", "format='onnx'")
        if opset is not None:
            low, high = onnx_opsets()
            if not low <= check_positive_int(opset, "opset") <= high:
                # tf2onnx failed deep in the conversion with a raw traceback.
                raise ValueError(
                    f"`opset` {opset} is outside the opsets tf2onnx supports, {low} to {high}; "
                    f"leave it out for tf2onnx's default."
                )
    return input_size, batch_size, path


# The lowest ONNX opset tf2onnx supports and tests ("We support and test
# ONNX opset-14 to opset-18", tf2onnx 1.16-1.17).
MIN_ONNX_OPSET = 14


def onnx_opsets():
    """`(lowest, highest)` ONNX opset `export_model(format="onnx")` takes:
    tf2onnx's supported range (the highest from its opset table)."""
    from tf2onnx import constants

    return MIN_ONNX_OPSET, max(constants.OPSET_TO_IR_VERSION)


_BFLOAT16_POLICIES = ("bfloat16", "mixed_bfloat16")


def float32_model(model):
    """`model`, or, where any of its layers computes in bfloat16 (built
    under `mixed_bfloat16`), a copy in which those layers compute in
    float32, with the same weights (float32 under that policy too).

    Example:

    >>> import keras, keras_ann
    >>> keras.config.set_dtype_policy("mixed_bfloat16")
    >>> mixed = keras_ann.ANNSegmenter(backbone="resnet18_d8", num_classes=3)
    >>> keras.config.set_dtype_policy("float32")
    >>> mixed.compute_dtype, float32_model(mixed).compute_dtype
    ('bfloat16', 'float32')
    """
    import keras

    if not any(
        getattr(layer, "dtype_policy", None) is not None and layer.dtype_policy.name in _BFLOAT16_POLICIES
        for layer in model._flatten_layers(include_self=True, recursive=True)
    ):
        return model

    def float32(config):
        if isinstance(config, dict):
            if config.get("class_name") == "DTypePolicy" and config.get("config", {}).get("name") in _BFLOAT16_POLICIES:
                return dict(config, config=dict(config["config"], name="float32"))
            return {key: float32(value) for key, value in config.items()}
        if isinstance(config, list):
            return [float32(value) for value in config]
        return "float32" if config in _BFLOAT16_POLICIES else config

    copy = keras.saving.deserialize_keras_object(float32(keras.saving.serialize_keras_object(model)))
    copy.set_weights(model.get_weights())
    return copy


def _write_tflite(archive, path):
    """SavedModel -> TFLite, as Keras's own LiteRT exporter converts, with
    the builtin op set only (no Flex delegate needed to run it)."""
    import tempfile

    import tensorflow as tf

    with tempfile.TemporaryDirectory() as saved_model:
        archive.write_out(saved_model, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved_model)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        converter.experimental_enable_resource_variables = True
        flatbuffer = converter.convert()
    with open(path, "wb") as f:
        f.write(flatbuffer)


def _write_onnx(function, spec, path, opset):
    """`tf2onnx.convert.from_function`, as Keras's own ONNX exporter calls it
    on the TensorFlow backend (with Keras's patch of tf2onnx for NumPy 2)."""
    import tf2onnx

    try:
        from keras.src.export.tf2onnx_lib import patch_tf2onnx
    except ImportError:  # a Keras without it: tf2onnx may not need it.
        patch_tf2onnx = None
    with warnings.catch_warnings():
        # The patch probes `np.object`, which NumPy 2 warns about.
        warnings.filterwarnings("ignore", message=".*np.object.*", category=FutureWarning)
        if patch_tf2onnx is not None:
            patch_tf2onnx()
        tf2onnx.convert.from_function(function, [spec], opset=opset, output_path=path)


def _require(module, what):
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise ImportError(
            f"{what} needs the `{module}` package: pip install \"keras-ann[export]\"."
        )


def _size_on_disk(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    total = 0
    for root, _, files in os.walk(path):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    return total


def _format_shape(shape):
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"
