"""`TorchSGD` against `torch.optim.SGD`, and `PolyDecay` against mmengine's
`PolyLR`: the reference's optimisation, step for step."""

import copy
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_ann.optimizers import TorchSGD
from keras_ann.schedules import PolyDecay
from testing_utils import require

LR, MOMENTUM, WD, ETA_MIN, POWER = 0.01, 0.9, 5e-4, 1e-4, 0.9
# Keras holds a constant learning rate in a float32 variable: one exact in float32.
CONST_LR = 2.0**-7
SHAPES = [(3, 4), (4,), (2, 2, 3), (5,)]  # a kernel, a bias, a conv kernel, BN gamma


# ---------------------------------------------------------------- helpers


def _initial_values(dtype):
    rng = np.random.default_rng(42)
    return [rng.normal(size=s).astype(dtype) for s in SHAPES]


def _targets():
    rng = np.random.default_rng(7)
    return [rng.normal(size=s) for s in SHAPES]


def _gradient(value, target):
    """A non-linear gradient field, the same function in both frameworks."""
    value = np.asarray(value, np.float64)
    return (value - target) + 0.5 * np.sin(2.0 * value)


def _mmengine_lrs(optimizer, decay_steps, steps):
    """Yields mmengine PolyLR's learning rate before each optimiser step;
    the caller steps the optimiser."""
    from mmengine.optim.scheduler import PolyLR

    scheduler = PolyLR(optimizer, eta_min=ETA_MIN, power=POWER, begin=0, end=decay_steps, by_epoch=False)
    for _ in range(steps):
        yield optimizer.param_groups[0]["lr"]
        scheduler.step()


def _torch_trajectory(dtype, steps, decay_steps, momentum=MOMENTUM, weight_decay=WD, nesterov=False, dampening=0.0):
    """torch.optim.SGD + mmengine PolyLR from LR (`decay_steps=None`: CONST_LR)."""
    torch = require("torch")
    params = [torch.nn.Parameter(torch.tensor(v)) for v in _initial_values(dtype)]
    optimizer = torch.optim.SGD(
        params, lr=LR if decay_steps else CONST_LR, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov, dampening=dampening
    )
    if decay_steps is None:
        lrs = (CONST_LR for _ in range(steps))
    else:
        require("mmengine")
        lrs = _mmengine_lrs(optimizer, decay_steps, steps)
    trajectory = []
    for _, lr in zip(range(steps), lrs):
        assert optimizer.param_groups[0]["lr"] == lr
        for p, t in zip(params, _targets()):
            p.grad = torch.tensor(_gradient(p.detach().numpy(), t).astype(dtype))
        optimizer.step()
        trajectory.append([p.detach().numpy().copy() for p in params])
    return trajectory


def _keras_trajectory(optimizer, dtype, steps):
    variables = [keras.Variable(v, dtype=dtype) for v in _initial_values(dtype)]
    trajectory = []
    for _ in range(steps):
        grads = [_gradient(keras.ops.convert_to_numpy(v), t).astype(dtype) for v, t in zip(variables, _targets())]
        optimizer.apply(grads, variables)
        trajectory.append([keras.ops.convert_to_numpy(v).copy() for v in variables])
    return trajectory


def _displacement_error(got, want, dtype):
    """Largest difference of the trajectories relative to how far the
    reference's variables moved."""
    start = _initial_values(dtype)
    worst = 0.0
    for got_step, want_step in zip(got, want):
        for g, w, s in zip(got_step, want_step, start):
            moved = np.abs(np.asarray(w, np.float64) - s).max()
            worst = max(worst, np.abs(np.asarray(g, np.float64) - w).max() / moved)
    return worst


def _poly(decay_steps):
    return PolyDecay(LR, decay_steps=decay_steps, power=POWER, end_learning_rate=ETA_MIN)


# ---------------------------------------------------------------- TorchSGD


def _relative_error(got, want):
    """Largest difference over the trajectories, relative to each variable's
    largest magnitude."""
    return max(
        np.abs(np.asarray(g, np.float64) - w).max() / np.abs(w).max()
        for got_step, want_step in zip(got, want)
        for g, w in zip(got_step, want_step)
    )


