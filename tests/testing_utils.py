"""Helpers shared by the tests: optional modules and ../shared data."""

import os

import pytest

# ../shared beside the checkout (CI clones main with shared/ beside it).
SHARED_DIR = os.environ.get(
    "KERAS_ANN_SHARED", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared")
)


def shared_path(*parts):
    """A path under ../shared; skips the test when absent (fails under CI)."""
    path = os.path.join(SHARED_DIR, *parts)
    if not os.path.exists(path):
        if os.environ.get("CI"):
            pytest.fail(f"{path} is required in CI but missing")
        pytest.skip(f"{path} is not available")
    return path


def require(module):
    """Import `module`, or skip the test; under CI a missing module fails
    instead, so that CI never passes by skipping."""
    import importlib
    import importlib.util

    if importlib.util.find_spec(module) is None:
        if os.environ.get("CI"):
            pytest.fail(f"{module} is required in CI but not installed")
        pytest.skip(f"{module} is not installed")
    return importlib.import_module(module)


def camvid_subset(tmp_path, count):
    """A CamVid-layout folder with the first `count` training pairs, used
    as both train and val split (an overfitting check)."""
    camvid = shared_path("data", "camvid")
    root = tmp_path / "camvid"
    names = sorted(os.listdir(os.path.join(camvid, "train")))[:count]
    for split in ("train", "val"):
        (root / split).mkdir(parents=True)
        (root / f"{split}annot").mkdir(parents=True)
        for name in names:
            stem = os.path.splitext(name)[0]
            os.symlink(os.path.join(camvid, "train", name), root / split / name)
            os.symlink(os.path.join(camvid, "trainannot", stem + ".png"), root / f"{split}annot" / (stem + ".png"))
    return str(root)


def read_events(log_dir):
    """`{tag: [(step, value), ...]}` of the event files in `log_dir`: a
    float for scalars, a Pillow image for images."""
    import glob
    import io

    import tensorflow as tf
    from PIL import Image

    events = {}
    for path in sorted(glob.glob(f"{log_dir}/events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                tensor = tf.make_ndarray(value.tensor)
                if value.metadata.plugin_data.plugin_name == "images":
                    decoded = Image.open(io.BytesIO(tensor[2]))  # [width, height, png]
                else:
                    decoded = float(tensor)
                events.setdefault(value.tag, []).append((event.step, decoded))
    return events
