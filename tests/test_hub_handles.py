"""Model hub handles (issue #32, item 2): `hf://owner/name` through
huggingface_hub and `kaggle://owner/model/keras/variant` through kagglehub,
against a hub on 127.0.0.1 (tests/local_hub.py), for `from_preset` and the
commands; `keras-ann push`; the offline error; and the whole way of a
fine-tuned model: train -> preset directory -> push -> `evaluate hf://...`
in a new process, with its score and no data flag."""

import contextlib
import io
import os
import subprocess
import sys

import numpy as np
import pytest

import keras_ann
from keras_ann import cli, hub
from keras_ann.models import preset_directory
from local_hub import LocalHub
from test_preset_directories import images, tiny_model
from testing_utils import binary_mask_folder, require


def _point_hf_at(monkeypatch, url):
    """`HF_ENDPOINT` for this process, where huggingface_hub is already
    imported (it reads the variable at import; a new process takes the
    variable itself)."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}")


@pytest.fixture
def local_hub(tmp_path, monkeypatch):
    require("huggingface_hub")
    require("kagglehub")
    from huggingface_hub import constants

    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf_cache"))
    monkeypatch.setenv("HF_TOKEN", "hf_local_test_token")
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path / "kaggle_cache"))
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "kaggle_config"))
    with LocalHub() as server:
        _point_hf_at(monkeypatch, server.url)
        yield server
    assert not server.unknown, server.unknown


@pytest.fixture(scope="module")
def preset(tmp_path_factory):
    model = tiny_model()
    directory = str(tmp_path_factory.mktemp("preset") / "cells")
    model.save_to_preset(directory)
    return model, directory


@pytest.mark.parametrize(
    "handle,message",
    [
        ("hf://onlyowner", "is not a valid hf handle; give hf://OWNER/NAME"),
        ("hf://a/b/c", "is not a valid hf handle"),
        ("hf://a/../b", "is not a valid hf handle"),
        ("kaggle://a/b/keras", "is not a valid kaggle handle; give kaggle://OWNER/MODEL/keras/VARIANT[/VERSION]"),
        ("kaggle://a/b/keras/v/latest", "the version of a kaggle handle is a number"),
        ("gs://bucket/model", "is not a model hub handle"),
    ],
)
def test_a_malformed_handle_is_refused_with_the_form_to_give(handle, message):
    with pytest.raises(ValueError, match="^'" + handle.replace(".", r"\.") + "'") as error:
        keras_ann.ANNSegmenter.from_preset(handle)
    assert message in str(error.value)


def test_an_hf_handle_loads_from_the_hub_then_from_the_cache_when_the_hub_is_down(local_hub, preset, monkeypatch):
    model, directory = preset
    local_hub.add_hf("me/cells", directory)
    loaded = keras_ann.ANNSegmenter.from_preset("hf://me/cells")
    np.testing.assert_array_equal(loaded.predict(images(), verbose=0), model.predict(images(), verbose=0))
    assert loaded.test_protocol == model.test_protocol
    fetched = {path for method, path in local_hub.requests if method == "GET" and path.startswith("/me/")}
    assert fetched == {"/me/cells/resolve/main/config.json", "/me/cells/resolve/main/model.weights.h5"}
    local_hub.stop()
    again = keras_ann.ANNSegmenter.from_preset("hf://me/cells")  # the cache, without the hub
    np.testing.assert_array_equal(again.predict(images(), verbose=0), model.predict(images(), verbose=0))


def test_an_hf_repository_that_is_missing_or_holds_no_preset_is_one_line_naming_it(local_hub, preset, tmp_path):
    with pytest.raises(hub.HubError, match=r"^hf://me/nothing: no such model repository on http://127\.0\.0\.1:\d+"):
        keras_ann.ANNSegmenter.from_preset("hf://me/nothing")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "README.md").write_text("# notes")
    local_hub.add_hf("me/notes", str(tmp_path / "notes"))
    with pytest.raises(hub.HubError, match=r"^hf://me/notes has no config.json: it is not a keras-ann preset directory"):
        keras_ann.ANNSegmenter.from_preset("hf://me/notes")


def test_a_kaggle_handle_loads_through_kagglehub_and_a_versioned_one_offline_from_its_cache(local_hub, preset, monkeypatch):
    # kagglesdk's only endpoint setting: KAGGLE_API_ENVIRONMENT=LOCALHOST is
    # http://localhost (port 80); the proxy setting sends it to the test hub.
    monkeypatch.setenv("KAGGLE_API_ENVIRONMENT", "LOCALHOST")
    monkeypatch.setenv("HTTP_PROXY", local_hub.url)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name)
    model, directory = preset
    local_hub.add_kaggle("me/ann/keras/cells", directory, version=3)
    loaded = keras_ann.ANNSegmenter.from_preset("kaggle://me/ann/keras/cells")
    np.testing.assert_array_equal(loaded.predict(images(), verbose=0), model.predict(images(), verbose=0))
    assert ("POST", "/api/v1/models.ModelApiService/GetModelInstance") in local_hub.requests
    with pytest.raises(hub.HubError, match=r"^kaggle://me/ann/keras/missing: no such model on Kaggle"):
        keras_ann.ANNSegmenter.from_preset("kaggle://me/ann/keras/missing")
    local_hub.stop()
    again = keras_ann.ANNSegmenter.from_preset("kaggle://me/ann/keras/cells/3")
    np.testing.assert_array_equal(again.predict(images(), verbose=0), model.predict(images(), verbose=0))
    with pytest.raises(hub.HubError) as error:
        keras_ann.ANNSegmenter.from_preset("kaggle://me/ann/keras/cells")
    assert str(error.value).startswith("kaggle://me/ann/keras/cells: cannot reach http://localhost")
    assert "add /VERSION to read the cache offline" in str(error.value)


def _run(argv):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = cli.main(argv)
    return status, out.getvalue()


def test_push_uploads_a_preset_directory_that_loads_back_and_refuses_what_is_not_one(local_hub, preset, tmp_path, capsys):
    model, directory = preset
    status, out = _run(["push", directory, "hf://me/pushed"])
    assert status == 0, out
    assert out.startswith(f"uploaded {directory} to hf://me/pushed: {local_hub.url}/me/pushed/commit/")
    assert sorted(local_hub.hf["me/pushed"]) == ["README.md", "config.json", "metadata.json", "model.weights.h5"]
    for name, content in local_hub.hf["me/pushed"].items():
        with open(os.path.join(directory, name), "rb") as f:
            assert f.read() == content, name
    posts = [path for method, path in local_hub.requests if method == "POST"]
    assert posts == [
        "/api/repos/create", "/api/validate-yaml", "/api/models/me/pushed/preupload/main", "/api/models/me/pushed/commit/main",
    ]  # fmt: skip
    assert local_hub.cards[0]["library_name"] == "keras-ann" and local_hub.cards[0]["pipeline_tag"] == "image-segmentation"
    # A second push to the existing repository is a new commit.
    assert _run(["push", directory, "hf://me/pushed"])[0] == 0
    loaded = keras_ann.ANNSegmenter.from_preset("hf://me/pushed")
    np.testing.assert_array_equal(loaded.predict(images(), verbose=0), model.predict(images(), verbose=0))

    capsys.readouterr()
    for argv, message in [
        (["push", str(tmp_path), "hf://me/x"], f"{tmp_path} is not a preset directory: it has no config.json"),
        (["push", str(tmp_path / "nowhere"), "hf://me/x"], f"{tmp_path / 'nowhere'} is not a local directory"),
        (["push", directory, "kaggle://me/ann/keras/cells"], "keras-ann push uploads to the Hugging Face Hub only"),
        (["push", directory, "hf://me"], "'hf://me' is not a valid hf handle"),
    ]:
        assert _run(argv)[0] == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("keras-ann push: error: ") and message in err, err
    assert "me/x" not in local_hub.hf


def test_a_missing_hub_package_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    with pytest.raises(hub.HubError, match=r"^hf://me/cells needs the huggingface_hub package: pip install \"keras-ann\[hub\]\""):
        keras_ann.ANNSegmenter.from_preset("hf://me/cells")


# --------------------------------------------------------------------------
# The whole way, and the way without a network
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def binary_masks(tmp_path_factory):
    """A 2-class folder dataset of 0/255 masks (`testing_utils.binary_mask_folder`)."""
    return binary_mask_folder(tmp_path_factory.mktemp("binary"))

def _summary(out):
    """The per-class rows and the `aAcc | mIoU | mAcc` values of the last table in `out`."""
    out = out[out.rindex("per class results:") :]
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in out.splitlines() if line.startswith("|")]
    header = rows.index(["aAcc", "mIoU", "mAcc"])
    return rows[1:header], dict(zip(rows[header], map(float, rows[header + 1])))


def test_a_fine_tuned_model_goes_to_the_hub_and_back_and_scores_the_same_with_no_data_flag(
    local_hub, preset, binary_masks, tmp_path
):
    _, base = preset
    work = tmp_path / "run"
    status, out = _run([
        "train", "--dataset", "folder", "--data-root", binary_masks, "--num-classes", "2", "--classes", "bg,cell",
        "--label-map", "255:1", "--from-preset", base, "--set", "crop_size=[32,32]", "--set", "total_batch=2",
        "--set", "train_scale=null", "--set", "test_scale=null", "--iterations", "2", "--eval-interval", "2",
        "--work-dir", str(work),
    ])  # fmt: skip
    assert status == 0, out
    assert f"fine-tuning from {base}" in out
    release = str(tmp_path / "release")
    status, out = _run(["evaluate", str(work / "latest.keras"), "--data-root", binary_masks, "--save-preset", release])
    assert status == 0, out
    rows, summary = _summary(out)
    assert [row[0] for row in rows] == ["bg", "cell"]
    evaluation = preset_directory.read_metadata(release)["evaluation"]
    assert (evaluation["data"], evaluation["split"], evaluation["images"]) == ("folder", "val", 2)
    assert round(evaluation["mIoU"], 2) == summary["mIoU"]
    assert _run(["push", release, "hf://me/cells-finetuned"])[0] == 0

    # A new process, pointed at the hub by HF_ENDPOINT alone: evaluate the handle.
    env = dict(os.environ, HF_ENDPOINT=local_hub.url, HF_HUB_CACHE=str(tmp_path / "fresh_cache"))
    result = subprocess.run(
        [sys.executable, "-m", "keras_ann.cli", "evaluate", "hf://me/cells-finetuned", "--data-root", binary_masks],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "on folder val" in result.stdout
    assert _summary(result.stdout) == (rows, summary)
    assert os.path.isdir(tmp_path / "fresh_cache" / "models--me--cells-finetuned")


def test_evaluate_of_a_handle_without_the_hub_or_a_cached_copy_is_one_line_saying_what_to_do(
    local_hub, binary_masks, capsys
):
    local_hub.stop()  # its port now refuses connections
    status, _ = _run(["evaluate", "hf://me/cells", "--data-root", binary_masks])
    err = capsys.readouterr().err.strip()
    assert status == 1 and len(err.splitlines()) == 1, err
    assert err.startswith(f"keras-ann evaluate: error: hf://me/cells: cannot reach {local_hub.url} (ConnectError)")
    assert "check the network connection" in err and "pass its path DIR instead of the handle" in err
