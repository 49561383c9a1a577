"""`keras-ann` misuse: every bad argument refused by the parser in one
line, every error of a run one line and a non-zero exit (no traceback, no
TensorFlow graph dump, no hang), `predict` outputs that never overwrite each
other, model files recognised by their content."""

import os
import re
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from PIL import Image

import keras
import keras_ann
from testing_utils import scene_folder
from keras_ann import cli
from keras_ann.data.io import read_image
from keras_ann.file_lists import output_names
from keras_ann.weights.pth_reader import CheckpointError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _last_line(text):
    return [line for line in text.splitlines() if line.strip()][-1]


def _tiny_model(num_classes=3):
    backbone = keras_ann.ResNetBackbone(depth=18, output_stride=8, stem_channels=8, base_channels=8)
    return keras_ann.ANNSegmenter(
        backbone, num_classes=num_classes, head_channels=16, project_channels=8, auxiliary_channels=8
    )


# --------------------------------------------------------------------------
# Arguments: refused by the parser, `keras-ann <cmd>: error: ...`, exit 2
# --------------------------------------------------------------------------

_TRAIN = ["train", "ann_r18_d8_camvid_cpu", "--data-root", "data"]
_EVALUATE = ["evaluate", "m.keras", "--dataset", "camvid", "--data-root", "data"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--iterations", "0"], "--iterations must be a positive integer, got 0"),
        (["--iterations", "-4"], "--iterations must be a positive integer, got -4"),
        (["--iterations", "ten"], "--iterations must be a positive integer, got 'ten'"),
        (["--batch-size", "0"], "--batch-size must be a positive integer, got 0"),
        (["--scale", "0", "0"], "--scale must be a positive integer, got 0"),
        (["--scale", "-64", "64"], "--scale must be a positive integer, got -64"),
        (["--crop-size", "64", "0"], "--crop-size must be a positive integer, got 0"),
        (["--eval-steps", "0"], "--eval-steps must be a positive integer, got 0"),
        (["--eval-interval", "0"], "--eval-interval must be a positive integer, got 0"),
        (["--checkpoint-interval", "-1"], "--checkpoint-interval must be a positive integer, got -1"),
        (["--seed", "-1"], "--seed must be a non-negative integer, got -1"),
        (["--remat", "stem,stage5"], "--remat takes the parts of the backbone to recompute, comma-separated, from "
         "stem, stage1, stage2, stage3, stage4; got 'stem,stage5'. Write --remat alone (all of them) or --remat=stem,stage1"),
    ],
)
def test_train_refuses_bad_numbers_in_the_parser(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_:
        cli.main(_TRAIN + ["--work-dir", str(tmp_path / "work")] + argv)
    assert exit_.value.code == 2
    assert _last_line(capsys.readouterr().err) == f"keras-ann train: error: {message}"
    assert not os.path.exists(tmp_path / "work")  # nothing started


@pytest.mark.parametrize(
    "argv, message",
    [
        # --steps and train --eval-steps mean the same: the first N images; 0 is refused by both.
        (_EVALUATE + ["--steps", "0"], "keras-ann evaluate: error: --steps must be a positive integer, got 0"),
        (_EVALUATE + ["--mode", "slide", "--crop", "0", "5"], "keras-ann evaluate: error: --crop must be a positive integer, got 0"),
        (_EVALUATE + ["--mode", "slide", "--crop", "8", "8", "--stride", "-1", "4"], "keras-ann evaluate: error: --stride must be a positive integer, got -1"),
        (["predict", "m.keras", "x.png", "--crop", "0", "0"], "keras-ann predict: error: --crop must be a positive integer, got 0"),
        (["demo", "--iterations", "0"], "keras-ann demo: error: --iterations must be a positive integer, got 0"),
        (["demo", "--seconds", "0"], "keras-ann demo: error: --seconds must be a positive number, got 0"),
        (["demo", "--lr", "nan"], "keras-ann demo: error: --lr must be a positive number, got nan"),
        (["demo", "--batch-size", "0"], "keras-ann demo: error: --batch-size must be a positive integer, got 0"),
        (["benchmark", "resnet18_d8", "--runs", "0"], "keras-ann benchmark: error: --runs must be a positive integer, got 0"),
        (["benchmark", "resnet18_d8", "--warmup", "-1"], "keras-ann benchmark: error: --warmup must be a non-negative integer, got -1"),
        (["benchmark", "resnet18_d8", "--input-size", "0", "64"], "keras-ann benchmark: error: --input-size must be a positive integer, got 0"),
        (["export", "m.keras", "out", "--batch-size", "0"], "keras-ann export: error: --batch-size must be a positive integer, got 0"),
        (["export", "m.keras", "out", "--input-size", "64", "-64"], "keras-ann export: error: --input-size must be a positive integer, got -64"),
        (["export", "m.keras", "out", "--opset", "0"], "keras-ann export: error: --opset must be a positive integer, got 0"),
        (["convert", "m.pth", "m.keras", "--num-classes", "0"], "keras-ann convert: error: --num-classes must be a positive integer, got 0"),
        # --remat before the recipe would take the recipe for its PARTS: the message says what to write.
        (["train", "--remat", "ann_r18_d8_camvid_cpu", "--data-root", "data"], "keras-ann train: error: --remat takes the parts "
         "of the backbone to recompute, comma-separated, from stem, stage1, stage2, stage3, stage4; got "
         "'ann_r18_d8_camvid_cpu'. Write --remat alone (all of them) or --remat=stem,stage1"),
    ],
)
def test_every_command_refuses_bad_numbers_in_the_parser(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 2
    assert _last_line(capsys.readouterr().err) == message


def test_output_paths_are_checked_before_anything_runs(tmp_path, capsys):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    cases = [
        (_TRAIN + ["--work-dir", str(a_file)], f"keras-ann train: error: --work-dir must be a directory, but {a_file} is a file"),
        (
            _TRAIN + ["--work-dir", str(a_file / "run")],
            f"keras-ann train: error: --work-dir cannot be created: {a_file} is a file, not a directory (got {a_file / 'run'})",
        ),
        (["predict", "m.keras", "x.png", "--output-dir", str(a_file)], f"keras-ann predict: error: --output-dir must be a directory, but {a_file} is a file"),
        (["demo", "--output", str(tmp_path)], f"keras-ann demo: error: --output must be a file name, but {tmp_path} is a directory"),
        (["convert", "m.pth", str(tmp_path)], f"keras-ann convert: error: output must be a file name, but {tmp_path} is a directory"),
        (["benchmark", "resnet18_d8", "--json", str(tmp_path)], f"keras-ann benchmark: error: --json must be a file name, but {tmp_path} is a directory"),
        (
            ["export", "m.keras", str(a_file / "model.onnx")],
            f"keras-ann export: error: output cannot be created: {a_file} is a file, not a directory (got {a_file / 'model.onnx'})",
        ),
    ]
    for argv, message in cases:
        with pytest.raises(SystemExit) as exit_:
            cli.main(argv)
        assert exit_.value.code == 2, argv
        assert _last_line(capsys.readouterr().err) == message


# --------------------------------------------------------------------------
# Errors of a run: one line, exit 1 (KERAS_ANN_DEBUG=1 adds the traceback)
# --------------------------------------------------------------------------


def test_a_domain_error_is_one_line_and_exit_1(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("KERAS_ANN_DEBUG", raising=False)
    argv = ["evaluate", str(tmp_path / "missing.keras"), "--dataset", "camvid", "--data-root", str(tmp_path)]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert err.strip() == f"keras-ann evaluate: error: No checkpoint file at {str(tmp_path / 'missing.keras')!r}."
    monkeypatch.setenv("KERAS_ANN_DEBUG", "1")
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert _last_line(err).startswith("keras-ann evaluate: error: No checkpoint file")


def test_demo_trains_the_iterations_asked_for(tmp_path, capsys):
    # Epochs of 10 iterations gave `--iterations 5` zero epochs.
    output = tmp_path / "demo.png"
    argv = ["demo", "--iterations", "5", "--seconds", "3600", "--size", "32", "--batch-size", "2",
            "--train-images", "8", "--val-images", "8", "--output", str(output)]  # fmt: skip
    assert cli.main(argv) == 0
    assert "trained 5 of 5 iterations" in capsys.readouterr().out
    assert output.is_file()


# --------------------------------------------------------------------------
# An error inside the tf.data pipeline: the real CLI ends, one line, exit 1
# --------------------------------------------------------------------------


def _camvid_folder(path, count=8, size=(96, 128)):
    """Generated scenes in the CamVid layout."""
    return scene_folder(path, count, size)

def _truncate(path):
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])


def _out_of_range(path):
    label = np.array(Image.open(path))
    label[:4] = 20  # CamVid has 11 classes
    Image.fromarray(label).save(path)


def _sixteen_bit(path):
    label = np.array(Image.open(path)).astype(np.uint16)
    label[:4] = 300
    Image.fromarray(label).save(path)


_DAMAGE = {
    "out_of_range_label": (_out_of_range, "trainannot", r"values outside \[0, 11\).*\b20\b"),
    "truncated_image": (_truncate, "train", r"Cannot read image .*/train/00\d\.png"),
    # Labels are scanned before training: the scan names the files.
    "truncated_label": (_truncate, "trainannot", r"cannot be read .*/trainannot/00\d\.png \(OSError"),
    "sixteen_bit_label_over_255": (_sixteen_bit, "trainannot", r"values outside 0\.\.255: 300 "),
    "bad_val_label": (_out_of_range, "valannot", r"camvid/val hold values outside \[0, 11\).*\b20\b"),
}


@pytest.mark.parametrize("kind", sorted(_DAMAGE))
def test_an_error_in_the_input_pipeline_ends_train_with_one_line(tmp_path, kind):
    import re

    damage, folder, pattern = _DAMAGE[kind]
    root = _camvid_folder(tmp_path / "data")
    # Every file of the folder: the first batch (or evaluation) meets one.
    for name in sorted(os.listdir(os.path.join(root, folder))):
        damage(os.path.join(root, folder, name))
    env = dict(os.environ, PYTHONPATH=ROOT, CUDA_VISIBLE_DEVICES="")
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # as a user runs it
    env.pop("KERAS_ANN_DEBUG", None)
    command = [
        sys.executable, "-m", "keras_ann.cli", "train", "ann_r18_d8_camvid_cpu",
        "--data-root", root, "--work-dir", str(tmp_path / "work"),
        "--iterations", "2", "--eval-interval", "2", "--checkpoint-interval", "2",
        "--batch-size", "2", "--crop-size", "64", "64", "--scale", "128", "96",
    ]  # fmt: skip
    # Without the fix the process printed a graph dump and then never exited.
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=400)
    assert result.returncode == 1, result.stderr[-3000:]
    # The message is the last thing printed: one line, or the label scan's
    # list of every problem found before training (one line per problem).
    lines = result.stderr.rstrip().splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("keras-ann train: error: ")]
    assert len(starts) == 1, result.stderr[-3000:]
    message = "\n".join(lines[starts[0]:])
    assert re.search(pattern, message, re.S), message
    assert "Graph execution error" not in result.stderr
    if folder.endswith("annot"):  # refused by the label scan, before anything was written
        assert not (tmp_path / "work").exists()
    assert "Traceback" not in result.stderr, result.stderr[-3000:]


