"""Post-training int8 quantisation of an exported ONNX model.

Written on ONNX Runtime's own static quantiser
(`onnxruntime.quantization.quantize_static`): the float32 ONNX model that
`keras_ann.export.export_model` writes is calibrated on a few images
(activation ranges by min/max, or a percentile or entropy rule), and its
convolutions are rewritten as QDQ (QuantizeLinear / DequantizeLinear)
pairs: unsigned 8-bit activations and signed 8-bit weights, one scale per
output channel. ONNX Runtime's CPU provider fuses each pair into an
integer convolution (`QLinearConv`), which runs on VNNI (AVX512-VNNI,
AVX-VNNI) or AMX-INT8 instructions where the CPU has them.

Only the convolutions are quantised by default: they hold nearly all of the
network's arithmetic (the backbone, the heads' 1x1 and 3x3 layers), while
the attention's matrix products and softmax and the exact bilinear resize
matrices stay in float32, where 8 bits would cost accuracy for little
speed. `op_types` widens the set.

Needs `onnxruntime` (and the `export` extra for the ONNX export itself):
`pip install "keras-ann[export]" onnxruntime`.
"""

import os

import numpy as np

__all__ = ["CALIBRATION_METHODS", "calibration_files", "calibration_image", "export_int8", "quantize_onnx"]

CALIBRATION_METHODS = ("minmax", "entropy", "percentile")


def quantize_onnx(
    onnx_path,
    output_path,
    calibration_images,
    *,
    method="minmax",
    op_types=("Conv",),
    per_channel=True,
):
    """Write an int8 copy of a float32 ONNX segmentation model.

    Args:
        onnx_path: the float32 model, as written by
            `export_model(..., format="onnx", input_size=(H, W))`; its
            input must be `images` with a fixed height and width.
        output_path: the `.onnx` file to write (replaced atomically).
        calibration_images: an iterable of raw RGB images, each `(H, W, 3)`
            or `(1, H, W, 3)`, pixel values in [0, 255], at the model's
            input size: a few (8 to 32) images like those the model will
            see.
        method: how activation ranges are chosen from the calibration
            images: `"minmax"`, `"entropy"` or `"percentile"` (99.999 %).
        op_types: ONNX operator types to quantise (default: convolutions).
        per_channel: one weight scale per output channel.

    Returns:
        `output_path`.

    Example:

    >>> import os, tempfile
    >>> import numpy as np
    >>> import keras_ann
    >>> from keras_ann.export import export_model
    >>> from keras_ann.quantize import quantize_onnx
    >>> backbone = keras_ann.ResNetBackbone(depth=18, stem_channels=8, base_channels=8)
    >>> model = keras_ann.ANNSegmenter(backbone, num_classes=3, head_channels=16,
    ...                                project_channels=8, auxiliary_channels=8)
    >>> tmp = tempfile.mkdtemp()
    >>> fp32 = export_model(model, os.path.join(tmp, "ann.onnx"), format="onnx",
    ...                     input_size=(32, 48), batch_size=1).path
    >>> images = np.random.default_rng(0).uniform(0, 255, (4, 32, 48, 3)).astype("float32")
    >>> int8 = quantize_onnx(fp32, os.path.join(tmp, "ann_int8.onnx"), images)
    >>> import onnxruntime
    >>> session = onnxruntime.InferenceSession(int8, providers=["CPUExecutionProvider"])
    >>> session.run(None, {"images": images[:1]})[0].shape
    (1, 32, 48, 3)
    """
    if method not in CALIBRATION_METHODS:
        raise ValueError(f"`method` must be one of {CALIBRATION_METHODS}, got {method!r}.")
    if not os.path.isfile(onnx_path):
        raise FileNotFoundError(f"No ONNX model at {onnx_path!r}: export one with `keras-ann export ... --format onnx`.")
    if not str(output_path).endswith(".onnx"):
        raise ValueError(f"`output_path` must end in .onnx, got {output_path!r}.")
    try:
        import onnx
        from onnxruntime import quantization as q
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError as error:
        raise ImportError(
            "int8 quantisation needs onnxruntime and onnx: pip install 'keras-ann[export]' onnxruntime"
        ) from error

    graph = onnx.load(onnx_path, load_external_data=False).graph
    (input_info,) = [i for i in graph.input if i.name == "images"] or [None]
    if input_info is None:
        raise ValueError(f"{onnx_path!r} has no input called 'images'; export it with keras_ann.export.export_model.")
    dims = [d.dim_value if d.HasField("dim_value") else None for d in input_info.type.tensor_type.shape.dim]
    if len(dims) != 4 or dims[1] is None or dims[2] is None:
        raise ValueError(
            f"{onnx_path!r} takes images of any size; int8 calibration needs a fixed size: "
            "export it with --input-size H W (input_size=(H, W))."
        )
    size = (dims[1], dims[2])
    batches = [_calibration_batch(image, size, i) for i, image in enumerate(calibration_images)]
    if not batches:
        raise ValueError("`calibration_images` is empty: give a few (8 to 32) representative images.")

    class Reader(q.CalibrationDataReader):
        def __init__(self):
            self._batches = iter(batches)

        def get_next(self):
            batch = next(self._batches, None)
            return None if batch is None else {"images": batch}

    output_path = os.path.abspath(output_path)
    os.makedirs(os.path.dirname(output_path), exist_ok=True)
    prepared = output_path + ".pre.onnx"
    tmp = output_path + ".tmp.onnx"
    try:
        # Shape inference and graph clean-up first, as ONNX Runtime's
        # quantisation guide asks: the quantiser needs every tensor's shape.
        quant_pre_process(onnx_path, prepared)
        calibrate = {
            "minmax": q.CalibrationMethod.MinMax,
            "entropy": q.CalibrationMethod.Entropy,
            "percentile": q.CalibrationMethod.Percentile,
        }[method]
        q.quantize_static(
            prepared,
            tmp,
            Reader(),
            quant_format=q.QuantFormat.QDQ,
            op_types_to_quantize=list(op_types),
            per_channel=per_channel,
            activation_type=q.QuantType.QUInt8,
            weight_type=q.QuantType.QInt8,
            calibrate_method=calibrate,
        )
        os.replace(tmp, output_path)
    finally:
        for path in (prepared, tmp):
            if os.path.exists(path):
                os.remove(path)
    return output_path


