"""mmsegmentation's training and test transforms as TensorFlow graph ops.

Every function here runs inside `tf.data` (no Python per pixel) and every
random choice is drawn with a stateless op from an explicit `seed` (a shape
`[2]` integer tensor), so a pipeline built with the same seed yields the same
samples.  The numerical behaviour follows mmsegmentation 1.2.2 / mmcv 2.x:

* `random_resize_scale` + `rescale_size`: mmcv's `RandomResize(scale,
  ratio_range, keep_ratio=True)`: `ratio ~ U[min, max)`, target scale
  `(int(s0 * ratio), int(s1 * ratio))`, then mmcv's `rescale_size` rule
  (`factor = min(long / max(h, w), short / min(h, w))`,
  `new = int(old * factor + 0.5)`), all in float64 as in Python.
* `resize_image`: OpenCV's `INTER_LINEAR` for `uint8` images (what
  `mmcv.imresize` calls): the same sampling grid (half-pixel centres; x
  positions clamped with zero weight, y rows clamped keeping their weights)
  and the same fixed-point arithmetic (11-bit weights, the rounding of
  OpenCV's vectorised vertical pass), bit-identical to `cv2.resize` on every
  size the tests try.
* `resize_label`: OpenCV's `INTER_NEAREST` (`src = floor(dst * in / out)`,
  no half-pixel offset); labels are only ever resized this way.
* Both resizes accept a *window* of the output, so the training pipeline
  computes only the pixels that survive the random crop (identical numbers to
  resizing the whole image and cropping, at a fraction of the cost).
* `random_crop_window`: mmseg's `RandomCrop(crop_size, cat_max_ratio)`:
  offsets uniform in `[0, max(size - crop, 0)]`; with `cat_max_ratio < 1`
  up to 10 re-draws until the crop holds more than one non-ignored class and
  no class covers `cat_max_ratio` or more of the non-ignored pixels (the
  11th candidate is used unchecked, as in the reference).
* `photometric_distortion`: mmseg's `PhotoMetricDistortion` on `uint8`:
  brightness (p=0.5, `beta ~ U(-32, 32)`), contrast first or last (mode
  p=0.5; p=0.5, `alpha ~ U(0.5, 1.5)`), saturation (p=0.5,
  `alpha ~ U(0.5, 1.5)` on OpenCV's 8-bit HSV S channel), hue (p=0.5,
  integer `delta` in `[-18, 17]` as `numpy.random.randint(-18, 18)`), each
  step computed in float32, clipped to `[0, 255]` and truncated to `uint8`;
  the HSV round trips replicate OpenCV's 8-bit `cvtColor` exactly.  The
  reference works in BGR; the same maths is applied to RGB channels.
* `pad_to_size`: bottom/right padding to the crop size (mmseg's
  `SegDataPreProcessor`); labels are padded with the ignore index.
"""

import numpy as np
import tensorflow as tf

from keras_ann.checks import check_pair

__all__ = [
    "rescale_size",
    "random_resize_scale",
    "resize_image",
    "resize_label",
    "crop_window_ok",
    "random_crop_window",
    "random_flip",
    "sample_photometric_params",
    "photometric_distortion",
    "rgb_to_hsv_cv2",
    "hsv_to_rgb_cv2",
    "pad_to_size",
    "train_transform",
    "test_transform",
    "split_seed",
]

_COEF_BITS = 11
_COEF_SCALE = 1 << _COEF_BITS  # OpenCV's INTER_RESIZE_COEF_SCALE

# OpenCV's 8-bit RGB->HSV division tables (hsv_shift = 12, hue range 180).
_HSV_SHIFT = 12
_SDIV_TABLE = np.zeros(256, np.int64)
_HDIV_TABLE = np.zeros(256, np.int64)
_SDIV_TABLE[1:] = np.rint((255 << _HSV_SHIFT) / np.arange(1, 256, dtype=np.float64))
_HDIV_TABLE[1:] = np.rint((180 << _HSV_SHIFT) / (6.0 * np.arange(1, 256, dtype=np.float64)))
# OpenCV's HSV->RGB sector table: (b, g, r) indices into (v, p, q, t).
_SECTOR_BGR = np.array([[1, 3, 0], [1, 0, 2], [3, 0, 1], [0, 2, 1], [0, 1, 3], [2, 1, 0]], np.int32)


