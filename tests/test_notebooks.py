"""The tutorials in notebooks/ run top to bottom, and are committed without outputs."""

import json
import os
import pathlib
import sys

import pytest
from testing_utils import require, shared_path

NOTEBOOK_DIR = pathlib.Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = ["01_quickstart.ipynb", "02_finetune_your_data.ipynb", "03_attention_maps.ipynb"]


def test_the_tutorials_are_all_here():
    assert sorted(p.name for p in NOTEBOOK_DIR.glob("*.ipynb")) == NOTEBOOKS


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_committed_without_outputs(name):
    notebook = json.loads((NOTEBOOK_DIR / name).read_text())
    code = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    assert code, f"{name} has no code cells"
    for cell in code:
        source = "".join(cell["source"])[:60]
        assert cell.get("outputs") == [], f"{name}: outputs left in the cell starting {source!r}"
        assert cell.get("execution_count") is None, f"{name}: execution count left in {source!r}"
    assert any(cell["cell_type"] == "markdown" for cell in notebook["cells"])
    assert "widgets" not in notebook.get("metadata", {})


def _kernel_for_this_python(directory):
    """A kernelspec that runs the tests' own interpreter, found first on
    JUPYTER_PATH, so that a `python3` kernel registered elsewhere on the
    machine cannot be picked up instead."""
    spec = directory / "kernels" / "keras-ann-tests"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "keras-ann tests", "language": "python"})
    )
    return "keras-ann-tests"


@pytest.mark.parametrize(
    "name, with_camvid",
    [(name, True) for name in NOTEBOOKS] + [("02_finetune_your_data.ipynb", False)],  # as in a fresh clone
)
def test_notebook_runs_top_to_bottom(name, with_camvid, tmp_path, monkeypatch):
    nbformat = require("nbformat")
    nbclient = require("nbclient")
    require("ipykernel")
    require("matplotlib")
    # The kernel inherits this environment: the CamVid copy the tests use
    # (or none: a fresh clone without shared/), no checkpoint (the notebooks
    # then save and load a fresh model), scratch files under tmp_path.
    # Figures use the kernel's inline backend.
    shared = pathlib.Path(shared_path("data", "camvid")).parent.parent if with_camvid else tmp_path / "no-shared"
    monkeypatch.setenv("KERAS_ANN_SHARED", str(shared))
    monkeypatch.delenv("KERAS_ANN_CHECKPOINT", raising=False)
    monkeypatch.delenv("MPLBACKEND", raising=False)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter") + os.pathsep + os.environ.get("JUPYTER_PATH", ""))
    kernel = _kernel_for_this_python(tmp_path / "jupyter")
    notebook = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        kernel_name=kernel,
        timeout=600,
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},  # the kernel's cwd
    )
    client.execute()  # raises CellExecutionError with the cell and traceback on failure
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(cell.execution_count is not None for cell in code)
    errors = [o for cell in code for o in cell.outputs if o.output_type == "error"]
    assert not errors
    images = [o for cell in code for o in cell.outputs if "image/png" in o.get("data", {})]
    assert images, f"{name} drew no figure"