def test_an_error_in_the_input_pipeline_ends_a_python_train_script(tmp_path):
    # The same failure through `keras_ann.training.train` from a script,
    # without the CLI's `os._exit`: the error is raised with its traceback
    # and the process exits at once (a guard against the shutdown deadlock
    # the CLI met; not reproduced from Python).
    root = _camvid_folder(tmp_path / "data")
    for name in sorted(os.listdir(os.path.join(root, "train"))):
        _truncate(os.path.join(root, "train", name))
    script = (
        "from keras_ann import training\n"
        f"training.train('ann_r18_d8_camvid_cpu', {root!r}, {str(tmp_path / 'work')!r}, iterations=2,\n"
        "               eval_interval=2, checkpoint_interval=2, batch_size=2, crop_size=(64, 64),\n"
        "               scale=(128, 96), verbose=0)\n"
    )
    env = dict(os.environ, PYTHONPATH=ROOT, CUDA_VISIBLE_DEVICES="")
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" in result.stderr
    assert re.search(r"Cannot read image .*/train/00\d\.png", result.stderr), result.stderr[-3000:]


# --------------------------------------------------------------------------
# predict
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("model") / "tiny.keras")
    model = _tiny_model()
    model(np.zeros((1, 32, 32, 3), "float32"))
    model.save(path)
    return path


