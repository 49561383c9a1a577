"""tf.data pipelines (shapes, reproducibility), bad inputs, and the TFDS adapters."""

import os
import shutil
import warnings

import numpy as np
import pytest
import tensorflow as tf

from data_fixtures import H, W, blocky_label, random_image, save
from keras_ann.data import (
    Cityscapes,
    DatasetError,
    DatasetWarning,
    FolderDataset,
    SegmentationDataset,
    tfds_example_to_pair,
)
from keras_ann.data.tfds import TFDS_SPECS, TFDSSegmentation


def _small_folder(root, n=4, seed=0, values=(0, 1, 2)):
    rng = np.random.default_rng(seed)
    for k in range(n):
        save(random_image(rng), f"{root}/img/s{k}.png")
        save(blocky_label(rng, list(values)), f"{root}/lab/s{k}.png")
    return f"{root}/img", f"{root}/lab"


def _take(ds, n):
    return [(x.numpy(), y.numpy()) for x, y in ds.take(n)]


# ------------------------------------------------------------------ pipelines


def test_train_pipeline_shapes_and_reproducibility(cityscapes_root):
    ds = Cityscapes(cityscapes_root, "train", crop_size=(32, 64), train_scale=(256, 128))
    first = _take(ds.train_dataset(batch_size=3, seed=7), 3)  # 9 samples > 4 files: repeats
    again = _take(ds.train_dataset(batch_size=3, seed=7), 3)
    other = _take(ds.train_dataset(batch_size=3, seed=8), 3)
    for (x, y), (x2, y2) in zip(first, again):
        assert x.shape == (3, 32, 64, 3) and x.dtype == np.float32
        assert y.shape == (3, 32, 64) and y.dtype == np.int32
        np.testing.assert_array_equal(x, x2)
        np.testing.assert_array_equal(y, y2)
    assert any(not np.array_equal(a[0], b[0]) for a, b in zip(first, other))
    assert all(set(np.unique(y)) <= set(range(19)) | {255} for _, y in first)


def test_eval_pipeline_full_resolution_labels(cityscapes_root):
    ds = Cityscapes(cityscapes_root, "val")
    batches = _take(ds.eval_dataset(), 5)
    assert len(batches) == 2  # one pass, in order
    x, y = batches[0]
    assert x.shape == (1, 1024, 2048, 3) and y.shape == (1, H, W)
    _, label = ds.load(0)
    np.testing.assert_array_equal(y[0], label)


def test_raw_dataset_shuffles_files_per_epoch(folder_root):
    ds = FolderDataset(
        os.path.join(folder_root, "images"),
        os.path.join(folder_root, "labels"),
        11,
        label_map={11: 255},
    )
    order = [ds._index_stream(3, True, True).take(8)]
    idx = list(order[0].as_numpy_iterator())
    assert sorted(idx[:4]) == [0, 1, 2, 3] and sorted(idx[4:]) == [0, 1, 2, 3]
    assert idx == list(ds._index_stream(3, True, True).take(8).as_numpy_iterator())


# ------------------------------------------------------------------ bad inputs


def test_unreadable_image_named_at_build(tmp_path):
    img_dir, lab_dir = _small_folder(tmp_path)
    with open(f"{img_dir}/s1.png", "wb") as f:
        f.write(b"not an image at all")
    with pytest.raises(DatasetError, match=r"s1\.png"):
        FolderDataset(img_dir, lab_dir, 3)
    with pytest.warns(DatasetWarning, match=r"s1\.png"):
        ds = FolderDataset(img_dir, lab_dir, 3, skip_bad=True)
    assert len(ds) == 3


def test_size_mismatch_names_both_files(tmp_path):
    img_dir, lab_dir = _small_folder(tmp_path)
    save(np.zeros((H, W + 2), np.uint8), f"{lab_dir}/s2.png")
    with pytest.raises(DatasetError, match=r"s2\.png.*128x64.*s2\.png.*130x64"):
        FolderDataset(img_dir, lab_dir, 3)


def test_bad_label_values_named(tmp_path):
    img_dir, lab_dir = _small_folder(tmp_path)
    bad = np.zeros((H, W), np.uint8)
    bad[0, :3] = [7, 9, 255]
    save(bad, f"{lab_dir}/s3.png")
    with pytest.raises(DatasetError, match=r"s3\.png.*7 \(1 pixels\), 9 \(1 pixels\)"):
        FolderDataset(img_dir, lab_dir, 3, verify="full")
    # Header checks cannot see values: the pipeline reports them with the file.
    ds = FolderDataset(img_dir, lab_dir, 3, crop_size=(32, 32))
    with pytest.raises(tf.errors.OpError, match=r"s3\.png.*7 \(1 pixels\), 9 \(1 pixels\)"):
        for _ in ds.eval_dataset():
            pass


