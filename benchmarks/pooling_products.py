"""The pooling and resize products as matmuls against the einsums they
replaced: the folded ANN forward pass, both variants alternating in one
process.

`keras_ann.ops.separable_product` (exact adaptive pooling, exact bilinear
resize) and `PyramidPooling` (all scales in one pass) replaced two einsums
per product and one pooling per scale. This script traces one folded model
with the earlier code (patched in for its trace only) and one with the
current code, checks that their logits agree, and times them alternating.

Usage:

    PYTHONPATH=. .venv/bin/python benchmarks/pooling_products.py --runs 7 [--precision mixed_bfloat16]
"""

import argparse
import json
import statistics
import sys
import time


def _einsum_product(x, rows, cols):
    """The earlier `separable_product`."""
    from keras import ops

    x = ops.einsum("ih,bhwc->biwc", rows, x)
    return ops.einsum("jw,biwc->bijc", cols, x)


def _per_scale_call(self, inputs):
    """The earlier `PyramidPooling.call`: one pooling per scale."""
    from keras import ops

    from keras_ann.ops import adaptive_avg_pool2d

    batch, channels = ops.shape(inputs)[0], ops.shape(inputs)[-1]
    pooled = [ops.reshape(adaptive_avg_pool2d(inputs, s), (batch, s * s, channels)) for s in self.pool_scales]
    return ops.concatenate(pooled, axis=1)


def folded_model_parser(doc):
    """The arguments of a script that times one folded model traced two
    ways, alternating (this one, `conv_as_matmul.py`)."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--backbone", default="resnet50_d8")
    parser.add_argument("--size", type=int, nargs=2, default=(512, 1024), metavar=("H", "W"))
    parser.add_argument("--precision", default="float32", choices=("float32", "mixed_bfloat16"))
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    return parser


def main(argv=None):
    args = folded_model_parser(__doc__).parse_args(argv)
    import numpy as np
    import tensorflow as tf

    import keras
    import keras_ann
    from keras_ann import ops as ann_ops
    from keras_ann.layers import pyramid_pooling
    from vs_mmseg import cpu_info  # benchmarks/ is this script's own directory

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    keras.config.set_dtype_policy(args.precision)
    base = keras_ann.ANNSegmenter(backbone=args.backbone, num_classes=19)
    images = np.random.default_rng(0).uniform(0, 255, (1, *args.size, 3)).astype("float32")
    current = (ann_ops.separable_product, pyramid_pooling.PyramidPooling.call)
    models = {}
    try:
        for name, (product, call) in (("einsum", (_einsum_product, _per_scale_call)), ("matmul", current)):
            ann_ops.separable_product, pyramid_pooling.PyramidPooling.call = product, call
            model = keras_ann.fold_batch_norm(base)
            model.predict_on_batch(images)  # traced with this variant
            models[name] = model
    finally:
        ann_ops.separable_product, pyramid_pooling.PyramidPooling.call = current
    logits = {name: np.asarray(m.predict_on_batch(images), np.float32) for name, m in models.items()}
    times = {name: [] for name in models}
    for _ in range(args.runs):
        for name, model in models.items():
            begin = time.perf_counter()
            model.predict_on_batch(images)
            times[name].append(time.perf_counter() - begin)
    pairs = [a / b for a, b in zip(times["matmul"], times["einsum"])]
    result = {
        "cpu": cpu_info(),
        "precision": args.precision,
        "size": list(args.size),
        "max_abs_logit_difference": float(np.abs(logits["matmul"] - logits["einsum"]).max()),
        "median_s": {name: statistics.median(t) for name, t in times.items()},
        "pair_ratios": pairs,
        "median_pair_ratio": statistics.median(pairs),
    }
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
