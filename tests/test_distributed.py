"""The distributed training path on a CPU-only machine: MirroredStrategy
over two logical CPU devices with synchronised batch normalisation."""

import json
import os
import subprocess
import sys

import numpy as np

from testing_utils import camvid_subset

HERE = os.path.dirname(os.path.abspath(__file__))


def test_mirrored_strategy_two_logical_cpus(tmp_path):
    root = camvid_subset(tmp_path, 4)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(HERE), HERE]))
    result = subprocess.run(
        [sys.executable, os.path.join(HERE, "distributed_check.py"), root, str(tmp_path / "run")],
        capture_output=True, text=True, timeout=900, env=env,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["replicas"] == 2 and report["synchronized"]
    assert report["iterations"] == 4
    assert np.isfinite(report["loss"]).all()


def test_jax_data_parallel_two_cpu_devices(tmp_path):
    from testing_utils import require

    require("jax")
    root = camvid_subset(tmp_path, 4)
    env = dict(
        os.environ,
        KERAS_BACKEND="jax",
        XLA_FLAGS="--xla_force_host_platform_device_count=2",
        PYTHONPATH=os.pathsep.join([os.path.dirname(HERE), HERE]),
    )
    result = subprocess.run(
        [sys.executable, os.path.join(HERE, "jax_data_parallel_check.py"), root, str(tmp_path / "run")],
        capture_output=True, text=True, timeout=900, env=env,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["backend"] == "jax" and report["devices"] == 2
    assert report["distribution"] == "DataParallel"
    assert report["iterations"] == 2 and np.isfinite(report["loss"]).all()