def split_seed(seed, num):
    """Splits a stateless seed into `num` independent seeds.

    Args:
        seed: shape `[2]` integer tensor.
        num: int, number of seeds.

    Returns:
        A `[num, 2]` int tensor.
    """
    return tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num)


# --------------------------------------------------------------------------
# Sizes
# --------------------------------------------------------------------------


def rescale_size(height, width, scale):
    """mmcv's `rescale_size` (keep-ratio resize target) as graph ops.

    The image is scaled by `min(max(scale) / max(h, w), min(scale) /
    min(h, w))` and each side rounded with `int(side * factor + 0.5)`.

    Args:
        height: int or int tensor, input height.
        width: int or int tensor, input width.
        scale: pair of ints or a `[2]` int tensor, the `(long, short)`
            bound in either order, e.g. `(2048, 1024)`.

    Returns:
        `(new_height, new_width)` as int32 scalar tensors.

    Example:

    >>> [int(v) for v in rescale_size(1024, 2048, (1024, 512))]
    [512, 1024]
    """
    scale = tf.cast(scale, tf.float64)
    h = tf.cast(height, tf.float64)
    w = tf.cast(width, tf.float64)
    long_edge = tf.reduce_max(scale)
    short_edge = tf.reduce_min(scale)
    factor = tf.minimum(long_edge / tf.maximum(h, w), short_edge / tf.minimum(h, w))
    new_w = tf.cast(tf.floor(w * factor + 0.5), tf.int32)
    new_h = tf.cast(tf.floor(h * factor + 0.5), tf.int32)
    return new_h, new_w


def random_resize_scale(seed, scale, ratio_range=(0.5, 2.0)):
    """mmcv `RandomResize`'s scale: `(int(s0 * r), int(s1 * r))`, `r ~ U[lo, hi)`.

    Args:
        seed: shape `[2]` int tensor.
        scale: pair of ints, e.g. `(2048, 1024)`.
        ratio_range: pair of floats.

    Returns:
        A `[2]` int32 tensor, the sampled scale (same order as `scale`).
    """
    scale = check_pair(scale, "scale")  # a negative scale would fail in the tf.data threads
    lo, hi = float(ratio_range[0]), float(ratio_range[1])
    if lo > hi:
        raise ValueError(f"`ratio_range` must be (min, max), got {ratio_range!r}.")
    u = tf.random.stateless_uniform([], seed=seed, dtype=tf.float64)
    ratio = u * (hi - lo) + lo
    s = tf.constant([float(scale[0]), float(scale[1])], tf.float64)
    return tf.cast(tf.floor(s * ratio), tf.int32)


# --------------------------------------------------------------------------
# Resizing (OpenCV semantics)
# --------------------------------------------------------------------------


def _linear_taps(in_size, out_size, start, length, clamp_weights):
    """OpenCV INTER_LINEAR source indices and fixed-point weights along one axis.

    OpenCV zeroes the fraction of out-of-range positions along x only; along y
    it keeps the weights and clamps the two source rows (which then coincide).
    """
    in_size = tf.cast(in_size, tf.int32)
    inv_scale = tf.cast(out_size, tf.float64) / tf.cast(in_size, tf.float64)
    scale = 1.0 / inv_scale
    dst = tf.cast(tf.range(start, start + length), tf.float64)
    f = tf.cast((dst + 0.5) * scale - 0.5, tf.float32)
    s = tf.floor(f)
    frac = f - s
    s = tf.cast(s, tf.int32)
    if clamp_weights:
        low = s < 0
        frac = tf.where(low, 0.0, frac)
        s = tf.where(low, 0, s)
        high = s >= in_size - 1
        frac = tf.where(high, 0.0, frac)
        s = tf.where(high, in_size - 1, s)
    w0 = tf.cast(tf.round((1.0 - frac) * float(_COEF_SCALE)), tf.int32)
    w1 = tf.cast(tf.round(frac * float(_COEF_SCALE)), tf.int32)
    s1 = tf.clip_by_value(s + 1, 0, in_size - 1)
    s = tf.clip_by_value(s, 0, in_size - 1)
    return s, s1, w0, w1


