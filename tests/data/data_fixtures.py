"""Helpers writing small images and label maps for the data tests."""

import os

import numpy as np
from PIL import Image

H, W = 64, 128
# ../shared beside the checkout, as CI lays it out.
CAMVID_ROOT = os.path.join(
    os.environ.get(
        "KERAS_ANN_SHARED",
        os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared"),
    ),
    "data",
    "camvid",
)


def random_image(rng, h=H, w=W):
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 2, yy * 4, (xx + yy) % 256], -1).astype(np.float64)
    return np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)


def blocky_label(rng, values, h=H, w=W, block=16):
    small = rng.choice(np.asarray(values), size=(h // block + 1, w // block + 1))
    return np.kron(small, np.ones((block, block), np.int64))[:h, :w].astype(np.uint8)


def save(array, path, **kwargs):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(array).save(path, **kwargs)
