"""The heads' wide convolutions as one matrix product
(`keras_ann.ops.conv2d_as_matmul`) against TensorFlow's convolution.

Two measurements, each variant alternating with the other in one process:

- per shape: a stride-1 3x3 convolution + bias + ReLU at a feature map's
  size, as `keras.ops.conv` and as `conv2d_as_matmul`, in float32 and
  bfloat16 (medians of `--runs`);
- the model: the folded ANN forward pass (`keras_ann.fold_batch_norm`, as
  `keras-ann predict` runs it) traced once with the matrix-product path
  (`ConvBNReLU`'s, from `MATMUL_MIN_CHANNELS` input channels) and once
  without it (traced under `plain_convolutions()`), their logits
  compared, then timed alternating.

Usage:

    PYTHONPATH=. .venv/bin/python benchmarks/conv_as_matmul.py --runs 7 [--precision mixed_bfloat16] [--json conv.json]
"""

import contextlib
import json
import statistics
import sys

from alternating import alternate, folded_model_parser  # benchmarks/ is this script's own directory

SHAPES = (  # (H, W, input channels, output channels)
    (64, 128, 2048, 512),  # ANNHead's bottleneck at 512x1024 (output stride 8)
    (97, 97, 2048, 512),  # the same at 769x769
    (64, 128, 1024, 512),
    (64, 128, 1024, 256),
    (64, 128, 512, 512),
    (128, 256, 512, 256),
)


def per_shape(runs, dtypes=("float32", "bfloat16")):
    import keras
    import tensorflow as tf

    from keras_ann.ops import conv2d_as_matmul

    rows = []
    for dtype in dtypes:
        for height, width, c_in, c_out in SHAPES:
            x = tf.cast(tf.random.normal((1, height, width, c_in)), dtype)
            kernel = tf.Variable(tf.cast(tf.random.normal((3, 3, c_in, c_out)) * 0.02, dtype))
            bias = tf.Variable(tf.zeros(c_out, dtype))
            conv = tf.function(lambda: tf.nn.relu(keras.ops.conv(x, kernel, padding="same") + bias))
            matmul = tf.function(lambda: tf.nn.relu(conv2d_as_matmul(x, kernel, 1, "same") + bias))
            functions = {"conv": lambda: conv().numpy(), "matmul": lambda: matmul().numpy()}
            for f in functions.values():
                f()  # traced, and warm
            times = alternate(functions, runs)
            gflops = 2 * 9 * height * width * c_in * c_out / 1e9
            medians = {name: statistics.median(t) for name, t in times.items()}
            rows.append({
                "dtype": dtype, "shape": [height, width, c_in, c_out], "gflops": gflops,
                "median_ms": {name: 1e3 * t for name, t in medians.items()},
                "gflop_per_s": {name: gflops / t for name, t in medians.items()},
                "matmul_over_conv": medians["matmul"] / medians["conv"],
            })
            print(json.dumps(rows[-1]), flush=True)
    return rows


def whole_model(args):
    import numpy as np

    import keras
    import keras_ann
    from keras_ann.layers import conv_bn

    keras.config.set_dtype_policy(args.precision)
    base = keras_ann.ANNSegmenter(backbone=args.backbone, num_classes=19)
    images = np.random.default_rng(0).uniform(0, 255, (1, *args.size, 3)).astype("float32")
    models = {}
    for name, context in (("conv", conv_bn.plain_convolutions), ("matmul", contextlib.nullcontext)):
        with context():
            model = keras_ann.fold_batch_norm(base)
            model.predict_on_batch(images)  # traced with this variant
        models[name] = model
    logits = {name: np.asarray(m.predict_on_batch(images), np.float32) for name, m in models.items()}
    times = alternate({name: (lambda m=m: m.predict_on_batch(images)) for name, m in models.items()}, args.runs)
    pairs = [a / b for a, b in zip(times["matmul"], times["conv"])]
    return {
        "precision": args.precision,
        "backbone": args.backbone,
        "size": list(args.size),
        "max_abs_logit_difference": float(np.abs(logits["matmul"] - logits["conv"]).max()),
        "max_abs_logit": float(np.abs(logits["conv"]).max()),
        "seconds": times,
        "median_s": {name: statistics.median(t) for name, t in times.items()},
        "pair_ratios": pairs,
        "median_pair_ratio": statistics.median(pairs),
    }


def main(argv=None):
    parser = folded_model_parser(__doc__)
    parser.add_argument("--skip-shapes", action="store_true", help="only the whole-model comparison")
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args(argv)
    import tensorflow as tf

    from vs_mmseg import cpu_info  # benchmarks/ is this script's own directory

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    result = {"cpu": cpu_info(), "threads": args.threads}
    if not args.skip_shapes:
        result["shapes"] = per_shape(args.runs)
    result["model"] = whole_model(args)
    print(json.dumps(result["model"], indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
