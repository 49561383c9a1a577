"""The TF transforms against mmcv's and mmseg 1.2.2's own transform classes.

The reference's classes are built from its shipped config
(`mmseg/.mim/configs/ann/ann_r50-d8_4xb2-40k_cityscapes-512x1024.py`: the
`train_pipeline` of `_base_/datasets/cityscapes.py` and the model's
`SegDataPreProcessor`, which pads) and run on a real CamVid image (480x360,
`../shared/data/camvid`) and on a 2048x1024 image (that CamVid image resized
by OpenCV, its labels by nearest neighbour).

Both sides see the same random draws: ours come from a stateless seed, and
each of the reference's `numpy.random` calls is answered with the value our
transform drew for it, after checking that the call (its function and its
arguments, so the ranges) is the one expected at that point.  The
reference works in BGR and we in RGB; images are compared channel-reversed.
"""

import contextlib
import glob
import os

import numpy as np
import pytest
import tensorflow as tf

from data_fixtures import CAMVID_ROOT
from keras_ann.data import transforms as T
from keras_ann.resizing import rescale_size

cv2 = pytest.importorskip("cv2") if not os.environ.get("CI") else __import__("cv2")
if not os.environ.get("CI"):
    pytest.importorskip("mmseg")
    pytest.importorskip("torch")
import torch  # noqa: E402
from mmengine.config import Config  # noqa: E402

CONFIG = "ann/ann_r50-d8_4xb2-40k_cityscapes-512x1024.py"


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def reference(mmseg_ann):
    """(MODELS, TRANSFORMS registries, the ANN Cityscapes config)."""
    models = mmseg_ann._import_mmseg()
    import mmseg
    from mmseg.registry import TRANSFORMS

    root = os.path.join(os.path.dirname(mmseg.__file__), ".mim", "configs")
    return models, TRANSFORMS, Config.fromfile(os.path.join(root, CONFIG))


@pytest.fixture(scope="module")
def camvid_sample():
    """A CamVid training image (RGB, 360x480) and its labels (11 -> 255)."""
    images = sorted(glob.glob(os.path.join(CAMVID_ROOT, "train", "*.jpg")))
    if not images:
        if os.environ.get("CI"):
            pytest.fail(f"CamVid copy required in CI but not found at {CAMVID_ROOT}")
        pytest.skip(f"CamVid copy not found at {CAMVID_ROOT}")
    path = images[0]
    rgb = cv2.imread(path, cv2.IMREAD_COLOR)[..., ::-1].copy()
    stem = os.path.splitext(os.path.basename(path))[0]
    label = cv2.imread(os.path.join(CAMVID_ROOT, "trainannot", stem + ".png"), cv2.IMREAD_UNCHANGED)
    label = np.where(label == 11, 255, label).astype(np.uint8)
    assert rgb.shape == (360, 480, 3) and label.shape == (360, 480)
    return rgb, label


@pytest.fixture(scope="module", params=["camvid_480x360", "2048x1024"])
def sample(request, camvid_sample):
    rgb, label = camvid_sample
    if request.param == "2048x1024":
        rgb = cv2.resize(rgb, (2048, 1024), interpolation=cv2.INTER_LINEAR)
        label = cv2.resize(label, (2048, 1024), interpolation=cv2.INTER_NEAREST)
    return rgb, label


# ------------------------------------------------------------------ draws


class Draws:
    """Answers the reference's `numpy.random` calls with scripted values.

    `expect(name, args, value)` queues one call; the patched function checks
    that the next call has that name and those positional arguments (and
    keyword arguments, for `choice`'s probabilities) and returns `value`.
    """

    _NAMES = ("random_sample", "randint", "choice", "uniform", "rand")

    def __init__(self, monkeypatch):
        self.queue = []
        for name in self._NAMES:
            monkeypatch.setattr(np.random, name, self._fake(name))

    def _fake(self, name):
        def fake(*args, **kwargs):
            assert self.queue, f"unexpected numpy.random.{name}{args}"
            want_name, want_args, value = self.queue.pop(0)
            assert (name, args + tuple(kwargs.values())) == (want_name, want_args)
            return value

        return fake

    def expect(self, name, args, value):
        self.queue.append((name, tuple(args), value))

    @contextlib.contextmanager
    def step(self, leftover_ok=False):
        yield self
        if not leftover_ok:
            assert not self.queue, f"draws not consumed: {self.queue}"
        self.queue.clear()


