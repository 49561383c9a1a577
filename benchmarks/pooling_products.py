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

import json
import statistics
import sys

from alternating import alternate, folded_model_parser  # benchmarks/ is this script's own directory


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
    times = alternate({name: (lambda m=m: m.predict_on_batch(images)) for name, m in models.items()}, args.runs)
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