def _write(path, array, **kwargs):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(array).save(path, **kwargs)
    return path


def test_predict_outputs_never_overwrite_each_other(tmp_path, model_file, capsys):
    rng = np.random.default_rng(0)
    a = _write(str(tmp_path / "in/a/x.png"), rng.integers(0, 255, (32, 32, 3), dtype=np.uint8))
    b = _write(str(tmp_path / "in/b/x.png"), rng.integers(0, 255, (32, 40, 3), dtype=np.uint8))
    c = _write(str(tmp_path / "in/b/x.jpg"), rng.integers(0, 255, (40, 32, 3), dtype=np.uint8))
    out = tmp_path / "out"
    assert cli.main(["predict", model_file, a, b, c, "--output-dir", str(out)]) == 0
    sizes = {
        name: Image.open(out / f"{name}_labels.png").size for name in ("a/x", "b/x_png", "b/x_jpg")
    }
    assert sizes == {"a/x": (32, 32), "b/x_png": (40, 32), "b/x_jpg": (32, 40)}
    capsys.readouterr()


def test_predict_takes_directories_and_globs_and_refuses_what_matches_nothing(tmp_path, model_file, capsys):
    rng = np.random.default_rng(1)
    for name in ("p/1.png", "p/q/2.jpg", "r/3.png"):
        _write(str(tmp_path / "in" / name), rng.integers(0, 255, (32, 32, 3), dtype=np.uint8))
    out = tmp_path / "out"
    argv = ["predict", model_file, str(tmp_path / "in/p"), str(tmp_path / "in/r/*.png"), "--output-dir", str(out)]
    assert cli.main(argv) == 0
    written = sorted(os.path.relpath(os.path.join(d, f), out) for d, _, fs in os.walk(out) for f in fs)
    assert written == sorted(f"{n}_{k}.png" for n in ("p/1", "p/q/2", "r/3") for k in ("labels", "overlay"))
    capsys.readouterr()
    assert cli.main(["predict", model_file, str(tmp_path / "in/*.tif"), "--output-dir", str(out)]) == 1
    assert capsys.readouterr().err.strip() == f"keras-ann predict: error: no file matches {tmp_path / 'in/*.tif'}"


