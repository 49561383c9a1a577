"""APNB against a standard non-local block: time and peak memory.

The paper (Table 1, Sec. 4.2) compares, on a 256x128 feature map with 512
input channels and 256 key channels, its APNB with a non-local block of the
same channels (full N x N attention, N = 32768 positions), and reports APNB
about 6x faster and 28x smaller in GPU memory. This script measures both
ratios on this machine: each block runs in a fresh subprocess (forward pass,
batch 1, inference mode, float32), timing is the median of several runs after
a warm-up, and memory is the increase of the process's peak RSS over a
baseline subprocess that builds the same inputs and block but does not run
it.

Usage:

    python benchmarks/apnb_vs_nonlocal.py [--repeats 3] [--height 256 --width 128]
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

CHANNELS, KEY_CHANNELS = 512, 256


def build_block(kind):
    import keras_ann

    if kind == "apnb":
        return keras_ann.APNB(key_channels=KEY_CHANNELS, out_channels=CHANNELS)
    return _nonlocal_class()()


def _nonlocal_class():
    import keras
    from keras import ops

    from keras_ann.layers import ConvBNReLU

    class NonLocal(keras.layers.Layer):
        """APNB with the pyramid sampling removed: every position is a key."""

        def __init__(self):
            super().__init__()
            self.key_project = ConvBNReLU(KEY_CHANNELS)
            self.value_project = keras.layers.Conv2D(KEY_CHANNELS, 1)
            self.out_project = keras.layers.Conv2D(CHANNELS, 1)
            self.bottleneck = ConvBNReLU(CHANNELS)

        def call(self, x):
            b, h, w = ops.shape(x)[0], ops.shape(x)[1], ops.shape(x)[2]
            key = ops.reshape(self.key_project(x), (b, -1, KEY_CHANNELS))
            value = ops.reshape(self.value_project(x), (b, -1, KEY_CHANNELS))
            sim = ops.softmax(ops.einsum("bnc,bmc->bnm", key, key) * KEY_CHANNELS**-0.5, axis=-1)
            context = ops.reshape(ops.einsum("bnm,bmc->bnc", sim, value), (b, h, w, KEY_CHANNELS))
            return self.bottleneck(ops.concatenate([self.out_project(context), x], axis=-1))

    return NonLocal


def child(kind, height, width, repeats, run):
    import numpy as np

    block = build_block(kind)
    x = np.random.default_rng(0).normal(size=(1, height, width, CHANNELS)).astype("float32")
    block.build(x.shape)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    if run:
        block(x)  # warm-up
        for _ in range(repeats):
            start = time.perf_counter()
            np.asarray(block(x))
            times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"kind": kind, "times": times, "baseline_kb": baseline, "peak_kb": peak}))


def measure(kind, height, width, repeats, run=True):
    result = subprocess.run(
        [sys.executable, __file__, "--child", kind, "--height", str(height), "--width", str(width),
         "--repeats", str(repeats)] + ([] if run else ["--no-run"]),
        capture_output=True, text=True, check=True,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child")
    parser.add_argument("--no-run", action="store_true")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.height, args.width, args.repeats, not args.no_run)
        return
    import keras

    rows = {}
    for kind in ("apnb", "nonlocal"):
        idle = measure(kind, args.height, args.width, 1, run=False)
        busy = measure(kind, args.height, args.width, args.repeats)
        times = sorted(busy["times"])
        rows[kind] = {
            "median_s": times[len(times) // 2],
            "extra_peak_mb": (busy["peak_kb"] - idle["peak_kb"]) / 1024,
        }
        print(f"{kind:9s} median {rows[kind]['median_s']:.3f} s, peak memory +{rows[kind]['extra_peak_mb']:.0f} MB")
    speed = rows["nonlocal"]["median_s"] / rows["apnb"]["median_s"]
    memory = rows["nonlocal"]["extra_peak_mb"] / max(rows["apnb"]["extra_peak_mb"], 1e-9)
    print(
        f"feature map {args.height}x{args.width}x{CHANNELS}, keys {KEY_CHANNELS}, backend "
        f"{keras.backend.backend()}, {os.cpu_count()} CPU cores: APNB is {speed:.1f}x faster and uses "
        f"{memory:.1f}x less memory (paper, GPU: ~6x and ~28x)"
    )


if __name__ == "__main__":
    main()
