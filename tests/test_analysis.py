"""`keras-ann analyze curves|confusion|browse|flops` (in-process through
`cli.main`, on tiny data) and `keras-ann predict --format cityscapes`."""

import contextlib
import csv
import io
import json
import os
import sys

import numpy as np
import pytest
from PIL import Image

from keras_ann import cli
from keras_ann.analysis import count_macs, read_log

NAMES = ("sky", "ground", "objects")
CITYSCAPES_LABEL_IDS = {7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33}


def _run(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = cli.main(argv)
    return status, out.getvalue(), err.getvalue()


def _tiny_model(num_classes, test_protocol=None):
    from keras_ann import ANNSegmenter, ResNetBackbone

    backbone = ResNetBackbone(depth=18, stem_channels=8, base_channels=8)
    return ANNSegmenter(backbone, num_classes=num_classes, head_channels=16, project_channels=8,
                        auxiliary_channels=8, test_protocol=test_protocol)  # fmt: skip


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A 3-class folder dataset: train 3, val 2 images of 40x48, label 3 void."""
    root = tmp_path_factory.mktemp("folder")
    rng = np.random.default_rng(0)
    for split, n in (("train", 3), ("val", 2)):
        os.makedirs(root / "img_dir" / split)
        os.makedirs(root / "ann_dir" / split)
        for i in range(n):
            label = np.zeros((40, 48), np.uint8)
            label[20:] = 1
            label[5:15, 10:30] = 2
            label[:2] = 3  # void, mapped to 255 by --label-map 3:255
            image = (rng.random((40, 48, 3)) * 60 + label[..., None] * 60).astype(np.uint8)
            Image.fromarray(image).save(root / "img_dir" / split / f"s{i}.png")
            Image.fromarray(label).save(root / "ann_dir" / split / f"s{i}.png")
    return root


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    from keras_ann.test_protocol import TestProtocol

    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    _tiny_model(3, TestProtocol(data="folder", class_names=NAMES, label_map=((3, 255),))).save(path)
    return str(path)


# --- curves -----------------------------------------------------------------


def _write_log(directory, records):
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "log.jsonl"), "w") as f:
        for record in records:
            f.write(json.dumps(record) + "\n")


def test_curves_draws_several_runs_and_reads_resumed_logs(tmp_path):
    a, b = tmp_path / "a" / "run", tmp_path / "b" / "run"  # same folder name: longer labels
    _write_log(a, [{"epoch": e, "iteration": 10 * e, "lr": 0.01 / e, "loss": 2.0 / e,
                    "val_mIoU": 10.0 * e if e % 2 == 0 else None} for e in range(1, 7)])  # fmt: skip
    # A resumed run repeats iteration 20: the later line counts.
    _write_log(b, [{"iteration": 10, "loss": 3.0, "lr": 0.02}, {"iteration": 20, "loss": 9.0, "lr": 0.02},
                   {"iteration": 20, "loss": 2.5, "lr": 0.01, "val_mIoU": 5.0}])  # fmt: skip
    assert [(r["iteration"], r["loss"]) for r in read_log(str(b))] == [(10, 3.0), (20, 2.5)]
    output = tmp_path / "curves.png"
    status, out, err = _run(["analyze", "curves", str(a), str(b), "--output", str(output)])
    assert status == 0, err
    assert "a/run: iteration 60, loss 0.3333, best val mIoU 60.00 (iteration 60)" in out
    assert "b/run: iteration 20, loss 2.5000, best val mIoU 5.00 (iteration 20)" in out
    with Image.open(output) as picture:
        width, height = picture.size
        pixels = np.asarray(picture.convert("RGB"))
    assert width > 2.5 * height and width >= 1000  # three panels side by side
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20  # drawn, not blank


def test_curves_refuses_a_folder_without_log_in_one_line(tmp_path):
    status, _, err = _run(["analyze", "curves", str(tmp_path), "--output", str(tmp_path / "c.png")])
    assert status == 1
    assert err.strip().splitlines() == [
        f"keras-ann analyze: error: {tmp_path} has no log.jsonl: give the --work-dir of a keras-ann train run "
        "(it writes log.jsonl at every checkpoint interval)"
    ]
    _write_log(tmp_path, [])
    with open(tmp_path / "log.jsonl", "a") as f:
        f.write('{"iteration": 1}\nnot json\n')
    status, _, err = _run(["analyze", "curves", str(tmp_path), "--output", str(tmp_path / "c.png")])
    assert status == 1 and "log.jsonl line 2 is not JSON" in err


def test_curves_without_matplotlib_says_what_to_install(tmp_path, monkeypatch):
    _write_log(tmp_path, [{"iteration": 1, "loss": 1.0}])
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib fails
    monkeypatch.delitem(sys.modules, "matplotlib.pyplot", raising=False)
    status, _, err = _run(["analyze", "curves", str(tmp_path), "--output", str(tmp_path / "c.png")])
    assert status == 1
    assert err.strip().splitlines() == [
        'keras-ann analyze: error: keras-ann analyze curves draws with matplotlib, which is not installed: '
        'pip install "keras-ann[plot]"'
    ]
    assert not (tmp_path / "c.png").exists()


# --- confusion --------------------------------------------------------------


def test_confusion_writes_a_row_normalised_csv_and_a_picture(folder, model_file, tmp_path):
    output = tmp_path / "out" / "confusion.png"
    status, out, err = _run(["analyze", "confusion", model_file, "--data-root", str(folder), "--output", str(output)])
    assert status == 0, err
    assert "on folder val, 2 images" in out and "wrote" in out
    with open(tmp_path / "out" / "confusion.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["ground truth \\ prediction", *NAMES, "pixels"]
    assert [row[0] for row in rows[1:]] == list(NAMES)
    fractions = np.array([[float(v) for v in row[1:4]] for row in rows[1:]])
    np.testing.assert_allclose(fractions.sum(axis=1), 1.0, atol=1e-5)
    # Pixels per ground-truth class over the 2 images (void rows left out).
    assert [int(row[4]) for row in rows[1:]] == [2 * (18 * 48 - 200), 2 * 20 * 48, 2 * 200]
    with Image.open(output) as picture:
        assert min(picture.size) >= 400


# --- browse -----------------------------------------------------------------


def test_browse_shows_the_labels_as_training_decodes_them(folder, tmp_path):
    output = tmp_path / "browse.png"
    argv = ["analyze", "browse", "--dataset", "folder", "--data-root", str(folder), "--num-classes", "3",
            "--classes", ",".join(NAMES), "--label-map", "3:255", "--palette", "255,0,0", "0,255,0", "0,0,255",
            "--count", "3", "--height", "80", "--columns", "3", "--output", str(output)]  # fmt: skip
    status, out, err = _run(argv)
    assert status == 0, err
    assert "the first 3 of 3" in out
    with Image.open(output) as picture:
        sheet = np.asarray(picture.convert("RGB"))
    # 3 pairs in one row: 6 panels of 96x80 (40x48 images at height 80).
    assert sheet.shape[1] >= 6 * 96 and sheet.shape[0] >= 80
    colours = {tuple(c) for c in sheet.reshape(-1, 3)}
    assert {(255, 0, 0), (0, 255, 0), (0, 0, 255), (0, 0, 0)} <= colours  # classes and void in black
    # Without the label map the void value 3 is refused, as training refuses it.
    status, _, err = _run(argv[: argv.index("--label-map")] + argv[argv.index("--label-map") + 2 :])
    assert status == 1 and "--label-map 3:255" in err


# --- flops ------------------------------------------------------------------


def _conv(h, w, c_in, k, c_out):
    return h * w * c_in * k * k * c_out


def test_a_single_conv_bn_relu_is_counted_by_hand():
    import keras

    from keras_ann.layers.conv_bn import ConvBNReLU

    model = keras.Sequential([keras.Input((16, 16, 4)), ConvBNReLU(8, 3)])
    counts = count_macs(model, (16, 16))
    assert counts == {"backbone": {"macs": _conv(16, 16, 4, 3, 8), "params": 4 * 9 * 8 + 2 * 8}}


def test_the_parts_of_a_tiny_ann_match_a_hand_count(tmp_path):
    model = _tiny_model(3)
    counts = count_macs(model, (32, 32))
    # ResNet-18-V1c-D8, stem 8, base 8, on 32x32: stem at 16x16, stages at 8x8, 4x4, 4x4, 4x4.
    stem = _conv(16, 16, 3, 3, 4) + _conv(16, 16, 4, 3, 4) + _conv(16, 16, 4, 3, 8)
    stage1 = 4 * _conv(8, 8, 8, 3, 8)
    stage2 = _conv(4, 4, 8, 3, 16) + 3 * _conv(4, 4, 16, 3, 16) + _conv(4, 4, 8, 1, 16)
    stage3 = _conv(4, 4, 16, 3, 32) + 3 * _conv(4, 4, 32, 3, 32) + _conv(4, 4, 16, 1, 32)
    stage4 = _conv(4, 4, 32, 3, 64) + 3 * _conv(4, 4, 64, 3, 64) + _conv(4, 4, 32, 1, 64)
    n, s = 4 * 4, 1 + 9 + 36 + 64  # queries, pooled keys
    # AFNB: queries of stage 4 (64), keys and values of stage 3 (32), 8 key channels, out 64.
    afnb = (_conv(4, 4, 32, 1, 8) + _conv(4, 4, 64, 1, 8) + s * 32 * 8 + n * s * 8 * 2
            + _conv(4, 4, 8, 1, 64) + _conv(4, 4, 64 + 64, 1, 64))  # fmt: skip
    # APNB on the 16-channel bottleneck output, key and query projection shared.
    apnb = _conv(4, 4, 16, 1, 8) + s * 16 * 8 + n * s * 8 * 2 + _conv(4, 4, 8, 1, 16) + _conv(4, 4, 32, 1, 16)
    rest = _conv(4, 4, 64, 3, 16) + _conv(4, 4, 16, 1, 3)
    auxiliary = _conv(4, 4, 32, 3, 8) + _conv(4, 4, 8, 1, 3)
    assert {part: value["macs"] for part, value in counts.items()} == {
        "backbone": stem + stage1 + stage2 + stage3 + stage4, "AFNB": afnb, "APNB": apnb,
        "decode head (rest)": rest, "auxiliary head": auxiliary,
    }  # fmt: skip
    assert sum(v["params"] for v in counts.values()) == sum(int(np.prod(w.shape)) for w in model.trainable_weights)

    # The command prints the same numbers (MMACs for a model this small).
    path = tmp_path / "tiny.keras"
    model.save(path)
    status, out, err = _run(["analyze", "flops", str(path), "--input-size", "32", "32"])
    assert status == 0, err
    inference = (stem + stage1 + stage2 + stage3 + stage4 + afnb + apnb + rest) / 1e6
    assert f"{'AFNB':27} {afnb / 1e6:6.3f}" in out
    assert f"{'inference total':27} {inference:6.3f}  100.0%" in out
    assert f"{'auxiliary head (training)':27} {auxiliary / 1e6:6.3f}       -" in out


def test_flops_names_what_it_takes_for_an_unknown_model():
    with pytest.raises(SystemExit) as info:
        cli.main(["analyze", "flops", "resnet51_d8", "--input-size", "32", "32"])
    assert str(info.value.code).startswith(
        "keras-ann analyze flops: error: resnet51_d8 is no preset (`keras-ann presets`), backbone name (resnet18_d8"
    )


# --- predict --format cityscapes ---------------------------------------------


@pytest.fixture(scope="module")
def cityscapes_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("cs") / "cs19.keras"
    _tiny_model(19).save(path)
    return str(path)


def test_predict_writes_cityscapes_label_ids_named_like_the_images(cityscapes_model, tmp_path):
    import keras_ann
    from keras_ann.data.metainfo import CITYSCAPES_LABEL_ID_TO_TRAIN_ID
    from keras_ann.inference import segment

    names = {"berlin": "berlin_000000_000019_leftImg8bit.png", "bonn": "bonn_000004_000019_leftImg8bit.png"}
    rng = np.random.default_rng(1)
    for city, name in names.items():
        os.makedirs(tmp_path / "leftImg8bit" / "test" / city)
        Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(
            tmp_path / "leftImg8bit" / "test" / city / name
        )
    out = tmp_path / "results"
    status, stdout, err = _run(["predict", cityscapes_model, str(tmp_path / "leftImg8bit" / "test"),
                                "--format", "cityscapes", "--output-dir", str(out)])  # fmt: skip
    assert status == 0, err
    assert sorted(os.listdir(out)) == sorted(names.values())  # nothing else: no overlays, no sub-folders
    model = keras_ann.ANNSegmenter.from_preset(cityscapes_model)
    to_label_id = {train: label for label, train in CITYSCAPES_LABEL_ID_TO_TRAIN_ID.items()}
    for city, name in names.items():
        with Image.open(out / name) as result:
            assert result.mode == "L" and result.size == (64, 48)
            values = np.asarray(result)
        assert set(np.unique(values).tolist()) <= CITYSCAPES_LABEL_IDS
        image = np.asarray(Image.open(tmp_path / "leftImg8bit" / "test" / city / name))
        train_ids = segment(model, image[None])[0]
        np.testing.assert_array_equal(values, np.vectorize(to_label_id.get)(train_ids))


def test_predict_cityscapes_refuses_other_names_and_class_counts(cityscapes_model, model_file, tmp_path):
    image = tmp_path / "photo.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    with pytest.raises(SystemExit) as info:
        cli.main(["predict", cityscapes_model, str(image), "--format", "cityscapes", "--output-dir", str(tmp_path / "o")])
    assert str(info.value.code).startswith(f"keras-ann predict --format cityscapes: error: {image} is not named")
    good = tmp_path / "aachen_000000_000019_leftImg8bit.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(good)
    with pytest.raises(SystemExit) as info:
        cli.main(["predict", model_file, str(good), "--format", "cityscapes", "--output-dir", str(tmp_path / "o")])
    assert "predicts 3 classes, not the 19 Cityscapes train ids" in str(info.value.code)
    with pytest.raises(SystemExit) as info:
        cli.main(["predict", cityscapes_model, str(good), "--format", "cityscapes", "--output-dir", str(tmp_path)])
    assert "would replace it" in str(info.value.code)
    assert not (tmp_path / "o").exists()


def test_r50_d8_counts_match_mmsegmentation_up_to_two_known_differences():
    """mmengine's FlopAnalyzer (mmseg's get_flops) on the reference ANN
    R-50-D8, convolutions and matrix products only, at 64x64 (8x8 features):
    the backbone, the rest of the decode head and the auxiliary head are
    equal; AFNB and APNB differ by exactly (1) our value projection, run on
    the S = 110 pooled keys where the reference projects all N = 64
    positions and pools after (the same values: a 1x1 convolution commutes
    with average pooling), and (2) APNB's shared key/query projection,
    which the reference runs twice on the same features."""
    torch = pytest.importorskip("torch")
    analysis = pytest.importorskip("mmengine.analysis")
    sys.path.insert(0, os.path.dirname(__file__))
    from reference.mmseg_ann import build_reference_ann

    from keras_ann import ANNSegmenter

    reference = build_reference_ann(depth=50, randomize=False)
    x = torch.zeros(1, 3, 64, 64)

    def count(module, inputs):
        analyzer = analysis.FlopAnalyzer(module, inputs)
        analyzer._op_handles = {k: v for k, v in analyzer._op_handles.items()
                                if any(op in k for op in ("conv", "matmul", "bmm", "einsum", "linear", "addmm"))}  # fmt: skip
        analyzer.unsupported_ops_warnings(False)
        analyzer.uncalled_modules_warnings(False)
        return analyzer

    with torch.no_grad():
        features = list(reference.backbone(x))
        head = count(reference.decode_head, (features,)).by_module()
        theirs = {
            "backbone": count(reference.backbone, (x,)).total(),
            "AFNB": head["fusion"],
            "APNB": head["context"],
            "decode head (rest)": head[""] - head["fusion"] - head["context"],
            "auxiliary head": count(reference.auxiliary_head, (features,)).total(),
        }
    ours = {part: value["macs"] for part, value in count_macs(ANNSegmenter("resnet50_d8", 19), (64, 64)).items()}
    n, s = 8 * 8, 110
    assert ours["AFNB"] - theirs["AFNB"] == (s - n) * 1024 * 256  # value projection of the 1024-channel keys
    assert theirs["APNB"] - ours["APNB"] == n * 512 * 256 - (s - n) * 512 * 256  # twice key/query, value projection
    for part in ("backbone", "decode head (rest)", "auxiliary head"):
        assert ours[part] == theirs[part], part