@pytest.fixture
def draws(monkeypatch):
    return Draws(monkeypatch)


def _uniform01(seed):
    return float(tf.random.stateless_uniform([], seed=seed, dtype=tf.float64))


def _expect_resize(draws, seed):
    """RandomResize._random_sample_ratio: `random_sample()` = our u."""
    draws.expect("random_sample", (), _uniform01(seed))


def _expect_crop(draws, seed, height, width, crop):
    """RandomCrop.generate_crop_bbox, for each of our 11 candidates."""
    margins = (max(height - crop[0], 0) + 1, max(width - crop[1], 0) + 1)
    for k_seed in T.split_seed(seed, 11):
        for margin, offset in zip(margins, T._crop_offsets(k_seed, height, width, *crop)):
            draws.expect("randint", (0, margin), int(offset))


def _expect_flip(draws, seed, prob=0.5):
    """RandomFlip._choose_direction: `choice(['horizontal', None], p=...)`."""
    flip = _uniform01(seed) < prob
    draws.expect("choice", (["horizontal", None], [prob, 1.0 - prob]), "horizontal" if flip else None)
    return flip


def _expect_photometric(draws, params):
    """PhotoMetricDistortion.transform's draws, in its order."""
    p = {k: v.numpy().item() for k, v in params.items()}

    def contrast():
        draws.expect("randint", (2,), int(p["contrast"]))
        if p["contrast"]:
            draws.expect("uniform", (0.5, 1.5), float(p["contrast_alpha"]))

    draws.expect("randint", (2,), int(p["brightness"]))
    if p["brightness"]:
        draws.expect("uniform", (-32, 32), float(p["beta"]))
    draws.expect("randint", (2,), int(p["mode"]))
    if p["mode"] == 1:
        contrast()
    draws.expect("randint", (2,), int(p["saturation"]))
    if p["saturation"]:
        draws.expect("uniform", (0.5, 1.5), float(p["saturation_alpha"]))
    draws.expect("randint", (2,), int(p["hue"]))
    if p["hue"]:
        draws.expect("randint", (-18, 18), int(p["hue_delta"]))
    if p["mode"] == 0:
        contrast()
    return p


# ------------------------------------------------------------------ helpers


def _build(reference, index):
    """The reference's transform `index` of the config's train_pipeline."""
    _, transforms, cfg = reference
    return transforms.build(cfg.train_pipeline[index])


def _results(rgb, label):
    """A results dict as LoadImageFromFile + LoadAnnotations leave it."""
    return {
        "img": np.ascontiguousarray(rgb[..., ::-1]),
        "gt_seg_map": label.copy(),
        "seg_fields": ["gt_seg_map"],
        "img_shape": rgb.shape[:2],
        "ori_shape": rgb.shape[:2],
    }


def _preprocessor(reference):
    models, _, cfg = reference
    return models.build(cfg.model.data_preprocessor)


def _mean(reference):
    """The config's (RGB) mean: our pad value before normalisation."""
    return tuple(reference[2].model.data_preprocessor["mean"])


def _normalise(image, reference):
    """SegDataPreProcessor's `(x - mean) / std` on our RGB float32 image."""
    cfg = reference[2].model.data_preprocessor
    x = torch.from_numpy(np.ascontiguousarray(np.asarray(image).transpose(2, 0, 1)))
    mean = torch.tensor(cfg["mean"]).view(-1, 1, 1)
    std = torch.tensor(cfg["std"]).view(-1, 1, 1)
    return ((x - mean) / std).numpy()


SEEDS = [[0, 1], [3, 7], [11, 22], [2026, 12]]


# ------------------------------------------------------------------ tests


def test_config_is_the_pipeline_we_reproduce(reference):
    _, _, cfg = reference
    types = [t["type"] for t in cfg.train_pipeline]
    assert types == [
        "LoadImageFromFile",
        "LoadAnnotations",
        "RandomResize",
        "RandomCrop",
        "RandomFlip",
        "PhotoMetricDistortion",
        "PackSegInputs",
    ]
    assert cfg.train_pipeline[5] == {"type": "PhotoMetricDistortion"}  # the defaults
    assert cfg.model.data_preprocessor["size"] == cfg.train_pipeline[3]["crop_size"]
    assert _train_settings(reference)["scale"] == (2048, 1024)