def _nearest_taps(in_size, out_size, start, length):
    """OpenCV INTER_NEAREST source indices along one axis."""
    in_size = tf.cast(in_size, tf.int32)
    inv_scale = tf.cast(out_size, tf.float64) / tf.cast(in_size, tf.float64)
    dst = tf.cast(tf.range(start, start + length), tf.float64)
    src = tf.cast(tf.floor(dst * (1.0 / inv_scale)), tf.int32)
    return tf.minimum(src, in_size - 1)


def _window(size, window):
    if window is None:
        return 0, 0, size[0], size[1]
    return window


def resize_image(image, size, window=None):
    """Resizes a `uint8` image as `cv2.resize(..., INTER_LINEAR)` does.

    Args:
        image: `uint8` tensor `[H, W, C]`.
        size: `(out_height, out_width)`, ints or int scalar tensors.
        window: optional `(y0, x0, h, w)`: compute only this window of the
            resized image (the same numbers as resizing then slicing).

    Returns:
        `uint8` tensor `[h, w, C]` (the window, or the full `size`).

    Example:

    >>> import numpy as np
    >>> x = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    >>> resize_image(x, (2, 2)).shape
    TensorShape([2, 2, 3])
    """
    image = tf.convert_to_tensor(image)
    shape = tf.shape(image)
    in_h, in_w = shape[0], shape[1]
    out_h, out_w = size
    y0, x0, h, w = _window((out_h, out_w), window)
    ys, ys1, wy0, wy1 = _linear_taps(in_h, out_h, y0, h, clamp_weights=False)
    xs, xs1, wx0, wx1 = _linear_taps(in_w, out_w, x0, w, clamp_weights=True)
    # Horizontal pass over the source rows the window needs only.
    r0 = tf.reduce_min(ys)
    r1 = tf.reduce_max(ys1) + 1
    rows = image[r0:r1]
    left = tf.cast(tf.gather(rows, xs, axis=1), tf.int32)
    right = tf.cast(tf.gather(rows, xs1, axis=1), tf.int32)
    hbuf = left * wx0[None, :, None] + right * wx1[None, :, None]
    # Vertical pass with OpenCV's vectorised rounding:
    # ((top >> 4) * b0 >> 16) + ((bottom >> 4) * b1 >> 16), then (+2) >> 2.
    shift = tf.bitwise.right_shift
    top = shift(tf.gather(hbuf, ys - r0), 4)
    bottom = shift(tf.gather(hbuf, ys1 - r0), 4)
    out = shift(top * wy0[:, None, None], 16) + shift(bottom * wy1[:, None, None], 16)
    out = shift(out + 2, 2)
    return tf.cast(tf.clip_by_value(out, 0, 255), tf.uint8)


def resize_label(label, size, window=None):
    """Resizes a label map as `cv2.resize(..., INTER_NEAREST)` does.

    Args:
        label: tensor `[H, W]` (any dtype).
        size: `(out_height, out_width)`.
        window: optional `(y0, x0, h, w)` window of the output.

    Returns:
        Tensor `[h, w]` of the input dtype.

    Example:

    >>> import numpy as np
    >>> resize_label(np.array([[1, 2], [3, 4]], np.uint8), (4, 4)).numpy()[0]
    array([1, 1, 2, 2], dtype=uint8)
    """
    label = tf.convert_to_tensor(label)
    shape = tf.shape(label)
    out_h, out_w = size
    y0, x0, h, w = _window((out_h, out_w), window)
    ys = _nearest_taps(shape[0], out_h, y0, h)
    xs = _nearest_taps(shape[1], out_w, x0, w)
    return tf.gather(tf.gather(label, ys, axis=0), xs, axis=1)


# --------------------------------------------------------------------------
# Random crop
# --------------------------------------------------------------------------