def test_trajectory_equals_torch_sgd_with_mmengine_poly_lr():
    """20 steps of the reference's SGD (lr 0.01, momentum 0.9, weight decay
    5e-4 on every variable) with mmengine's PolyLR decaying over those steps."""
    steps = 20
    optimizer = lambda: TorchSGD(_poly(steps), momentum=MOMENTUM, weight_decay=WD)  # noqa: E731
    # float64: equal to rounding.
    want64 = _torch_trajectory("float64", steps, decay_steps=steps)
    got64 = _keras_trajectory(optimizer(), "float64", steps)
    assert _relative_error(got64, want64) < 1e-13
    assert _displacement_error(got64, want64, "float64") < 1e-12
    # float32: within 1e-6, as close as PyTorch's float32 run is to its own
    # float64 run (the two order their roundings differently).
    want32 = _torch_trajectory("float32", steps, decay_steps=steps)
    got32 = _keras_trajectory(optimizer(), "float32", steps)
    assert _relative_error(got32, want32) < 1.5e-6
    assert _relative_error(got32, want32) < 1.5 * _relative_error(want32, want64)
    np.testing.assert_allclose(got32[-1][1], want32[-1][1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "momentum,nesterov,dampening,weight_decay",
    [(0.9, True, 0.0, 5e-4), (0.9, False, 0.3, 5e-4), (0.0, False, 0.0, 5e-4), (0.5, False, 0.0, 0.0)],
)
def test_variants_equal_torch_sgd(momentum, nesterov, dampening, weight_decay):
    """Nesterov, dampening (PyTorch starts the buffer undamped), no momentum,
    no weight decay."""
    steps = 12
    want = _torch_trajectory("float64", steps, steps, momentum, weight_decay, nesterov, dampening)
    optimizer = TorchSGD(
        _poly(steps), momentum=momentum, weight_decay=weight_decay, nesterov=nesterov, dampening=dampening
    )
    got = _keras_trajectory(optimizer, "float64", steps)
    assert _displacement_error(got, want, "float64") < 1e-12


def test_keras_sgd_differs_from_the_reference():
    """Keras's SGD (decoupled weight decay, momentum over `lr * g`) is not the
    reference's: each of the two differences alone is measurable, while
    `TorchSGD` matches to rounding."""
    steps = 20
    reference = _torch_trajectory("float64", steps, decay_steps=steps)
    ours = _keras_trajectory(TorchSGD(_poly(steps)), "float64", steps)
    keras_sgd = _keras_trajectory(
        keras.optimizers.SGD(_poly(steps), momentum=MOMENTUM, weight_decay=WD), "float64", steps
    )
    assert _displacement_error(ours, reference, "float64") < 1e-12
    assert _displacement_error(keras_sgd, reference, "float64") > 1e-3

    # Coupling alone (constant lr): the decay goes through the momentum.
    reference = _torch_trajectory("float64", steps, decay_steps=None)
    keras_sgd = _keras_trajectory(keras.optimizers.SGD(CONST_LR, momentum=MOMENTUM, weight_decay=WD), "float64", steps)
    assert _displacement_error(_keras_trajectory(TorchSGD(CONST_LR), "float64", steps), reference, "float64") < 1e-12
    assert _displacement_error(keras_sgd, reference, "float64") > 1e-5

    # The momentum form alone (no weight decay): equal for a constant lr,
    # different once the lr changes every step.
    reference = _torch_trajectory("float64", steps, decay_steps=None, weight_decay=0.0)
    keras_sgd = _keras_trajectory(keras.optimizers.SGD(CONST_LR, momentum=MOMENTUM), "float64", steps)
    # (Keras's SGD rounds its momentum constant to float32 first: 3e-8 relative.)
    assert _displacement_error(keras_sgd, reference, "float64") < 1e-6
    reference = _torch_trajectory("float64", steps, decay_steps=steps, weight_decay=0.0)
    keras_sgd = _keras_trajectory(keras.optimizers.SGD(_poly(steps), momentum=MOMENTUM), "float64", steps)
    assert _displacement_error(keras_sgd, reference, "float64") > 1e-3


def test_weight_decay_is_not_keras_decoupled_decay():
    optimizer = TorchSGD(0.1, momentum=0.9, weight_decay=0.5)
    assert optimizer.weight_decay is None and optimizer.l2_weight_decay == 0.5
    included = keras.Variable(np.array([2.0, -4.0]), dtype="float64", name="kernel")
    excluded = keras.Variable(np.array([2.0, -4.0]), dtype="float64", name="gamma")
    optimizer.exclude_from_weight_decay(var_names=["gamma"])
    zeros = np.zeros(2)
    optimizer.apply([zeros, zeros], [included, excluded])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(included), [2.0 - 0.1 * 1.0, -4.0 + 0.1 * 2.0])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(excluded), [2.0, -4.0])
    optimizer.apply([zeros, zeros], [included, excluded])  # momentum carries the decay on
    buf = 0.9 * 1.0 + 0.5 * 1.9
    np.testing.assert_allclose(keras.ops.convert_to_numpy(included)[0], 1.9 - 0.1 * buf)
    with pytest.raises(ValueError, match="Nesterov"):
        TorchSGD(nesterov=True, momentum=0.0)
    with pytest.raises(ValueError, match="momentum"):
        TorchSGD(momentum=1.5)


