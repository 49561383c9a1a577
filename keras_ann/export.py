"""Export an `ANNSegmenter` as a self-contained inference artifact.

Written on Keras's own `model.export` (Keras 3.15), from the backend Keras
runs on (`KERAS_BACKEND`):

| format          | TensorFlow    | JAX                      | PyTorch                 |
|-----------------|---------------|--------------------------|-------------------------|
| `"saved_model"` | yes           | yes (jax2tf; fixed H, W) | refused                 |
| `"tflite"`      | yes           | refused                  | refused                 |
| `"onnx"`        | yes (tf2onnx) | refused                  | yes (`torch.onnx`)      |
| `"openvino"`    | yes           | refused                  | yes (`torch.jit.trace`) |

`SUPPORTED` holds the table and `REFUSED` the reason for each refusal,
which the error names with the backends that can do it.

- `"saved_model"`: a TensorFlow SavedModel; reload it with
  `tf.saved_model.load(path).serve(images)`.
- `"tflite"`: a LiteRT (TFLite) flatbuffer, restricted to the builtin op
  set, so it runs in LiteRT's interpreter
  (`ai_edge_litert.interpreter.Interpreter`) without the Flex (TF ops)
  delegate.
- `"onnx"`: run it with `onnxruntime`. Needs the `export` extra
  (`pip install "keras-ann[export]"`).
- `"openvino"`: an OpenVINO IR (`.xml` and `.bin`); run it with
  `openvino.Core().compile_model(path, "CPU")` (the `export` extra).

The exported graph is the model's inference graph: raw RGB in (pixel values
in [0, 255], `float32`; the ImageNet normalisation is inside), batch
normalisation folded into the convolutions (with its moving statistics),
dropout off, no auxiliary head, and out either the logits at the input size
or, with `output="labels"`, the `int32` label map (their argmax over the
classes). The input is named `"images"` and the output `"logits"` or
`"labels"` in every format: Keras exports `call()` alone, so a functional
model around the segmenter adds the argmax and names the output; where an
exporter names it after a graph node (PyTorch's), the file is renamed
after export.

Shapes: SavedModel, ONNX and OpenVINO artifacts accept any batch size, and
on TensorFlow and PyTorch any image size when `input_size=None` (the exact
interpolation and pooling matrices are then computed in the graph from the
run-time size; with a fixed `input_size` they are constants, as in
`model.predict`). On JAX, jax2tf traces the batch size symbolically but
the image size must be fixed. TFLite artifacts have a fixed shape,
`(batch_size or 1, H, W, 3)`: mobile runtimes and their GPU delegates want
static shapes, and TensorFlow 2.21's converter writes the unknown batch
size into the static shapes of the tensors it makes when lowering the
einsums of the resize and pooling matrices, and the interpreter then
refuses to load the file.
"""

import contextlib
import dataclasses
import os
import tempfile
import warnings

import keras

FORMATS = ("saved_model", "tflite", "onnx", "openvino")
OUTPUTS = ("logits", "labels")

# Keras's name of each format (`model.export(format=...)`).
_KERAS_FORMATS = {"saved_model": "tf_saved_model", "tflite": "litert", "onnx": "onnx", "openvino": "openvino"}

# (format, backend) pairs exported here with Keras's `model.export`; each is
# tested against the Keras model on the runtime a user deploys with
# (tests/test_export.py, tests/export_check.py).
SUPPORTED = (
    ("saved_model", "tensorflow"),
    ("saved_model", "jax"),
    ("tflite", "tensorflow"),
    ("onnx", "tensorflow"),
    ("onnx", "torch"),
    ("openvino", "tensorflow"),
    ("openvino", "torch"),
)

