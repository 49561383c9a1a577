"""Inference modes (`keras_ann.inference`): sliding window and multi-scale +
flip, checked by hand on toy models and against mmsegmentation 1.2.2's own
`slide_inference`, `postprocess_result`, `tta_pipeline` and
`SegTTAModel.merge_preds` on a converted R-18 reference."""

import keras
import numpy as np
import pytest
from keras import ops

import keras_ann
from keras_ann import inference, resizing
from testing_utils import pointwise_model, require


TTA_RATIOS = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)


# --------------------------------------------------------------------------
# Toy models whose outputs are known
# --------------------------------------------------------------------------


def _crop_stats_model():
    """Channel 0: the mean of input channel 0 over the whole crop (so each
    window's output tells which window it was); channel 1: input channel 1
    unchanged (placement); channel 2: input channel 2 times 2."""
    inputs = keras.Input((None, None, 3))

    def f(x):
        mean = ops.mean(x[..., :1], axis=(1, 2), keepdims=True) + 0.0 * x[..., :1]
        return ops.concatenate([mean, x[..., 1:2], 2.0 * x[..., 2:3]], axis=-1)

    return keras.Model(inputs, keras.layers.Lambda(f)(inputs))


def _expected_slide(images, windows):
    """What sliding-window averaging must give for `_crop_stats_model`."""
    n, h, w, _ = images.shape
    total = np.zeros((n, h, w, 3), np.float64)
    count = np.zeros((h, w), np.float64)
    for y1, y2, x1, x2 in windows:
        crop = images[:, y1:y2, x1:x2].astype(np.float64)
        total[:, y1:y2, x1:x2, 0] += crop[..., 0].mean(axis=(1, 2))[:, None, None]
        total[:, y1:y2, x1:x2, 1] += crop[..., 1]
        total[:, y1:y2, x1:x2, 2] += 2 * crop[..., 2]
        count[y1:y2, x1:x2] += 1
    assert count.min() >= 1
    return total / count[None, :, :, None]


# (size, crop, stride) -> the windows along that axis, written out by hand.
AXIS_WINDOWS = {
    (10, 4, 3): [(0, 4), (3, 7), (6, 10)],  # divisible
    (11, 4, 3): [(0, 4), (3, 7), (6, 10), (7, 11)],  # last one shifted back
    (7, 4, 3): [(0, 4), (3, 7)],
    (5, 3, 2): [(0, 3), (2, 5)],
    (4, 4, 3): [(0, 4)],  # exactly one crop
    (3, 4, 3): [(0, 3)],  # smaller than the crop: used whole
    (6, 4, 5): [(0, 4), (2, 6)],  # stride > crop, no gap thanks to the shift
    (13, 5, 5): [(0, 5), (5, 10), (8, 13)],
}


@pytest.mark.parametrize(
    "rows,cols",
    [
        ((10, 4, 3), (11, 4, 3)),
        ((7, 4, 3), (5, 3, 2)),
        ((3, 4, 3), (13, 5, 5)),  # image shorter than the crop
        ((3, 4, 3), (4, 4, 3)),  # image smaller than the crop both ways
        ((13, 5, 5), (7, 4, 3)),
        ((6, 4, 5), (5, 3, 2)),
    ],
)
def test_slide_windows_and_counts_by_hand(rows, cols):
    windows = [(y1, y2, x1, x2) for y1, y2 in AXIS_WINDOWS[rows] for x1, x2 in AXIS_WINDOWS[cols]]
    rng = np.random.default_rng(1)
    # Integer pixel values: sums and means are exact in float32.
    images = rng.integers(0, 256, (2, rows[0], cols[0], 3)).astype("float32")
    model = _crop_stats_model()
    got = inference.slide_inference(
        model, images, crop_size=(rows[1], cols[1]), stride=(rows[2], cols[2])
    )
    want = _expected_slide(images, windows)
    assert got.shape == images.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-4)
    # Channels 1 and 2 are position-independent functions: averaging gives them back.
    np.testing.assert_allclose(got[..., 1:], images[..., 1:] * [1, 2], rtol=1e-6)


