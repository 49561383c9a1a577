"""Reliability: killed runs resume, bad input is refused clearly, hostile
files are refused, a diverging run stops and keeps its last good state.

(`.pth` pickles that try to run code, truncated zips, random checkpoint
bytes and wrong download hashes are covered in `test_pth_reader.py` and
`test_convert.py`.)
"""

import csv
import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import keras
import keras_ann
from testing_utils import scene_folder
from keras_ann import training
from keras_ann.callbacks import resume_state
from keras_ann.data import camvid
from keras_ann.data.errors import DatasetError
from keras_ann.data.io import load_sample, read_image, read_label
from keras_ann.recipes import get_recipe
from keras_ann.test_protocol import TestProtocol

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Small, fast training runs of the CamVid recipe on generated scenes.
SMALL = dict(crop_size=(32, 32), scale=(48, 48), batch_size=2, seed=0)


def _scene_folder(path, count=6, size=48):
    """Generated scenes in the CamVid layout (5 classes of the 11)."""
    return scene_folder(path, count, size)

def _tiny_model(num_classes=3):
    backbone = keras_ann.ResNetBackbone(depth=18, output_stride=8, stem_channels=8, base_channels=8)
    return keras_ann.ANNSegmenter(
        backbone, num_classes=num_classes, head_channels=16, project_channels=8, auxiliary_channels=8
    )


# --------------------------------------------------------------------------
# Resume: the same stream, atomic state, kill -9
# --------------------------------------------------------------------------


def test_a_resumed_stream_continues_with_the_same_batches(tmp_path):
    data = camvid(_scene_folder(tmp_path / "scenes", count=5), "train", crop_size=(32, 32), train_scale=(48, 48))
    full = [b for b in data.train_dataset(batch_size=2, seed=7).take(7)]
    # 3 batches done = 6 samples: past the end of the first 5-file epoch.
    resumed = [b for b in data.train_dataset(batch_size=2, seed=7, start=6).take(4)]
    for (x, y), (rx, ry) in zip(full[3:], resumed):
        np.testing.assert_array_equal(x.numpy(), rx.numpy())
        np.testing.assert_array_equal(y.numpy(), ry.numpy())
    other = next(iter(data.train_dataset(batch_size=2, seed=7, start=2)))
    assert not np.array_equal(other[0].numpy(), full[3][0].numpy())


def _state(directory):
    with open(os.path.join(directory, "state.json")) as f:
        return json.load(f)


def test_a_crash_while_saving_leaves_the_previous_state_usable(tmp_path, monkeypatch):
    model = _tiny_model()
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    y = np.random.default_rng(1).integers(0, 3, (2, 32, 32))
    model.fit(x, y, epochs=1, verbose=0)
    directory = str(tmp_path / "resume")
    state = resume_state.ResumeState(directory)
    state.set_model(model)
    state.on_epoch_end(0)
    saved = [w.copy() for w in model.get_weights()]
    model.fit(x, y, epochs=1, verbose=0)  # the weights move on

    # 1. Killed in the middle of writing the weights file.
    def half_written(model, path):
        with open(path, "wb") as f:
            f.write(b"PK\x03\x04" + b"\0" * 100)
        raise OSError("killed while writing")

    monkeypatch.setattr(resume_state, "_write_state", half_written)
    with pytest.raises(OSError, match="killed while writing"):
        state.on_epoch_end(1)
    monkeypatch.undo()
    # 2. Killed after the weights file, before `state.json` moved on.
    monkeypatch.setattr(resume_state, "_write_json", lambda *a: (_ for _ in ()).throw(OSError("killed")))
    with pytest.raises(OSError, match="killed"):
        state.on_epoch_end(1)
    monkeypatch.undo()

    assert _state(directory)["iteration"] == 1
    fresh = _tiny_model()
    fresh.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
    assert resume_state.ResumeState(directory).restore(fresh) == 1
    for got, want in zip(fresh.get_weights(), saved):
        np.testing.assert_array_equal(got, want)


