"""Throughput of the Cityscapes 512x1024 training pipeline.

Generates Cityscapes-layout fixtures (2048x1024 RGB PNGs with smooth
content and noise, and `*_gtFine_labelTrainIds.png` label maps with
several classes and ignored regions) in a temporary directory, then times
`Cityscapes(root, "train").train_dataset()`:
`RandomResize((2048, 1024), (0.5, 2.0))` -> `RandomCrop(512x1024,
cat_max_ratio=0.75)` -> `RandomFlip(0.5)` -> `PhotoMetricDistortion` -> pad,
decoding included.

Usage:

    PYTHONPATH=. .venv/bin/python benchmarks/data_pipeline.py [--samples 120]
"""

import argparse
import gc
import os
import sys
import tempfile
import time

import numpy as np
from PIL import Image


def make_fixtures(root, count, seed=0):
    """Writes `count` Cityscapes-style 2048x1024 pairs under `root`."""
    rng = np.random.default_rng(seed)
    h, w = 1024, 2048
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    for i in range(count):
        city = f"city{i % 2}"
        image_dir = os.path.join(root, "leftImg8bit", "train", city)
        label_dir = os.path.join(root, "gtFine", "train", city)
        os.makedirs(image_dir, exist_ok=True)
        os.makedirs(label_dir, exist_ok=True)
        phase = rng.uniform(0, 2 * np.pi, 3)
        freq = rng.uniform(0.002, 0.01, 3)
        base = np.stack(
            [127 + 100 * np.sin(freq[c] * (xx + 0.5 * yy) + phase[c]) for c in range(3)], -1
        )
        label = np.full((h, w), 0, np.uint8)
        for _ in range(12):
            y0, x0 = rng.integers(0, h - 64), rng.integers(0, w - 64)
            y1, x1 = y0 + rng.integers(64, 400), x0 + rng.integers(64, 800)
            cls = rng.integers(0, 19)
            label[y0:y1, x0:x1] = cls
            base[y0:y1, x0:x1] += rng.uniform(-40, 40, 3)
        label[: h // 10] = 255
        image = np.clip(base + rng.normal(0, 4, base.shape), 0, 255).astype(np.uint8)
        stem = f"{city}_{i:06d}_000019"
        Image.fromarray(image).save(os.path.join(image_dir, stem + "_leftImg8bit.png"))
        Image.fromarray(label).save(os.path.join(label_dir, stem + "_gtFine_labelTrainIds.png"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=120, help="samples to time")
    parser.add_argument("--warmup", type=int, default=16, help="samples before timing")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--fixtures", type=int, default=8, help="distinct image files")
    args = parser.parse_args(argv)

    import tensorflow as tf

    from keras_ann.data import Cityscapes

    with tempfile.TemporaryDirectory() as root:
        make_fixtures(root, args.fixtures)
        dataset = Cityscapes(root, "train")
        stream = dataset.train_dataset(batch_size=args.batch_size, seed=0)
        iterator = iter(stream)
        for _ in range(max(1, args.warmup // args.batch_size)):
            images, labels = next(iterator)
        steps = max(1, args.samples // args.batch_size)
        start = time.perf_counter()
        for _ in range(steps):
            images, labels = next(iterator)
        _ = images.numpy(), labels.numpy()
        elapsed = time.perf_counter() - start
        # Stop the prefetching threads before the fixtures are deleted.
        del iterator, stream
        gc.collect()
    rate = steps * args.batch_size / elapsed
    print(
        f"command: PYTHONPATH=. {os.path.relpath(sys.executable)} benchmarks/data_pipeline.py "
        + " ".join(argv if argv is not None else sys.argv[1:])
    )
    print(f"tensorflow {tf.__version__}, {os.cpu_count()} CPU cores")
    print(
        f"batch {tuple(images.shape)} {images.dtype.name}, labels {tuple(labels.shape)} "
        f"{labels.dtype.name}"
    )
    print(
        f"Cityscapes 512x1024 train pipeline: {rate:.2f} samples/s "
        f"({steps * args.batch_size} samples in {elapsed:.1f} s)"
    )
    return rate


if __name__ == "__main__":
    main()
