"""`keras-ann benchmark`: runs end to end, prints a parseable table, accepts
every preset, rejects bad arguments clearly. No timing is asserted."""

import json

import numpy as np
import pytest

from keras_ann import benchmark, cli
from keras_ann.presets import PRESETS

TINY = ["resnet18_d8", "--num-classes", "5", "--input-size", "64", "48", "--runs", "1", "--warmup", "1"]


def _row(capsys):
    out = capsys.readouterr().out
    rows = benchmark.parse_results(out)
    assert len(rows) == 1
    return rows[0], out


def test_cli_with_training_end_to_end(capsys, tmp_path):
    path = tmp_path / "result.json"
    cli.main(["benchmark", *TINY, "--train-size", "32", "40", "--json", str(path)])
    row, out = _row(capsys)
    assert row["model"] == "resnet18_d8"
    assert row["input"] == "64x48" and row["batch"] == "1"
    assert row["train crop"] == "32x40" and row["train batch"] == "2"
    for column in ("Mem (GB)", "Inf time (fps)", "s/image (median)", "train step (s)",
                   "peak RSS inf (GB)", "peak RSS train (GB)"):
        assert float(row[column]) > 0, column
    # The training phase is what "Mem (GB)" reports on a CPU.
    assert row["Mem (GB)"] == row["peak RSS train (GB)"]
    result = json.loads(path.read_text())
    assert len(result["inference_times_s"]) == 1 and len(result["train_times_s"]) == 1
    assert result["fps"] == pytest.approx(1 / result["inference_median_s"])
    assert result["params"] > 1_000_000
    assert "Mem (GB)" in out and "Inf time (fps)" in out


def test_cli_times_training_with_remat(capsys, tmp_path):
    path = tmp_path / "result.json"
    cli.main(["benchmark", *TINY, "--train-size", "32", "40", "--remat", "--dry-run"])
    assert capsys.readouterr().out.strip().endswith("training 2x32x40 with remat")
    cli.main(["benchmark", *TINY, "--train-size", "32", "40", "--remat", "--json", str(path)])
    row, _ = _row(capsys)
    assert float(row["train step (s)"]) > 0
    assert json.loads(path.read_text())["remat"] is True
    cli.main(["benchmark", *TINY, "--train-size", "32", "40", "--remat=stage1,stem", "--dry-run"])
    assert capsys.readouterr().out.strip().endswith("training 2x32x40 with remat of stem,stage1")


def test_cli_without_training(capsys):
    cli.main(["benchmark", *TINY, "--no-train", "--batch-size", "2", "--precision", "mixed_bfloat16"])
    row, _ = _row(capsys)
    assert row["precision"] == "mixed_bfloat16" and row["batch"] == "2"
    assert row["train step (s)"] == "-" and row["peak RSS train (GB)"] == "-"
    assert float(row["Inf time (fps)"]) > 0
    assert row["Mem (GB)"] == row["peak RSS inf (GB)"]


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_is_accepted(name, capsys):
    cli.main(["benchmark", name, "--dry-run"])
    out = capsys.readouterr().out
    preset = PRESETS[name]
    h, w = preset.test_crop or preset.crop_size
    assert f"inference 1x{h}x{w} float32" in out
    per_gpu = 2 if preset.dataset == "cityscapes" else 4
    assert f"training {per_gpu}x{preset.crop_size[0]}x{preset.crop_size[1]}" in out
    spec = benchmark.resolve_spec(name)
    assert spec.model_config == preset.model_config()
    assert spec.recipe.name == name


def test_backbone_name_needs_classes_and_size():
    spec = benchmark.resolve_spec("resnet50_d16", num_classes=7, input_size=(96, 64), train=False)
    assert spec.model_config == {"backbone": "resnet50_d16", "num_classes": 7, "align_corners": False}
    assert spec.train_size == (96, 64) and spec.train_batch_size == 2
    with pytest.raises(ValueError, match="num_classes"):
        benchmark.resolve_spec("resnet50_d8", input_size=(64, 64))
    with pytest.raises(ValueError, match="input_size"):
        benchmark.resolve_spec("resnet50_d8", num_classes=19)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(model="ann_r50_d8_nowhere"), "Unknown model 'ann_r50_d8_nowhere'"),
        (dict(model="resnet18_d8", num_classes=0, input_size=(8, 8)), "num_classes"),
        (dict(model="resnet18_d8", num_classes=3, input_size=(8, -1)), "input_size"),
        (dict(model="resnet18_d8", num_classes=3, input_size=(8, 8, 8)), "input_size"),
        (dict(model=next(iter(PRESETS)), runs=0), "runs"),
        (dict(model=next(iter(PRESETS)), warmup=-1), "warmup"),
        (dict(model=next(iter(PRESETS)), batch_size=0), "batch_size"),
        (dict(model=next(iter(PRESETS)), train_batch_size=0), "train_batch_size"),
        (dict(model=next(iter(PRESETS)), precision="float16"), "precision"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        benchmark.resolve_spec(**kwargs)


def test_cli_reports_bad_arguments(capsys):
    with pytest.raises(SystemExit, match="num_classes"):
        cli.main(["benchmark", "resnet18_d8", "--input-size", "8", "8"])
    with pytest.raises(SystemExit, match="Unknown model"):
        cli.main(["benchmark", "resnet19_d8", "--dry-run"])
    with pytest.raises(SystemExit):  # argparse: invalid choice
        cli.main(["benchmark", next(iter(PRESETS)), "--precision", "int8"])
    assert "invalid choice" in capsys.readouterr().err


def test_peak_host_memory_sees_an_allocation():
    with benchmark._PeakHostMemory() as before:
        pass
    with benchmark._PeakHostMemory() as during:
        block = np.ones(64 * 2**20 // 8)  # 64 MiB, touched
        block.sum()
        del block
    assert during.peak_bytes >= 60 * 2**20
    if during.per_phase:  # Linux: the peak is reset per phase
        assert during.peak_bytes - before.peak_bytes >= 60 * 2**20


def test_parse_results_rejects_text_without_a_table():
    with pytest.raises(ValueError, match="No benchmark table"):
        benchmark.parse_results("nothing here")