def test_slide_count_map_explicitly():
    """7x7 image, 4x4 crops, stride 3: windows [0, 4) and [3, 7) both ways,
    so row 3 and column 3 are covered twice and pixel (3, 3) four times. Only
    pixel (0, 0) is non-zero (64), so only the top-left window has a crop
    mean (64 / 16 = 4): its pixels must get 4 / count, all others 0."""
    images = np.zeros((1, 7, 7, 3), "float32")
    images[0, 0, 0, 0] = 64.0
    got = inference.slide_inference(_crop_stats_model(), images, crop_size=4, stride=3)
    per_axis = np.array([1, 1, 1, 2, 1, 1, 1])
    counts = per_axis[:, None] * per_axis[None, :]
    assert counts[3, 3] == 4
    want = np.zeros((7, 7))
    want[:4, :4] = 4.0 / counts[:4, :4]
    np.testing.assert_allclose(got[0, ..., 0], want, rtol=1e-6)
    assert got[0, 3, 3, 0] == 1.0 and got[0, 0, 3, 0] == 2.0 and got[0, 0, 0, 0] == 4.0


@pytest.mark.parametrize("batch_size", [None, 1, 3, 100])
def test_slide_batch_size_does_not_change_results(batch_size):
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, (3, 11, 13, 3)).astype("float32")
    model = _crop_stats_model()
    want = inference.slide_inference(model, images, (4, 5), (3, 4))
    got = inference.slide_inference(model, images, (4, 5), (3, 4), batch_size=batch_size)
    np.testing.assert_array_equal(got, want)


def test_predict_logits_modes():
    rng = np.random.default_rng(3)
    images = rng.uniform(0, 255, (2, 9, 12, 3)).astype("float32")
    model = pointwise_model()
    whole = inference.predict_logits(model, images)
    np.testing.assert_allclose(whole, model.predict(images, verbose=0), rtol=1e-6)
    # A pointwise model gives the same logits whole and by sliding window.
    slide = inference.predict_logits(model, images, mode="slide", crop_size=5, stride=(4, 3))
    np.testing.assert_allclose(slide, whole, rtol=1e-5, atol=1e-6)
    # Tensors are accepted too.
    np.testing.assert_allclose(inference.predict_logits(model, ops.convert_to_tensor(images)), whole)
    labels = inference.predict_labels(model, images, mode="slide", crop_size=5, stride=4)
    assert labels.dtype == np.int32
    np.testing.assert_array_equal(labels, whole.argmax(-1))


def test_multiscale_flip_on_toy_models():
    rng = np.random.default_rng(4)
    model = pointwise_model(num_classes=3)
    images = rng.uniform(0, 255, (2, 10, 14, 3)).astype("float32")
    softmax = np.asarray(ops.softmax(model.predict(images, verbose=0), axis=-1))
    # One scale, with its flip: a pointwise model is flip-equivariant.
    probs = inference.multiscale_flip_inference(model, images, ratios=(1.0,), flip=True)
    np.testing.assert_allclose(probs, softmax, rtol=1e-5, atol=1e-6)
    # Constant images stay constant at every scale.
    const = np.full((1, 10, 14, 3), 77.0, "float32")
    probs = inference.multiscale_flip_inference(model, const, mode="slide", crop_size=6, stride=4)
    np.testing.assert_allclose(probs, np.asarray(ops.softmax(model.predict(const, verbose=0))), atol=1e-6)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-6)
    # Labels through predict_labels.
    labels = inference.predict_labels(model, images, ratios=TTA_RATIOS, flip=True)
    probs = inference.multiscale_flip_inference(model, images)
    np.testing.assert_array_equal(labels, probs.argmax(-1))
    assert labels.shape == (2, 10, 14) and labels.dtype == np.int32


def test_multiscale_cv2_resize_accepts_integer_float_images():
    rng = np.random.default_rng(10)
    model = pointwise_model(num_classes=3)
    images = rng.integers(0, 256, (1, 10, 14, 3), dtype=np.uint8)
    want = inference.multiscale_flip_inference(model, images, image_resize="cv2")
    got = inference.multiscale_flip_inference(model, images.astype("float32"), image_resize="cv2")
    np.testing.assert_array_equal(got, want)