def _train_settings(reference):
    """train_transform's arguments, read from the config's train_pipeline."""
    resize, crop, flip = reference[2].train_pipeline[2:5]
    return dict(
        scale=resize["scale"],
        ratio_range=resize["ratio_range"],
        crop_size=crop["crop_size"],
        cat_max_ratio=crop["cat_max_ratio"],
        flip_prob=flip["prob"],
        pad_value=_mean(reference),
    )


@pytest.mark.parametrize("seed", SEEDS[:3])
def test_random_resize_matches_mmcv(reference, sample, draws, seed):
    rgb, label = sample
    resize = _build(reference, 2)
    seed = tf.constant(seed, tf.int64)
    with draws.step():
        _expect_resize(draws, seed)
        out = resize(_results(rgb, label))
    settings = _train_settings(reference)
    target = T.random_resize_scale(seed, settings["scale"], settings["ratio_range"])
    size = rescale_size(rgb.shape[0], rgb.shape[1], tuple(int(v) for v in target.numpy()))
    assert tuple(out["scale"]) == tuple(int(v) for v in target.numpy())
    assert out["img"].shape[:2] == size
    np.testing.assert_array_equal(T.resize_image(rgb, size).numpy(), out["img"][..., ::-1])
    np.testing.assert_array_equal(T.resize_label(label, size).numpy(), out["gt_seg_map"])


def _crop_case(rgb, label, crop, seed, reference, draws, cat_max_ratio=0.75):
    from mmseg.datasets.transforms import RandomCrop

    ref_crop = RandomCrop(crop_size=crop, cat_max_ratio=cat_max_ratio)
    h, w = label.shape
    with draws.step(leftover_ok=True):
        _expect_crop(draws, seed, h, w, crop)
        out = ref_crop(_results(rgb, label))
        consumed = 22 - len(draws.queue)
    y0, x0, ch, cw = (
        int(v)
        for v in T.random_crop_window(
            seed, lambda y, x, hh, ww: label[y : y + hh, x : x + ww], h, w, crop, cat_max_ratio
        )
    )
    np.testing.assert_array_equal(rgb[y0 : y0 + ch, x0 : x0 + cw], out["img"][..., ::-1])
    np.testing.assert_array_equal(label[y0 : y0 + ch, x0 : x0 + cw], out["gt_seg_map"])
    return consumed // 2  # candidates the reference drew


def test_random_crop_with_cat_max_ratio_retries_matches_mmseg(reference, sample, draws):
    rgb, label = sample
    crop = (512, 1024) if rgb.shape[1] >= 1024 else (256, 320)
    # One class over most of the image: the reference re-draws, up to the
    # 11th candidate, which it takes unchecked.
    mostly_one = label.copy()
    mostly_one[:, : int(label.shape[1] * 0.9)] = 3
    # One class over the left 60%: crops near the left edge are re-drawn.
    left_one = label.copy()
    left_one[:, : int(label.shape[1] * 0.6)] = 3
    candidates = []
    for seed in tf.random.experimental.stateless_split([5, 8], 5):
        for seg in (label, mostly_one, left_one):
            candidates.append(_crop_case(rgb, seg, crop, seed, reference, draws))
    assert min(candidates) == 1 and max(candidates) == 11
    assert any(1 < c < 11 for c in candidates)


def test_random_crop_larger_than_image_matches_mmseg(reference, camvid_sample, draws):
    rgb, label = camvid_sample
    for seed in tf.random.experimental.stateless_split([1, 4], 4):
        _crop_case(rgb, label, (512, 1024), seed, reference, draws)


def test_random_flip_matches_mmcv(reference, sample, draws):
    rgb, label = sample
    flip_ref = _build(reference, 4)
    flips = set()
    for seed in tf.random.experimental.stateless_split([2, 3], 6):
        with draws.step():
            flips.add(_expect_flip(draws, seed))
            out = flip_ref(_results(rgb, label))
        img, lab = T.random_flip(seed, rgb, label, 0.5)
        np.testing.assert_array_equal(img.numpy(), out["img"][..., ::-1])
        np.testing.assert_array_equal(lab.numpy(), out["gt_seg_map"])
    assert flips == {True, False}


def _require_avx2():
    if not (
        cv2.checkHardwareSupport(11)  # CV_CPU_AVX2
        and any(t.lstrip("*") == "AVX2" for t in cv2.getCPUFeaturesLine().split())
    ):
        pytest.skip("OpenCV vectorises HSV->RGB in 32-pixel blocks only with AVX2")