def test_loss_scale_optimizer():
    """Wrapped for mixed precision: scaled gradients give the same steps,
    a non-finite step is skipped without advancing the schedule."""
    steps = 8
    plain = TorchSGD(_poly(steps))
    wrapped = keras.optimizers.LossScaleOptimizer(TorchSGD(_poly(steps)), initial_scale=2.0**10)
    a = [keras.Variable(v) for v in _initial_values("float32")]
    b = [keras.Variable(v) for v in _initial_values("float32")]
    wrapped.build(b)
    for step in range(steps):
        grads = [_gradient(keras.ops.convert_to_numpy(v), t).astype("float32") for v, t in zip(a, _targets())]
        plain.apply(grads, a)
        scale = float(keras.ops.convert_to_numpy(wrapped.dynamic_scale))
        if step == 3:  # an overflowing step: skipped
            before = [keras.ops.convert_to_numpy(v).copy() for v in b]
            wrapped.apply([np.full(g.shape, np.inf, "float32") for g in grads], b)
            for v, w in zip(b, before):
                np.testing.assert_array_equal(keras.ops.convert_to_numpy(v), w)
            assert int(wrapped.iterations) == step
            scale = float(keras.ops.convert_to_numpy(wrapped.dynamic_scale))
        wrapped.apply([g * np.float32(scale) for g in grads], b)
        for v, w in zip(a, b):
            np.testing.assert_array_equal(keras.ops.convert_to_numpy(v), keras.ops.convert_to_numpy(w))
    assert int(wrapped.iterations) == int(plain.iterations) == steps


def test_fit_under_mixed_float16():
    keras.mixed_precision.set_global_policy("mixed_float16")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3)])
    optimizer = keras.optimizers.LossScaleOptimizer(TorchSGD(_poly(10)))
    model.compile(optimizer=optimizer, loss="mse")
    before = [w.copy() for w in model.get_weights()]
    rng = np.random.default_rng(0)
    history = model.fit(rng.normal(size=(12, 4)), rng.normal(size=(12, 3)), batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert int(optimizer.iterations) == 3
    assert all(w.dtype == np.float32 for w in model.get_weights())
    assert all(np.isfinite(w).all() for w in model.get_weights())
    assert any(not np.array_equal(w, v) for w, v in zip(model.get_weights(), before))


def test_config_round_trip(tmp_path):
    optimizer = TorchSGD(
        PolyDecay(0.02, decay_steps=500, power=1.0, end_learning_rate=0.0),
        momentum=0.8,
        weight_decay=1e-4,
        nesterov=True,
        clipnorm=1.0,
        name="sgd",
    )
    config = optimizer.get_config()
    assert TorchSGD.from_config(copy.deepcopy(config)).get_config() == config
    assert config["weight_decay"] == 1e-4 and config["nesterov"] and config["momentum"] == 0.8
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert isinstance(restored, TorchSGD)
    assert restored.get_config() == config
    assert isinstance(restored._learning_rate, PolyDecay)

    # In a saved model, with its momentum buffers and iteration count.
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer=TorchSGD(PolyDecay(0.1, decay_steps=10)), loss="mse")
    rng = np.random.default_rng(0)
    model.fit(rng.normal(size=(4, 3)), rng.normal(size=(4, 2)), batch_size=2, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.optimizer, TorchSGD) and int(loaded.optimizer.iterations) == 2
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    for v, w in zip(loaded.optimizer.variables, model.optimizer.variables):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(v), keras.ops.convert_to_numpy(w))


