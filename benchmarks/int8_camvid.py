"""int8 inference on the CPU: speed against our float32 and the mIoU it costs.

A trained CamVid model (`keras-ann train ann_r18_d8_camvid_cpu ...`) is
exported to ONNX at the recipe's test size and quantised to int8 by
`keras_ann.quantize.quantize_onnx` (ONNX Runtime's static quantiser, int8
convolutions), calibrated on `--calibration-count` training images. Then:

- accuracy: the 101 validation images scored three ways -- the Keras model
  in float32 (`evaluate_dataset`), the float32 ONNX model and the int8 ONNX
  model under ONNX Runtime -- each at full label resolution (480x360, void
  ignored), the logits resized to the label size as `evaluate_dataset` does;
- speed: one image of the test size, batch 1, each runtime with `--threads`
  threads, timed runs alternating between the three after a warm-up;
  medians and the ratios of int8 to each float32.

The CPU model and its int8/bf16 instruction flags are recorded with the
figures (VNNI and AMX-INT8 decide what int8 can gain).

Usage:

    PYTHONPATH=. .venv/bin/python benchmarks/int8_camvid.py runs/camvid_cpu/latest.keras \\
        --data-root ../shared/data/camvid --json int8.json
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

from vs_mmseg import cpu_info  # benchmarks/ is this script's own directory

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _score(predict, pairs, num_classes, align_corners):
    """mIoU of `predict(image batch) -> logits` over `(image, label)` pairs."""
    import numpy as np

    from keras_ann.metrics import confusion_matrix, metrics_from_confusion
    from keras_ann.ops import bilinear_resize

    total = np.zeros((num_classes, num_classes), np.int64)
    for image, label in pairs:
        logits = predict(image)
        logits = np.asarray(bilinear_resize(logits, tuple(label.shape[1:3]), align_corners))
        total += confusion_matrix(label, logits.argmax(-1), num_classes)
    return metrics_from_confusion(total)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a trained CamVid .keras model")
    parser.add_argument("--data-root", required=True, help="CamVid root (train/, trainannot/, val/, valannot/)")
    parser.add_argument("--test-size", type=int, nargs=2, default=(180, 240), metavar=("H", "W"),
                        help="the recipe's test resize of CamVid's 480x360 images (default 180 240)")
    parser.add_argument("--calibration-count", type=int, default=16)
    parser.add_argument("--calibration-method", default="minmax", choices=("minmax", "entropy", "percentile"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--val-steps", type=int, help="score only this many validation images")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args(argv)

    import numpy as np
    import onnxruntime
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    import keras_ann
    from keras_ann import data
    from keras_ann.export import export_model, float32_model
    from keras_ann.quantize import quantize_onnx

    trained = keras_ann.ANNSegmenter.from_preset(args.model)
    # The float32 baseline as `keras-ann predict` runs it (batch norm
    # folded), in float32 even for a model trained under mixed_bfloat16;
    # that model's own bfloat16 forward pass is scored beside it.
    model = keras_ann.fold_batch_norm(float32_model(trained))
    h, w = args.test_size
    scale = (max(h, w), min(h, w))
    val = data.camvid(args.data_root, "val", test_scale=scale)
    train = data.camvid(args.data_root, "train", test_scale=scale)
    pairs = [(np.asarray(x), np.asarray(y)) for x, y in val.eval_dataset().take(args.val_steps or -1)]
    if tuple(pairs[0][0].shape[1:3]) != (h, w):
        raise SystemExit(f"the test resize gives {pairs[0][0].shape[1:3]}, not --test-size {h} {w}")
    calibration = [np.asarray(x)[0] for x, _ in train.eval_dataset().take(args.calibration_count)]

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    with tempfile.TemporaryDirectory() as tmp:
        fp32_path = export_model(model, os.path.join(tmp, "fp32.onnx"), format="onnx", input_size=(h, w),
                                 batch_size=1).path
        start = time.perf_counter()
        int8_path = quantize_onnx(fp32_path, os.path.join(tmp, "int8.onnx"), calibration,
                                  method=args.calibration_method)
        quantize_s = time.perf_counter() - start
        sizes = {"fp32_onnx_mb": os.path.getsize(fp32_path) / 2**20, "int8_onnx_mb": os.path.getsize(int8_path) / 2**20}
        sessions = {
            name: onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
            for name, path in (("onnx_fp32", fp32_path), ("onnx_int8", int8_path))
        }

    def onnx_predict(name):
        return lambda image: sessions[name].run(None, {"images": image.astype("float32")})[0]

    keras_models = {"keras_fp32": model}
    if trained.compute_dtype == "bfloat16":
        keras_models["keras_bf16"] = keras_ann.fold_batch_norm(trained)
    predictors = {
        **{name: (lambda image, m=m: m.predict_on_batch(image.astype("float32"))) for name, m in keras_models.items()},
        "onnx_fp32": onnx_predict("onnx_fp32"),
        "onnx_int8": onnx_predict("onnx_int8"),
    }
    results = {"cpu": cpu_info(), "model": args.model, "test_size": [h, w], "threads": args.threads,
               "calibration_images": len(calibration), "calibration_method": args.calibration_method,
               "quantize_s": quantize_s, **sizes, "val_images": len(pairs), "accuracy": {}, "seconds": {}}
    for name, predict in predictors.items():
        scores = _score(predict, pairs, model.num_classes, model.align_corners)
        results["accuracy"][name] = {"mIoU": float(scores["mIoU"]), "aAcc": float(scores["aAcc"]),
                                     "IoU": [float(v) for v in scores["IoU"]]}
        print(f"{name}: mIoU {100 * scores['mIoU']:.2f} %", flush=True)

    image = pairs[0][0]
    for predict in predictors.values():
        for _ in range(args.warmup):
            predict(image)
    times = {name: [] for name in predictors}
    for _ in range(args.runs):
        for name, predict in predictors.items():
            begin = time.perf_counter()
            predict(image)
            times[name].append(time.perf_counter() - begin)
    medians = {name: statistics.median(t) for name, t in times.items()}
    results["seconds"] = {"runs": times, "median": medians}
    results["int8_vs_keras_fp32"] = medians["onnx_int8"] / medians["keras_fp32"]
    results["int8_vs_onnx_fp32"] = medians["onnx_int8"] / medians["onnx_fp32"]
    drop = results["accuracy"]["keras_fp32"]["mIoU"] - results["accuracy"]["onnx_int8"]["mIoU"]  # points
    results["mIoU_drop_points"] = drop
    results["load_average"] = os.getloadavg()
    print(
        f"{results['cpu']['model']} ({', '.join(results['cpu']['flags'])}), {args.threads} threads, "
        f"{h}x{w}, load {results['load_average'][0]:.1f}\n"
        "| runtime | median (ms) | mIoU (%) |\n|---|---:|---:|\n"
        + "\n".join(
            f"| {name} | {1000 * medians[name]:.1f} | {results['accuracy'][name]['mIoU']:.2f} |"
            for name in predictors
        )
        + f"\nint8 / Keras float32: {results['int8_vs_keras_fp32']:.2f}x time; "
        f"int8 / ONNX float32: {results['int8_vs_onnx_fp32']:.2f}x; mIoU drop {drop:.2f} points"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return results


if __name__ == "__main__":
    sys.path.insert(0, ROOT)
    main()
