"""The TF transforms against OpenCV and mmcv functions, and NumPy
re-implementations of mmseg's random steps given their draws (the classes
themselves: test_transforms_vs_mmcv.py)."""

import os

import numpy as np
import pytest
import tensorflow as tf

import mmseg_reference as ref
from keras_ann import resizing
from keras_ann.data import transforms as T


def _require(module):
    """importorskip, except under CI, where a missing reference fails."""
    if os.environ.get("CI"):
        return __import__(module)
    return pytest.importorskip(module)

RNG = np.random.default_rng(0)


def _cv2_linear(img, out_h, out_w):
    cv2 = _require("cv2")
    return cv2.resize(img, (out_w, out_h), interpolation=cv2.INTER_LINEAR)


def _cv2_nearest(lab, out_h, out_w):
    cv2 = _require("cv2")
    return cv2.resize(lab, (out_w, out_h), interpolation=cv2.INTER_NEAREST)


def _mmcv_rescale_size(w, h, scale):
    """mmcv.rescale_size((w, h), scale) -> (new_w, new_h)."""
    return _require("mmcv").rescale_size((w, h), scale)


def _image(h, w, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 3 % 256, yy * 5 % 256, (xx * yy) % 256], -1)
    return np.clip(base + rng.integers(-30, 30, base.shape), 0, 255).astype(np.uint8)


# ------------------------------------------------------------------ sizes


@pytest.mark.parametrize(
    "h, w, scale",
    [
        (1024, 2048, (2048, 1024)),
        (1024, 2048, (1024, 512)),
        (1024, 2048, (3687, 1843)),
        (512, 683, (2048, 512)),
        (375, 500, (1536, 384)),
        (360, 480, (2049, 1025)),
        (333, 1001, (1111, 777)),
        (64, 128, (100, 37)),
    ],
)
def test_rescale_size_matches_mmcv_rule(h, w, scale):
    new_w, new_h = _mmcv_rescale_size(w, h, scale)
    assert resizing.rescale_size(h, w, scale) == (new_h, new_w)
    got = resizing.rescale_size(tf.constant(h), tf.constant(w), tf.constant(scale), T.TF_OPS)
    assert (int(got[0]), int(got[1])) == (new_h, new_w)


def test_rescale_size_matches_mmcv_itself():
    mmcv = _require("mmcv")
    rng = np.random.default_rng(3)
    cases = [(1024, 2048, (1843, 921)), (375, 500, (1000, 250)), (77, 1001, (513, 311))]
    for _ in range(100):
        h, w = (int(v) for v in rng.integers(1, 2500, 2))
        cases.append((h, w, tuple(int(v) for v in rng.integers(1, 4100, 2))))
    for h, w, scale in cases:
        new_w, new_h = mmcv.rescale_size((w, h), scale)
        assert resizing.rescale_size(h, w, scale) == (new_h, new_w)

    @tf.function
    def graph(h, w, scale):  # the tf.data path: dynamic sizes
        return resizing.rescale_size(h, w, scale, T.TF_OPS)

    for h, w, scale in cases[:20]:
        new_w, new_h = mmcv.rescale_size((w, h), scale)
        got = graph(tf.constant(h), tf.constant(w), tf.constant(scale))
        assert (int(got[0]), int(got[1])) == (new_h, new_w)


def test_random_resize_scale_follows_ratio_rule():
    seeds = tf.random.experimental.stateless_split([3, 4], 200)
    for seed in seeds[:200:20]:
        u = float(tf.random.stateless_uniform([], seed=seed, dtype=tf.float64))
        ratio = u * 1.5 + 0.5
        got = T.random_resize_scale(seed, (2048, 1024), (0.5, 2.0)).numpy().tolist()
        assert got == list(ref.random_resize_scale((2048, 1024), ratio))
    ratios = [int(T.random_resize_scale(s, (2048, 1024))[0]) / 2048 for s in seeds]
    assert 0.5 <= min(ratios) and max(ratios) < 2.0
    assert min(ratios) < 0.7 and max(ratios) > 1.8


# ------------------------------------------------------------------ resize


@pytest.mark.parametrize(
    "in_hw, out_hw",
    [
        ((48, 80), (96, 160)),
        ((48, 80), (24, 40)),
        ((48, 80), (71, 33)),
        ((50, 77), (113, 201)),
        ((64, 128), (31, 97)),
        ((37, 41), (37, 41)),
        ((1, 9), (3, 20)),
        ((64, 128), (192, 384)),
        ((60, 100), (151, 233)),
        ((60, 100), (29, 47)),
        ((61, 99), (122, 198)),
    ],
)
def test_resize_image_matches_opencv(in_hw, out_hw):
    img = _image(*in_hw, seed=in_hw[0])
    expected = _cv2_linear(img, *out_hw)
    np.testing.assert_array_equal(T.resize_image(img, out_hw).numpy(), expected)