# ------------------------------------------------ one model, every backend


def _train_dense(loss_scale):
    """A small Dense model trained with `fit()` (compiled) for 8 steps."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 4)).astype("float32")
    y = rng.normal(size=(32, 3)).astype("float32")
    weights = [(rng.normal(size=s) * 0.5).astype("float32") for s in [(4, 8), (8,), (8, 3), (3,)]]
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(3)])
    model.set_weights(weights)
    optimizer = TorchSGD(PolyDecay(0.1, decay_steps=8, power=0.9, end_learning_rate=1e-3), weight_decay=0.01)
    if loss_scale:
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    model.compile(optimizer=optimizer, loss="mse")
    model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    assert int(optimizer.iterations) == 8
    return weights, x, y, model.get_weights()


def _torch_dense_reference(weights, x, y):
    torch = require("torch")
    require("mmengine")
    w1, b1, w2, b2 = [torch.nn.Parameter(torch.tensor(w)) for w in weights]
    optimizer = torch.optim.SGD([w1, b1, w2, b2], lr=0.1, momentum=0.9, weight_decay=0.01)
    from mmengine.optim.scheduler import PolyLR

    scheduler = PolyLR(optimizer, eta_min=1e-3, power=0.9, begin=0, end=8, by_epoch=False)
    for step in range(8):
        i = (step % 4) * 8
        xb, yb = torch.tensor(x[i : i + 8]), torch.tensor(y[i : i + 8])
        out = torch.tanh(xb @ w1 + b1) @ w2 + b2
        loss = torch.nn.functional.mse_loss(out, yb)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
    return [p.detach().numpy() for p in (w1, b1, w2, b2)]


@pytest.fixture(scope="module")
def tensorflow_dense():
    keras.utils.set_random_seed(0)
    return _train_dense(False)


def test_dense_fit_equals_torch(tensorflow_dense):
    weights, x, y, got = tensorflow_dense
    want = _torch_dense_reference(weights, x, y)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_other_backends_equal_tensorflow(backend, tensorflow_dense, tmp_path):
    """`fit()` on JAX (stateless, jitted) and PyTorch, plain and wrapped in a
    LossScaleOptimizer, gives TensorFlow's weights."""
    require(backend)
    out = str(tmp_path / "weights.npz")
    env = dict(os.environ, KERAS_BACKEND=backend, CUDA_VISIBLE_DEVICES="", JAX_PLATFORMS="cpu")
    result = subprocess.run(
        [sys.executable, os.path.abspath(__file__), out],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    saved = np.load(out)
    assert str(saved["backend"]) == backend
    _, _, _, want = tensorflow_dense
    for prefix in ("plain", "scaled"):
        for i, w in enumerate(want):
            np.testing.assert_allclose(saved[f"{prefix}{i}"], w, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- PolyDecay


def _mmengine_schedule(decay_steps, steps):
    torch = require("torch")
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=LR, momentum=MOMENTUM, weight_decay=WD)
    lrs = []
    for lr in _mmengine_lrs(optimizer, decay_steps, steps):
        lrs.append(lr)
        optimizer.step()  # (no gradient: a no-op step, counted by mmengine)
    return np.array(lrs)


@pytest.mark.parametrize("decay_steps", [40000, 200, 2, 1])
def test_poly_decay_equals_mmengine_poly_lr(decay_steps):
    require("mmengine")
    steps = decay_steps + 3  # past the end: stays at eta_min
    reference = _mmengine_schedule(decay_steps, steps)
    picks = np.unique(np.r_[np.arange(min(100, steps)), np.arange(max(0, decay_steps - 3), steps)])
    schedule = _poly(decay_steps)
    got = np.asarray(keras.ops.convert_to_numpy(schedule(picks)), np.float64)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, reference[picks], rtol=1e-9, atol=0)
    np.testing.assert_allclose([float(schedule(int(k))) for k in picks[:5]], reference[picks[:5]], rtol=1e-9)
    if decay_steps > 1:
        # The closed form: mmengine reaches eta_min at the last iteration.
        last = decay_steps - 1
        formula = (LR - ETA_MIN) * (1 - np.minimum(picks, last) / last) ** POWER + ETA_MIN
        np.testing.assert_allclose(reference[picks], formula, rtol=1e-9)
        assert reference[last] == pytest.approx(ETA_MIN, rel=1e-9)
    else:
        np.testing.assert_allclose(reference, LR)


