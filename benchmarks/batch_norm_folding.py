"""What folding batch norm into the convolutions saves in inference.

The same ANN model (random weights, batch-norm statistics drawn away from
their initial values) timed unfolded and folded (`keras_ann.fold_batch_norm`)
in one process, the two alternating run by run after a warm-up each, in
float32 and under `mixed_bfloat16`. Prints the medians, the per-pair ratios
(folded / unfolded) and their median, the largest logit difference, and the
CPU model and flags.

Usage:

    PYTHONPATH=. .venv/bin/python benchmarks/batch_norm_folding.py --runs 3
    PYTHONPATH=. .venv/bin/python benchmarks/batch_norm_folding.py --backbone resnet18_d8 --size 360 480
"""

import argparse
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from alternating import alternate  # noqa: E402
from vs_mmseg import cpu_info  # noqa: E402


def _model(backbone, num_classes, precision, seed):
    import keras
    import numpy as np

    import keras_ann

    keras.config.set_dtype_policy(precision)
    try:
        model = keras_ann.ANNSegmenter(backbone=backbone, num_classes=num_classes)
    finally:
        keras.config.set_dtype_policy("float32")
    rng = np.random.default_rng(seed)
    for layer in model._flatten_layers(include_self=True, recursive=True):
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.gamma.shape[0]
            layer.set_weights(
                [rng.uniform(0.5, 1.5, c), rng.normal(0, 0.1, c), rng.normal(0, 0.1, c), rng.uniform(0.5, 2, c)]
            )
    return model, keras_ann.fold_batch_norm(model)


def measure(args, precision):
    import numpy as np

    model, folded = _model(args.backbone, args.num_classes, precision, args.seed)
    h, w = args.size
    images = np.random.default_rng(args.seed).uniform(0, 255, (1, h, w, 3)).astype("float32")
    a = np.asarray(model.predict_on_batch(images), np.float32)
    b = np.asarray(folded.predict_on_batch(images), np.float32)
    times = alternate(
        {"unfolded": lambda: model.predict_on_batch(images), "folded": lambda: folded.predict_on_batch(images)},
        args.runs,
    )
    pairs = [f / u for u, f in zip(times["unfolded"], times["folded"])]
    return {
        "precision": precision,
        "unfolded_median_s": statistics.median(times["unfolded"]),
        "folded_median_s": statistics.median(times["folded"]),
        "pair_ratios": pairs,
        "median_pair_ratio": statistics.median(pairs),
        "max_abs_logit_difference": float(np.abs(a - b).max()),
        "max_abs_logit": float(np.abs(a).max()),
        "times_s": times,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", default="resnet50_d8")
    parser.add_argument("--num-classes", type=int, default=19)
    parser.add_argument("--size", type=int, nargs=2, default=(512, 1024), metavar=("H", "W"))
    parser.add_argument("--precisions", default="float32,mixed_bfloat16")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)

    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    cpu = cpu_info()
    print(f"CPU: {cpu['model']} ({cpu['cores']} cores; {', '.join(cpu['flags'])}); backend {keras.backend.backend()}")
    print(f"ANN {args.backbone}, {args.num_classes} classes, 1x{args.size[0]}x{args.size[1]}, {args.runs} runs")
    results = []
    for precision in args.precisions.split(","):
        r = measure(args, precision)
        results.append(r)
        print(
            f"{precision:15} unfolded {r['unfolded_median_s']:.3f} s  folded {r['folded_median_s']:.3f} s  "
            f"pairs {', '.join(f'{p:.2f}' for p in r['pair_ratios'])}  median {r['median_pair_ratio']:.2f}  "
            f"max |diff| {r['max_abs_logit_difference']:.2e} of {r['max_abs_logit']:.2f}",
            flush=True,
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"cpu": cpu, "args": vars(args), "results": results, "load_average": os.getloadavg()}, f, indent=1)


if __name__ == "__main__":
    main()