def _symlink_loop(root):
    """root/data with two images and two links back up (sub/up, sub/back
    -> ..): `glob.glob('data/**', recursive=True)` walks 2**40 paths."""
    rng = np.random.default_rng(3)
    for name in ("data/1.jpg", "data/sub/2.jpg"):
        _write(str(root / name), rng.integers(0, 255, (32, 32, 3), dtype=np.uint8))
    os.symlink("..", root / "data/sub/up")
    os.symlink("..", root / "data/sub/back")
    return str(root / "data")


def test_a_recursive_glob_through_a_symlink_loop_returns_each_image_once(tmp_path):
    data = _symlink_loop(tmp_path)
    script = (
        "import sys; from keras_ann.file_lists import image_paths; "
        "from keras_ann.quantize import calibration_files; p = sys.argv[1]; "
        "print(image_paths([p])); "
        "print(calibration_files([p], 16, format='onnx', input_size=(8, 8)))"
    )
    env = dict(os.environ, PYTHONPATH=ROOT)
    result = subprocess.run(  # a hang is a TimeoutExpired
        [sys.executable, "-c", script, os.path.join(data, "**", "*.jpg")],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    expected = repr([os.path.join(data, "1.jpg"), os.path.join(data, "sub", "2.jpg")])
    assert result.stdout.splitlines() == [expected, expected]


def test_predict_gives_every_input_its_own_outputs_even_when_stems_and_extensions_collide(tmp_path, model_file):
    rng = np.random.default_rng(4)
    names = ("x.jpg", "x.png", "x_jpg.bmp", "x_png.png", "y.png")
    inputs = [_write(str(tmp_path / "in" / n), rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)) for n in names]
    stems = output_names(inputs)
    assert len(set(stems)) == len(inputs), stems
    out = tmp_path / "out"
    assert cli.main(["predict", model_file, *inputs, "--output-dir", str(out)]) == 0
    assert len(os.listdir(out)) == 2 * len(inputs)