def test_poly_decay_is_not_mmcv_s_older_formula():
    """mmcv's PolyLrUpdaterHook (mmseg 0.x) divided by `max_iters`; mmengine
    (mmseg 1.x, our reference) by `max_iters - 1`. Equal to 1e-7 early on,
    different near the end."""
    require("mmengine")
    reference = _mmengine_schedule(200, 200)
    k = np.arange(200)
    older = (LR - ETA_MIN) * (1 - k / 200) ** POWER + ETA_MIN
    assert np.abs(older[:2] / reference[:2] - 1).max() < 1e-3
    assert np.abs(older / reference - 1).max() > 0.4


def test_update_k_uses_lr_k():
    """The learning rate of update `k` (from 0) is `schedule(k)`, as mmengine's
    iteration `k`, for the optimiser alone and under `fit()`."""
    require("mmengine")
    decay_steps = 200
    reference = _mmengine_schedule(decay_steps, 30)
    variable = keras.Variable(np.zeros(1), dtype="float64")
    optimizer = TorchSGD(_poly(decay_steps), momentum=0.0, weight_decay=0.0)
    values = [0.0]
    for _ in range(30):
        optimizer.apply([np.ones(1)], [variable])
        values.append(float(keras.ops.convert_to_numpy(variable)[0]))
    np.testing.assert_allclose(-np.diff(values), reference, rtol=1e-9)

    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")])
    model.compile(optimizer=TorchSGD(_poly(decay_steps), momentum=0.0, weight_decay=0.0), loss=lambda y, p: p)
    # The loss is the output x * w with x = 1: the gradient is 1 every step.
    model.fit(np.ones((6, 1)), np.zeros((6, 1)), batch_size=1, shuffle=False, verbose=0)
    np.testing.assert_allclose(-model.get_weights()[0][0, 0], reference[:6].sum(), rtol=1e-6)


def test_poly_decay_config_round_trip():
    schedule = PolyDecay(0.02, decay_steps=160000, power=1.0, end_learning_rate=0.0, name="poly")
    config = schedule.get_config()
    assert config == dict(
        initial_learning_rate=0.02, decay_steps=160000, power=1.0, end_learning_rate=0.0, dtype=None, name="poly"
    )
    restored = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(schedule))
    assert isinstance(restored, PolyDecay) and restored.get_config() == config

    # float32 on request (devices without float64): within float32 rounding.
    single = PolyDecay(decay_steps=200, dtype="float32")
    assert single.get_config()["dtype"] == "float32"
    k = np.arange(0, 210, 7)
    values = keras.ops.convert_to_numpy(single(k))
    assert values.dtype == np.float32
    np.testing.assert_allclose(values, keras.ops.convert_to_numpy(PolyDecay(decay_steps=200)(k)), rtol=1e-6)
    with pytest.raises(ValueError, match="decay_steps"):
        PolyDecay(decay_steps=0)


# --------------------------------------- run as a script: the subprocess side

if __name__ == "__main__":
    arrays = {"backend": np.array(keras.config.backend())}
    for prefix, loss_scale in (("plain", False), ("scaled", True)):
        keras.utils.set_random_seed(0)
        for i, w in enumerate(_train_dense(loss_scale)[3]):
            arrays[f"{prefix}{i}"] = w
    np.savez(sys.argv[1], **arrays)


