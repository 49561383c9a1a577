"""The README's Quick start runs as written (in a fresh directory, as a
newcomer pastes it)."""

import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _block(heading):
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    section = text[text.index(heading) :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_quick_start_runs_verbatim(tmp_path):
    code = _block("## Quick start")
    env = dict(os.environ, PYTHONPATH=ROOT)
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=900)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "val_mean_iou" in result.stdout
    import keras_ann

    model = keras_ann.ANNSegmenter.from_preset(str(tmp_path / "quickstart.keras"))
    assert model.num_classes == 5