# Why the other pairs are refused (Keras 3.15 and the exporters it calls).
REFUSED = {
    ("saved_model", "torch"): "Keras writes a SavedModel from PyTorch only through torch_xla",
    ("tflite", "jax"): "Keras's LiteRT export has no JAX route",
    # Keras's PyTorch route calls litert-torch, whose releases (0.8 to
    # 0.10) install their own torch, keras-nightly and a TensorFlow build
    # over the ones installed: it cannot be installed, so not tested,
    # beside keras-ann's.
    ("tflite", "torch"): "Keras's PyTorch route needs litert-torch, which replaces the installed torch, keras "
    "and tensorflow",
    # jax2onnx 0.17 turns the stem's max pooling (a `reduce_window` over
    # (1, 3, 3, 1)) into an ONNX MaxPool over all four axes, which ONNX
    # Runtime refuses ("Unsupported pooling size"); the labels' argmax
    # becomes a BitCast, which ONNX has no operator for.
    ("onnx", "jax"): "jax2onnx writes a max pooling ONNX Runtime cannot run",
    # Keras converts through jax2tf, whose graph is one XlaCallModule
    # operation that OpenVINO's TensorFlow front end cannot read.
    ("openvino", "jax"): "jax2tf's XlaCallModule graph cannot be read by OpenVINO",
}


def backends_for(format):
    """The Keras backends `export_model` writes `format` from.

    Example:

    >>> backends_for("onnx")
    ('tensorflow', 'torch')
    """
    return tuple(backend for f, backend in SUPPORTED if f == format)