def _crop_offsets(seed, height, width, crop_h, crop_w):
    seeds = split_seed(seed, 2)
    margin_h = tf.maximum(height - crop_h, 0)
    margin_w = tf.maximum(width - crop_w, 0)
    oy = tf.random.stateless_uniform([], seeds[0], 0, margin_h + 1, dtype=tf.int32)
    ox = tf.random.stateless_uniform([], seeds[1], 0, margin_w + 1, dtype=tf.int32)
    return oy, ox


def crop_window_ok(label_crop, cat_max_ratio, ignore_index=255):
    """mmseg's crop acceptance test.

    True when the crop holds more than one non-ignored class and the most
    frequent one covers less than `cat_max_ratio` of the non-ignored pixels.

    Args:
        label_crop: integer tensor of labels (values in `[0, 255]`).
        cat_max_ratio: float.
        ignore_index: int, excluded from the counts.

    Returns:
        Boolean scalar tensor.
    """
    values = tf.reshape(tf.cast(label_crop, tf.int32), [-1])
    counts = tf.math.bincount(values, minlength=256, maxlength=256, dtype=tf.int64)
    keep = tf.not_equal(tf.range(256), ignore_index)
    counts = tf.boolean_mask(counts, keep)
    present = tf.math.count_nonzero(counts)
    total = tf.cast(tf.reduce_sum(counts), tf.float64)
    top = tf.cast(tf.reduce_max(counts), tf.float64)
    ratio = top / tf.maximum(total, 1.0)
    return tf.logical_and(present > 1, ratio < cat_max_ratio)


def random_crop_window(
    seed, label_fn, height, width, crop_size, cat_max_ratio=1.0, ignore_index=255
):
    """Draws mmseg `RandomCrop`'s window.

    Args:
        seed: shape `[2]` int tensor.
        label_fn: callable `(y0, x0, h, w) -> label window`, used for the
            `cat_max_ratio` test (so the full label never has to exist).
        height: int scalar tensor, height of the image being cropped.
        width: int scalar tensor, its width.
        crop_size: `(crop_h, crop_w)`.
        cat_max_ratio: float; `>= 1` disables the re-draws.
        ignore_index: int, the ignored label value.

    Returns:
        `(y0, x0, h, w)` int32 scalar tensors, `h = min(height, crop_h)`,
        `w = min(width, crop_w)`.
    """
    crop_h, crop_w = check_pair(crop_size, "crop_size")
    h = tf.minimum(height, crop_h)
    w = tf.minimum(width, crop_w)
    seeds = split_seed(seed, 11)
    y0, x0 = _crop_offsets(seeds[0], height, width, crop_h, crop_w)
    if cat_max_ratio >= 1.0:
        return y0, x0, h, w

    def cond(i, y, x):
        ok = crop_window_ok(label_fn(y, x, h, w), cat_max_ratio, ignore_index)
        return tf.logical_and(i < 10, tf.logical_not(ok))

    def body(i, y, x):
        y, x = _crop_offsets(tf.gather(seeds, i + 1), height, width, crop_h, crop_w)
        return i + 1, y, x

    _, y0, x0 = tf.while_loop(cond, body, (tf.constant(0), y0, x0))
    return y0, x0, h, w


def random_flip(seed, image, label, prob=0.5):
    """Horizontal flip with probability `prob` (mmcv `RandomFlip`).

    Args:
        seed: shape `[2]` int tensor.
        image: tensor `[H, W, C]`.
        label: tensor `[H, W]`.
        prob: float.

    Returns:
        `(image, label)`.
    """
    image = tf.convert_to_tensor(image)
    label = tf.convert_to_tensor(label)
    flip = tf.random.stateless_uniform([], seed=seed, dtype=tf.float64) < prob
    image = tf.cond(flip, lambda: tf.reverse(image, [1]), lambda: image)
    label = tf.cond(flip, lambda: tf.reverse(label, [1]), lambda: label)
    return image, label


# --------------------------------------------------------------------------
# Photometric distortion
# --------------------------------------------------------------------------


