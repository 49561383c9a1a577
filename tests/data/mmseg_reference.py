"""NumPy re-implementations of the reference's (mmseg 1.2.2 / mmcv 2.x / OpenCV)
data transforms, written from their documented behaviour, used as the
oracle of the TensorFlow pipeline's tests.  Images here are RGB; the
reference works in BGR with the same per-channel maths."""

import numpy as np

F32 = np.float32


# ---------------------------------------------------------------- sizes


def rescale_size(w, h, scale):
    """mmcv.rescale_size((w, h), scale) with a tuple scale -> (new_w, new_h)."""
    long_edge, short_edge = max(scale), min(scale)
    factor = min(long_edge / max(h, w), short_edge / min(h, w))
    return int(w * float(factor) + 0.5), int(h * float(factor) + 0.5)


def random_resize_scale(scale, ratio):
    """mmcv RandomResize._random_sample_ratio with a given ratio."""
    return int(scale[0] * ratio), int(scale[1] * ratio)


# ---------------------------------------------------------------- resize


def _linear_taps(n_in, n_out, clamp):
    scale = 1.0 / (n_out / n_in)
    d = np.arange(n_out, dtype=np.float64)
    f = ((d + 0.5) * scale - 0.5).astype(F32)
    s = np.floor(f)
    frac = (f - s).astype(F32)
    s = s.astype(np.int64)
    if clamp:
        low = s < 0
        frac[low], s[low] = 0, 0
        high = s >= n_in - 1
        frac[high], s[high] = 0, n_in - 1
    w0 = np.rint((F32(1) - frac) * F32(2048)).astype(np.int64)
    w1 = np.rint(frac * F32(2048)).astype(np.int64)
    return np.clip(s, 0, n_in - 1), np.clip(s + 1, 0, n_in - 1), w0, w1


def cv2_resize_linear(img, out_h, out_w):
    """cv2.resize(img, (out_w, out_h), INTER_LINEAR) for uint8 HxWxC."""
    ys, ys1, wy0, wy1 = _linear_taps(img.shape[0], out_h, clamp=False)
    xs, xs1, wx0, wx1 = _linear_taps(img.shape[1], out_w, clamp=True)
    x = img.astype(np.int64)
    hbuf = x[:, xs] * wx0[None, :, None] + x[:, xs1] * wx1[None, :, None]
    top, bottom = hbuf[ys] >> 4, hbuf[ys1] >> 4
    out = ((top * wy0[:, None, None]) >> 16) + ((bottom * wy1[:, None, None]) >> 16)
    return np.clip((out + 2) >> 2, 0, 255).astype(np.uint8)


def cv2_resize_nearest(lab, out_h, out_w):
    """cv2.resize(lab, (out_w, out_h), INTER_NEAREST)."""
    h, w = lab.shape[:2]
    ys = np.minimum(np.floor(np.arange(out_h) * (1.0 / (out_h / h))).astype(int), h - 1)
    xs = np.minimum(np.floor(np.arange(out_w) * (1.0 / (out_w / w))).astype(int), w - 1)
    return lab[ys][:, xs]


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

_HSV_SHIFT = 12
_SDIV = np.zeros(256, np.int64)
_HDIV = np.zeros(256, np.int64)
_SDIV[1:] = np.rint((255 << _HSV_SHIFT) / np.arange(1, 256, dtype=np.float64))
_HDIV[1:] = np.rint((180 << _HSV_SHIFT) / (6.0 * np.arange(1, 256, dtype=np.float64)))
_SECTOR = np.array([[1, 3, 0], [1, 0, 2], [3, 0, 1], [0, 2, 1], [0, 1, 3], [2, 1, 0]])


def rgb2hsv(img):
    """cv2.cvtColor(uint8 RGB, COLOR_RGB2HSV)."""
    x = img.astype(np.int64)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    v = np.maximum(np.maximum(r, g), b)
    diff = v - np.minimum(np.minimum(r, g), b)
    s = (diff * _SDIV[v] + (1 << 11)) >> _HSV_SHIFT
    h = np.where(v == r, g - b, np.where(v == g, b - r + 2 * diff, r - g + 4 * diff))
    h = (h * _HDIV[diff] + (1 << 11)) >> _HSV_SHIFT
    h = np.where(h < 0, h + 180, h)
    return np.stack([h, s, v], -1).astype(np.uint8)


def hsv2rgb(hsv):
    """cv2.cvtColor(uint8 HSV, COLOR_HSV2RGB) (x86-64 build: fused 1 - s*h;
    each row's first width // 32 * 32 pixels vectorised, truncated to uint8,
    the rest scalar, rounded)."""
    hh = hsv[..., 0].astype(F32) * (F32(6) / F32(180))
    s = hsv[..., 1].astype(F32) * (F32(1) / F32(255))
    v = hsv[..., 2].astype(F32) * (F32(1) / F32(255))
    sector = np.floor(hh)
    frac = (hh - sector).astype(F32)
    sector = sector.astype(int) % 6

    def fused(t):
        return (1.0 - s.astype(np.float64) * t.astype(np.float64)).astype(F32)

    tab = np.stack(
        [v, v * (F32(1) - s), v * fused(frac), v * fused((F32(1) - frac).astype(F32))], -1
    )
    out = []
    for col in (2, 1, 0):  # the table gives (b, g, r)
        val = np.take_along_axis(tab, _SECTOR[sector, col][..., None], -1)[..., 0]
        val = np.where(s == 0, v, val) * F32(255)
        vectorised = np.arange(val.shape[-1]) < val.shape[-1] // 32 * 32
        out.append(np.clip(np.where(vectorised, np.trunc(val), np.rint(val)), 0, 255))
    return np.stack(out, -1).astype(np.uint8)


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