def test_numpy_and_graph_resizes_are_one_implementation():
    # keras_ann.resizing in NumPy (inference) and as tf.data graph ops
    # (training), with dynamic shapes, give the same bytes as OpenCV.
    cv2 = _require("cv2")

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, None, 3], tf.uint8),
            tf.TensorSpec([None, None], tf.uint8),
            tf.TensorSpec([2], tf.int32),
        ]
    )
    def graph(img, lab, size):
        return T.resize_image(img, (size[0], size[1])), T.resize_label(lab, (size[0], size[1]))

    for (h, w), (oh, ow) in [((60, 100), (151, 233)), ((61, 99), (29, 47)), ((1, 9), (3, 20))]:
        img = _image(h, w, seed=w)
        lab = RNG.integers(0, 256, (h, w)).astype(np.uint8)
        want = cv2.resize(img, (ow, oh), interpolation=cv2.INTER_LINEAR)
        want_lab = cv2.resize(lab, (ow, oh), interpolation=cv2.INTER_NEAREST)
        got, got_lab = graph(img, lab, tf.constant([oh, ow]))
        np.testing.assert_array_equal(got.numpy(), want)
        np.testing.assert_array_equal(got_lab.numpy(), want_lab)
        np.testing.assert_array_equal(resizing.resize_linear(img, (oh, ow)), want)
        np.testing.assert_array_equal(resizing.resize_nearest(lab, (oh, ow)), want_lab)
        window = (3, 5, oh - 7, ow - 9) if oh > 7 else None
        if window:
            np.testing.assert_array_equal(
                resizing.resize_linear(img, (oh, ow), window),
                want[3 : oh - 4, 5 : ow - 4],
            )


@pytest.mark.parametrize("ratio", [0, -0.5, float("nan")])
def test_rescale_size_refuses_a_non_positive_scale_factor(ratio):
    with pytest.raises(ValueError, match="scale factor must be positive"):
        resizing.rescale_size(100, 200, ratio)


def test_docstring_examples():
    import doctest

    for module in (resizing, T):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.failed == 0 and result.attempted > 0, module.__name__


def test_resize_window_equals_resize_then_crop():
    img = _image(40, 70)
    full = T.resize_image(img, (97, 151)).numpy()
    window = T.resize_image(img, (97, 151), (13, 50, 60, 80)).numpy()
    np.testing.assert_array_equal(window, full[13:73, 50:130])
    lab = RNG.integers(0, 19, (40, 70)).astype(np.uint8)
    full_l = T.resize_label(lab, (97, 151)).numpy()
    np.testing.assert_array_equal(
        T.resize_label(lab, (97, 151), (5, 7, 30, 40)).numpy(), full_l[5:35, 7:47]
    )


@pytest.mark.parametrize("out_hw", [(128, 256), (32, 64), (101, 37), (64, 128), (150, 301)])
def test_resize_label_is_cv2_nearest(out_hw):
    lab = RNG.integers(0, 256, (64, 128)).astype(np.uint8)
    got = T.resize_label(lab, out_hw).numpy()
    np.testing.assert_array_equal(got, _cv2_nearest(lab, *out_hw))


def test_test_transform_keeps_ratio():
    img = _image(64, 128)
    out = T.test_transform(img, (2048, 1024)).numpy()
    assert out.shape == (1024, 2048, 3) and out.dtype == np.float32
    np.testing.assert_array_equal(out, _cv2_linear(img, 1024, 2048))
    same = T.test_transform(img, (128, 64)).numpy()
    np.testing.assert_array_equal(same, img.astype(np.float32))


# ------------------------------------------------------------------ colour


def test_hsv_matches_opencv_itself():
    cv2 = _require("cv2")
    rgb = RNG.integers(0, 256, (40000, 1, 3)).astype(np.uint8)
    np.testing.assert_array_equal(
        T.rgb_to_hsv_cv2(rgb).numpy(), cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    )
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    np.testing.assert_array_equal(
        T.hsv_to_rgb_cv2(hsv).numpy(), cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    )


def _require_avx2_opencv():
    cv2 = _require("cv2")
    if not (
        cv2.checkHardwareSupport(11)  # CV_CPU_AVX2
        and any(t.lstrip("*") == "AVX2" for t in cv2.getCPUFeaturesLine().split())
    ):
        pytest.skip("OpenCV vectorises HSV->RGB in 32-pixel blocks only with AVX2")
    return cv2


