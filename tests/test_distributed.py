"""The distributed training paths on a CPU-only machine: MirroredStrategy
over two logical CPU devices with synchronised batch normalisation,
MultiWorkerMirroredStrategy over two worker processes on localhost, and
JAX's DataParallel over two host devices."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

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
    assert report["replicas"] == 2 and report["synchronized"] and report["remat"]
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


def _free_ports(count):
    import socket

    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_multi_worker_mirrored_strategy_two_processes_on_localhost(tmp_path):
    root = camvid_subset(tmp_path, 4)
    work = str(tmp_path / "run")
    ports = ",".join(str(p) for p in _free_ports(2))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(HERE), HERE]), TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("TF_CONFIG", None)
    script = os.path.join(HERE, "multi_worker_check.py")
    logs = [open(tmp_path / f"worker{i}.log", "w+") for i in range(2)]
    reports = [str(tmp_path / f"report{i}.json") for i in range(2)]
    # Worker 1 stays 12 s after its report, longer than a heartbeat period
    # of the coordination service that the chief (worker 0) hosts: it must
    # not see the service gone, so the chief has to wait for it.
    linger = ["0", "12"]
    workers = [
        subprocess.Popen(
            [sys.executable, script, str(i), ports, root, work, reports[i], linger[i]],
            env=env, stdout=logs[i], stderr=subprocess.STDOUT,
        )
        for i in range(2)
    ]  # fmt: skip
    try:
        codes = [w.wait(timeout=600) for w in workers]
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
    outputs = []
    for log in logs:
        log.seek(0)
        outputs.append(log.read())
        log.close()
    assert codes == [0, 0], "\n".join(o[-3000:] for o in outputs)
    # A clean shutdown: no error line (TensorFlow's "E0000 ..." log lines,
    # e.g. "StartAbort UNAVAILABLE: Failed to send RPC to coordination
    # service") from either worker.
    for i, output in enumerate(outputs):
        errors = [line for line in output.splitlines() if re.match(r"E\d{4} ", line)]
        assert not errors, f"worker {i}: " + "\n".join(errors)
    reports = [json.load(open(path)) for path in reports]
    for report in reports:
        assert report["strategy"] in ("MultiWorkerMirroredStrategy", "CollectiveAllReduceStrategy")
        assert report["replicas"] == 2 and report["synchronized"]
        assert report["iterations"] == 4
        assert np.isfinite(report["loss"]).all() and np.isfinite(report["val_mIoU"])
    # One model: the workers' losses and weights agree.
    np.testing.assert_allclose(reports[0]["loss"], reports[1]["loss"], rtol=1e-6)
    assert reports[0]["weights"] == pytest.approx(reports[1]["weights"], rel=1e-9)
    # The chief (worker 0) writes the run's outputs, worker 1 its own state.
    assert os.path.exists(os.path.join(work, "latest.keras"))
    assert os.path.exists(os.path.join(work, "resume", "state.json"))
    assert os.path.exists(os.path.join(work, "worker-1", "resume", "state.json"))
    assert not os.path.exists(os.path.join(work, "worker-1", "latest.keras"))