def rgb_to_hsv_cv2(image):
    """OpenCV's 8-bit `cvtColor(RGB2HSV)`: H in `[0, 180)`, S and V in `[0, 255]`.

    Args:
        image: `uint8` tensor `[..., 3]`, RGB.

    Returns:
        `int32` tensor `[..., 3]`, (H, S, V).
    """
    x = tf.cast(image, tf.int32)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    v = tf.maximum(tf.maximum(r, g), b)
    vmin = tf.minimum(tf.minimum(r, g), b)
    diff = v - vmin
    sdiv = tf.constant(_SDIV_TABLE, tf.int32)
    hdiv = tf.constant(_HDIV_TABLE, tf.int32)
    half = 1 << (_HSV_SHIFT - 1)
    s = tf.bitwise.right_shift(diff * tf.gather(sdiv, v) + half, _HSV_SHIFT)
    h = tf.where(
        tf.equal(v, r),
        g - b,
        tf.where(tf.equal(v, g), b - r + 2 * diff, r - g + 4 * diff),
    )
    h = tf.bitwise.right_shift(h * tf.gather(hdiv, diff) + half, _HSV_SHIFT)
    h = tf.where(h < 0, h + 180, h)
    return tf.stack([h, s, v], axis=-1)


def hsv_to_rgb_cv2(hsv):
    """OpenCV's 8-bit `cvtColor(HSV2RGB)` (float32 maths, round half even).

    Bit-identical to the x86-64 OpenCV wheels over all 180 * 256 * 256
    inputs, including their fused multiply-adds in `1 - s * h`.

    Args:
        hsv: integer tensor `[..., 3]` with H in `[0, 180)`, S, V in `[0, 255]`.

    Returns:
        `uint8` tensor `[..., 3]`, RGB.
    """
    hsv = tf.cast(hsv, tf.float32)
    h = hsv[..., 0] * tf.constant(np.float32(6.0) / np.float32(180.0), tf.float32)
    inv255 = tf.constant(np.float32(1.0) / np.float32(255.0), tf.float32)
    s = hsv[..., 1] * inv255
    v = hsv[..., 2] * inv255
    h = tf.where(h >= 6.0, h - 6.0, h)
    sector_f = tf.floor(h)
    h = h - sector_f
    sector = tf.cast(sector_f, tf.int32)
    bad = tf.logical_or(sector < 0, sector >= 6)
    sector = tf.where(bad, 0, sector)
    h = tf.where(bad, 0.0, h)
    # OpenCV's vectorised code is compiled with FMA contraction, so
    # `1 - s * h` is rounded once: form it in float64 (exact product).
    s64 = tf.cast(s, tf.float64)

    def one_minus_s_times(t):
        return tf.cast(1.0 - s64 * tf.cast(t, tf.float64), tf.float32)

    tab = [v, v * (1.0 - s), v * one_minus_s_times(h), v * one_minus_s_times(1.0 - h)]
    table = tf.constant(_SECTOR_BGR, tf.int32)

    def pick(column):
        idx = tf.gather(table[:, column], sector)
        out = tf.where(
            tf.equal(idx, 0),
            tab[0],
            tf.where(tf.equal(idx, 1), tab[1], tf.where(tf.equal(idx, 2), tab[2], tab[3])),
        )
        out = tf.where(tf.equal(s, 0.0), v, out)
        return tf.cast(tf.clip_by_value(tf.round(out * 255.0), 0.0, 255.0), tf.uint8)

    # OpenCV's table gives (b, g, r); return RGB.
    return tf.stack([pick(2), pick(1), pick(0)], axis=-1)


def _convert(x, alpha=1.0, beta=0.0):
    """mmseg's `convert`: float32 `x * alpha + beta`, clip, truncate to uint8."""
    y = tf.cast(x, tf.float32) * tf.cast(alpha, tf.float32) + tf.cast(beta, tf.float32)
    return tf.cast(tf.clip_by_value(y, 0.0, 255.0), tf.uint8)