def test_predict_refuses_an_output_that_would_replace_an_input_before_loading_the_model(tmp_path, capsys):
    rng = np.random.default_rng(5)
    photos = tmp_path / "photos"
    x = _write(str(photos / "x.jpg"), rng.integers(0, 255, (16, 16, 3), dtype=np.uint8))
    labels = _write(str(photos / "x_labels.png"), rng.integers(0, 255, (16, 16, 3), dtype=np.uint8))
    before = {p: open(p, "rb").read() for p in (x, labels)}
    # The model does not exist: the refusal comes before it would be loaded.
    assert cli.main(["predict", str(tmp_path / "missing.keras"), str(photos), "--output-dir", str(photos)]) == 1
    assert capsys.readouterr().err.strip() == (
        f"keras-ann predict: error: the output {photos / 'x_labels.png'} would overwrite the input {labels}: "
        "give another --output-dir."
    )
    assert {p: open(p, "rb").read() for p in before} == before
    assert sorted(os.listdir(photos)) == ["x.jpg", "x_labels.png"]


def test_predict_reads_images_as_the_training_loader(tmp_path, model_file, capsys):
    rng = np.random.default_rng(2)
    # A photo taken sideways: 48 wide, 32 high as stored, EXIF orientation 6 (rotate 90).
    exif = Image.Exif()
    exif[0x0112] = 6
    rotated = _write(str(tmp_path / "in/rotated.jpg"), rng.integers(0, 255, (32, 48, 3), dtype=np.uint8), exif=exif)
    # 16-bit greyscale: Pillow's convert("RGB") made it white.
    grey = (np.arange(32 * 32).reshape(32, 32) * 60).astype(np.uint16)
    deep = _write(str(tmp_path / "in/deep.png"), grey)
    out = tmp_path / "out"
    assert cli.main(["predict", model_file, rotated, deep, "--output-dir", str(out)]) == 0
    assert Image.open(out / "rotated_labels.png").size == (32, 48)  # (width, height) upright
    overlay = np.asarray(Image.open(out / "deep_overlay.png"))[:32]  # the legend below
    np.testing.assert_array_equal(overlay[:, :32], read_image(deep))
    assert overlay[:, :32].std() > 0  # not all white
    capsys.readouterr()


# --------------------------------------------------------------------------
# Model files recognised by content
# --------------------------------------------------------------------------


def _torch_zip(path):
    torch = pytest.importorskip("torch")
    torch.save({"state_dict": {"w": torch.zeros(2)}}, path)
    return path


def _torch_legacy(path):
    torch = pytest.importorskip("torch")
    torch.save({"state_dict": {"w": torch.zeros(2)}}, path, _use_new_zipfile_serialization=False)
    return path


def test_model_files_are_sniffed_by_content(tmp_path, model_file, capsys):
    other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    other.save(str(tmp_path / "dense.keras"))
    other.save_weights(str(tmp_path / "w.weights.h5"))
    truncated = str(tmp_path / "truncated.keras")
    data = open(model_file, "rb").read()
    open(truncated, "wb").write(data[: len(data) // 2])
    renamed = str(tmp_path / "model.pth")
    open(renamed, "wb").write(data)
    cases = {
        _torch_zip(str(tmp_path / "zip.keras")): r"zip\.keras is a PyTorch checkpoint \(zip\), not a \.keras model; use `keras-ann convert`",
        _torch_legacy(str(tmp_path / "legacy.keras")): r"legacy\.keras is a PyTorch checkpoint \(legacy pickle\), not a \.keras model",
        str(tmp_path / "w.weights.h5"): r"w\.weights\.h5 is a Keras weights file \(\.weights\.h5, HDF5\), not a model",
        truncated: r"truncated\.keras is a truncated or damaged zip archive, not a \.keras model",
        renamed: r"model\.pth is a \.keras model \(zip\), not a PyTorch checkpoint; give it the \.keras extension",
        str(tmp_path / "dense.keras"): r"dense\.keras holds a Keras Sequential .*not a keras_ann ANNSegmenter",
    }
    for path, message in cases.items():
        with pytest.raises(CheckpointError, match=message):
            keras_ann.ANNSegmenter.from_preset(path)
        assert cli.main(["evaluate", path, "--dataset", "camvid", "--data-root", str(tmp_path)]) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith("keras-ann evaluate: error: ") and "\n" not in err, err
