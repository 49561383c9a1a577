"""DiceLoss, FocalLoss, LovaszLoss, TverskyLoss and OHEMLoss against
mmsegmentation 1.2.2's classes, driven with the same float64 inputs
(NCHW there, NHWC here), ignored pixels (255) included; then each loss in
`ANNSegmenter.compile(loss=...)` and `fit()`, traced without static shapes,
under mixed precision, and through `get_config()`."""

import keras
import numpy as np
import pytest

from keras_ann import losses
from keras_ann.losses import (
    DiceLoss, FocalLoss, LovaszLoss, OHEMLoss, SegmentationCrossEntropy, SumOfLosses, TverskyLoss, build_loss,
)  # fmt: skip

IGNORE = 255
# float64 round-off on TensorFlow. On JAX and PyTorch, Keras's `Loss`
# reduction (`divide_no_nan`, through `keras.backend.result_type`) turns
# float64 into float32, so there only the reduced value is float32-exact.
RTOL = 1e-12 if keras.backend.backend() == "tensorflow" else 1e-6


@pytest.fixture(autouse=True)
def _float64_on_jax(request):
    """JAX holds float64 only with `jax_enable_x64`: on for the tests that
    compare with mmseg."""
    if keras.backend.backend() != "jax" or "mmseg" not in request.fixturenames:
        yield
        return
    import jax

    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", previous)


@pytest.fixture(scope="module")
def mmseg(mmseg_ann):
    """mmseg's loss classes, its OHEM sampler and a decode head."""
    mmseg_ann.install_mmcv_ops_stub()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import mmseg.models.losses as mmseg_losses
        from mmseg.models.decode_heads import FCNHead
        from mmseg.structures import SegDataSample
        from mmseg.utils import register_all_modules
    register_all_modules()
    mmseg_losses.FCNHead = FCNHead
    mmseg_losses.SegDataSample = SegDataSample
    return mmseg_losses


@pytest.fixture
def float_is_float64(monkeypatch):
    """mmseg casts labels with `.float()`, to float32 whatever the logits:
    its `lovasz_grad` then makes the dot product fail on float64 errors,
    and its `dice_loss` rounds `sum(t^2) + eps` to float32. `.float()` is
    made to mean float64 for the test, so that the reference's code runs
    unchanged in float64."""
    import torch

    monkeypatch.setattr(torch.Tensor, "float", torch.Tensor.double)


