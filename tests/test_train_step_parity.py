"""Training steps identical to the reference: from one mmsegmentation 1.2.2
checkpoint (random weights, randomised BN statistics), two SGD steps on the
same batch in float64 give the reference's losses, and afterwards the
eval-mode logits on a new image -- which depend on every weight and every
BN running statistic -- equal the reference's."""

import numpy as np
import pytest

import keras_ann

SIZE = (64, 96)
NUM_CLASSES = 19
HYPER = dict(lr=0.01, momentum=0.9, weight_decay=5e-4)


@pytest.fixture
def float64_floatx():
    """Keras's default float type float64 for the test (the loss and the
    loss tracker of `train_on_batch` are created in it)."""
    import keras

    previous = keras.config.floatx()
    keras.config.set_floatx("float64")
    yield
    keras.config.set_floatx(previous)


@pytest.mark.parametrize("avg_non_ignore", [False, True])
def test_loss_equals_the_reference_cross_entropy_in_float64(mmseg_ann, rng, avg_non_ignore):
    """mmseg's `CrossEntropyLoss` divides by (count + float32 epsilon)."""
    import torch

    mmseg_ann.install_mmcv_ops_stub()
    from mmseg.models.losses import CrossEntropyLoss

    from keras_ann.losses import SegmentationCrossEntropy

    logits = rng.normal(0, 3, (2, 5, 7, 4))
    labels = rng.integers(0, 4, (2, 5, 7))
    labels[0, :2] = 255
    reference = CrossEntropyLoss(avg_non_ignore=avg_non_ignore)
    want = float(reference(
        torch.from_numpy(logits.transpose(0, 3, 1, 2).copy()),
        torch.from_numpy(labels), ignore_index=255,
    ))
    got = float(SegmentationCrossEntropy(avg_non_ignore=avg_non_ignore, dtype="float64")(labels, logits))
    assert got == pytest.approx(want, rel=1e-14)


def _torch_batch_norm(channels, moving_mean, moving_variance, gamma, beta):
    import torch

    bn = torch.nn.BatchNorm2d(channels, eps=1e-5, momentum=0.1).double()
    with torch.no_grad():
        bn.running_mean.copy_(torch.from_numpy(moving_mean))
        bn.running_var.copy_(torch.from_numpy(moving_variance))
        bn.weight.copy_(torch.from_numpy(gamma))
        bn.bias.copy_(torch.from_numpy(beta))
    return bn.train()


def _keras_batch_norm(channels, moving_mean, moving_variance, gamma, beta):
    from keras_ann.layers.conv_bn import batch_norm

    bn = batch_norm(dtype="float64")
    bn.build((None, None, None, channels))
    bn.set_weights([gamma, beta, moving_mean, moving_variance])
    return bn