def sample_photometric_params(
    seed,
    brightness_delta=32,
    contrast_range=(0.5, 1.5),
    saturation_range=(0.5, 1.5),
    hue_delta=18,
):
    """Draws the random choices of mmseg's `PhotoMetricDistortion`.

    Args:
        seed: shape `[2]` int tensor.
        brightness_delta: int.
        contrast_range: `(lower, upper)`.
        saturation_range: `(lower, upper)`.
        hue_delta: int.

    Returns:
        A dict of scalar tensors: `brightness` (bool), `beta`, `mode` (0:
        contrast last, 1: contrast first), `contrast` (bool),
        `contrast_alpha`, `saturation` (bool), `saturation_alpha`, `hue`
        (bool), `hue_delta` (int32).
    """
    s = split_seed(seed, 9)

    def coin(i):
        return tf.random.stateless_uniform([], s[i], 0, 2, dtype=tf.int32) > 0

    def uniform(i, lo, hi):
        return tf.random.stateless_uniform([], s[i], float(lo), float(hi), dtype=tf.float64)

    return {
        "brightness": coin(0),
        "beta": uniform(1, -brightness_delta, brightness_delta),
        "mode": tf.random.stateless_uniform([], s[2], 0, 2, dtype=tf.int32),
        "contrast": coin(3),
        "contrast_alpha": uniform(4, contrast_range[0], contrast_range[1]),
        "saturation": coin(5),
        "saturation_alpha": uniform(6, saturation_range[0], saturation_range[1]),
        "hue": coin(7),
        # numpy.random.randint(-d, d): high is exclusive.
        "hue_delta": tf.random.stateless_uniform(
            [], s[8], -int(hue_delta), int(hue_delta), dtype=tf.int32
        ),
    }


def photometric_distortion(image, params):
    """mmseg's `PhotoMetricDistortion` with given random choices.

    Args:
        image: `uint8` tensor `[H, W, 3]`, RGB.
        params: dict from `sample_photometric_params` (Python values work
            too, which is how the tests drive each step).

    Returns:
        `uint8` tensor `[H, W, 3]`.
    """
    image = tf.convert_to_tensor(image, tf.uint8)
    p = {k: tf.convert_to_tensor(v) for k, v in params.items()}

    def contrast(img):
        return tf.cond(p["contrast"], lambda: _convert(img, alpha=p["contrast_alpha"]), lambda: img)

    img = tf.cond(p["brightness"], lambda: _convert(image, beta=p["beta"]), lambda: image)
    mode = tf.cast(p["mode"], tf.int32)
    img = tf.cond(tf.equal(mode, 1), lambda: contrast(img), lambda: img)

    def saturate(x):
        hsv = rgb_to_hsv_cv2(x)
        sat = tf.cast(_convert(hsv[..., 1], alpha=p["saturation_alpha"]), tf.int32)
        return hsv_to_rgb_cv2(tf.stack([hsv[..., 0], sat, hsv[..., 2]], axis=-1))

    img = tf.cond(p["saturation"], lambda: saturate(img), lambda: img)

    def shift_hue(x):
        hsv = rgb_to_hsv_cv2(x)
        hue = tf.math.floormod(hsv[..., 0] + tf.cast(p["hue_delta"], tf.int32), 180)
        return hsv_to_rgb_cv2(tf.stack([hue, hsv[..., 1], hsv[..., 2]], axis=-1))

    img = tf.cond(p["hue"], lambda: shift_hue(img), lambda: img)
    img = tf.cond(tf.equal(mode, 0), lambda: contrast(img), lambda: img)
    return img


# --------------------------------------------------------------------------
# Padding and full pipelines
# --------------------------------------------------------------------------


def pad_to_size(image, label, size, image_value=0.0, ignore_index=255):
    """Pads at the bottom and right up to `size` (no-op where already larger).

    Args:
        image: float tensor `[H, W, C]`.
        label: tensor `[H, W]`.
        size: `(height, width)`.
        image_value: float or per-channel sequence, image fill value.
        ignore_index: label fill value.

    Returns:
        `(image, label)` of at least `size`.
    """
    th, tw = check_pair(size, "size")
    shape = tf.shape(label)
    pad_h = tf.maximum(th - shape[0], 0)
    pad_w = tf.maximum(tw - shape[1], 0)
    paddings = [[0, pad_h], [0, pad_w]]
    inside = tf.pad(tf.ones(shape[:2], tf.bool), paddings)
    value = tf.cast(tf.convert_to_tensor(image_value), image.dtype)
    image = tf.where(inside[..., None], tf.pad(image, paddings + [[0, 0]]), value)
    label = tf.pad(label, paddings, constant_values=tf.cast(ignore_index, label.dtype))
    return image, label


