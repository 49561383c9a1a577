"""The layers and the model give the same numbers under JAX and PyTorch as
under TensorFlow, and train with fit() there."""

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

import keras_ann

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope="module")
def tf_reference(tmp_path_factory):
    import keras

    keras.utils.set_random_seed(21)
    tmp = tmp_path_factory.mktemp("backends")
    model = keras_ann.ANNSegmenter(backbone="resnet18_d8", num_classes=4, align_corners=True)
    rng = np.random.default_rng(1)
    images = rng.uniform(0, 255, (2, 45, 61, 3)).astype("float32")
    model.compile()
    model.fit(images, (images.mean(-1) > 127).astype("int32"), epochs=1, batch_size=2, verbose=0)
    weights = str(tmp / "model.weights.h5")
    model.save_weights(weights)
    np.save(tmp / "images.npy", images)
    tf_dir = tmp / "tensorflow"
    tf_dir.mkdir()
    _run("tensorflow", weights, tmp / "images.npy", tf_dir)
    return tmp, weights


def _run(backend, weights, images, out_dir):
    env = dict(os.environ, KERAS_BACKEND=backend, PYTHONPATH=os.pathsep.join([os.path.dirname(HERE), HERE]))
    env.setdefault("CUDA_VISIBLE_DEVICES", "")
    result = subprocess.run(
        [sys.executable, os.path.join(HERE, "backend_check.py"), weights, str(images), str(out_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert f"backend {backend} ok" in result.stdout


@pytest.mark.parametrize("backend,module", [("jax", "jax"), ("torch", "torch")])
def test_backend_matches_tensorflow(tf_reference, backend, module):
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed")
    tmp, weights = tf_reference
    out_dir = tmp / backend
    out_dir.mkdir()
    _run(backend, weights, tmp / "images.npy", out_dir)
    ref_dir = tmp / "tensorflow"
    for name in ("logits", "afnb", "apnb"):
        got, want = np.load(out_dir / f"{name}.npy"), np.load(ref_dir / f"{name}.npy")
        assert got.shape == want.shape
        scale = np.abs(want).max()
        assert np.abs(got - want).max() <= 1e-4 * scale + 1e-5, name
    losses = np.load(out_dir / "losses.npy")
    assert np.isfinite(losses).all() and losses.shape == (2,)
    # Recomputation trains as without it (JAX's `jax.checkpoint` and
    # PyTorch's `checkpoint` recompute differently from TensorFlow's).
    for run_dir in (out_dir, ref_dir):
        difference, scale = np.load(run_dir / "remat.npy")
        assert difference <= 1e-5 * scale, run_dir.name
