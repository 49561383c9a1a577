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


def scene_folder(path, count=6, size=48):
    """Generated scenes (`keras_ann.data.synthetic.make_scenes`) in the
    CamVid layout: `<split>/NNN.png` and `<split>annot/NNN.png`, the same
    scenes in train and val. `size`: a side, or `(height, width)`."""
    import numpy as np
    from PIL import Image

    from keras_ann.data.synthetic import make_scenes

    height, width = (size, size) if isinstance(size, int) else size
    images, labels = make_scenes(count, height, width, seed=3)
    for split in ("train", "val"):
        os.makedirs(os.path.join(path, split))
        os.makedirs(os.path.join(path, split + "annot"))
        for i, (image, label) in enumerate(zip(images, labels)):
            Image.fromarray(image.astype(np.uint8)).save(os.path.join(path, split, f"{i:03d}.png"))
            Image.fromarray(label).save(os.path.join(path, split + "annot", f"{i:03d}.png"))
    return str(path)


def binary_mask_folder(root):
    """A 2-class folder dataset whose masks hold 0 and 255 (as many
    segmentation tools write them): a bright square on a dark field."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        (root / "img_dir" / split).mkdir(parents=True)
        (root / "ann_dir" / split).mkdir(parents=True)
        for i in range(2):
            mask = np.zeros((48, 48), np.uint8)
            y, x = rng.integers(4, 24, 2)
            mask[y : y + 20, x : x + 20] = 255
            image = np.where(mask[..., None] > 0, 200, 40) + rng.integers(0, 20, (48, 48, 3))
            Image.fromarray(image.astype(np.uint8)).save(root / "img_dir" / split / f"{i}.png")
            Image.fromarray(mask).save(root / "ann_dir" / split / f"{i}.png")
    return str(root)


def pointwise_model(num_classes=4, seed=0):
    """A tiny fully convolutional model (one 1x1 convolution, random
    weights from `seed`) for inference paths: any image size, cheap."""
    import keras
    import numpy as np

    inputs = keras.Input((None, None, 3))
    conv = keras.layers.Conv2D(num_classes, 1)
    model = keras.Model(inputs, conv(inputs))
    rng = np.random.default_rng(seed)
    conv.set_weights([rng.normal(0, 0.02, (1, 1, 3, num_classes)), rng.normal(0, 1, num_classes)])
    return model
