"""mmsegmentation's training and test transforms as TensorFlow graph ops.

Every function here runs inside `tf.data` (no Python per pixel) and every
random choice is drawn with a stateless op from an explicit `seed` (a shape
`[2]` integer tensor), so a pipeline built with the same seed yields the same
samples.  The numerical behaviour follows mmsegmentation 1.2.2 / mmcv 2.x:

* `random_resize_scale` + `keras_ann.resizing.rescale_size`: mmcv's
  `RandomResize(scale, ratio_range, keep_ratio=True)`: `ratio ~ U[min,
  max)`, target scale `(int(s0 * ratio), int(s1 * ratio))`, then mmcv's
  keep-ratio rule, all in float64 as in Python.
* `resize_image` / `resize_label`: OpenCV's `INTER_LINEAR` (for `uint8`
  images, what `mmcv.imresize` calls) and `INTER_NEAREST` (labels), the
  arithmetic of `keras_ann.resizing` run as graph ops (`TF_OPS`),
  bit-identical to `cv2.resize`.  Both accept a *window* of the output, so
  the training pipeline computes only the pixels that survive the random
  crop (identical numbers to resizing the whole image and cropping, at a
  fraction of the cost).
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
  the HSV round trips replicate OpenCV's 8-bit `cvtColor` exactly,
  including the truncation of its vectorised HSV->RGB path on all but the
  last `width % 32` pixels of each row.  The
  reference works in BGR; the same maths is applied to RGB channels.
* `pad_to_size`: bottom/right padding to the crop size (mmseg's
  `SegDataPreProcessor`); labels are padded with the ignore index.
"""

import numpy as np
import tensorflow as tf

from keras_ann import resizing
from keras_ann.checks import check_pair

__all__ = [
    "TF_OPS",
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

# `keras_ann.resizing`'s array operations as TensorFlow graph ops.
TF_OPS = resizing.ArrayOps(
    shape=tf.shape,
    arange=tf.range,
    cast=tf.cast,
    floor=tf.floor,
    round=tf.round,
    where=tf.where,
    minimum=tf.minimum,
    maximum=tf.maximum,
    clip=tf.clip_by_value,
    take=lambda x, indices, axis: tf.gather(x, indices, axis=axis),
    right_shift=tf.bitwise.right_shift,
)

# OpenCV's 8-bit RGB->HSV division tables (hsv_shift = 12, hue range 180).
_HSV_SHIFT = 12
_SDIV_TABLE = np.zeros(256, np.int64)
_HDIV_TABLE = np.zeros(256, np.int64)
_SDIV_TABLE[1:] = np.rint((255 << _HSV_SHIFT) / np.arange(1, 256, dtype=np.float64))
_HDIV_TABLE[1:] = np.rint((180 << _HSV_SHIFT) / (6.0 * np.arange(1, 256, dtype=np.float64)))
# OpenCV's HSV->RGB sector table: (b, g, r) indices into (v, p, q, t).
_SECTOR_BGR = np.array([[1, 3, 0], [1, 0, 2], [3, 0, 1], [0, 2, 1], [0, 1, 3], [2, 1, 0]], np.int32)
# Pixels per block of OpenCV's vectorised 8-bit HSV->RGB loop (AVX2: 4 x 8
# float lanes); the remaining `width % 32` pixels of a row take the scalar path.
_HSV2RGB_BLOCK = 32


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


def resize_image(image, size, window=None):
    """Resizes a `uint8` image as `cv2.resize(..., INTER_LINEAR)` does.

    `keras_ann.resizing.resize_linear` as graph ops.

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
    return resizing.resize_linear(tf.convert_to_tensor(image), size, window, TF_OPS)


def resize_label(label, size, window=None):
    """Resizes a label map as `cv2.resize(..., INTER_NEAREST)` does.

    `keras_ann.resizing.resize_nearest` as graph ops.

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
    return resizing.resize_nearest(tf.convert_to_tensor(label), size, window, TF_OPS)


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
    """OpenCV's 8-bit `cvtColor(HSV2RGB)` on an image (float32 maths).

    OpenCV converts each row in blocks of 32 pixels with its vectorised
    (AVX2) code and the last `width % 32` pixels of the row with its scalar
    code.  Both compute in float32 with a fused `1 - s * h`; the vectorised
    code truncates `value * 255` to `uint8` where the scalar one rounds it
    (half to even).  Both are reproduced, per column, so the result is
    bit-identical to OpenCV on x86-64 CPUs with AVX2 on every image layout
    (checked on all 180 * 256 * 256 inputs, rows 1, 31, 33 and 1024 wide).
    Where OpenCV's widest SIMD is 128 bits (no AVX2; ARM NEON) its blocks
    are 16 pixels and the split differs.

    Args:
        hsv: integer tensor `[..., W, 3]` (rows of `W` pixels) with H in
            `[0, 180)`, S, V in `[0, 255]`.

    Returns:
        `uint8` tensor `[..., W, 3]`, RGB.

    Example:

    >>> import numpy as np
    >>> hsv_to_rgb_cv2(np.array([[[0, 255, 255], [60, 255, 255]]], np.uint8)).numpy()
    array([[[255,   0,   0],
            [  0, 255,   0]]], dtype=uint8)
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
    # OpenCV is compiled with FMA contraction, so `1 - s * h` is rounded
    # once: form it in float64 (exact product).
    s64 = tf.cast(s, tf.float64)

    def one_minus_s_times(t):
        return tf.cast(1.0 - s64 * tf.cast(t, tf.float64), tf.float32)

    tab = [v, v * (1.0 - s), v * one_minus_s_times(h), v * one_minus_s_times(1.0 - h)]
    table = tf.constant(_SECTOR_BGR, tf.int32)

    def pick(column):
        # (With s = 0 every entry of `tab` is exactly v, as OpenCV wants.)
        idx = tf.gather(table[:, column], sector)
        return tf.where(
            tf.equal(idx, 0),
            tab[0],
            tf.where(tf.equal(idx, 1), tab[1], tf.where(tf.equal(idx, 2), tab[2], tab[3])),
        )

    # OpenCV's table gives (b, g, r); return RGB.
    out = tf.stack([pick(2), pick(1), pick(0)], axis=-1) * 255.0
    width = tf.shape(hsv)[-2]
    vectorised_width = width // _HSV2RGB_BLOCK * _HSV2RGB_BLOCK

    def mixed():
        vectorised = tf.range(width) < vectorised_width
        return tf.where(vectorised[:, None], tf.floor(out), tf.round(out))

    out = tf.cond(
        tf.equal(vectorised_width, width),
        lambda: tf.floor(out),
        lambda: tf.cond(tf.equal(vectorised_width, 0), lambda: tf.round(out), mixed),
    )
    return tf.cast(tf.clip_by_value(out, 0.0, 255.0), tf.uint8)


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
        out_h, out_w = resizing.rescale_size(in_h, in_w, target, TF_OPS)
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
        out_h, out_w = resizing.rescale_size(shape[0], shape[1], scale, TF_OPS)
        same = tf.logical_and(tf.equal(out_h, shape[0]), tf.equal(out_w, shape[1]))
        # cv2.resize copies when the size does not change.
        image = tf.cond(same, lambda: image, lambda: resize_image(image, (out_h, out_w)))
    return tf.cast(image, tf.float32)