def test_bilinear_and_cv2_image_resizes_differ_by_rounding_only():
    """Same sampling positions; OpenCV's 11-bit weights and uint8 rounding
    move pixels by less than one grey level."""
    from keras_ann.ops import bilinear_resize

    rng = np.random.default_rng(11)
    for _ in range(20):
        h, w, oh, ow = (int(v) for v in rng.integers(2, 80, 4))
        image = rng.integers(0, 256, (1, h, w, 3), dtype=np.uint8)
        cv = inference.resize_image_cv2(image, (oh, ow)).astype("float32")
        bl = np.asarray(bilinear_resize(image.astype("float32"), (oh, ow)))
        assert np.abs(cv - bl).max() < 1.0


def test_rescale_size_with_a_ratio_matches_mmcv():
    require("mmcv")
    from mmcv.image.geometric import _scale_size, rescale_size

    rng = np.random.default_rng(5)
    sizes = [(1024, 2048), (512, 512), (97, 131), (131, 97), (1, 7)]
    sizes += [tuple(int(v) for v in rng.integers(1, 2500, 2)) for _ in range(300)]
    ratios = list(TTA_RATIOS) + [0.1, 0.333, 2.0, 2.7]
    for h, w in sizes:
        for r in ratios:
            # mmcv Resize(scale_factor=r, keep_ratio=True): scale, then imrescale.
            new_w, new_h = rescale_size((w, h), _scale_size((w, h), r))
            assert resizing.rescale_size(h, w, r) == (new_h, new_w), (h, w, r)


def test_resize_image_cv2_is_bit_identical_to_opencv():
    cv2 = require("cv2")
    rng = np.random.default_rng(6)
    cases = [((64, 96), (32, 48)), ((64, 96), (112, 168)), ((7, 5), (1, 1)), ((1, 9), (5, 20))]
    cases += [((int(a), int(b)), (int(c), int(d))) for a, b, c, d in rng.integers(1, 120, (30, 4))]
    for (h, w), (oh, ow) in cases:
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        want = cv2.resize(image, (ow, oh), interpolation=cv2.INTER_LINEAR)
        got = inference.resize_image_cv2(image[None], (oh, ow))[0]
        np.testing.assert_array_equal(got, want, err_msg=f"{(h, w)} -> {(oh, ow)}")


# --------------------------------------------------------------------------
# Bad arguments
# --------------------------------------------------------------------------

_IMG = np.zeros((1, 8, 8, 3), "float32")
_SLIDE = dict(mode="slide", crop_size=4, stride=2)

