"""Peak memory and time of `keras-ann predict` on huge images, each in a
fresh process.

An ANN of the CamVid recipe's architecture (`ann_r18_d16_camvid_cpu_1h`:
ResNet-18-D16, 11 classes; random weights, memory does not depend on
their values) is saved as a `.keras` file; for each size a square RGB JPEG
(smooth colours and noise) is written, and `python -m keras_ann.cli predict
MODEL IMAGE --mode slide --crop 512 512 --stride 341 341` runs in a new
process. Its peak resident memory is read from `getrusage(RUSAGE_CHILDREN)`
by a wrapper process that runs only that command; the wall time is the
whole command (imports, model load, image read, inference, writing
`*_labels.png` and `*_overlay.png`).

Usage:

    PYTHONPATH=. .venv/bin/python benchmarks/huge_image_memory.py [--sizes 2000 5000 9000] [--backbone resnet18_d16]
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time


def _measure(command):
    """Run `command`; print its peak RSS (GB) and wall time as JSON."""
    start = time.perf_counter()
    code = subprocess.run(command).returncode
    seconds = time.perf_counter() - start
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(json.dumps({"returncode": code, "peak_gb": peak_kb / 1e6, "seconds": seconds}))


def _write_image(path, size, seed=0):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    for c, channel in enumerate((np.sin(7 * x) * 100 + 120, np.cos(5 * y) * 100 + 120, (x + y) * 100)):
        noise = rng.normal(0, 20, (size, size)).astype(np.float32)
        plane = np.clip(channel + noise, 0, 255).astype(np.uint8)
        if c == 0:
            image = np.empty((size, size, 3), np.uint8)
        image[..., c] = plane
    Image.fromarray(image).save(path, quality=90)


def _save_model(path, backbone, num_classes):
    import keras_ann
    from keras_ann.test_protocol import TestProtocol

    protocol = TestProtocol(mode="slide", crop=(512, 512), stride=(341, 341))
    model = keras_ann.ANNSegmenter(backbone=backbone, num_classes=num_classes, test_protocol=protocol)
    model.save(path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 5000, 9000])
    parser.add_argument("--backbone", default="resnet18_d16")
    parser.add_argument("--num-classes", type=int, default=11)
    parser.add_argument("--measure", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        return _measure(args.measure)
    work = tempfile.mkdtemp(prefix="huge_image_")
    model = os.path.join(work, "model.keras")
    _save_model(model, args.backbone, args.num_classes)
    rows = []
    for size in args.sizes:
        image = os.path.join(work, f"image_{size}.jpg")
        _write_image(image, size)
        command = [sys.executable, "-m", "keras_ann.cli", "predict", model, image, "--output-dir",
                   os.path.join(work, "out"), "--mode", "slide", "--crop", "512", "512", "--stride", "341", "341"]
        result = subprocess.run([sys.executable, os.path.abspath(__file__), "--measure", *command],
                                capture_output=True, text=True)
        measured = json.loads(result.stdout.strip().splitlines()[-1])
        windows = (max(size - 512 + 340, 0) // 341 + 1) ** 2
        rows.append({"size": size, "windows": windows, **measured})
        print(json.dumps(rows[-1]), flush=True)
        if measured["returncode"]:
            print(result.stderr[-2000:], file=sys.stderr)
        os.remove(image)
    print(f"\n| image | windows 512x512 | peak RSS | wall time |\n|---|---|---|---|")
    for row in rows:
        print(f"| {row['size']}x{row['size']} | {row['windows']} | {row['peak_gb']:.2f} GB | {row['seconds']:.0f} s |")


if __name__ == "__main__":
    main()