@pytest.mark.parametrize("hw", [(3, 31), (3, 32), (5, 77), (360, 480), (1024, 2048)])
def test_hsv_matches_opencv_on_image_layouts(hw):
    # OpenCV's vectorised HSV->RGB (blocks of 32 pixels of a row) truncates
    # where its scalar tail rounds: a third of the values of a 480-wide image
    # differ by one between the two paths.
    cv2 = _require_avx2_opencv()
    rng = np.random.default_rng(hw[1])
    hsv = np.concatenate(
        [rng.integers(0, 180, hw + (1,)), rng.integers(0, 256, hw + (2,))], -1
    ).astype(np.uint8)
    expected = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    np.testing.assert_array_equal(T.hsv_to_rgb_cv2(hsv).numpy(), expected)
    rgb = _image(*hw, seed=hw[0])
    np.testing.assert_array_equal(
        T.rgb_to_hsv_cv2(rgb).numpy(), cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    )


_OFF = dict(
    brightness=False,
    beta=0.0,
    mode=0,
    contrast=False,
    contrast_alpha=1.0,
    saturation=False,
    saturation_alpha=1.0,
    hue=False,
    hue_delta=0,
)


@pytest.mark.parametrize(
    "params",
    [
        dict(brightness=True, beta=27.3),
        dict(brightness=True, beta=-31.9),
        dict(contrast=True, contrast_alpha=1.37),
        dict(contrast=True, contrast_alpha=0.61, mode=1),
        dict(saturation=True, saturation_alpha=1.45),
        dict(saturation=True, saturation_alpha=0.52),
        dict(hue=True, hue_delta=-18),
        dict(hue=True, hue_delta=17),
        dict(
            brightness=True,
            beta=12.5,
            contrast=True,
            contrast_alpha=1.2,
            saturation=True,
            saturation_alpha=0.8,
            hue=True,
            hue_delta=5,
            mode=0,
        ),
        dict(
            brightness=True,
            beta=-9.0,
            contrast=True,
            contrast_alpha=0.7,
            saturation=True,
            saturation_alpha=1.3,
            hue=True,
            hue_delta=-11,
            mode=1,
        ),
    ],
)
def test_photometric_steps_match_reference(params):
    _require_avx2_opencv()  # the reference's HSV round trip is cv2's
    p = dict(_OFF, **params)
    img = _image(32, 48, seed=7)
    np.testing.assert_array_equal(T.photometric_distortion(img, p).numpy(), ref.photometric(img, p))


def test_photometric_sampling_ranges():
    draws = [
        T.sample_photometric_params(s) for s in tf.random.experimental.stateless_split([1, 1], 300)
    ]
    deltas = np.array([int(d["hue_delta"]) for d in draws])
    assert deltas.min() >= -18 and deltas.max() <= 17  # numpy randint(-18, 18)
    betas = np.array([float(d["beta"]) for d in draws])
    assert betas.min() >= -32 and betas.max() < 32
    for key in ("contrast_alpha", "saturation_alpha"):
        values = np.array([float(d[key]) for d in draws])
        assert values.min() >= 0.5 and values.max() < 1.5
    for key in ("brightness", "contrast", "saturation", "hue"):
        rate = np.mean([bool(d[key]) for d in draws])
        assert 0.35 < rate < 0.65
    assert 0.35 < np.mean([int(d["mode"]) for d in draws]) < 0.65


# ------------------------------------------------------------------ crop / pad / flip


@pytest.mark.parametrize("ratio", [0.75, 0.5, 1.0])
def test_crop_window_ok_matches_reference(ratio):
    for k in range(20):
        rng = np.random.default_rng(k)
        seg = rng.choice([0, 1, 2, 255], p=[0.7, 0.1, 0.1, 0.1], size=(16, 16)).astype(np.uint8)
        if k % 3 == 0:
            seg[:] = 255
            seg[0, 0] = 3
        assert bool(T.crop_window_ok(seg, ratio)) == ref.crop_ok(seg, ratio)


def test_random_crop_window_reproduces_retry_loop():
    # Left half a single class (rejected), right half mixed (accepted).
    seg = np.zeros((40, 200), np.uint8)
    seg[:, 100:] = np.random.default_rng(0).integers(0, 5, (40, 100))
    for s in tf.random.experimental.stateless_split([9, 9], 12):
        seeds = T.split_seed(s, 11)
        offsets = [
            tuple(int(v) for v in T._crop_offsets(seeds[k], 40, 200, 20, 60)) for k in range(11)
        ]
        expected = ref.crop_with_retries(seg, (20, 60), offsets, 0.75)

        def label_fn(y, x, h, w):
            return tf.slice(seg, [y, x], [h, w])

        y0, x0, h, w = (int(v) for v in T.random_crop_window(s, label_fn, 40, 200, (20, 60), 0.75))
        assert (y0, y0 + h, x0, x0 + w) == expected


