"""`keras-ann export`: a self-contained SavedModel, TFLite, ONNX or
OpenVINO model from the Keras backend in use (`keras_ann.export`), int8
ONNX by `keras_ann.quantize`."""

import os

from keras_ann.cli.arguments import Pair, output_path, positive_int
from keras_ann.cli.options import MODEL_HELP


def add_parser(subparsers):
    export = subparsers.add_parser(
        "export", help="write a self-contained SavedModel, TFLite, ONNX or OpenVINO model (raw RGB in, logits or labels "
        "out) from the Keras backend in KERAS_BACKEND"
    )
    export.add_argument("model", help=MODEL_HELP)
    export.add_argument(
        "output", type=output_path, help="the directory (saved_model) or file (.tflite, .onnx, openvino's .xml) to write"
    )
    export.add_argument(
        "--format", default="saved_model", choices=("saved_model", "tflite", "onnx", "openvino"),
        help="saved_model: TensorFlow or JAX backend; tflite: TensorFlow; onnx, openvino: TensorFlow or PyTorch",
    )
    export.add_argument(
        "--outputs", default="logits", choices=("logits", "labels"),
        help="what the exported model returns: logits (batch, H, W, classes) or int32 label maps (batch, H, W); "
        "the positional OUTPUT is where it is written",
    )
    export.add_argument(
        "--input-size", type=positive_int, nargs=2, action=Pair, metavar=("H", "W"),
        help="fixed image size (required for tflite and on JAX; default: any size)",
    )
    export.add_argument("--batch-size", type=positive_int, help="fixed batch size (default: any; tflite: 1)")
    export.add_argument("--num-classes", type=positive_int, help="replace the classifier (new, untrained weights)")
    export.add_argument("--opset", type=positive_int, help="ONNX opset (default: the exporter's)")
    export.add_argument(
        "--quantize", choices=("int8",),
        help="int8 convolutions by ONNX Runtime's post-training quantisation (onnx, fixed --input-size)",
    )
    export.add_argument(
        "--calibration", nargs="+", metavar="IMAGES",
        help="images to calibrate the int8 ranges on: files, directories or globs",
    )
    export.add_argument("--calibration-count", type=positive_int, default=16, help="use at most this many (default 16)")
    export.add_argument("--calibration-method", default="minmax", choices=("minmax", "entropy", "percentile"))
    export.set_defaults(func=run)


def run(args):
    from keras_ann.export import export_model, validate_arguments
    from keras_ann.presets import load_model
    from keras_ann.quantize import calibration_files, export_int8

    options = dict(
        format=args.format, output=args.outputs, input_size=args.input_size, batch_size=args.batch_size,
        opset=args.opset,
    )  # fmt: skip
    try:
        # Before loading the model, which may download a preset.
        validate_arguments(args.output, **options)
        if args.quantize:
            calibration = calibration_files(
                args.calibration, args.calibration_count, format=args.format, input_size=args.input_size
            )
    except (ValueError, ImportError) as error:
        raise SystemExit(f"keras-ann export: error: {error}")
    model = load_model(args.model, **({} if args.num_classes is None else {"num_classes": args.num_classes}))
    if not args.quantize:
        print(export_model(model, args.output, **options).summary())
        return
    fp32 = export_int8(model, args.output, calibration, method=args.calibration_method, **options)
    size = os.path.getsize(args.output) / 2**20
    print(
        f"wrote {args.output} (onnx, int8 convolutions, {size:.1f} MB; float32 {fp32.size_bytes / 2**20:.1f} MB), "
        f"calibrated on {len(calibration)} images ({args.calibration_method})"
    )