@pytest.mark.parametrize("statistics_updates", [1, 2])
def test_batch_norm_updates_statistics_as_pytorch(mmseg_ann, rng, statistics_updates):
    """Three training calls: the outputs and the running statistics equal
    `torch.nn.BatchNorm2d`'s (unbiased variance), `statistics_updates=2`
    equal two calls of the torch module on the same input."""
    import torch

    c = 3
    state = (rng.normal(size=c), rng.uniform(0.5, 2.0, c), rng.uniform(0.5, 1.5, c), rng.normal(size=c))
    ours, theirs = _keras_batch_norm(c, *state), _torch_batch_norm(c, *state)
    for shape in [(2, 5, 7, c), (1, 2, 3, c), (4, 1, 1, c)]:
        x = rng.normal(1.0, 3.0, shape)
        got = np.asarray(ours(x, training=True, statistics_updates=statistics_updates))
        x_torch = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
        with torch.no_grad():
            for _ in range(statistics_updates):
                want = theirs(x_torch).numpy().transpose(0, 2, 3, 1)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(np.asarray(ours.moving_mean), theirs.running_mean.numpy(), rtol=1e-13)
        np.testing.assert_allclose(np.asarray(ours.moving_variance), theirs.running_var.numpy(), rtol=1e-13)
    # Inference uses the moving statistics, as torch's eval mode.
    x = rng.normal(size=(1, 4, 4, c))
    with torch.no_grad():
        want = theirs.eval()(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
    np.testing.assert_allclose(np.asarray(ours(x)), want.transpose(0, 2, 3, 1), rtol=1e-12, atol=1e-12)


def test_batch_norm_with_one_value_per_channel_stays_finite():
    from keras_ann.layers.conv_bn import batch_norm

    bn = batch_norm()
    bn(np.ones((1, 1, 1, 2), "float32"), training=True)
    # The biased variance (zero) is kept: no division by n - 1 = 0.
    np.testing.assert_allclose(np.asarray(bn.moving_variance), [0.9, 0.9])
    np.testing.assert_allclose(np.asarray(bn.moving_mean), [0.1, 0.1])


def test_batch_norm_rejects_bad_arguments():
    from keras_ann.layers import TorchBatchNormalization

    with pytest.raises(ValueError, match="renorm"):
        TorchBatchNormalization(renorm=True)
    bn = TorchBatchNormalization()
    with pytest.raises(ValueError, match="statistics_updates"):
        bn(np.ones((2, 3), "float32"), training=True, statistics_updates=0)


def test_synchronized_batch_norm_counts_all_replicas():
    """Under MirroredStrategy (two logical CPUs) the unbiased variance uses
    the count of the global batch, as PyTorch's `SyncBatchNorm`."""
    import json
    import os
    import subprocess
    import sys

    pytest.importorskip("tensorflow")
    here = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, KERAS_BACKEND="tensorflow",
               PYTHONPATH=os.pathsep.join([os.path.dirname(here), here]))
    result = subprocess.run(
        [sys.executable, os.path.join(here, "sync_batch_norm_check.py")],
        capture_output=True, text=True, timeout=600, env=env,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["replicas"] == 2
    assert report["mean_error"] <= 1e-12 and report["variance_error"] <= 1e-12


def test_apnb_updates_its_shared_projection_twice_per_step(mmseg_ann, rng):
    """mmseg's APNB calls its shared key/query projection twice per forward
    pass; in training mode its BN statistics move twice (momentum 0.19 in
    effect), every other BN once. Ours equals it, in float64."""
    import torch

    mmseg_ann.install_mmcv_ops_stub()
    from mmseg.models.decode_heads.ann_head import APNB as ReferenceAPNB

    from keras_ann.layers import APNB

    torch.manual_seed(0)
    theirs = ReferenceAPNB(
        in_channels=6, channels=4, out_channels=6, query_scales=(1,), key_pool_scales=(1, 2),
        conv_cfg=None, norm_cfg=dict(type="BN"), act_cfg=dict(type="ReLU"),
    ).double()
    ours = APNB(4, 6, query_scales=(1,), key_pool_scales=(1, 2), dtype="float64")
    ours.build((None, 5, 7, 6))
    stage, ref_stage = ours.stages[0], theirs.stages[0]
    pairs = [
        (stage.key_project, ref_stage.key_project),
        (ours.bottleneck, theirs.bottleneck),
    ]
    with torch.no_grad():
        for keras_block, module in pairs:
            kernel = rng.normal(0, 0.5, tuple(keras_block.conv.kernel.shape))
            keras_block.conv.kernel.assign(kernel)
            module.conv.weight.copy_(torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy()))
            values = [rng.uniform(0.5, 1.5, module.bn.num_features) for _ in range(4)]
            keras_block.bn.set_weights(values)
            for tensor, value in zip(
                (module.bn.weight, module.bn.bias, module.bn.running_mean, module.bn.running_var),
                values,
            ):
                tensor.copy_(torch.from_numpy(value))
        value_kernel = rng.normal(0, 0.5, tuple(stage.value_project.kernel.shape))
        stage.value_project.kernel.assign(value_kernel)
        stage.value_project.bias.assign(np.zeros(4))
        ref_stage.value_project.weight.copy_(
            torch.from_numpy(value_kernel.transpose(3, 2, 0, 1).copy()))
        ref_stage.value_project.bias.zero_()
        out_kernel = rng.normal(0, 0.5, tuple(stage.out_project.kernel.shape))
        stage.out_project.kernel.assign(out_kernel)
        stage.out_project.bias.assign(np.zeros(6))
        ref_stage.out_project.weight.copy_(
            torch.from_numpy(out_kernel.transpose(3, 2, 0, 1).copy()))
        ref_stage.out_project.bias.zero_()

    x = rng.normal(size=(2, 5, 7, 6))
    got = np.asarray(ours(x, training=True))
    with torch.no_grad():
        want = theirs.train()(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()))
    np.testing.assert_allclose(got, want.numpy().transpose(0, 2, 3, 1), rtol=1e-12, atol=1e-12)
    for keras_block, module in pairs:
        np.testing.assert_allclose(
            np.asarray(keras_block.bn.moving_mean), module.bn.running_mean.numpy(), rtol=1e-13)
        np.testing.assert_allclose(
            np.asarray(keras_block.bn.moving_variance), module.bn.running_var.numpy(), rtol=1e-13)
    # The shared projection ran twice in the reference, the bottleneck once.
    assert int(ref_stage.key_project.bn.num_batches_tracked) == 2
    assert int(theirs.bottleneck.bn.num_batches_tracked) == 1