def _train_command(root, work, iterations):
    return [
        sys.executable, "-m", "keras_ann.cli", "train", "ann_r18_d8_camvid_cpu",
        "--data-root", root, "--work-dir", work,
        "--iterations", str(iterations), "--eval-interval", str(iterations // 2),
        "--checkpoint-interval", "2", "--batch-size", "2",
        "--crop-size", "32", "32", "--scale", "48", "48", "--seed", "0",
    ]  # fmt: skip


def _final_row(work):
    with open(os.path.join(work, "history.csv")) as f:
        rows = list(csv.DictReader(f))
    return {k: float(v) for k, v in rows[-1].items() if k != "epoch" and v != "NA"}


def test_kill_9_mid_run_then_the_same_command_finishes_like_an_uninterrupted_run(tmp_path):
    root = _scene_folder(tmp_path / "scenes")
    env = dict(os.environ, PYTHONPATH=ROOT, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="3")
    iterations = 16
    reference_work = str(tmp_path / "reference")
    killed_work = str(tmp_path / "killed")
    log = open(tmp_path / "log.txt", "w")
    reference = subprocess.Popen(_train_command(root, reference_work, iterations), env=env, stdout=log, stderr=log)
    victim = subprocess.Popen(_train_command(root, killed_work, iterations), env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 300
        state = os.path.join(killed_work, "resume", "state.json")
        while not os.path.exists(state) or _state(os.path.dirname(state))["iteration"] < 4:
            assert victim.poll() is None, open(tmp_path / "log.txt").read()[-3000:]
            assert time.monotonic() < deadline, "no checkpoint within 300 s"
            time.sleep(0.02)
        victim.send_signal(signal.SIGKILL)
        assert victim.wait(60) == -signal.SIGKILL
        killed_at = _state(os.path.dirname(state))["iteration"]
        assert 4 <= killed_at < iterations, killed_at
        # The same command again.
        resumed = subprocess.run(
            _train_command(root, killed_work, iterations), env=env, capture_output=True, text=True, timeout=300
        )
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        assert f"resuming {killed_work} at iteration {killed_at}" in resumed.stdout
        assert reference.wait(300) == 0, open(tmp_path / "log.txt").read()[-3000:]
    finally:
        for p in (reference, victim):
            if p.poll() is None:
                p.kill()
        log.close()
    assert _state(os.path.join(killed_work, "resume"))["iteration"] == iterations
    want, got = _final_row(reference_work), _final_row(killed_work)
    assert set(want) == set(got) and "val_mIoU" in want
    for key in want:
        assert got[key] == pytest.approx(want[key], rel=1e-4, abs=1e-4), (key, got, want)
    # The checkpoint loads in a new process that imports only keras_ann
    # (its compile config names TorchSGD and PolyDecay).
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, keras_ann; m = keras_ann.ANNSegmenter.from_preset(sys.argv[1]); "
         "print(type(m.optimizer).__name__, int(m.optimizer.iterations.numpy()))",
         os.path.join(killed_work, "latest.keras")],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    assert loaded.stdout.split() == ["TorchSGD", str(iterations)]
    m1 = keras.saving.load_model(os.path.join(reference_work, "latest.keras"))
    m2 = keras.saving.load_model(os.path.join(killed_work, "latest.keras"))
    for a, b in zip(m1.get_weights(), m2.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------
# Numerics: a diverging run stops and keeps its last good state
# --------------------------------------------------------------------------


def test_a_nan_loss_stops_training_and_keeps_the_last_good_state(tmp_path):
    root = _scene_folder(tmp_path / "scenes")
    work = str(tmp_path / "run")
    common = dict(SMALL, eval_interval=4, checkpoint_interval=2, verbose=0)
    training.train("ann_r18_d8_camvid_cpu", root, work, iterations=4, **common)
    good = _state(os.path.join(work, "resume"))
    assert good["iteration"] == 4
    good_model = keras.saving.load_model(os.path.join(work, "latest.keras"))

    # Continue with a learning rate that blows the weights up.
    exploding = get_recipe("ann_r18_d8_camvid_cpu").replace(lr=1e38)
    with pytest.raises(FloatingPointError, match=r"loss became (nan|inf).*iteration 4"):
        training.train(exploding, root, work, iterations=8, allow_changes=True, **common)
    assert _state(os.path.join(work, "resume")) == good
    kept = keras.saving.load_model(os.path.join(work, "latest.keras"))
    for a, b in zip(kept.get_weights(), good_model.get_weights()):
        assert np.all(np.isfinite(a))
        np.testing.assert_array_equal(a, b)
    fresh = keras_ann.ANNSegmenter(backbone="resnet18_d8", num_classes=11)
    training.compile_for_recipe(fresh, get_recipe("ann_r18_d8_camvid_cpu"))
    assert resume_state.ResumeState(os.path.join(work, "resume")).restore(fresh) == 4
    assert all(np.all(np.isfinite(w)) for w in fresh.get_weights())


# --------------------------------------------------------------------------
# Restarts: by iteration, same settings, own files only, one run at a time,
# a full disk
# --------------------------------------------------------------------------

RECIPE = "ann_r18_d8_camvid_cpu"
RUN = dict(SMALL, eval_interval=4, checkpoint_interval=2, eval_steps=1, verbose=0)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A finished 4-iteration run (state at iteration 4, two history rows)."""
    base = tmp_path_factory.mktemp("finished")
    root = _scene_folder(base / "scenes")
    work = str(base / "run")
    training.train(RECIPE, root, work, iterations=4, **RUN)
    return root, work


@pytest.fixture
def run_copy(finished_run, tmp_path):
    root, work = finished_run
    shutil.copytree(work, tmp_path / "run")
    return root, str(tmp_path / "run")


def _history_rows(work):
    with open(os.path.join(work, "history.csv")) as f:
        return list(csv.DictReader(f))


def test_a_restart_with_other_settings_is_refused_with_the_differences_listed(run_copy):
    root, work = run_copy
    before = _state(os.path.join(work, "resume"))
    changed = dict(RUN, batch_size=4, crop_size=(48, 48), checkpoint_interval=1)
    with pytest.raises(training.WorkDirError) as info:
        training.train(RECIPE, root, work, iterations=8, precision="mixed_bfloat16", **changed)
    message = str(info.value)
    for difference in (
        "iterations: 4 -> 8", "total_batch: 2 -> 4", "crop_size: [32, 32] -> [48, 48]",
        "precision: 'float32' -> 'mixed_bfloat16'", "checkpoint_interval: 2 -> 1",
    ):  # fmt: skip
        assert difference in message, message
    assert "--allow-changes" in message and "recipe.json" in message
    assert _state(os.path.join(work, "resume")) == before


def test_a_resume_with_another_data_root_is_refused_naming_both_roots(run_copy, tmp_path):
    root, work = run_copy
    other = str(shutil.copytree(root, tmp_path / "other_scenes"))
    before = _state(os.path.join(work, "resume"))
    with pytest.raises(training.WorkDirError) as info:
        training.train(RECIPE, other, work, iterations=4, **RUN)
    message = str(info.value)
    assert f"data_root: {os.path.realpath(root)!r} -> {os.path.realpath(other)!r}" in message, message
    assert "--allow-changes" in message
    assert _state(os.path.join(work, "resume")) == before


class _Killed(BaseException):
    """Stands for kill -9: nothing may catch it."""


def _log_iterations(work):
    with open(os.path.join(work, "log.jsonl")) as f:
        return [json.loads(line)["iteration"] for line in f]


@pytest.mark.parametrize("killed_in", ["latest.keras", "state.json"])
def test_a_run_killed_at_an_evaluation_resumes_with_one_log_line_per_checkpoint(tmp_path, monkeypatch, killed_in):
    # Killed while writing latest.keras (after the state's commit) or while
    # writing state.json (before it): either way the resumed run's
    # log.jsonl and history.csv hold each checkpoint interval exactly once.
    root = _scene_folder(tmp_path / "scenes")
    work = str(tmp_path / "run")
    write = resume_state.ResumeState._write

    def killed_at_4(self, path, save):
        iteration = int(self.model.optimizer.iterations.numpy())
        target = "latest.tmp.keras" if killed_in == "latest.keras" else "state.json.tmp"
        if iteration == 4 and os.path.basename(path) == target:
            raise _Killed
        return write(self, path, save)

    monkeypatch.setattr(resume_state.ResumeState, "_write", killed_at_4)
    with pytest.raises(_Killed):
        training.train(RECIPE, root, work, iterations=8, **RUN)
    monkeypatch.undo()
    assert _state(os.path.join(work, "resume"))["iteration"] == (4 if killed_in == "latest.keras" else 2)
    training.train(RECIPE, root, work, iterations=8, **RUN)
    assert _log_iterations(work) == [2, 4, 6, 8]
    assert [row["epoch"] for row in _history_rows(work)] == ["0", "1", "2", "3"]


def test_a_restart_with_another_checkpoint_interval_continues_at_the_saved_iteration(run_copy):
    root, work = run_copy  # saved at iteration 4, checkpoints every 2
    # Every 3 iterations now: 4 -> 6 (to the next multiple of 3), then 9, 12.
    model, history = training.train(
        RECIPE, root, work, iterations=12, **dict(RUN, eval_interval=6, checkpoint_interval=3), allow_changes=True
    )
    assert int(model.optimizer.iterations.numpy()) == 12
    assert _state(os.path.join(work, "resume"))["iteration"] == 12
    assert len(history.history["loss"]) == 3
    assert [np.isfinite(v) for v in history.history["val_mIoU"]] == [True, False, True]  # at 6 and 12
    assert len(_history_rows(work)) == 2 + 3
    with open(os.path.join(work, "recipe.json")) as f:
        assert json.load(f)["checkpoint_interval"] == 3


def test_outputs_without_a_resume_state_are_refused_unless_restart(run_copy):
    root, work = run_copy
    shutil.rmtree(os.path.join(work, "resume"))
    with pytest.raises(training.WorkDirError, match=r"latest.keras and history.csv .*no resume state.*--restart"):
        training.train(RECIPE, root, work, iterations=4, **RUN)
    os.remove(os.path.join(work, "latest.keras"))
    with pytest.raises(training.WorkDirError, match=r"holds history.csv .*--restart"):
        training.train(RECIPE, root, work, iterations=4, **RUN)
    # The old run's best score must not outlive it: a restart replaces it.
    best = os.path.join(work, "best_mIoU.keras.json")
    with open(best, "w") as f:
        json.dump({"monitor": "val_mIoU", "best": 1000.0, "iteration": 4}, f)
    model, _ = training.train(RECIPE, root, work, iterations=2, **dict(RUN, eval_interval=2), restart=True)
    assert int(model.optimizer.iterations.numpy()) == 2
    assert len(_history_rows(work)) == 1  # the old rows were replaced
    with open(best) as f:
        assert json.load(f)["iteration"] == 2
    with open(os.path.join(work, "log.jsonl")) as f:
        assert [json.loads(line)["iteration"] for line in f] == [2]


def test_a_state_naming_a_file_outside_its_directory_is_refused_and_nothing_is_deleted(run_copy, tmp_path):
    root, work = run_copy
    other = tmp_path / "other-run" / "resume" / "state-4.npz"
    other.parent.mkdir(parents=True)
    shutil.copy(os.path.join(work, "resume", "state-4.npz"), other)
    meta = _state(os.path.join(work, "resume"))
    for name in ("../../other-run/resume/state-4.npz", str(other), "..", ""):
        with open(os.path.join(work, "resume", "state.json"), "w") as f:
            json.dump(dict(meta, weights=name), f)
        with pytest.raises(training.ResumeError, match=r"not a file inside .*resume.*--restart"):
            training.train(RECIPE, root, work, iterations=8, allow_changes=True, **RUN)
        # Nor does a checkpoint delete it: saving reads the same state first.
        state = resume_state.ResumeState(os.path.join(work, "resume"))
        state.set_model(_tiny_model())
        with pytest.raises(training.ResumeError):
            state.on_epoch_end(0)
    assert other.exists()


def _truncate(path):
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])


def _flip_a_byte(path):
    with open(path, "r+b") as f:
        f.seek(os.path.getsize(path) // 2)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0xFF]))


@pytest.mark.parametrize(
    "damage, file, message",
    [
        (_truncate, "state.json", r"state.json is corrupt or truncated"),
        (_flip_a_byte, "state-4.npz", r"state-4.npz does not match the SHA-256 recorded in .*state.json"),
        (_truncate, "state-4.npz", r"state-4.npz does not match the SHA-256"),
    ],
)
def test_a_damaged_state_names_its_file_and_how_to_start_over(run_copy, damage, file, message):
    root, work = run_copy
    damage(os.path.join(work, "resume", file))
    with pytest.raises(training.ResumeError, match=message + r".*--restart"):
        training.train(RECIPE, root, work, iterations=4, **RUN)


def test_a_second_run_on_a_work_dir_in_use_is_refused_naming_the_holder(run_copy):
    root, work = run_copy
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from keras_ann.work_dir import WorkDir\n"
         "with WorkDir(sys.argv[1]).lock():\n    print('locked', flush=True); sys.stdin.read()", work],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=ROOT),
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(training.WorkDirError, match=rf"in use by another training run \(pid {holder.pid} on host "):
            training.train(RECIPE, root, work, iterations=4, **RUN)
    finally:
        holder.communicate("", timeout=60)
    # Released with the holder's exit: the run goes ahead (and is done).
    model, _ = training.train(RECIPE, root, work, iterations=4, **RUN)
    assert int(model.optimizer.iterations.numpy()) == 4


class _Killed(Exception):
    pass


def test_a_kill_around_the_state_commit_loses_no_history_row_and_repeats_none(tmp_path, monkeypatch):
    root = _scene_folder(tmp_path / "scenes")
    work = str(tmp_path / "run")
    common = dict(RUN, eval_interval=6)
    replace = os.replace

    # 1. Killed just after the state of iteration 2 is committed.
    def replace_then_die(src, dst):
        replace(src, dst)
        if dst.endswith("state.json"):
            raise _Killed()

    monkeypatch.setattr(resume_state.os, "replace", replace_then_die)
    with pytest.raises(_Killed):
        training.train(RECIPE, root, work, iterations=6, **common)
    monkeypatch.undo()
    assert _state(os.path.join(work, "resume"))["iteration"] == 2
    assert len(_history_rows(work)) == 1
    # 2. Resumed, then killed after the history row of iteration 4, before
    # its state is committed.
    write_json = resume_state._write_json

    def die_at_4(path, value):
        if value["iteration"] == 4:
            raise _Killed()
        write_json(path, value)

    monkeypatch.setattr(resume_state, "_write_json", die_at_4)
    with pytest.raises(_Killed):
        training.train(RECIPE, root, work, iterations=6, **common)
    monkeypatch.undo()
    assert _state(os.path.join(work, "resume"))["iteration"] == 2
    assert len(_history_rows(work)) == 2
    # 3. Resumed from iteration 2 again: one row per checkpoint, in order.
    training.train(RECIPE, root, work, iterations=6, **common)
    assert [row["epoch"] for row in _history_rows(work)] == ["0", "1", "2"]


def test_a_full_disk_keeps_the_previous_state_and_says_how_much_space_a_checkpoint_needs(tmp_path, monkeypatch):
    model = _tiny_model()
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    model.fit(x, np.zeros((2, 32, 32), "int32"), epochs=1, verbose=0)
    directory = str(tmp_path / "resume")
    state = resume_state.ResumeState(directory, model_path=str(tmp_path / "latest.keras"))
    state.set_model(model)
    state.on_epoch_end(0)
    before = sorted(os.listdir(directory)), _state(directory)
    model.fit(x, np.zeros((2, 32, 32), "int32"), epochs=1, verbose=0)

    def disk_full(*args):
        with open(args[-1], "wb") as f:  # (path) for model.save, (model, path) for the state
            f.write(b"\0" * 1000)
        raise OSError(errno.ENOSPC, "No space left on device")

    for method, kept in (("state", 1), ("save", 3)):  # the state file, then latest.keras
        if method == "state":
            monkeypatch.setattr(resume_state, "_write_state", disk_full)
        else:
            monkeypatch.setattr(model, method, disk_full)
        with pytest.raises(
            training.ResumeError, match=rf"No space left on the device for .*tmp.* checkpoint needs about \d+ MB .*iteration {kept}\) is intact"
        ):
            state.on_epoch_end(1)
        monkeypatch.undo()
        assert not [n for n in os.listdir(tmp_path) + os.listdir(directory) if "tmp" in n]
        if method == "state":
            assert (sorted(os.listdir(directory)), _state(directory)) == before
            model.fit(x, np.zeros((2, 32, 32), "int32"), epochs=1, verbose=0)
    assert _state(directory)["iteration"] == 3  # committed before latest.keras failed


def test_a_real_full_disk_ends_the_cli_with_one_message_and_no_crash(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(disk)]).returncode:
        pytest.skip("mounting a small tmpfs needs root")
    try:
        root = _scene_folder(tmp_path / "scenes")
        env = dict(os.environ, PYTHONPATH=ROOT, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="3")
        result = subprocess.run(
            _train_command(root, str(disk / "run"), 4) + ["--eval-steps", "1"],
            env=env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        leftovers = [n for _, _, names in os.walk(disk) for n in names if "tmp" in n]
    finally:
        subprocess.run(["umount", str(disk)])
    assert result.returncode == 1, (result.returncode, result.stderr[-3000:])
    assert "keras-ann train: error: No space left on the device for" in result.stderr
    assert "checkpoint needs about" in result.stderr
    assert not leftovers


def test_a_disk_that_fills_during_a_checkpoint_write_ends_the_cli_with_one_message_and_no_crash(tmp_path):
    # Another process fills the disk after the free-space check: the check
    # is made to see room (`shutil.disk_usage` reports 1 TB free), and the
    # 40 MB disk holds less than the first state file. Written through
    # HDF5, this write failed inside h5py and the process then died of a
    # segfault (exit -11) after printing the message.
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40m", "tmpfs", str(disk)]).returncode:
        pytest.skip("mounting a small tmpfs needs root")
    wrapper = (
        "import shutil, sys; real = shutil.disk_usage; "
        "shutil.disk_usage = lambda path: real(path)._replace(free=10**12); "
        "from keras_ann.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    try:
        root = _scene_folder(tmp_path / "scenes")
        command = _train_command(root, str(disk / "run"), 4) + ["--eval-interval", "4", "--eval-steps", "1"]
        env = dict(os.environ, PYTHONPATH=ROOT, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="3")
        result = subprocess.run(
            [sys.executable, "-c", wrapper] + command[3:], env=env, capture_output=True, text=True, timeout=600
        )
        leftovers = [n for _, _, names in os.walk(disk) for n in names if "tmp" in n]
    finally:
        subprocess.run(["umount", str(disk)])
    assert result.returncode == 1, (result.returncode, result.stderr[-3000:])
    assert re.search(r"keras-ann train: error: No space left on the device for \S*tmp-state-2\.npz", result.stderr)
    assert "Exception ignored" not in result.stderr and "h5py" not in result.stderr, result.stderr[-3000:]
    assert not leftovers


def test_a_state_of_an_earlier_version_in_keras_weights_format_is_restored(tmp_path):
    # Runs of earlier keras-ann 0.1.0 code wrote `state-<iteration>.weights.h5` with `save_weights`.
    model = _tiny_model()
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    model.fit(x, np.zeros((2, 32, 32), "int32"), epochs=1, verbose=0)
    directory = tmp_path / "resume"
    directory.mkdir()
    model.save_weights(str(directory / "state-1.weights.h5"))
    digest = resume_state.file_sha256(str(directory / "state-1.weights.h5"))
    with open(directory / "state.json", "w") as f:
        json.dump({"iteration": 1, "weights": "state-1.weights.h5", "sha256": digest}, f)
    fresh = _tiny_model()
    fresh.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
    assert resume_state.ResumeState(str(directory)).restore(fresh) == 1
    # (the dropout generators' states live in state.json, absent here)
    for got, want in zip(fresh.weights + fresh.optimizer.variables, model.weights + model.optimizer.variables):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(got), keras.ops.convert_to_numpy(want))


def test_a_state_of_another_model_is_refused_naming_its_file(tmp_path):
    model = _tiny_model()
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
    model.fit(np.zeros((2, 32, 32, 3), "float32"), np.zeros((2, 32, 32), "int32"), epochs=1, verbose=0)
    state = resume_state.ResumeState(str(tmp_path / "resume"))
    state.set_model(model)
    state.on_epoch_end(0)
    assert sorted(os.listdir(tmp_path / "resume")) == ["state-1.npz", "state.json"]
    other = _tiny_model(num_classes=5)  # other classifier shapes
    other.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
    with pytest.raises(training.ResumeError, match=r"state-1\.npz cannot be loaded into this model \(.* has shape"):
        state.restore(other)
    sgd = _tiny_model()
    sgd.compile(optimizer=keras.optimizers.SGD(0.1))  # no momentum: fewer variables
    with pytest.raises(training.ResumeError, match=r"state-1\.npz cannot be loaded .*holds \d+ variables, this model and its optimiser have \d+"):
        state.restore(sgd)


# --------------------------------------------------------------------------
# Bad model input
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model():
    m = _tiny_model()
    m.compile()
    return m


@pytest.mark.parametrize(
    "images, message",
    [
        (np.zeros((32, 32, 3), "float32"), r"`images` must be a batch of RGB images.*\(32, 32, 3\).*images\[None\]"),
        (np.zeros((1, 32, 32, 4), "float32"), r"`images` must be a batch of RGB images.*\(1, 32, 32, 4\)"),
        (np.zeros((1, 32, 32), "float32"), r"`images` must be a batch of RGB images.*\(1, 32, 32\)"),
        (np.zeros((1, 0, 32, 3), "float32"), r"`images` must not be empty, got shape \(1, 0, 32, 3\)"),
        (np.zeros((0, 32, 32, 3), "float32"), r"`images` must not be empty"),
        (np.zeros((1, 32, 32, 3), bool), r"`images` must hold real-valued pixels.*dtype bool"),
        (np.zeros((1, 32, 32, 3), np.complex64), r"`images` must hold real-valued pixels.*complex64"),
        (np.full((1, 4, 4, 3), "x"), r"`images` must hold real-valued pixels"),
        (
            np.where(np.arange(2 * 32 * 32 * 3).reshape(2, 32, 32, 3) == 5000, np.nan, 0).astype("float32"),
            r"`images` holds 1 NaN and 0 infinite pixel values \(in image\(s\) \[1\] of the batch\)",
        ),
        (np.full((1, 32, 32, 3), np.inf, "float32"), r"`images` holds 0 NaN and 3072 infinite pixel values"),
    ],
)
def test_bad_images_are_refused_by_call_and_predict(model, images, message):
    with pytest.raises(ValueError, match=message):
        model(images)
    with pytest.raises(ValueError, match=message.replace("`images`", "`x`")):
        model.predict(images, verbose=0)
    with pytest.raises(ValueError, match=message):
        keras_ann.inference.predict_logits(model, images)


@pytest.mark.parametrize(
    "labels, message",
    [
        (np.zeros((2, 16, 16), "int32"), r"`y` must be label maps of shape \(2, 32, 32\).*got shape \(2, 16, 16\)"),
        (np.zeros((2, 32), "int32"), r"`y` must be label maps.*got shape \(2, 32\)"),
        (np.zeros((2, 32, 32, 3), "int32"), r"`y` must be label maps.*got shape \(2, 32, 32, 3\)"),
        (np.zeros((3, 32, 32), "int32"), r"`y` must be label maps of shape \(2, 32, 32\).*\(3, 32, 32\)"),
        (np.zeros((2, 32, 32), bool), r"`y` must hold class indices.*bool"),
    ],
)
def test_bad_labels_are_refused_and_the_model_stays_usable(model, labels, message):
    images = np.zeros((2, 32, 32, 3), "float32")
    with pytest.raises(ValueError, match=message):
        model.fit(images, labels, verbose=0)
    with pytest.raises(ValueError, match=message):
        model.evaluate(images, labels, verbose=0)
    import tensorflow as tf

    if len(labels) == len(images):  # else tf.data refuses the pair itself
        dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(2)
        in_dataset = message.replace("`y`", r"`y \(the dataset's labels\)`").replace(r"\(2, ", r"\(None, ")
        with pytest.raises(ValueError, match=in_dataset):
            model.fit(dataset, verbose=0)
    # Nothing lost: the same model trains on good labels afterwards.
    good = np.zeros((2, 32, 32, 1), "int32")  # a trailing axis of 1 is fine
    history = model.fit(images, good, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_images_smaller_than_the_crop_follow_the_reference(model):
    # mmseg's slide inference uses such an image whole (one window); it is
    # not an error there, so it is not one here.
    images = np.random.default_rng(0).uniform(0, 255, (1, 20, 28, 3)).astype("float32")
    slide = keras_ann.inference.predict_logits(model, images, mode="slide", crop_size=32, stride=21)
    whole = keras_ann.inference.predict_logits(model, images)
    np.testing.assert_allclose(slide, whole, rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------
# Hostile files: a .keras file with a lambda is refused (Keras safe mode)
# --------------------------------------------------------------------------


def test_a_keras_file_with_a_lambda_is_refused_without_running_it(tmp_path):
    marker = str(tmp_path / "pwned")
    inputs = keras.Input((8, 8, 3))
    # The lambda writes a file when it runs: deserialising it in unsafe
    # mode and building the model would.
    outputs = keras.layers.Lambda(lambda x: x + 0 * len(open(marker, "w").name))(inputs)
    path = str(tmp_path / "evil.keras")
    keras.Model(inputs, outputs).save(path)
    if os.path.exists(marker):
        os.remove(marker)  # created when Keras traced the lambda above
    image = str(tmp_path / "street.png")
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(image)

    # Refused from its config.json, before Keras deserialises anything.
    with pytest.raises(ValueError, match=r"evil\.keras holds a Keras Functional .*not a keras_ann ANNSegmenter"):
        keras_ann.ANNSegmenter.from_preset(path)
    from keras_ann import cli

    assert cli.main(["predict", path, image, "--output-dir", str(tmp_path / "out")]) == 1
    assert not os.path.exists(marker)


# --------------------------------------------------------------------------
# Property-based: random bytes and random images to the decoders
# --------------------------------------------------------------------------


_MODES = ("1", "L", "P", "RGB", "RGBA", "I;16", "I", "F", "LA", "CMYK")


@st.composite
def _image_files(draw):
    """(file bytes, suffix): random bytes, a valid image of a random mode and
    size, or a valid image cut short or with flipped bytes."""
    kind = draw(st.sampled_from(["bytes", "image", "truncated", "corrupted"]))
    suffix = draw(st.sampled_from([".png", ".jpg", ".bmp", ".tif", ".webp"]))
    if kind == "bytes":
        return draw(st.binary(max_size=300)), suffix
    mode = draw(st.sampled_from(_MODES))
    width, height = draw(st.integers(1, 24)), draw(st.integers(1, 24))
    seed = draw(st.integers(0, 2**16))
    values = np.random.default_rng(seed).integers(0, 256, (height, width, 4), dtype=np.uint8)
    image = Image.fromarray(values, "RGBA").convert(mode)
    fmt = {".png": "PNG", ".jpg": "JPEG", ".bmp": "BMP", ".tif": "TIFF", ".webp": "WEBP"}[suffix]
    import io

    buffer = io.BytesIO()
    try:
        image.save(buffer, fmt)
    except (OSError, ValueError, KeyError):  # mode not writable in this format
        image.convert("RGB").save(buffer, fmt)
    data = buffer.getvalue()
    if kind == "truncated":
        data = data[: draw(st.integers(0, max(len(data) - 1, 0)))]
    elif kind == "corrupted":
        data = bytearray(data)
        for _ in range(draw(st.integers(1, 8))):
            position = draw(st.integers(0, len(data) - 1))
            data[position] = draw(st.integers(0, 255))
        data = bytes(data)
    return data, suffix


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(image=_image_files(), label=_image_files(), num_classes=st.integers(1, 255))
def test_decoders_return_valid_arrays_or_a_clear_dataset_error(tmp_path, image, label, num_classes):
    image_path = str(tmp_path / ("image" + image[1]))
    label_path = str(tmp_path / ("label" + label[1]))
    with open(image_path, "wb") as f:
        f.write(image[0])
    with open(label_path, "wb") as f:
        f.write(label[0])
    for read, path in ((read_image, image_path), (read_label, label_path)):
        try:
            array = read(path)
        except DatasetError as e:
            assert path in str(e)
        else:
            assert array.dtype == np.uint8 and array.size > 0
            assert array.ndim == (3 if read is read_image else 2)
    try:
        x, y = load_sample(image_path, label_path, num_classes=num_classes)
    except DatasetError as e:
        assert image_path in str(e) or label_path in str(e)
    else:
        assert x.shape[:2] == y.shape and x.shape[2] == 3
        assert np.all((y < num_classes) | (y == 255))


# --------------------------------------------------------------------------
# Image depth, bad values, argument checks
# --------------------------------------------------------------------------


def test_sixteen_bit_images_are_read_as_opencv_reads_them(tmp_path):
    cv2 = pytest.importorskip("cv2")  # the reference's reader (mmcv, imdecode_backend='cv2')
    grey = (np.arange(48 * 64).reshape(48, 64) * 21).astype(np.uint16)
    image_path = str(tmp_path / "deep.png")
    Image.fromarray(grey).save(image_path)
    assert Image.open(image_path).mode == "I;16"
    expected = cv2.imread(image_path, cv2.IMREAD_COLOR)[..., ::-1]
    np.testing.assert_array_equal(read_image(image_path), expected)
    label_path = str(tmp_path / "label.png")
    Image.fromarray(np.zeros((48, 64), np.uint8)).save(label_path)
    image, _ = load_sample(image_path, label_path, num_classes=3)  # the training loader
    np.testing.assert_array_equal(image, expected)
    assert len(np.unique(image)) > 200  # Pillow's convert("RGB") made it all 255


def test_float_images_are_refused_by_the_loader(tmp_path):
    path = str(tmp_path / "float.tif")
    Image.fromarray(np.full((8, 8), np.nan, np.float32)).save(path)
    with pytest.raises(DatasetError, match=r"float\.tif: floating-point pixels \(mode F\)"):
        read_image(path)


def test_a_negative_scale_is_refused_when_the_pipeline_is_built(tmp_path):
    # It failed inside the tf.data threads, once training had started.
    dataset = camvid(_scene_folder(tmp_path / "scenes"), "train")
    with pytest.raises(ValueError, match=r"`scale` must be positive, got \(-48, 48\)"):
        dataset.train_dataset(2, scale=(-48, 48), crop_size=(32, 32))


def test_one_positive_int_and_one_pair_check():
    from keras_ann.checks import check_pair, check_positive_int

    assert check_positive_int(np.int64(3), "n") == 3
    assert check_positive_int(0, "n", allow_zero=True) == 0
    for bad in (0, -1, 1.5, True, "2", None):
        with pytest.raises(ValueError, match=r"`n` must be a positive integer"):
            check_positive_int(bad, "n")
    assert check_pair([4, 5], "size") == (4, 5)
    for bad in ((0, 4), (4,), (4, 5.5), -3):
        with pytest.raises(ValueError, match=r"`size` must be"):
            check_pair(bad, "size")
    # The library's entry points use them, with the same messages.
    from keras_ann import benchmark, export, inference

    with pytest.raises(ValueError, match=r"`batch_size` must be a positive integer, got 0"):
        export.validate_arguments("m", batch_size=0)
    with pytest.raises(ValueError, match=r"`runs` must be a positive integer, got 0"):
        benchmark.resolve_spec("resnet18_d8", num_classes=2, runs=0)
    with pytest.raises(ValueError, match=r"`batch_size` must be a positive integer, got 0"):
        inference.predict_logits(_tiny_model(), np.zeros((1, 32, 32, 3), "float32"), batch_size=0)


def test_a_run_refused_at_its_start_leaves_no_empty_work_dir(tmp_path):
    from keras_ann.work_dir import WorkDir

    new = tmp_path / "new" / "run"
    with pytest.raises(DatasetError):
        with WorkDir(str(new)).lock():
            raise DatasetError("refused before the first step")
    assert not new.exists()
    # A directory that was there before, or that holds anything besides the
    # lock, is kept.
    old = tmp_path / "old"
    old.mkdir()
    with pytest.raises(DatasetError):
        with WorkDir(str(old)).lock():
            raise DatasetError("refused")
    assert old.is_dir()
    started = tmp_path / "started"
    with pytest.raises(DatasetError):
        with WorkDir(str(started)).lock():
            (started / "history.csv").write_text("epoch\n")
            raise DatasetError("failed after writing")
    assert (started / "history.csv").exists()


# --------------------------------------------------------------------------
# Memory: sizes that cannot fit are refused before anything that size exists
# --------------------------------------------------------------------------


def test_a_saved_test_scale_of_60000_is_refused_by_predict_with_the_size_and_the_flag(tmp_path, capsys):
    from keras_ann import cli

    model = _tiny_model()
    model.test_protocol = TestProtocol(scale=(60000, 60000))  # a hostile saved protocol
    path = str(tmp_path / "m.keras")
    model.save(path)
    image = str(tmp_path / "x.png")
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(image)
    assert cli.main(["predict", path, image, "--output-dir", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip()
    assert re.fullmatch(
        r"keras-ann predict: error: segmentation at 60000x60000 needs about [\d.]+ GB of memory, more than the "
        r"[\d.]+ GB available: lower --test-scale\.", err
    ), err
    # The flag wins over the saved protocol.
    assert cli.main(["predict", path, image, "--output-dir", str(tmp_path / "out"), "--test-scale", "32", "32"]) == 0


def test_benchmark_and_train_sizes_that_cannot_fit_are_refused_before_anything_is_built(tmp_path, capsys):
    from keras_ann import cli

    with pytest.raises(SystemExit, match=r"^keras-ann benchmark: error: inference on 1x100000x100000 needs about "
                       r"[\d.]+ GB .* lower --input-size or --batch-size\.$"):  # fmt: skip
        cli.main(["benchmark", "resnet18_d8", "--num-classes", "2", "--input-size", "100000", "100000", "--dry-run"])
    with pytest.raises(SystemExit, match=r"lower --train-size or --train-batch-size\.$"):
        cli.main(["benchmark", "resnet18_d8", "--num-classes", "2", "--input-size", "64", "64",
                  "--train-size", "50000", "50000", "--dry-run"])  # fmt: skip
    work = tmp_path / "work"
    assert cli.main(["train", "ann_r18_d8_camvid_cpu", "--data-root", str(tmp_path / "data"), "--work-dir", str(work),
                     "--crop-size", "40000", "40000"]) == 1  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert re.fullmatch(r"keras-ann train: error: training on \d+x40000x40000 crops per device needs about "
                        r"[\d.]+ GB .* lower --crop-size or --batch-size\.", err), err  # fmt: skip
    assert not work.exists()


def test_the_memory_estimate_refuses_above_the_budget_and_reads_the_machine(monkeypatch):
    from keras_ann import checks

    assert 0 < checks.available_memory_bytes()
    # A 6000x6000 benchmark (it segfaulted) needs about 26 GB by the estimate.
    needed = checks.check_memory(6000, 6000, 19, what="inference", flag="--input-size", budget=10**12)
    assert 20e9 < needed < 40e9
    with pytest.raises(checks.MemoryBudgetError, match=r"inference needs about 2\d\.\d GB of memory, more than the "
                       r"16\.0 GB available: lower --input-size\."):  # fmt: skip
        checks.check_memory(6000, 6000, 19, what="inference", flag="--input-size", budget=16e9)
    # Slide inference runs the network on windows: the full-size logits count, not its activations.
    assert checks.check_memory(6000, 6000, 19, what="", flag="", window=(512, 512), budget=10**12) < 4e9
    monkeypatch.setattr(checks, "open", lambda *a, **k: (_ for _ in ()).throw(OSError("no /proc")), raising=False)
    assert checks.available_memory_bytes() > 0  # os.sysconf


# --------------------------------------------------------------------------
# --restart: the old run is set aside, not deleted, until the new one commits
# --------------------------------------------------------------------------


def _files(work):
    return {
        os.path.relpath(os.path.join(d, f), work): open(os.path.join(d, f), "rb").read()
        for d, _, fs in os.walk(work) for f in fs if f != ".lock"
    }  # fmt: skip


def test_a_restart_with_a_mistyped_data_root_keeps_every_file_of_the_old_run(run_copy):
    root, work = run_copy
    before = _files(work)
    assert {"resume/state.json", "latest.keras", "best_mIoU.keras", "history.csv", "log.jsonl"} <= set(before)
    with pytest.raises(Exception, match=re.escape(root + "-typo")):
        training.train(RECIPE, root + "-typo", work, iterations=4, **RUN, restart=True)
    assert _files(work) == before


def test_a_restart_that_fails_before_its_first_state_leaves_the_old_run_set_aside(run_copy, monkeypatch):
    root, work = run_copy
    before = _files(work)

    def fail(*args, **kwargs):
        raise RuntimeError("killed before the first checkpoint")

    monkeypatch.setattr(training, "_fit", fail)
    with pytest.raises(RuntimeError, match="killed before"):
        training.train(RECIPE, root, work, iterations=4, **RUN, restart=True)
    (aside,) = [name for name in os.listdir(work) if name.startswith(".previous-")]
    kept = {os.path.relpath(k, aside): v for k, v in _files(work).items() if k.startswith(aside)}
    assert {k: v for k, v in before.items() if k in kept} == kept
    assert {"resume/state.json", "latest.keras", "best_mIoU.keras", "history.csv", "log.jsonl"} <= set(kept)


def test_a_restart_moves_the_old_snapshots_away_so_they_evict_none_of_the_new_run(run_copy):
    root, work = run_copy
    for iteration in (4, 6):  # snapshots of the old run, newer than the new run's first
        shutil.copy(os.path.join(work, "latest.keras"), os.path.join(work, f"iter_{iteration}.keras"))
    training.train(RECIPE, root, work, iterations=2, **dict(RUN, eval_interval=2), keep_snapshots=2, restart=True)
    assert sorted(n for n in os.listdir(work) if n.startswith("iter_")) == ["iter_2.keras"]
    # The old run, set aside at the start, is gone once the new one committed its state.
    assert not [name for name in os.listdir(work) if name.startswith(".previous-")]
    assert _state(os.path.join(work, "resume"))["iteration"] == 2


def test_a_run_stopped_before_its_first_checkpoint_runs_again_with_the_same_command(tmp_path):
    root = _scene_folder(tmp_path / "scenes")
    work = str(tmp_path / "run")
    image = os.path.join(root, "val", "000.png")
    good = open(image, "rb").read()
    _truncate(image)  # the first evaluation fails, before the first state
    settings = dict(RUN, eval_interval=2)
    with pytest.raises(Exception, match="000.png"):
        training.train(RECIPE, root, work, iterations=2, **settings)
    assert not os.path.exists(os.path.join(work, "resume", "state.json"))
    open(image, "wb").write(good)
    model, _ = training.train(RECIPE, root, work, iterations=2, **settings)  # refused before: "no resume state"
    assert int(model.optimizer.iterations.numpy()) == 2
    assert len(_history_rows(work)) == 1
    assert sorted(os.listdir(os.path.join(work, "resume"))) == sorted(
        os.path.basename(p) for p in resume_state.ResumeState(os.path.join(work, "resume"), None).files()
    )  # no mark of an uncommitted run left
    assert not [name for name in os.listdir(work) if name.startswith(".previous-")]