@dataclasses.dataclass(frozen=True)
class ExportedModel:
    """What `export_model` wrote.

    Attributes:
        path: the file (TFLite, ONNX, OpenVINO's `.xml`) or directory
            (SavedModel) written.
        format: `"saved_model"`, `"tflite"`, `"onnx"` or `"openvino"`.
        size_bytes: total size on disk (with OpenVINO's `.bin`).
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
            the others (ending in `.tflite` for `"tflite"`, `.xml` for
            `"openvino"`, which writes the weights beside it in `.bin`).
        format: `"saved_model"`, `"tflite"`, `"onnx"` or `"openvino"`;
            which the current Keras backend can write is in `SUPPORTED`
            (the others raise a `ValueError` naming the backends that
            can). Defaults to `"saved_model"`.
        output: `"logits"` (float, `(batch, H, W, classes)`) or `"labels"`
            (`int32` argmax, `(batch, H, W)`). Defaults to `"logits"`.
        input_size: `(H, W)` of the input images, or `None` for any size
            (SavedModel, ONNX and OpenVINO on TensorFlow and PyTorch;
            TFLite and JAX need a fixed size).
        batch_size: int, a fixed batch size, or `None` for any batch size
            (TFLite then uses a batch of 1).
        opset: int, the ONNX opset (`format="onnx"` only); `None` uses
            the exporter's default.
        fold_batch_norm: bool, export an `ANNSegmenter` with its batch norm
            folded into the convolutions (`keras_ann.fold_batch_norm`: the
            same logits up to round-off, fewer operations). Defaults to
            `True`.

    A model that computes in bfloat16 (trained under `mixed_bfloat16`)
    is written in float32 to ONNX, TFLite and OpenVINO, which have no
    bfloat16 kernels for it (tf2onnx cannot even write its constants): a
    copy is built under the float32 policy with the same (float32) weights.
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
    input_size, batch_size, path = validate_arguments(path, format, output, input_size, batch_size, opset)
    if not isinstance(model, keras.Model) or not getattr(model, "inputs", None):
        raise ValueError(
            f"`model` must be a functional keras.Model such as an ANNSegmenter, got {type(model).__name__}."
        )
    if format != "saved_model":
        model = float32_model(model)
    dtype = keras.backend.standardize_dtype(model.inputs[0].dtype)
    if fold_batch_norm:
        from keras_ann.models.ann_segmenter import ANNSegmenter
        from keras_ann.models.batch_norm_folding import fold_batch_norm as fold

        model = fold(model) if isinstance(model, ANNSegmenter) else model

    from keras_ann.layers.conv_bn import plain_convolutions

    shape = (batch_size,) + (input_size or (None, None)) + (3,)
    spec = keras.InputSpec(shape=shape, dtype=dtype, name="images")
    serving = _serving_model(model, spec, output)
    options = {}
    if format == "tflite":
        import tensorflow as tf

        # The builtin op set only (Keras adds the Flex TF ops by default):
        # the file runs in any LiteRT interpreter without the Flex delegate.
        options["target_spec"] = {"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS]}
    if format == "onnx" and opset is not None:
        options["opset_version"] = opset

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    # A SavedModel runs on TensorFlow, where a wide folded convolution is
    # faster as a matrix product (`ConvBNReLU`); ONNX Runtime, LiteRT and
    # OpenVINO get the convolution, which they run (and quantise) as one.
    with contextlib.nullcontext() if format == "saved_model" else plain_convolutions(), _quiet_exporters():
        serving.export(path, format=_KERAS_FORMATS[format], verbose=False, input_signature=[spec], **options)
    if format == "onnx":
        _name_onnx(path, output)
    elif format == "openvino":
        _name_openvino(path, output)

    if output == "labels":
        outputs = {"labels": (shape[:3], "int32")}
    else:
        logits = model.outputs[0]
        outputs = {"logits": (shape[:3] + (logits.shape[-1],), keras.backend.standardize_dtype(logits.dtype))}
    return ExportedModel(
        path=path,
        format=format,
        size_bytes=_size_on_disk(path),
        inputs={"images": (shape, dtype)},
        outputs=outputs,
    )


def validate_arguments(path, format="saved_model", output="logits", input_size=None, batch_size=None, opset=None):
    """Check `export_model`'s arguments without building or loading anything.

    Raises a `ValueError` naming the offending argument, or, for a format
    the current Keras backend cannot write, the backends that can (and an
    `ImportError` naming the missing exporter package); `keras-ann export`
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
    backend = keras.config.backend()
    if (format, backend) not in SUPPORTED:
        reason = REFUSED.get((format, backend), f"Keras has no {format} export from {backend}")
        names = " or ".join(f"KERAS_BACKEND={b}" for b in backends_for(format))
        raise ValueError(f"format={format!r} cannot be exported from the {backend} backend ({reason}): run with {names}.")
    if format == "tflite":
        if input_size is None:
            raise ValueError(
                "format='tflite' needs a fixed `input_size=(height, width)`: TFLite models "
                "exported here have static shapes."
            )
        if not path.endswith(".tflite"):
            raise ValueError(f"`path` must end with '.tflite' for format='tflite', got {path!r}.")
        batch_size = batch_size or 1
    if format == "openvino" and not path.endswith(".xml"):
        raise ValueError(f"`path` must end with '.xml' for format='openvino' (the weights go beside it in .bin), got {path!r}.")
    if backend == "jax" and input_size is None:
        # jax2tf traces the batch size symbolically, but the exact resize and
        # pooling matrices need the image size as numbers.
        raise ValueError(
            f"format={format!r} from the jax backend needs a fixed `input_size=(height, width)` "
            "(KERAS_BACKEND=tensorflow exports any size)."
        )
    if format == "onnx":
        if backend == "tensorflow":
            _require("tf2onnx", "format='onnx' on TensorFlow")
        _require("onnx", "format='onnx'")
        if opset is not None:
            low, high = onnx_opsets()
            if not low <= check_positive_int(opset, "opset") <= high:
                # tf2onnx failed deep in the conversion with a raw traceback.
                exporter = "tf2onnx" if backend == "tensorflow" else "torch.onnx (TorchScript)"
                raise ValueError(
                    f"`opset` {opset} is outside the opsets {exporter} supports, {low} to {high}; "
                    f"leave it out for its default."
                )
    if format == "openvino":
        _require("openvino", "format='openvino'")
    if format in ("saved_model", "tflite"):
        _require("tensorflow", f"format={format!r}")
    return input_size, batch_size, path


# The lowest ONNX opset exported here: the lowest tf2onnx supports and
# tests ("We support and test ONNX opset-14 to opset-18", tf2onnx 1.16-1.17).
MIN_ONNX_OPSET = 14


