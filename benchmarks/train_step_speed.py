"""Training-step time of an ANN model on this machine, by backbone and precision.

What chose the CamVid CPU recipe `ann_r18_d16_camvid_cpu_1h` (BENCHMARKS.md,
"CamVid from scratch in an hour"): each setting in a fresh process, one
`fit()` step on random 0..255 images and labels of 11 classes, the recipe's
loss and SGD, median of `--steps` steps after `--warmup`.

    PYTHONPATH=. .venv/bin/python benchmarks/train_step_speed.py \\
        --backbones resnet18_d8,resnet18_d16 --precisions float32,mixed_bfloat16 --crop 256 256 --batch 8
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def measure(backbone, precision, crop, batch, warmup, steps):
    """Seconds per training step (median), in this process."""
    import keras
    import numpy as np

    from keras_ann import ANNSegmenter
    from keras_ann.recipes import get_recipe
    from keras_ann.training import compile_for_recipe

    keras.mixed_precision.set_global_policy(precision)
    model = ANNSegmenter(backbone=backbone, num_classes=11)
    compile_for_recipe(model, get_recipe("ann_r18_d16_camvid_cpu_1h"), precision=precision)
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (batch, *crop, 3)).astype("float32")
    labels = rng.integers(0, 11, (batch, *crop)).astype("int32")
    times = []
    for step in range(warmup + steps):
        start = time.perf_counter()
        model.train_on_batch(images, labels)
        if step >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backbones", default="resnet18_d8,resnet18_d16")
    parser.add_argument("--precisions", default="float32,mixed_bfloat16")
    parser.add_argument("--crop", type=int, nargs=2, default=(256, 256), metavar=("H", "W"))
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--worker", nargs=2, metavar=("BACKBONE", "PRECISION"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        seconds = measure(*args.worker, tuple(args.crop), args.batch, args.warmup, args.steps)
        print(json.dumps({"seconds": seconds}))
        return 0
    from vs_mmseg import cpu_info  # benchmarks/ is this script's own directory

    print(f"# {json.dumps(cpu_info())}")
    print(f"| backbone | precision | s/step ({args.batch}x{args.crop[0]}x{args.crop[1]}) | Mpx/s |")
    print("|---|---|---:|---:|")
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for backbone in args.backbones.split(","):
        for precision in args.precisions.split(","):
            command = [
                sys.executable, __file__, "--worker", backbone, precision, "--crop", *map(str, args.crop),
                "--batch", str(args.batch), "--warmup", str(args.warmup), "--steps", str(args.steps),
            ]  # fmt: skip
            out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
            seconds = json.loads(out.strip().splitlines()[-1])["seconds"]
            pixels = args.batch * args.crop[0] * args.crop[1]
            print(f"| {backbone} | {precision} | {seconds:.3f} | {pixels / seconds / 1e6:.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
