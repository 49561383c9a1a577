"""Synchronised batch normalisation is a run-time setting: a model saved by
a two-replica TensorFlow run (MirroredStrategy over two logical CPUs) loads
and predicts on the JAX and PyTorch backends, whose BatchNormalization
refuses `synchronized=True`."""

import importlib.util
import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


def _run(backend, mode, directory):
    env = dict(os.environ, KERAS_BACKEND=backend, PYTHONPATH=os.pathsep.join([os.path.dirname(HERE), HERE]))
    env.setdefault("CUDA_VISIBLE_DEVICES", "")
    result = subprocess.run(
        [sys.executable, os.path.join(HERE, "synchronized_checkpoint_check.py"), mode, str(directory)],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def two_replica_checkpoint(tmp_path_factory):
    directory = tmp_path_factory.mktemp("synchronized")
    report = _run("tensorflow", "save", directory)
    assert report["replicas"] == 2 and report["synchronized"] and report["batch_norms"] > 20
    return directory


def test_two_replica_checkpoint_stores_no_synchronisation(two_replica_checkpoint):
    with zipfile.ZipFile(two_replica_checkpoint / "model.keras") as archive:
        config = archive.read("config.json").decode()
    assert "synchronized" not in config


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_two_replica_checkpoint_loads_on_other_backends(two_replica_checkpoint, backend):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed")
    report = _run(backend, "load", two_replica_checkpoint)
    assert report == {"backend": backend, "synchronized": False}
    got = np.load(two_replica_checkpoint / f"logits_{backend}.npy")
    want = np.load(two_replica_checkpoint / "logits_tensorflow.npy")
    assert got.shape == want.shape == (4, 40, 48, 3)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