def test_photometric_distortion_matches_mmseg(reference, sample, draws):
    _require_avx2()
    rgb, _ = sample
    # The reference distorts the crop: rows of the crop's width.
    image = rgb if rgb.shape[1] < 1024 else rgb[100:612, 300:1324]
    distort = _build(reference, 5)
    seen = {k: set() for k in ("brightness", "contrast", "saturation", "hue", "mode")}
    for seed in tf.random.experimental.stateless_split([7, 7], 10):
        params = T.sample_photometric_params(seed)
        with draws.step():
            p = _expect_photometric(draws, params)
            out = distort({"img": np.ascontiguousarray(image[..., ::-1])})
        got = T.photometric_distortion(image, params).numpy()
        np.testing.assert_array_equal(got, out["img"][..., ::-1])
        for key in seen:
            seen[key].add(bool(p[key]))
    assert all(v == {True, False} for v in seen.values()), seen


def test_pad_matches_seg_data_preprocessor(reference, camvid_sample):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    rgb, label = camvid_sample
    image, lab = rgb[:300, :401], label[:300, :401]
    sample = SegDataSample(gt_sem_seg=PixelData(data=torch.from_numpy(lab[None].astype(np.int64))))
    inputs = torch.from_numpy(np.ascontiguousarray(image[..., ::-1].transpose(2, 0, 1)))
    out = _preprocessor(reference)({"inputs": [inputs], "data_samples": [sample]}, training=True)
    ours_img, ours_lab = T.pad_to_size(
        image.astype(np.float32), lab.astype(np.int32), (512, 1024), _mean(reference), 255
    )
    np.testing.assert_array_equal(_normalise(ours_img, reference), out["inputs"][0].numpy())
    np.testing.assert_array_equal(
        ours_lab.numpy(), out["data_samples"][0].gt_sem_seg.data[0].numpy()
    )


@pytest.mark.parametrize("seed", SEEDS)
def test_train_transform_matches_mmseg_pipeline(reference, sample, draws, seed):
    """LoadAnnotations -> RandomResize -> RandomCrop -> RandomFlip ->
    PhotoMetricDistortion -> PackSegInputs -> SegDataPreProcessor (pad)."""
    _require_avx2()
    rgb, label = sample
    _, transforms, cfg = reference
    steps = [transforms.build(t) for t in cfg.train_pipeline[2:]]
    settings = _train_settings(reference)
    seed = tf.constant(seed, tf.int64)
    seeds = T.split_seed(seed, 4)
    results = _results(rgb, label)
    with draws.step():
        _expect_resize(draws, seeds[0])
        results = steps[0](results)
    h, w = results["gt_seg_map"].shape
    with draws.step(leftover_ok=True):
        _expect_crop(draws, seeds[1], h, w, settings["crop_size"])
        results = steps[1](results)
    with draws.step():
        _expect_flip(draws, seeds[2], settings["flip_prob"])
        results = steps[2](results)
    with draws.step():
        _expect_photometric(draws, T.sample_photometric_params(seeds[3]))
        results = steps[3](results)
    packed = steps[4](results)
    out = _preprocessor(reference)(
        {"inputs": [packed["inputs"]], "data_samples": [packed["data_samples"]]}, training=True
    )
    x, y = T.train_transform(rgb, label, seed, **settings)
    np.testing.assert_array_equal(_normalise(x, reference), out["inputs"][0].numpy())
    np.testing.assert_array_equal(y.numpy(), out["data_samples"][0].gt_sem_seg.data[0].numpy())


@pytest.mark.parametrize("config", [CONFIG, "ann/ann_r50-d8_4xb2-40k_cityscapes-769x769.py"])
def test_test_transform_matches_mmcv_resize(reference, sample, config):
    import mmseg

    _, transforms, _ = reference
    root = os.path.join(os.path.dirname(mmseg.__file__), ".mim", "configs")
    resize_cfg = Config.fromfile(os.path.join(root, config)).test_pipeline[1]
    assert resize_cfg["type"] == "Resize" and resize_cfg["keep_ratio"]
    rgb, _ = sample
    out = transforms.build(resize_cfg)({"img": np.ascontiguousarray(rgb[..., ::-1])})
    got = T.test_transform(rgb, resize_cfg["scale"]).numpy()
    np.testing.assert_array_equal(got, out["img"][..., ::-1].astype(np.float32))