# (id, function, images, keyword arguments, message pattern)
BAD_ARGUMENTS = [
    ("rank3", "predict_logits", np.zeros((8, 8, 3)), {}, r"`images`.*\(8, 8, 3\).*images\[None\]"),
    ("channels", "predict_logits", np.zeros((1, 8, 8, 4)), {}, r"`images`.*\(1, 8, 8, 4\)"),
    ("rank3-slide", "slide_inference", np.zeros((1, 8, 8)), dict(crop_size=4, stride=2),
     r"`images`.*\(1, 8, 8\)"),
    ("empty", "predict_logits", np.zeros((0, 8, 8, 3)), {}, r"`images`.*empty.*\(0, 8, 8, 3\)"),
    ("crop-zero", "slide_inference", _IMG, dict(crop_size=0, stride=2), r"`crop_size`.*0"),
    ("crop-negative", "slide_inference", _IMG, dict(crop_size=(4, -1), stride=2),
     r"`crop_size`.*\(4, -1\)"),
    ("stride-zero", "slide_inference", _IMG, dict(crop_size=4, stride=(2, 0)), r"`stride`.*\(2, 0\)"),
    ("crop-triple", "slide_inference", _IMG, dict(crop_size=(4, 4, 4), stride=2), r"`crop_size`.*pair"),
    ("crop-float", "slide_inference", _IMG, dict(crop_size=4.5, stride=2), r"`crop_size`.*pair"),
    ("batch-size", "slide_inference", _IMG, dict(crop_size=4, stride=2, batch_size=0), r"`batch_size`"),
    ("gap", "slide_inference", np.zeros((1, 9, 9, 3)), dict(crop_size=4, stride=5),
     r"`stride` \(5, 5\).*`crop_size` \(4, 4\).*9x9"),
    ("mode", "predict_logits", _IMG, dict(mode="tiles"), r"`mode`.*'tiles'"),
    ("slide-no-crop", "predict_logits", _IMG, dict(mode="slide"),
     r"`mode='slide'` needs `crop_size` and `stride`"),
    ("slide-no-stride", "predict_logits", _IMG, dict(mode="slide", crop_size=4), r"stride=None"),
    ("whole-with-crop", "predict_logits", _IMG, dict(crop_size=4, stride=2),
     r"only used with `mode='slide'`"),
    ("ratio-zero", "multiscale_flip_inference", _IMG, dict(ratios=(1.0, 0.0)), r"`ratios`"),
    ("ratios-empty", "multiscale_flip_inference", _IMG, dict(ratios=()), r"`ratios`"),
    ("ratios-number", "multiscale_flip_inference", _IMG, dict(ratios=1.0), r"`ratios`.*1.0"),
    ("tta-mode", "multiscale_flip_inference", _IMG, dict(mode="tiles"), r"`mode`"),
    ("tta-slide-crop", "multiscale_flip_inference", _IMG, dict(_SLIDE, crop_size=-3), r"`crop_size`"),
    ("image-resize", "multiscale_flip_inference", _IMG, dict(image_resize="area"), r"`image_resize`"),
    ("cv2-fractional", "multiscale_flip_inference", _IMG + 0.5, dict(image_resize="cv2"),
     r"`image_resize='cv2'` needs uint8 `images`.*float32.*\(1, 8, 8, 3\)"),
    ("cv2-range", "multiscale_flip_inference", _IMG + 256, dict(image_resize="cv2"),
     r"`image_resize='cv2'` needs uint8"),
    ("ratio-too-small", "multiscale_flip_inference", np.zeros((1, 2, 2, 3)), dict(ratios=(0.1,)),
     r"`ratios`.*\(2, 2\)"),
    ("labels-no-crop", "predict_labels", _IMG, dict(mode="slide", stride=2), r"crop_size=None"),
    ("labels-tta-crop", "predict_labels", _IMG, dict(_SLIDE, flip=True, crop_size=-3), r"`crop_size`"),
    ("labels-image-resize", "predict_labels", _IMG, dict(image_resize="area"), r"`image_resize`"),
]


@pytest.mark.parametrize(
    "function,images,kwargs,match",
    [pytest.param(*case[1:], id=case[0]) for case in BAD_ARGUMENTS],
)
def test_bad_arguments_raise(function, images, kwargs, match):
    with pytest.raises(ValueError, match=match):
        getattr(inference, function)(pointwise_model(), images, **kwargs)


def test_model_must_keep_the_input_size():
    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, keras.layers.MaxPooling2D(2)(inputs))
    with pytest.raises(ValueError, match=r"logits.*input.*\(1, 8, 8, 3\).*\(1, 4, 4, 3\)"):
        inference.predict_logits(model, _IMG)


def test_single_class_models_are_refused_by_tta():
    with pytest.raises(ValueError, match="num_classes >= 2"):
        inference.multiscale_flip_inference(pointwise_model(num_classes=1), _IMG)


# --------------------------------------------------------------------------
# Parity with mmsegmentation 1.2.2 (R-18 reference, random weights)
# --------------------------------------------------------------------------



@pytest.fixture(scope="module")
def r18_pair(mmseg_ann, tmp_path_factory):
    """`pair(align_corners)` -> (mmseg reference, converted ANNSegmenter), cached."""
    cache = {}

    def pair(align_corners):
        if align_corners not in cache:
            reference = mmseg_ann.build_reference_ann(
                depth=18, num_classes=5, align_corners=align_corners, seed=0
            )
            path = str(tmp_path_factory.mktemp("r18") / "ann_r18.pth")
            mmseg_ann.save_state_dict(reference, path)
            ours = keras_ann.ANNSegmenter.from_preset(path, align_corners=align_corners, verbose=False)
            assert ours.align_corners == align_corners and ours.num_classes == 5
            cache[align_corners] = reference, ours
        return cache[align_corners]

    return pair


