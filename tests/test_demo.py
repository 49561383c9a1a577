"""`keras-ann demo` end to end (a short run), and the scene generator it
trains on."""

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from keras_ann.data.synthetic import SYNTHETIC_CLASSES, make_scene, make_scenes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _demo(tmp_path, *flags, without_matplotlib=False):
    # No time budget unless `flags` set one (the last --seconds counts): a
    # loaded machine must not change what the test sees.
    out = tmp_path / "sub" / "demo.png"
    path = [ROOT]
    if without_matplotlib:  # as after `pip install keras-ann` without the plot extra
        blocker = tmp_path / "blocked" / "matplotlib"
        blocker.mkdir(parents=True)
        (blocker / "__init__.py").write_text("raise ImportError('matplotlib is not installed')\n")
        path.insert(0, str(blocker.parent))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(path + [os.environ.get("PYTHONPATH", "")]))
    result = subprocess.run(
        [sys.executable, "-m", "keras_ann.cli", "demo", "--size", "32", "--train-images", "16",
         "--val-images", "4", "--output", str(out), "--seconds", "100000", *flags],
        capture_output=True, text=True, timeout=600, env=env, cwd=str(tmp_path),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout, out


def test_demo_trains_scores_and_writes_the_figure(tmp_path):
    stdout, out = _demo(tmp_path, "--iterations", "6")
    assert "trained 6 of 6 iterations" in stdout
    for name in SYNTHETIC_CLASSES:
        assert name in stdout
    assert "mIoU" in stdout and "validation: 4 scenes" in stdout
    # Four rows of image / ground truth / prediction with a legend.
    with Image.open(out) as figure:
        width, height = figure.size
        assert figure.mode in ("RGB", "RGBA")
    assert height > width > 300


def test_demo_draws_its_figure_without_matplotlib(tmp_path):
    stdout, out = _demo(tmp_path, "--iterations", "2", without_matplotlib=True)
    assert "trained 2 of 2 iterations" in stdout
    with Image.open(out) as figure:
        assert figure.size[1] > figure.size[0] > 300


def test_demo_stops_at_its_time_budget(tmp_path):
    # --seconds must be positive; a budget shorter than any step stops after the first.
    stdout, out = _demo(tmp_path, "--iterations", "50", "--seconds", "0.001")
    assert "trained 1 of 50 iterations" in stdout
    assert "iteration 1/50 - loss" in stdout and "25/25" not in stdout  # no epoch line claiming 25 steps
    assert out.exists()


def test_scenes_are_reproducible_and_labelled_by_shape():
    images, labels = make_scenes(3, 48, 64, seed=5)
    again, again_labels = make_scenes(3, 48, 64, seed=5)
    np.testing.assert_array_equal(images, again)
    np.testing.assert_array_equal(labels, again_labels)
    assert not np.array_equal(images, make_scenes(3, 48, 64, seed=6)[0])
    assert images.shape == (3, 48, 64, 3) and labels.shape == (3, 48, 64)
    assert images.min() >= 0 and images.max() <= 255
    assert set(np.unique(labels)) <= set(range(len(SYNTHETIC_CLASSES)))


def test_every_object_stands_out_and_colour_does_not_give_the_class():
    rng = np.random.default_rng(0)
    means = {k: [] for k in range(1, len(SYNTHETIC_CLASSES))}
    for _ in range(200):
        image, label = make_scene(rng, 64, 64)
        background = image[label == 0].mean(0)
        for kind in np.unique(label)[1:]:
            colour = image[label == kind].mean(0)
            means[int(kind)].append(colour)
            if kind != 4:  # a striped patch averages its two colours
                assert np.max(np.abs(colour - background)) > 40
    # The same colour distribution for every class: the class means of the
    # objects' colours agree to within a few grey levels of each other.
    centres = np.array([np.mean(means[k], 0) for k in means])
    spread = np.array([np.std(means[k], 0) for k in means])
    assert np.all(np.abs(centres - centres.mean(0)) < 0.25 * spread.mean(0)), centres


@pytest.mark.parametrize("size", [(8, 8), (16, 40), (96, 96)])
def test_scenes_of_any_size_have_at_least_one_object(size):
    rng = np.random.default_rng(1)
    for _ in range(20):
        _, label = make_scene(rng, *size)
        assert label.max() > 0