def _calibration_batch(image, size, index):
    image = np.asarray(image, np.float32)
    if image.ndim == 3:
        image = image[None]
    if image.ndim != 4 or image.shape[0] != 1 or image.shape[-1] != 3:
        raise ValueError(
            f"calibration image {index} has shape {image.shape}; expected (H, W, 3) or (1, H, W, 3) RGB."
        )
    if tuple(image.shape[1:3]) != tuple(size):
        raise ValueError(
            f"calibration image {index} is {image.shape[1]}x{image.shape[2]} but the model takes "
            f"{size[0]}x{size[1]}: resize the calibration images to the export's --input-size."
        )
    if not np.all(np.isfinite(image)):
        raise ValueError(f"calibration image {index} has NaN or infinite pixel values.")
    return image


def calibration_files(images, count=16, *, format="onnx", input_size=None):
    """The calibration images of an int8 export (`export_int8`), checked
    before the model is loaded.

    Args:
        images: image files, directories or glob patterns
            (`keras_ann.file_lists.image_paths`).
        count: use at most this many (the first ones).
        format: the export format; int8 needs `"onnx"`.
        input_size: the export's fixed `(H, W)`, which the calibration
            images are resized to; required.

    Returns:
        list of image paths.

    Raises:
        ValueError: another format, no input size, no images, or a spec
            that names nothing.

    Example:

    >>> import os, tempfile
    >>> root = tempfile.mkdtemp()
    >>> for name in ("a.jpg", "b.png", "c.png"):
    ...     open(os.path.join(root, name), "w").close()
    >>> [os.path.basename(p) for p in calibration_files([root], 2, input_size=(64, 64))]
    ['a.jpg', 'b.png']
    """
    from keras_ann.file_lists import image_paths

    if format != "onnx":
        raise ValueError("--quantize int8 needs --format onnx.")
    if input_size is None:
        raise ValueError("--quantize int8 needs a fixed --input-size H W (the calibration images are resized to it).")
    if not images:
        raise ValueError("--quantize int8 needs --calibration IMAGES (files, directories or globs; 8 to 32 images).")
    return image_paths(images)[:count]


def calibration_image(path, size):
    """The image at `path` (read as training reads it) resized to `(H, W)`
    `size`, as float32 RGB for `quantize_onnx`.

    Example:

    >>> import os, tempfile
    >>> import numpy as np
    >>> from PIL import Image
    >>> path = os.path.join(tempfile.mkdtemp(), "a.png")
    >>> Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(path)
    >>> calibration_image(path, (32, 48)).shape
    (32, 48, 3)
    """
    from PIL import Image

    from keras_ann.data.io import read_image

    image = Image.fromarray(read_image(path))
    return np.asarray(image.resize((size[1], size[0]), Image.BILINEAR), np.float32)


def export_int8(model, path, calibration, *, method="minmax", **options):
    """Export `model` to ONNX with int8 convolutions: a float32 export
    (`keras_ann.export.export_model`, in a temporary directory) quantised
    by `quantize_onnx` on the calibration images.

    Args:
        model: the `ANNSegmenter` to export.
        path: the `.onnx` file to write.
        calibration: image paths (`calibration_files`), resized to the
            export's `input_size`.
        method: the calibration method (`CALIBRATION_METHODS`).
        **options: `export_model`'s options (`output`, `batch_size`, ...);
            `format="onnx"` and a fixed `input_size` are required.

    Returns:
        the float32 model's `ExportedModel` (its `size_bytes` compares).

    Example:

    >>> import os, tempfile
    >>> import numpy as np
    >>> from PIL import Image
    >>> import keras_ann
    >>> backbone = keras_ann.ResNetBackbone(depth=18, stem_channels=8, base_channels=8)
    >>> model = keras_ann.ANNSegmenter(backbone, num_classes=3, head_channels=16,
    ...                                project_channels=8, auxiliary_channels=8)
    >>> tmp = tempfile.mkdtemp()
    >>> images = []
    >>> for i in range(2):
    ...     images.append(os.path.join(tmp, f"{i}.png"))
    ...     Image.fromarray(np.full((40, 40, 3), 60 * i, np.uint8)).save(images[-1])
    >>> fp32 = export_int8(model, os.path.join(tmp, "int8.onnx"), images, format="onnx", input_size=(32, 32),
    ...                    output="labels")
    >>> os.path.getsize(os.path.join(tmp, "int8.onnx")) < fp32.size_bytes
    True
    """
    import tempfile

    from keras_ann.export import export_model

    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_model(model, os.path.join(tmp, "float32.onnx"), **options)
        images = (calibration_image(path, options["input_size"]) for path in calibration)
        quantize_onnx(fp32.path, path, images, method=method)
    return fp32