def onnx_opsets():
    """`(lowest, highest)` ONNX opset `export_model(format="onnx")` takes
    on the current backend: tf2onnx's range (the highest from its opset
    table) on TensorFlow; on PyTorch up to the highest of its TorchScript
    exporter, which Keras uses for any batch or image size (its other
    exporter, for fixed shapes, goes higher)."""
    if keras.config.backend() == "torch":
        from torch.onnx import _constants

        return MIN_ONNX_OPSET, _constants.ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET
    from tf2onnx import constants

    return MIN_ONNX_OPSET, max(constants.OPSET_TO_IR_VERSION)


def _serving_model(model, spec, output):
    """A functional model around `model`: input `images`, output its
    logits, or its label map (`output="labels"`), named after `output`."""
    images = keras.Input(batch_shape=spec.shape, dtype=spec.dtype, name="images")
    result = model(images)
    if output == "labels":
        result = LabelMap(name="labels")(result)
    if keras.config.backend() == "torch":
        # `torch.jit.trace` (OpenVINO's route) refuses a dict output: the
        # file's output is named after export (`_name_onnx`, `_name_openvino`).
        return keras.Model(images, result, name="serving")
    return keras.Model(images, {output: result}, name="serving")


class LabelMap(keras.layers.Layer):
    """The `int32` argmax over the last axis (the classes): the `"labels"`
    output of an export."""

    def call(self, logits):
        if keras.config.backend() == "tensorflow":
            import tensorflow as tf

            # `tf.argmax` rather than `keras.ops.argmax`, whose extra test
            # for -0.0 (a bitcast and a bitwise and) has no TFLite builtin.
            return tf.argmax(logits, axis=-1, output_type=tf.int32)
        return keras.ops.cast(keras.ops.argmax(logits, axis=-1), "int32")

    def compute_output_spec(self, logits):
        return keras.KerasTensor(logits.shape[:-1], dtype="int32")


def _name_onnx(path, output):
    """Names the ONNX model's input `images` and output `output` where the
    exporter named them after graph nodes (PyTorch's)."""
    import onnx

    model = onnx.load(path)
    renames = {model.graph.input[0].name: "images", model.graph.output[0].name: output}
    renames = {old: new for old, new in renames.items() if old != new}
    if not renames:
        return
    for value in list(model.graph.input) + list(model.graph.output) + list(model.graph.value_info):
        value.name = renames.get(value.name, value.name)
    for node in model.graph.node:
        node.input[:] = [renames.get(name, name) for name in node.input]
        node.output[:] = [renames.get(name, name) for name in node.output]
    onnx.save(model, path)


def _name_openvino(path, output):
    """Names the OpenVINO model's input `images` and output `output` where
    the exporter did not (PyTorch's route)."""
    import openvino as ov

    model = ov.Core().read_model(path)
    if model.inputs[0].get_names() == {"images"} and model.outputs[0].get_names() == {output}:
        return
    model.inputs[0].get_tensor().set_names({"images"})
    model.outputs[0].get_tensor().set_names({output})
    with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(path))) as tmp:
        renamed = os.path.join(tmp, "model.xml")
        ov.serialize(model, renamed)  # float32 weights as they are (save_model would compress them)
        del model
        os.replace(renamed, path)
        os.replace(renamed[:-4] + ".bin", path[:-4] + ".bin")


@contextlib.contextmanager
def _quiet_exporters():
    with warnings.catch_warnings():
        # Keras's patch of tf2onnx probes `np.object`, which NumPy 2 warns about.
        warnings.filterwarnings("ignore", message=".*np.object.*", category=FutureWarning)
        yield


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


def _require(module, what):
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise ImportError(
            f"{what} needs the `{module}` package: pip install \"keras-ann[export]\"."
        )


def _size_on_disk(path):
    if os.path.isfile(path):
        weights = path[:-4] + ".bin" if path.endswith(".xml") else None  # OpenVINO's
        return os.path.getsize(path) + (os.path.getsize(weights) if weights and os.path.isfile(weights) else 0)
    total = 0
    for root, _, files in os.walk(path):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    return total


def _format_shape(shape):
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"