def _set_test_cfg(reference, mode, crop_size=None, stride=None):
    from mmengine.config import ConfigDict

    if mode == "slide":
        reference.test_cfg = ConfigDict(mode="slide", crop_size=crop_size, stride=stride)
    else:
        reference.test_cfg = ConfigDict(mode="whole")


def _nchw(mmseg_ann, images):
    """RGB [0, 255] NHWC -> normalised NCHW float32 (the preprocessor's output)."""
    import torch

    x = mmseg_ann.normalize_rgb(images).transpose(0, 3, 1, 2)
    return torch.from_numpy(np.ascontiguousarray(x))


def _report(name, got, want):
    max_diff = float(np.abs(got - want).max())
    scale = float(np.abs(want).max())
    agree = float(np.mean(got.argmax(-1) == want.argmax(-1)))
    print(f"{name}: max|d|={max_diff:.3g}, max|want|={scale:.3g}, "
          f"ratio={max_diff / scale:.3g}, argmax agreement={agree:.6f}")
    return max_diff, scale, agree


@pytest.mark.parametrize("align_corners", [False, True])
def test_slide_inference_matches_mmseg(mmseg_ann, r18_pair, align_corners):
    import torch

    reference, ours = r18_pair(align_corners)
    images = np.random.default_rng(7).uniform(0, 255, (2, 100, 140, 3)).astype("float32")
    crop, stride = (65, 65), (43, 43)
    _set_test_cfg(reference, "slide", crop, stride)
    metas = [dict(ori_shape=(100, 140), img_shape=(100, 140), pad_shape=(100, 140)) for _ in range(2)]
    with torch.no_grad():
        want = reference.slide_inference(_nchw(mmseg_ann, images), metas)
    want = want.permute(0, 2, 3, 1).numpy()
    got = inference.slide_inference(ours, images, crop, stride)
    assert got.shape == want.shape == (2, 100, 140, 5)
    max_diff, scale, agree = _report(f"slide align_corners={align_corners}", got, want)
    assert max_diff <= 1e-4 * scale
    assert agree >= 0.999
    # Through the dispatcher, with the crops of both images in one batch.
    got2 = inference.predict_logits(ours, images, "slide", crop, stride, batch_size=12)
    np.testing.assert_allclose(got2, got, rtol=0, atol=1e-5 * scale)


def _merge_like_seg_tta(mmseg_ann, reference, predictions):
    """`predictions[aug][image]` SegDataSamples from `postprocess_result` ->
    (probabilities NHWC as `merge_preds` sums them, merge_preds's labels)."""
    import torch
    from mmseg.models.segmentors import SegTTAModel

    per_image = list(zip(*predictions))
    probs = []
    for samples in per_image:
        total = torch.zeros(samples[0].seg_logits.data.shape)
        for s in samples:
            total += s.seg_logits.data.softmax(dim=0)
        probs.append((total / len(samples)).permute(1, 2, 0).numpy())
    merged = SegTTAModel(module=reference).merge_preds(per_image)
    labels = np.stack([m.pred_sem_seg.data.numpy().reshape(probs[0].shape[:2]) for m in merged])
    return np.stack(probs), labels


def _torch_tta(mmseg_ann, reference, images, ratios):
    """mmseg's TTA with the image rescale done by `F.interpolate(bilinear,
    align_corners=False)` on float images instead of cv2 on uint8 (the
    `image_resize="bilinear"` of ours); mmcv's own resize-size rule;
    mmseg's `predict` (inference + postprocess_result: flip back, resize to
    `ori_shape` with the model's align_corners) per pass."""
    import torch
    import torch.nn.functional as F
    from mmcv.image.geometric import _scale_size, rescale_size
    from mmseg.structures import SegDataSample

    n, h, w, _ = images.shape
    raw = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
    mean = torch.tensor(mmseg_ann.MEAN).view(1, 3, 1, 1)
    std = torch.tensor(mmseg_ann.STD).view(1, 3, 1, 1)
    predictions = []
    for r in ratios:
        new_w, new_h = rescale_size((w, h), _scale_size((w, h), r))
        x = raw if (new_h, new_w) == (h, w) else F.interpolate(
            raw, size=(new_h, new_w), mode="bilinear", align_corners=False
        )
        x = (x - mean) / std
        for flip in (False, True):
            samples = []
            for _ in range(n):
                s = SegDataSample()
                s.set_metainfo(dict(
                    ori_shape=(h, w), img_shape=(new_h, new_w), scale_factor=(new_w / w, new_h / h),
                    flip=flip, flip_direction="horizontal", img_path="synthetic.png",
                ))
                samples.append(s)
            with torch.no_grad():
                predictions.append(reference.predict(x.flip(3) if flip else x, samples))
    return _merge_like_seg_tta(mmseg_ann, reference, predictions)