def test_crop_offsets_cover_margin_and_clip_to_image():
    seeds = tf.random.experimental.stateless_split([5, 5], 400)
    offs = np.array([[int(v) for v in T._crop_offsets(s, 10, 13, 8, 10)] for s in seeds])
    assert offs[:, 0].min() == 0 and offs[:, 0].max() == 2
    assert offs[:, 1].min() == 0 and offs[:, 1].max() == 3
    y0, x0, h, w = T.random_crop_window([1, 2], None, 30, 50, (64, 128))
    assert (int(y0), int(x0), int(h), int(w)) == (0, 0, 30, 50)


def test_pad_to_size_bottom_right():
    img = _image(5, 7).astype(np.float32)
    seg = RNG.integers(0, 3, (5, 7)).astype(np.int32)
    value = (123.675, 116.28, 103.53)
    got_img, got_seg = T.pad_to_size(img, seg, (8, 10), value, 255)
    exp_img, exp_seg = ref.pad(img, seg, (8, 10), value)
    np.testing.assert_array_equal(got_img.numpy(), exp_img)
    np.testing.assert_array_equal(got_seg.numpy(), exp_seg)
    np.testing.assert_array_equal(got_img.numpy()[:5, :7], img)  # exact, no arithmetic


def test_flip_is_horizontal_and_joint():
    img = _image(4, 6)
    seg = np.arange(24, dtype=np.uint8).reshape(4, 6)
    flips = 0
    for s in tf.random.experimental.stateless_split([2, 3], 40):
        i, l = T.random_flip(s, img, seg)
        if not np.array_equal(l.numpy(), seg):
            flips += 1
            np.testing.assert_array_equal(l.numpy(), seg[:, ::-1])
            np.testing.assert_array_equal(i.numpy(), img[:, ::-1])
    assert 10 < flips < 30


# ------------------------------------------------------------------ whole pipeline


def _train(img, seg, seed, **kw):
    kw = dict(dict(scale=(256, 128), crop_size=(48, 96)), **kw)
    x, y = T.train_transform(img, seg, seed, **kw)
    return x.numpy(), y.numpy()


def test_train_transform_equals_reference_composition():
    img = _image(64, 128, seed=3)
    seg = np.kron(RNG.integers(0, 6, (4, 8)), np.ones((16, 16), np.int64)).astype(np.uint8)
    seed = tf.constant([11, 22], tf.int64)
    # Rebuild with the same draws, using OpenCV / mmcv / NumPy at each step.
    seeds = T.split_seed(seed, 4)
    target = T.random_resize_scale(seeds[0], (256, 128)).numpy()
    new_w, new_h = _mmcv_rescale_size(128, 64, tuple(int(v) for v in target))
    big = _cv2_linear(img, new_h, new_w)
    big_seg = _cv2_nearest(seg, new_h, new_w)
    crop_seeds = T.split_seed(seeds[1], 11)
    offsets = [
        tuple(int(v) for v in T._crop_offsets(crop_seeds[k], new_h, new_w, 48, 96))
        for k in range(11)
    ]
    y1, y2, x1, x2 = ref.crop_with_retries(big_seg, (48, 96), offsets, 0.75)
    exp_img, exp_seg = ref.pad(
        big[y1:y2, x1:x2].astype(np.float32),
        big_seg[y1:y2, x1:x2],
        (48, 96),
        (123.675, 116.28, 103.53),
    )
    x, y = _train(
        img, seg, seed, photometric=False, flip_prob=0.0, pad_value=(123.675, 116.28, 103.53)
    )
    np.testing.assert_array_equal(x, exp_img)
    np.testing.assert_array_equal(y, exp_seg)
    assert x.shape == (48, 96, 3) and y.shape == (48, 96)


def test_train_transform_outputs_and_reproducibility():
    img = _image(64, 128, seed=4)
    seg = np.kron(RNG.integers(0, 4, (4, 8)), np.ones((16, 16), np.int64)).astype(np.uint8)
    seg[:8] = 255
    a = _train(img, seg, [1, 2])
    b = _train(img, seg, [1, 2])
    c = _train(img, seg, [1, 3])
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    assert a[0].dtype == np.float32 and a[1].dtype == np.int32
    assert set(np.unique(a[1])) <= set(np.unique(seg)) | {255}
    assert a[0].min() >= 0 and a[0].max() <= 255


def test_small_image_is_padded_with_ignore():
    img = _image(20, 30)
    seg = np.ones((20, 30), np.uint8)
    x, y = _train(img, seg, [0, 1], scale=None, photometric=False, pad_value=0.0)
    assert x.shape == (48, 96, 3)
    assert (y[20:] == 255).all() and (y[:, 30:] == 255).all() and (y[:20, :30] == 1).all()
    assert (x[20:] == 0).all()