def test_corrupt_data_inside_tf_data(tmp_path):
    img_dir, lab_dir = _small_folder(tmp_path)
    path = f"{img_dir}/s0.png"
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])  # truncated: header fine, pixels missing
    ds = FolderDataset(img_dir, lab_dir, 3, crop_size=(32, 32))  # header check passes
    with pytest.raises(tf.errors.OpError, match=r"Cannot read image .*s0\.png"):
        for _ in ds.raw_dataset():
            pass
    skipping = FolderDataset(img_dir, lab_dir, 3, crop_size=(32, 32), skip_bad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DatasetWarning)
        samples = _take(skipping.raw_dataset(), 10)
    assert len(samples) == 3
    with pytest.warns(DatasetWarning, match=r"s0\.png"):
        skipping._py_load(path.encode(), f"{lab_dir}/s0.png".encode())
    with pytest.raises(DatasetError, match=r"s0\.png"):
        FolderDataset(img_dir, lab_dir, 3, verify="full")


def test_multichannel_label_rejected(tmp_path):
    img_dir, lab_dir = _small_folder(tmp_path)
    save(np.zeros((H, W, 3), np.uint8), f"{lab_dir}/s1.png")
    with pytest.raises(DatasetError, match=r"s1\.png.*single-channel"):
        FolderDataset(img_dir, lab_dir, 3)


def test_empty_dataset_and_missing_files(tmp_path):
    with pytest.raises(DatasetError, match="no samples"):
        SegmentationDataset([], 3)
    with pytest.raises(DatasetError, match=r"not found.*gone\.png"):
        SegmentationDataset([(str(tmp_path / "gone.png"), str(tmp_path / "gone_l.png"))], 3)


# ------------------------------------------------------------------ TFDS adapters


def _tfds_cityscapes_examples():
    rng = np.random.default_rng(0)
    ids = np.array([[7, 26, 0], [33, 24, 4]], np.uint8).repeat(4, 0).repeat(8, 1)
    examples = {
        "image_id": ["aachen_000000_000019", "aachen_000001_000019"],
        "image_left": np.stack([random_image(rng, 8, 24)] * 2),
        "segmentation_label": np.stack([ids[..., None], ids[::-1, :, None]]),
    }
    return tf.data.Dataset.from_tensor_slices(examples), ids


def test_tfds_cityscapes_mapping():
    examples, ids = _tfds_cityscapes_examples()
    ds = TFDSSegmentation(examples, TFDS_SPECS["cityscapes"])
    pairs = list(ds.raw_dataset().as_numpy_iterator())
    image, label = pairs[0]
    assert image.shape == (8, 24, 3) and image.dtype == np.uint8
    expected = np.array([[0, 13, 255], [18, 11, 255]]).repeat(4, 0).repeat(8, 1)
    np.testing.assert_array_equal(label, expected)
    assert ds.num_classes == 19 and ds.files == []
    x, y = next(iter(ds.train_dataset(batch_size=2, crop_size=(8, 16), scale=(48, 16))))
    assert x.shape == (2, 8, 16, 3) and y.shape == (2, 8, 16)


def test_tfds_scene_parse_mapping_and_bad_values():
    ann = np.zeros((4, 6, 3), np.uint8)
    ann[..., 0] = [[0, 1, 2, 50, 100, 0]] * 4  # red: category (0 = none)
    ann[..., 1] = 7  # green: instance id, ignored
    ex = {"image": np.zeros((4, 6, 3), np.uint8), "annotation": ann}
    spec = TFDS_SPECS["scene_parse150"]
    from keras_ann.data import make_label_lut

    lut = make_label_lut(reduce_zero_label=True)
    _, label = tfds_example_to_pair(
        ex, image_key="image", label_key="annotation", lut=lut, num_classes=spec["num_classes"]
    )
    np.testing.assert_array_equal(label.numpy()[0], [255, 0, 1, 49, 99, 255])
    bad = dict(ex, annotation=np.full((4, 6, 3), 120, np.uint8), image_id="frame_42")
    with pytest.raises(
        tf.errors.InvalidArgumentError, match=r"(?s)outside \[0, 100\).*frame_42.*119"
    ):
        tfds_example_to_pair(
            bad,
            image_key="image",
            label_key="annotation",
            lut=lut,
            num_classes=100,
            id_key="image_id",
        )