# ------------------------------------------- the fused TensorFlow kernel

_MIRRORED_CHECK = r"""
import json
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from keras_ann.optimizers import TorchSGD

rng = np.random.default_rng(0)
x, y = rng.normal(size=(8, 5)).astype("float32"), rng.normal(size=(8, 3)).astype("float32")
start = [rng.normal(size=(5, 3)).astype("float32"), rng.normal(size=(3,)).astype("float32")]

def fitted(strategy):
    with strategy.scope():
        model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3)])
        model.set_weights(start)
        model.compile(optimizer=TorchSGD(0.1, momentum=0.9, weight_decay=0.05), loss="mse")
    model.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0)
    return model

single = fitted(tf.distribute.get_strategy())
mirrored = fitted(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
print(json.dumps({
    "single": [w.tolist() for w in single.get_weights()],
    "replicas": [[np.asarray(c).tolist() for c in v.value.values] for v in mirrored.weights],
    "momentum_replicas": [[np.asarray(c).tolist() for c in v.value.values] for v in mirrored.optimizer.momentums],
    "single_momentum": [np.asarray(v).tolist() for v in single.optimizer.momentums],
}))
"""


def _numpy_sgd(value, gradients, lr, momentum, weight_decay, dtype):
    """PyTorch's SGD rule (dampening 0) in NumPy, one rounding per product
    and sum, in `dtype`."""
    value = np.asarray(value, dtype)
    buf = np.zeros_like(value)
    lr, momentum, weight_decay = (np.asarray(x, dtype) for x in (lr, momentum, weight_decay))
    for g in gradients:
        g = np.asarray(g, dtype) + weight_decay * value
        buf = momentum * buf + g
        value = value - lr * buf
    return value, buf


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="the fused kernel is TensorFlow's")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_tensorflow_update_is_one_fused_kernel_with_the_same_roundings(dtype):
    """On TensorFlow the undamped, non-Nesterov update runs
    `ResourceApplyMomentum` and equals the rule's NumPy arithmetic bit for
    bit; Nesterov and dampening keep the elementwise ops."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    start = rng.normal(size=(64,)).astype(dtype)
    gradients = [rng.normal(size=(64,)).astype(dtype) for _ in range(5)]
    variable = keras.Variable(start, dtype=dtype)
    optimizer = TorchSGD(2.0**-5, momentum=0.9, weight_decay=5e-4)
    for g in gradients:
        optimizer.apply([g], [variable])
    want_value, want_buf = _numpy_sgd(start, gradients, 2.0**-5, 0.9, 5e-4, dtype)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(variable), want_value)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(optimizer.momentums[0]), want_buf)

    def traced_ops(**kwargs):
        v = keras.Variable(start, dtype=dtype)
        opt = TorchSGD(0.01, **kwargs)
        opt.build([v])
        graph = tf.function(lambda g: opt.apply([g], [v])).get_concrete_function(tf.constant(gradients[0])).graph
        return {op.type for op in graph.get_operations()}

    assert "ResourceApplyMomentum" in traced_ops()
    assert "ResourceApplyMomentum" not in traced_ops(nesterov=True)
    assert "ResourceApplyMomentum" not in traced_ops(dampening=0.1)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="tf.distribute is TensorFlow's")
def test_the_fused_update_moves_every_replica_of_a_mirrored_variable(tmp_path):
    """`fit()` under `MirroredStrategy` (two logical CPUs): both copies of
    each weight and of its momentum take the steps of a single-device
    `fit()`."""
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))), TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, "-c", _MIRRORED_CHECK], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    report = __import__("json").loads(result.stdout.strip().splitlines()[-1])
    for copies, want in zip(report["replicas"], report["single"]):
        assert len(copies) == 2
        for copy_ in copies:
            np.testing.assert_allclose(copy_, want, rtol=1e-5, atol=1e-6)
    for copies, want in zip(report["momentum_replicas"], report["single_momentum"]):
        assert np.abs(np.asarray(want)).max() > 0
        for copy_ in copies:
            np.testing.assert_allclose(copy_, want, rtol=1e-5, atol=1e-6)