@pytest.mark.parametrize("align_corners", [False, True])
def test_multiscale_flip_matches_mmseg_whole(mmseg_ann, r18_pair, align_corners):
    reference, ours = r18_pair(align_corners)
    images = np.random.default_rng(8).uniform(0, 255, (1, 97, 131, 3)).astype("float32")
    _set_test_cfg(reference, "whole")
    want, want_labels = _torch_tta(mmseg_ann, reference, images, TTA_RATIOS)
    got = inference.multiscale_flip_inference(ours, images)
    assert got.shape == want.shape == (1, 97, 131, 5)
    max_diff, scale, agree = _report(f"ms+flip whole align_corners={align_corners}", got, want)
    assert max_diff <= 1e-4 * scale
    assert float(np.mean(got.argmax(-1) == want_labels)) >= 0.999


def test_multiscale_flip_slide_matches_mmseg_pipeline(mmseg_ann, r18_pair):
    """The real thing: mmseg's `tta_pipeline` (mmcv `TestTimeAug` with
    `Resize(scale_factor, keep_ratio=True)` on the uint8 BGR image via cv2,
    `RandomFlip(prob=0./1.)`, `PackSegInputs`), the model's `test_step`
    (data preprocessor, slide inference, postprocess_result) per pass, and
    `SegTTAModel.merge_preds`; ours with `image_resize="cv2"` on the uint8
    RGB image. At ratio 0.5 the image (32x48) is smaller than the crop."""
    import torch
    from mmcv.transforms import TestTimeAug

    reference, ours = r18_pair(True)
    crop, stride = (65, 65), (43, 43)
    _set_test_cfg(reference, "slide", crop, stride)
    image = np.random.default_rng(9).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    tta = TestTimeAug(
        transforms=[
            [dict(type="Resize", scale_factor=r, keep_ratio=True) for r in TTA_RATIOS],
            [
                dict(type="RandomFlip", prob=0.0, direction="horizontal"),
                dict(type="RandomFlip", prob=1.0, direction="horizontal"),
            ],
            [dict(type="PackSegInputs")],
        ]
    )
    bgr = np.ascontiguousarray(image[..., ::-1])
    augs = tta(dict(img=bgr, img_shape=(64, 96), ori_shape=(64, 96), img_path="synthetic.png"))
    assert len(augs["inputs"]) == 12
    predictions = []
    with torch.no_grad():
        for x, sample in zip(augs["inputs"], augs["data_samples"]):
            predictions.append(reference.test_step(dict(inputs=[x], data_samples=[sample])))
    want, want_labels = _merge_like_seg_tta(mmseg_ann, reference, predictions)
    got = inference.multiscale_flip_inference(
        ours, image[None], mode="slide", crop_size=crop, stride=stride, image_resize="cv2"
    )
    assert got.shape == want.shape == (1, 64, 96, 5)
    max_diff, scale, agree = _report("ms+flip slide (mmseg pipeline, cv2)", got, want)
    assert max_diff <= 1e-4 * scale
    assert float(np.mean(got.argmax(-1) == want_labels)) >= 0.999
    labels = inference.predict_labels(
        ours, image[None], mode="slide", crop_size=crop, stride=stride,
        ratios=TTA_RATIOS, flip=True, image_resize="cv2",
    )
    np.testing.assert_array_equal(labels, got.argmax(-1))
