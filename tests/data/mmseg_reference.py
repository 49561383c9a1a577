"""NumPy re-implementations of mmseg 1.2.2's random transform steps given
their random draws (crop retries, padding, PhotoMetricDistortion's steps),
calling OpenCV for what mmcv does with it; used as oracles of the
TensorFlow pipeline's step-by-step tests.  Images here are RGB; the
reference works in BGR with the same per-channel maths.  The reference's
classes themselves are compared in test_transforms_vs_mmcv.py."""

import numpy as np

F32 = np.float32


# ---------------------------------------------------------------- sizes


def random_resize_scale(scale, ratio):
    """mmcv RandomResize._random_sample_ratio with a given ratio."""
    return int(scale[0] * ratio), int(scale[1] * ratio)


# ---------------------------------------------------------------- crop / pad


def crop_ok(seg, cat_max_ratio, ignore_index=255):
    labels, cnt = np.unique(seg, return_counts=True)
    cnt = cnt[labels != ignore_index]
    return len(cnt) > 1 and np.max(cnt) / np.sum(cnt) < cat_max_ratio


def crop_with_retries(seg, crop_size, offsets, cat_max_ratio, ignore_index=255):
    """mmseg RandomCrop.crop_bbox given its successive random offsets (11)."""
    ch, cw = crop_size

    def bbox(k):
        oy, ox = offsets[k]
        return oy, oy + ch, ox, ox + cw

    box = bbox(0)
    k = 0
    if cat_max_ratio < 1.0:
        for _ in range(10):
            y1, y2, x1, x2 = box
            if crop_ok(seg[y1:y2, x1:x2], cat_max_ratio, ignore_index):
                break
            k += 1
            box = bbox(k)
    return box


def pad(img, seg, size, value, seg_value=255):
    h, w = seg.shape
    th, tw = max(size[0], h), max(size[1], w)
    out = np.empty((th, tw, img.shape[2]), img.dtype)
    out[...] = np.asarray(value, img.dtype)
    out[:h, :w] = img
    lab = np.full((th, tw), seg_value, seg.dtype)
    lab[:h, :w] = seg
    return out, lab


# ---------------------------------------------------------------- colour

def _cv2():
    import cv2

    return cv2


def rgb2hsv(img):
    """mmcv.bgr2hsv, on RGB: cv2.cvtColor(uint8 RGB, COLOR_RGB2HSV)."""
    return _cv2().cvtColor(img, _cv2().COLOR_RGB2HSV)


def hsv2rgb(hsv):
    """mmcv.hsv2bgr, on RGB: cv2.cvtColor(uint8 HSV, COLOR_HSV2RGB)."""
    return _cv2().cvtColor(np.ascontiguousarray(hsv), _cv2().COLOR_HSV2RGB)


def convert(img, alpha=1, beta=0):
    """PhotoMetricDistortion.convert."""
    img = img.astype(F32) * F32(alpha) + F32(beta)
    return np.clip(img, 0, 255).astype(np.uint8)


def photometric(img, p):
    """PhotoMetricDistortion.transform with its random draws given in `p`."""
    if p["brightness"]:
        img = convert(img, beta=p["beta"])
    if p["mode"] == 1 and p["contrast"]:
        img = convert(img, alpha=p["contrast_alpha"])
    if p["saturation"]:
        hsv = rgb2hsv(img)
        hsv[..., 1] = convert(hsv[..., 1], alpha=p["saturation_alpha"])
        img = hsv2rgb(hsv)
    if p["hue"]:
        hsv = rgb2hsv(img)
        hsv[..., 0] = (hsv[..., 0].astype(int) + p["hue_delta"]) % 180
        img = hsv2rgb(hsv)
    if p["mode"] == 0 and p["contrast"]:
        img = convert(img, alpha=p["contrast_alpha"])
    return img