def train_transform(
    image,
    label,
    seed,
    *,
    scale=None,
    ratio_range=(0.5, 2.0),
    crop_size=None,
    cat_max_ratio=0.75,
    flip_prob=0.5,
    photometric=True,
    ignore_index=255,
    pad_value=0.0,
):
    """mmseg's training pipeline for one sample.

    `RandomResize(scale, ratio_range, keep_ratio=True)` ->
    `RandomCrop(crop_size, cat_max_ratio)` -> `RandomFlip(flip_prob)` ->
    `PhotoMetricDistortion()` -> pad to `crop_size` (image `pad_value`,
    label `ignore_index`).  The resize is evaluated only inside the crop
    window (bit-identical to resizing everything, much cheaper).

    Args:
        image: `uint8` tensor `[H, W, 3]`, RGB.
        label: `uint8` tensor `[H, W]`, 255 = ignore.
        seed: shape `[2]` int tensor for this sample.
        scale: pair of ints, or `None` to skip the random resize.
        ratio_range: pair of floats.
        crop_size: `(h, w)` or int, or `None` to skip crop and padding.
        cat_max_ratio: float.
        flip_prob: float, 0 disables flipping.
        photometric: bool.
        ignore_index: int.
        pad_value: image fill value for padding (per channel allowed).

    Returns:
        `(float32 image [h, w, 3], int32 label [h, w])`.

    Example:

    >>> import numpy as np
    >>> img = np.zeros((64, 128, 3), np.uint8)
    >>> lab = np.zeros((64, 128), np.uint8)
    >>> x, y = train_transform(img, lab, [1, 2], scale=(128, 64), crop_size=(32, 64))
    >>> x.shape, y.shape
    (TensorShape([32, 64, 3]), TensorShape([32, 64]))
    """
    image = tf.convert_to_tensor(image, tf.uint8)
    label = tf.convert_to_tensor(label, tf.uint8)
    seeds = split_seed(seed, 4)
    shape = tf.shape(label)
    in_h, in_w = shape[0], shape[1]
    if scale is not None:
        target = random_resize_scale(seeds[0], scale, ratio_range)
        out_h, out_w = rescale_size(in_h, in_w, target)
    else:
        out_h, out_w = in_h, in_w

    def label_fn(y, x, h, w):
        return resize_label(label, (out_h, out_w), (y, x, h, w))

    if crop_size is not None:
        window = random_crop_window(
            seeds[1], label_fn, out_h, out_w, crop_size, cat_max_ratio, ignore_index
        )
    else:
        window = (0, 0, out_h, out_w)
    if scale is not None or crop_size is not None:
        image = resize_image(image, (out_h, out_w), window)
        label = label_fn(*window)
    if flip_prob > 0:
        image, label = random_flip(seeds[2], image, label, flip_prob)
    if photometric:
        image = photometric_distortion(image, sample_photometric_params(seeds[3]))
    image = tf.cast(image, tf.float32)
    label = tf.cast(label, tf.int32)
    if crop_size is not None:
        image, label = pad_to_size(image, label, crop_size, pad_value, ignore_index)
        crop_h, crop_w = check_pair(crop_size, "crop_size")
        image = tf.ensure_shape(image, [crop_h, crop_w, 3])
        label = tf.ensure_shape(label, [crop_h, crop_w])
    return image, label


def test_transform(image, scale=None):
    """mmseg's test `Resize(scale, keep_ratio=True)` for one image.

    Args:
        image: `uint8` tensor `[H, W, 3]`.
        scale: pair of ints, or `None` to keep the size.

    Returns:
        float32 tensor `[h, w, 3]`.
    """
    image = tf.convert_to_tensor(image, tf.uint8)
    if scale is not None:
        shape = tf.shape(image)
        out_h, out_w = rescale_size(shape[0], shape[1], scale)
        same = tf.logical_and(tf.equal(out_h, shape[0]), tf.equal(out_w, shape[1]))
        # cv2.resize copies when the size does not change.
        image = tf.cond(same, lambda: image, lambda: resize_image(image, (out_h, out_w)))
    return tf.cast(image, tf.float32)