def _batch(num_classes=4, shape=(2, 9, 11), seed=0, binary=False):
    """float64 logits `(N, H, W, C)` and labels with ~20% ignored pixels,
    one image row fully ignored."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 2.0, shape + (num_classes,))
    labels = rng.integers(0, 2 if binary else num_classes, shape)
    labels[rng.random(shape) < 0.2] = IGNORE
    labels[0, 0] = IGNORE
    return labels, logits


def _torch(labels, logits):
    import torch

    return torch.from_numpy(labels.astype(np.int64)), torch.from_numpy(np.ascontiguousarray(logits.transpose(0, 3, 1, 2)))


def _ours(loss, labels, logits, **kwargs):
    return np.asarray(loss(labels, logits, **kwargs), dtype=np.float64)


def _assert_equal(got, want):
    want = np.asarray(want.detach().numpy() if hasattr(want, "detach") else want, dtype=np.float64)
    assert got.shape == want.shape, (got.shape, want.shape)
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=1e-15)


# === DiceLoss ===

DICE_CASES = {
    "defaults": {},
    "softmax": dict(use_sigmoid=False),
    "naive_dice_and_softmax": dict(use_sigmoid=False, naive_dice=True),
    "naive_dice_and_sigmoid_and_eps": dict(naive_dice=True, eps=0.5),
    "no_activation": dict(activate=False),
    "sum_and_loss_weight": dict(reduction="sum", loss_weight=0.4),
    "per_image_losses": dict(reduction="none", use_sigmoid=False),
    "ignored_class_channel": dict(ignore_index=1, use_sigmoid=False),
}


@pytest.mark.parametrize("kwargs", DICE_CASES.values(), ids=DICE_CASES.keys())
def test_dice_loss_equals_mmseg_with_ignored_pixels(mmseg, float_is_float64, kwargs):
    labels, logits = _batch()
    t_labels, t_logits = _torch(labels, logits)
    want = mmseg.DiceLoss(**kwargs)(t_logits, t_labels)
    _assert_equal(_ours(DiceLoss(dtype="float64", **kwargs), labels, logits), want)


def test_dice_loss_sample_weight_is_mmseg_per_image_weight(mmseg, float_is_float64):
    import torch

    labels, logits = _batch(seed=1)
    t_labels, t_logits = _torch(labels, logits)
    weight = np.array([0.25, 2.0])
    want = mmseg.DiceLoss(naive_dice=True)(t_logits, t_labels, weight=torch.from_numpy(weight))
    _assert_equal(_ours(DiceLoss(naive_dice=True, dtype="float64"), labels, logits, sample_weight=weight), want)


def test_dice_loss_refuses_ignoring_its_only_class():
    labels, logits = _batch(num_classes=1, binary=True)
    with pytest.raises(ValueError, match="ignore_index=0 is the only class"):
        DiceLoss(ignore_index=0)(labels, logits)


# === FocalLoss ===

FOCAL_CASES = {
    "defaults": dict(),
    "alpha_and_gamma": dict(alpha=0.25, gamma=1.5),
    "alpha_per_class": dict(alpha=[0.1, 0.4, 0.6, 0.9]),
    "class_weight_and_loss_weight": dict(class_weight=[0.5, 1.0, 2.0, 3.0], loss_weight=0.7),
    "sum": dict(reduction="sum"),
    "no_reduction": dict(reduction="none", gamma=3.0),
}


def _mmseg_focal(mmseg, labels, logits, **kwargs):
    """mmseg's `FocalLoss` on the one-hot labels its CUDA branch builds,
    the ignored pixels given weight 0. (Its CPU branch on integer labels
    keeps the wrong one-hot column and raises: see FocalLoss's docstring.)"""
    import torch

    num_classes = logits.shape[-1]
    valid = labels != IGNORE
    safe = np.where(valid, labels, 0)
    one_hot = (safe == 1)[..., None] if num_classes == 1 else np.eye(num_classes)[safe]
    _, t_logits = _torch(labels, logits)
    target = torch.from_numpy(np.ascontiguousarray(one_hot.astype(np.float64).transpose(0, 3, 1, 2)))
    weight = torch.from_numpy(valid.reshape(-1).astype(np.float64))
    want = mmseg.FocalLoss(**kwargs)(t_logits, target, weight=weight, ignore_index=IGNORE)
    return want.permute(0, 2, 3, 1) if want.ndim == 4 else want


@pytest.mark.parametrize("kwargs", FOCAL_CASES.values(), ids=FOCAL_CASES.keys())
def test_focal_loss_equals_mmseg_with_ignored_pixels(mmseg, kwargs):
    labels, logits = _batch(seed=2)
    want = _mmseg_focal(mmseg, labels, logits, **kwargs)
    _assert_equal(_ours(FocalLoss(dtype="float64", **kwargs), labels, logits), want)


def test_focal_loss_equals_mmseg_on_one_foreground_logit(mmseg):
    labels, logits = _batch(num_classes=1, binary=True, seed=3)
    want = _mmseg_focal(mmseg, labels, logits, alpha=0.25)
    _assert_equal(_ours(FocalLoss(alpha=0.25, dtype="float64"), labels, logits), want)


def test_focal_loss_mmseg_cpu_branch_fails_on_integer_labels(mmseg):
    # Why the test above gives mmseg one-hot labels: should mmseg fix its
    # CPU branch, this fails and the comparison can use integer labels.
    labels, logits = _batch(seed=2)
    t_labels, t_logits = _torch(labels, logits)
    with pytest.raises(RuntimeError, match="size of tensor"):
        mmseg.FocalLoss()(t_logits, t_labels, ignore_index=IGNORE)


def test_focal_loss_refuses_softmax_and_wrong_alpha_length():
    with pytest.raises(ValueError, match="use_sigmoid=False"):
        FocalLoss(use_sigmoid=False)
    labels, logits = _batch()
    with pytest.raises(ValueError, match="alpha has 2 entries but the logits have 4 classes"):
        FocalLoss(alpha=[0.2, 0.8])(labels, logits)


# === LovaszLoss ===

LOVASZ_CASES = {
    "defaults": dict(),
    "all_classes": dict(classes="all"),
    "listed_classes_and_class_weight": dict(classes=[0, 2], class_weight=[0.5, 1.0, 2.0, 3.0]),
    "present_classes_and_class_weight": dict(class_weight=[0.5, 1.0, 2.0, 3.0], loss_weight=0.3),
    "per_image_mean": dict(per_image=True),
    "per_image_sum": dict(per_image=True, reduction="sum"),
    "per_image_losses": dict(per_image=True, reduction="none", classes="all"),
    "binary": dict(loss_type="binary"),
    "binary_per_image": dict(loss_type="binary", per_image=True, reduction="none"),
}


@pytest.mark.parametrize("kwargs", LOVASZ_CASES.values(), ids=LOVASZ_CASES.keys())
def test_lovasz_loss_equals_mmseg_with_ignored_pixels(mmseg, float_is_float64, kwargs):
    binary = kwargs.get("loss_type") == "binary"
    labels, logits = _batch(num_classes=1 if binary else 4, binary=binary, seed=4)
    labels[1, :, :3] = IGNORE  # so that images differ in their labelled classes
    labels[1][labels[1] == 3] = 0
    t_labels, t_logits = _torch(labels, logits)
    reference = {"reduction": "mean" if kwargs.get("per_image") else "none", **kwargs}
    if binary:  # mmseg's hinge takes the logits (N, H, W)
        t_logits = t_logits[:, 0]
    want = mmseg.LovaszLoss(**reference)(t_logits, t_labels, ignore_index=IGNORE)
    _assert_equal(_ours(LovaszLoss(dtype="float64", **kwargs), labels, logits), want)


def test_lovasz_loss_refuses_what_mmseg_asserts(mmseg):
    with pytest.raises(AssertionError):
        mmseg.LovaszLoss(reduction="mean")
    with pytest.raises(ValueError, match="reduction='mean' needs per_image=True"):
        LovaszLoss(reduction="mean")
    with pytest.raises(ValueError, match="loss_type"):
        LovaszLoss(loss_type="hinge")
    with pytest.raises(ValueError, match="classes"):
        LovaszLoss(classes="some")
    labels, logits = _batch()
    with pytest.raises(ValueError, match="one logit channel"):
        LovaszLoss(loss_type="binary")(labels, logits)


# === TverskyLoss ===

TVERSKY_CASES = {
    "defaults": dict(),
    "alpha_beta_and_smooth": dict(alpha=0.5, beta=0.5, smooth=0.25),
    "class_weight_and_loss_weight": dict(class_weight=[0.5, 1.0, 2.0, 3.0], loss_weight=1.5),
    "ignored_class_number": dict(ignore_index=2),
}


@pytest.mark.parametrize("kwargs", TVERSKY_CASES.values(), ids=TVERSKY_CASES.keys())
def test_tversky_loss_equals_mmseg_with_ignored_pixels(mmseg, kwargs):
    labels, logits = _batch(seed=5)
    t_labels, t_logits = _torch(labels, logits)
    want = mmseg.TverskyLoss(**kwargs)(t_logits, t_labels)
    _assert_equal(_ours(TverskyLoss(dtype="float64", **kwargs), labels, logits), want)


def test_tversky_loss_refuses_alpha_and_beta_not_summing_to_one():
    with pytest.raises(ValueError, match="alpha \\+ beta must be 1.0"):
        TverskyLoss(alpha=0.5, beta=0.7)


# === OHEMLoss ===

OHEM_CASES = {
    "threshold_above_the_cut": dict(thresh=0.7, min_kept=20),
    "threshold_below_the_cut": dict(thresh=0.05, min_kept=40),
    "min_kept_beyond_the_pixels": dict(thresh=0.7, min_kept=1000),
    "highest_losses": dict(thresh=None, min_kept=30),
    "highest_losses_averaged_over_labelled_pixels": dict(thresh=None, min_kept=30, avg_non_ignore=True),
    "threshold_and_loss_weight": dict(thresh=0.6, min_kept=25, loss_weight=0.4),
}


def _mmseg_ohem(mmseg, labels, logits, thresh, min_kept, **ce_kwargs):
    """mmseg's decode head with the sampler: `(seg_weight, loss_ce)`, the
    weight of the logits resized to the labels as `loss_by_feat` does."""
    import torch
    from mmengine.structures import PixelData
    from mmseg.models.utils import resize

    head = mmseg.FCNHead(
        in_channels=4, channels=4, num_convs=0, concat_input=False, num_classes=logits.shape[-1],
        sampler=dict(type="OHEMPixelSampler", thresh=thresh, min_kept=min_kept),
        loss_decode=dict(type="CrossEntropyLoss", **ce_kwargs),
    )
    t_labels, t_logits = _torch(labels, logits)
    samples = []
    for label in t_labels:
        sample = mmseg.SegDataSample()
        sample.gt_sem_seg = PixelData(data=label[None])
        samples.append(sample)
    with torch.no_grad():
        resized = resize(t_logits, size=t_labels.shape[1:], mode="bilinear", align_corners=False)
        weight = head.sampler.sample(resized, t_labels[:, None])
        loss = head.loss_by_feat(t_logits, samples)["loss_ce"]
    return weight, loss


@pytest.mark.parametrize("kwargs", OHEM_CASES.values(), ids=OHEM_CASES.keys())
def test_ohem_loss_keeps_mmseg_pixels_and_equals_its_decode_head_loss(mmseg, kwargs):
    kwargs = dict(kwargs)
    thresh, min_kept = kwargs.pop("thresh"), kwargs.pop("min_kept")
    labels, logits = _batch(shape=(2, 12, 13), seed=6)
    want_weight, want_loss = _mmseg_ohem(mmseg, labels, logits, thresh, min_kept, **kwargs)
    ohem = OHEMLoss(SegmentationCrossEntropy(dtype="float64", **kwargs), thresh=thresh, min_kept=min_kept)
    kept = np.asarray(ohem.sample(labels, logits))
    np.testing.assert_array_equal(kept, want_weight.numpy())
    assert 0 < kept.sum() < (labels != IGNORE).sum() or min_kept == 1000  # the sampler chose
    _assert_equal(_ours(ohem, labels, logits), want_loss)


def test_ohem_loss_resizes_small_logits_as_mmseg_decode_head(mmseg):
    labels, _ = _batch(shape=(2, 12, 13), seed=7)
    _, logits = _batch(shape=(2, 6, 7), seed=7)
    want_weight, want_loss = _mmseg_ohem(mmseg, labels, logits, 0.7, 30)
    ohem = OHEMLoss(SegmentationCrossEntropy(dtype="float64"), thresh=0.7, min_kept=30)
    np.testing.assert_array_equal(np.asarray(ohem.sample(labels, logits)), want_weight.numpy())
    _assert_equal(_ours(ohem, labels, logits), want_loss)


def test_ohem_loss_refuses_other_losses_and_small_min_kept():
    with pytest.raises(ValueError, match="loss must be a SegmentationCrossEntropy; got DiceLoss"):
        OHEMLoss(DiceLoss())
    with pytest.raises(ValueError, match="min_kept must be an int > 1"):
        OHEMLoss(min_kept=1)


# === build_loss: a loss_decode list ===


def test_build_loss_of_a_loss_decode_list_equals_mmseg_decode_head_sum(mmseg, float_is_float64):
    import torch
    from mmengine.structures import PixelData

    config = [
        {"type": "CrossEntropyLoss", "loss_weight": 1.0, "avg_non_ignore": True},
        {"type": "DiceLoss", "loss_weight": 3.0, "use_sigmoid": False, "loss_name": "loss_dice"},
        {"type": "TverskyLoss", "loss_weight": 0.5, "loss_name": "loss_tversky"},
    ]
    head = mmseg.FCNHead(
        in_channels=4, channels=4, num_convs=0, concat_input=False, num_classes=4, loss_decode=config,
    )
    labels, logits = _batch(seed=12)
    t_labels, t_logits = _torch(labels, logits)
    samples = []
    for label in t_labels:
        sample = mmseg.SegDataSample()
        sample.gt_sem_seg = PixelData(data=label[None])
        samples.append(sample)
    with torch.no_grad():
        parts = head.loss_by_feat(t_logits, samples)
    want = sum(value for key, value in parts.items() if key.startswith("loss_"))
    assert len([key for key in parts if key.startswith("loss_")]) == 3
    ours = build_loss([dict(entry, dtype="float64") for entry in config], ignore_index=IGNORE)
    assert isinstance(ours, SumOfLosses)
    _assert_equal(_ours(ours, labels, logits), want)


def test_build_loss_refuses_unknown_types_and_arguments():
    with pytest.raises(ValueError, match="Unknown loss type 'BoundaryLoss'; the types are CrossEntropyLoss"):
        build_loss([{"type": "BoundaryLoss"}])
    with pytest.raises(ValueError, match="Loss config .*'DiceLoss'.*smooth"):
        build_loss({"type": "DiceLoss", "smooth": 1.0})
    with pytest.raises(ValueError, match="use_sigmoid=True"):
        build_loss({"type": "CrossEntropyLoss", "use_sigmoid": True})
    ohem = build_loss({"type": "OHEMLoss", "thresh": 0.7, "min_kept": 10, "avg_non_ignore": True}, class_weight=[1, 2])
    assert (ohem.thresh, ohem.min_kept, ohem.loss.avg_non_ignore, ohem.loss.class_weight) == (0.7, 10, True, [1, 2])


# === Keras: compile and fit, tracing, mixed precision, configs ===


def _all_losses():
    return {
        "DiceLoss": DiceLoss(use_sigmoid=False, loss_weight=0.5),
        "FocalLoss": FocalLoss(alpha=[0.2, 0.3, 0.5], class_weight=[1.0, 2.0, 0.5]),
        "LovaszLoss": LovaszLoss(per_image=True),
        "TverskyLoss": TverskyLoss(alpha=0.4, beta=0.6),
        "OHEMLoss": OHEMLoss(SegmentationCrossEntropy(avg_non_ignore=True), thresh=0.7, min_kept=50),
        "OHEMLoss_highest": OHEMLoss(min_kept=50),
        "SumOfLosses": build_loss([{"type": "CrossEntropyLoss"}, {"type": "LovaszLoss", "loss_weight": 0.5}]),
    }


@pytest.fixture(scope="module")
def tiny_model():
    import keras_ann

    return keras_ann.ANNSegmenter(backbone="resnet18_d8", num_classes=3)


@pytest.mark.parametrize("name", _all_losses())
def test_each_loss_compiles_into_the_segmenter_and_fits_a_step(tiny_model, name):
    rng = np.random.default_rng(8)
    images = rng.uniform(0, 255, (1, 33, 33, 3)).astype("float32")
    labels = rng.integers(0, 3, (1, 33, 33))
    labels[0, :4] = IGNORE
    # Eager here, for speed; the compiled train function is the next test's.
    tiny_model.compile(loss=_all_losses()[name], run_eagerly=True)
    history = tiny_model.fit(images, labels, epochs=1, batch_size=1, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert history.history["decode_loss"][0] > 0


def test_a_sorting_loss_fits_a_step_in_the_compiled_train_function(tiny_model):
    rng = np.random.default_rng(8)
    images = rng.uniform(0, 255, (1, 33, 33, 3)).astype("float32")
    labels = rng.integers(0, 3, (1, 33, 33))
    labels[0, :4] = IGNORE
    before = [np.array(w) for w in tiny_model.trainable_weights]
    tiny_model.compile(loss=LovaszLoss(per_image=True))  # jit_compile="auto"
    history = tiny_model.fit(images, labels, epochs=1, batch_size=1, verbose=0)
    assert np.isfinite(history.history["loss"]).all() and history.history["decode_loss"][0] > 0
    # The classifiers got a gradient through the sort (the early layers'
    # steps may round away in float32).
    changed = {w.path for b, w in zip(before, tiny_model.trainable_weights) if not np.array_equal(b, np.array(w))}
    assert {"decode_head/conv_seg/kernel", "auxiliary_head/conv_seg/kernel"} <= changed, sorted(changed)


def _compiled(loss):
    """The loss traced the way `fit()` compiles it on this backend, without
    static batch or spatial sizes where the backend allows it."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        spec = [tf.TensorSpec([None, None, None], tf.int32), tf.TensorSpec([None, None, None, 3], tf.float32)]
        return tf.function(lambda y, p: loss(y, p), input_signature=spec, jit_compile=True)
    if backend == "jax":
        import jax

        return jax.jit(lambda y, p: loss(y, p))
    return lambda y, p: loss(y, p)


@pytest.mark.parametrize("name", _all_losses())
def test_each_loss_traced_without_static_shapes_equals_eager(name):
    loss = _all_losses()[name]
    labels, logits = _batch(num_classes=3, seed=9)
    logits = logits.astype("float32")
    want = float(loss(labels, logits))
    got = float(_compiled(loss)(labels.astype("int32"), logits))
    assert got == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize("name", _all_losses())
def test_each_loss_under_mixed_precision_computes_in_float32(name):
    labels, logits = _batch(num_classes=3, seed=10)
    want = float(_all_losses()[name](labels, logits.astype("float32")))
    keras.mixed_precision.set_global_policy("mixed_float16")
    loss = _all_losses()[name]
    got = loss(labels, keras.ops.convert_to_tensor(logits, "float16"))
    assert keras.backend.standardize_dtype(got.dtype) == "float32"
    assert float(got) == pytest.approx(want, rel=1e-2)


@pytest.mark.parametrize("name", _all_losses())
def test_each_loss_config_round_trips(name):
    loss = _all_losses()[name]
    config = loss.get_config()
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert type(again) is type(loss) and again.get_config() == config
    labels, logits = _batch(num_classes=3, seed=11)
    assert float(again(labels, logits)) == pytest.approx(float(loss(labels, logits)), rel=1e-6)


def test_the_package_exports_every_loss():
    assert set(losses.__all__) == {
        "DiceLoss", "FocalLoss", "LovaszLoss", "OHEMLoss", "SegmentationCrossEntropy", "TverskyLoss",
        "SumOfLosses", "build_loss", "LOSS_TYPES",
    }  # fmt: skip
