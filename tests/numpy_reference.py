"""PyTorch's spatial ops written from their definitions in NumPy, for tests."""

import math

import numpy as np


def numpy_adaptive_avg_pool(x, out_h, out_w):
    """PyTorch's AdaptiveAvgPool2d bins, written from its definition."""
    n, h, w, c = x.shape
    out = np.zeros((n, out_h, out_w, c), np.float64)
    for i in range(out_h):
        h0, h1 = math.floor(i * h / out_h), math.ceil((i + 1) * h / out_h)
        for j in range(out_w):
            w0, w1 = math.floor(j * w / out_w), math.ceil((j + 1) * w / out_w)
            out[:, i, j] = x[:, h0:h1, w0:w1].mean(axis=(1, 2))
    return out


def numpy_bilinear(x, out_h, out_w, align_corners):
    """PyTorch's bilinear interpolation, written from its definition."""

    def source(dst, in_size, out_size):
        if align_corners:
            scale = (in_size - 1) / (out_size - 1) if out_size > 1 else 0.0
            return dst * scale
        return max((dst + 0.5) * in_size / out_size - 0.5, 0.0)

    n, h, w, c = x.shape
    out = np.zeros((n, out_h, out_w, c), np.float64)
    for i in range(out_h):
        sy = source(i, h, out_h)
        y0 = min(int(math.floor(sy)), h - 1)
        y1, fy = min(y0 + 1, h - 1), sy - y0
        for j in range(out_w):
            sx = source(j, w, out_w)
            x0 = min(int(math.floor(sx)), w - 1)
            x1, fx = min(x0 + 1, w - 1), sx - x0
            out[:, i, j] = (
                (1 - fy) * ((1 - fx) * x[:, y0, x0] + fx * x[:, y0, x1])
                + fy * ((1 - fx) * x[:, y1, x0] + fx * x[:, y1, x1])
            )
    return out