def _batch(seed):
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 255, (2, *SIZE, 3))
    labels = rng.integers(0, NUM_CLASSES, (2, *SIZE))
    labels[rng.uniform(size=labels.shape) < 0.1] = 255  # some ignored pixels
    new_image = rng.uniform(0, 255, (1, *SIZE, 3))
    return images, labels, new_image


def _ours_train_steps(model, images, labels, align_corners, steps=2):
    from keras_ann.losses import SegmentationCrossEntropy
    from keras_ann.optimizers import TorchSGD

    model.compile(
        optimizer=TorchSGD(
            learning_rate=HYPER["lr"],
            momentum=HYPER["momentum"],
            weight_decay=HYPER["weight_decay"],
        ),
        loss=SegmentationCrossEntropy(align_corners=align_corners),
        metrics=[],
    )
    return [
        float(model.train_on_batch(images, labels, return_dict=True)["loss"])
        for _ in range(steps)
    ]


@pytest.mark.parametrize(
    "depth,align_corners,remat",
    [(18, False, False), (18, True, False), (50, False, False), (50, True, False),
     # Recomputation trains the same (as the reference without `with_cp`;
     # see the next test).
     (50, False, True)],
)
def test_two_sgd_steps_equal_the_reference(
    mmseg_ann, tmp_path, float64_floatx, depth, align_corners, remat
):
    reference = mmseg_ann.build_reference_ann(
        depth=depth, num_classes=NUM_CLASSES, align_corners=align_corners, seed=depth
    )
    path = str(tmp_path / f"ann_r{depth}.pth")
    mmseg_ann.save_state_dict(reference, path)
    ours = keras_ann.ANNSegmenter.from_preset(
        path, align_corners=align_corners, dtype="float64", dropout=0.0
    )
    ours.backbone.remat = remat
    images, labels, new_image = _batch(depth + align_corners)

    want_losses = mmseg_ann.reference_train_steps(reference, images, labels, steps=2, **HYPER)
    got_losses = _ours_train_steps(ours, images, labels, align_corners, steps=2)
    want = mmseg_ann.reference_logits_float64(reference, new_image)
    got = np.asarray(ours.predict(new_image, verbose=0))

    assert got.dtype == np.float64 and got.shape == want.shape == (1, *SIZE, NUM_CLASSES)
    loss_diff = np.abs(np.subtract(got_losses, want_losses)) / np.abs(want_losses)
    logit_diff = float(np.abs(got - want).max() / np.abs(want).max())
    print(f"R-{depth} align_corners={align_corners} remat={remat}: losses {want_losses}, "
          f"relative loss differences {loss_diff}, max|logit| {np.abs(want).max():.3g}, "
          f"relative logit difference {logit_diff:.3g}")
    np.testing.assert_allclose(got_losses, want_losses, rtol=1e-12)
    assert logit_diff <= 1e-9


def test_the_references_recomputation_updates_batch_norm_twice(mmseg_ann):
    """Why `remat=True` is compared with the reference's training without
    `with_cp` (a deliberate difference, docs/differences.md): mmcv's checkpoint runs a
    residual block's forward pass again in the backward pass, batch norm
    included, so the block's running statistics move twice per step; our
    recomputation moves them once."""
    images, labels, _ = _batch(5)
    runs = {}
    for with_cp in (False, True):
        reference = mmseg_ann.build_reference_ann(depth=18, num_classes=NUM_CLASSES, seed=5)
        mmseg_ann.set_with_cp(reference, with_cp)
        losses = mmseg_ann.reference_train_steps(reference, images, labels, steps=2, **HYPER)
        runs[with_cp] = (losses, reference.backbone.layer1[0].bn1, reference.backbone.stem[1])
    (plain_losses, plain_bn, plain_stem), (cp_losses, cp_bn, cp_stem) = runs[False], runs[True]
    np.testing.assert_allclose(cp_losses, plain_losses, rtol=1e-12)  # the same forward passes
    assert int(plain_bn.num_batches_tracked) == 2 and int(cp_bn.num_batches_tracked) == 4
    assert not np.allclose(cp_bn.running_mean.numpy(), plain_bn.running_mean.numpy(), rtol=1e-3)
    # The stem is not checkpointed there.
    np.testing.assert_array_equal(cp_stem.running_mean.numpy(), plain_stem.running_mean.numpy())
