"""The label scan before training: each label mistake refused (or warned)
with a message naming the cause, the files and the fix."""

import os
import re
import warnings

import numpy as np
import pytest
from PIL import Image

from keras_ann.data import (
    DatasetError,
    DatasetWarning,
    FolderDataset,
    check_dataset_labels,
    rgb_to_labels,
    scan_labels,
)
from keras_ann.data.label_scan import scan_label_files

H, W = 24, 32


def _blocks(rng, values, h=H, w=W, block=8):
    small = rng.choice(np.asarray(values), size=(h // block, w // block))
    return np.kron(small, np.ones((block, block), np.int64)).astype(np.uint8)


def _folder(root, labels, mode=None):
    """Writes images and the given label arrays; returns (image_dir, label_dir)."""
    images, anns = os.path.join(root, "img"), os.path.join(root, "ann")
    os.makedirs(images, exist_ok=True)
    os.makedirs(anns, exist_ok=True)
    for i, label in enumerate(labels):
        h, w = label.shape[:2]
        Image.fromarray(np.full((h, w, 3), 100, np.uint8)).save(f"{images}/s{i}.png")
        Image.fromarray(label, mode).save(f"{anns}/s{i}.png" if mode != "F" else f"{anns}/s{i}.tif")
    return images, anns


def _dataset(tmp_path, labels, num_classes, **kwargs):
    images, anns = _folder(str(tmp_path), labels)
    return FolderDataset(images, anns, num_classes, **kwargs)


def _check(*datasets, **kwargs):
    kwargs.setdefault("cache_dir", False)
    kwargs.setdefault("verbose", 0)
    return check_dataset_labels(*datasets, **kwargs)


def test_clean_labels_print_the_class_frequency_table(tmp_path, capsys):
    rng = np.random.default_rng(0)
    labels = [_blocks(rng, [0, 1, 2, 255]) for _ in range(3)]
    labels[0][:8, :8] = 2  # class 2 in every file
    labels[1][:8, :8] = 2
    labels[2][:8, :8] = 2
    ds = _dataset(tmp_path, labels, 3, class_names=("sky", "road", "car"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        train, _ = _check(ds, verbose=1)
    table = capsys.readouterr().out
    assert "Labels of img: 3 files" in table
    for v, name in enumerate(("sky", "road", "car")):
        pixels = sum(int(np.sum(label == v)) for label in labels)
        images = sum(int(np.any(label == v)) for label in labels)
        assert train.pixels[v] == pixels and train.images[v] == images
        assert re.search(rf"\b{v}\s+{name}\s+{pixels}\s+\S+%\s+{images}\n", table)
    assert "(ignored)" in table


def test_binary_0_255_masks_with_two_classes_refused_with_the_label_map_fix(tmp_path):
    label = np.zeros((H, W), np.uint8)
    label[8:16, 8:24] = 255
    ds = _dataset(tmp_path, [label, label], 2)
    with pytest.raises(DatasetError) as info:
        _check(ds)
    message = str(info.value)
    assert "hold only 0 and 255" in message and "foreground would be ignored" in message
    assert "label_map={255: 1}" in message and "--label-map 255:1" in message
    assert "s0.png" in message
    # The fix it names works: class 1 is then the foreground.
    fixed = FolderDataset(ds.image_dir, ds.label_dir, 2, label_map={255: 1})
    train, _ = _check(fixed)
    assert train.pixels[1] == 2 * 8 * 16 and train.pixels[255] == 0


def test_colour_masks_refused_with_a_pointer_to_rgb_to_labels(tmp_path):
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[:, 16:] = (128, 64, 128)
    images, anns = _folder(str(tmp_path), [rgb])
    # The header check of the dataset (default verify="header") names it ...
    with pytest.raises(DatasetError, match=r"(?s)s0\.png.*mode 'RGB'.*rgb_to_labels.*--label-palette"):
        FolderDataset(images, anns, 2)
    # ... and so does the scan, with the colours found to build a palette.
    ds = FolderDataset(images, anns, 2, verify="none")
    with pytest.raises(DatasetError, match=r"(?s)colour images.*s0\.png.*rgb_to_labels.*\(128, 64, 128\)"):
        _check(ds)


def test_colour_masks_read_with_a_label_palette(tmp_path):
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[:, 16:] = (128, 64, 128)
    rgb[:4, :4] = (255, 255, 255)
    images, anns = _folder(str(tmp_path), [rgb])
    palette = {(0, 0, 0): 0, (128, 64, 128): 1, (255, 255, 255): 255}
    ds = FolderDataset(images, anns, 2, label_palette=palette)
    _, label = ds.load(0)
    expected = np.where(rgb[..., 0] == 128, 1, 0).astype(np.uint8)
    expected[:4, :4] = 255
    np.testing.assert_array_equal(label, expected)
    train, _ = _check(ds)
    assert train.pixels[1] == H * 16 and train.pixels[255] == 16
    (_, batch), = ds.eval_dataset().take(1)  # the tf.data pipeline converts them too
    np.testing.assert_array_equal(batch[0].numpy(), expected)
    # A colour missing from the palette: refused before training, naming the file and colour.
    with pytest.raises(DatasetError, match=r"(?s)cannot be read or converted.*s0\.png.*\(255, 255, 255\) \(16 pixels\)"):
        _check(FolderDataset(images, anns, 2, label_palette=[(0, 0, 0), (128, 64, 128)]))


def test_grey_masks_saved_as_rgb_refused_with_the_conversion(tmp_path):
    label = _blocks(np.random.default_rng(1), [0, 1])
    images, anns = _folder(str(tmp_path), [np.stack([label] * 3, -1)])
    ds = FolderDataset(images, anns, 2, verify="none")
    with pytest.raises(DatasetError, match=r"same value.*s0\.png.*convert\('L'\)"):
        _check(ds)


def test_values_out_of_range_refused_with_counts_and_files(tmp_path):
    labels = [np.zeros((H, W), np.uint8) for _ in range(5)]
    for label in labels[1:]:
        label[:2, :3] = 7  # 6 pixels in each of 4 files
    labels[0][0, 0] = 9
    ds = _dataset(tmp_path, labels, 3)
    with pytest.raises(DatasetError) as info:
        _check(ds)
    message = str(info.value)
    assert "outside [0, 3) other than the ignore index 255" in message
    assert "7 (24 pixels in 4 files, e.g. " in message and "s1.png" in message
    assert "9 (1 pixels in 1 files, e.g. " in message and "s0.png" in message
    assert "and 1 more" in message  # 4 files, 3 named
    assert "raise num_classes to 10" in message


def test_a_void_value_gets_the_label_map_fix(tmp_path):
    label = np.zeros((H, W), np.uint8)
    label[0] = 11
    label[1:4] = 1
    ds = _dataset(tmp_path, [label], 11)
    with pytest.raises(DatasetError, match=r"11 \(32 pixels in 1 files.*label_map=\{11: 255\}.*--label-map 11:255"):
        _check(ds)


def test_ade_like_labels_0_to_k_hint_reduce_zero_label(tmp_path):
    rng = np.random.default_rng(2)
    labels = [_blocks(rng, [0, 1, 2, 3, 4]) for _ in range(3)]
    labels[0][0, 0] = 4
    ds = _dataset(tmp_path, labels, 4)
    with pytest.raises(DatasetError, match=r"values run 0\.\.4.*reduce_zero_label=True.*--reduce-zero-label"):
        _check(ds)
    train, _ = _check(FolderDataset(ds.image_dir, ds.label_dir, 4, reduce_zero_label=True))
    assert train.pixels[255] == sum(int(np.sum(label == 0)) for label in labels)


@pytest.mark.filterwarnings("ignore:.*never occur:keras_ann.data.errors.DatasetWarning")
def test_frequent_zero_in_a_many_class_dataset_hints_reduce_zero_label(tmp_path):
    rng = np.random.default_rng(3)
    labels = [_blocks(rng, np.arange(60)) for _ in range(4)]
    for label in labels:
        label[:4] = 0
    ds = _dataset(tmp_path, labels, 60)
    with pytest.warns(DatasetWarning, match=r"Label 0 occurs in 4 of 4 .*60 classes.*reduce_zero_label=True"):
        _check(ds)


def test_zero_as_a_border_frame_hints_reduce_zero_label(tmp_path):
    rng = np.random.default_rng(4)
    labels = []
    for _ in range(3):
        label = _blocks(rng, [1, 2, 3])
        label[0], label[-1], label[:, 0], label[:, -1] = 0, 0, 0, 0
        labels.append(label)
    ds = _dataset(tmp_path, labels, 4)
    with pytest.warns(DatasetWarning, match=r"Label 0 looks like void.*borders.*--reduce-zero-label"):
        _check(ds)


def test_classes_that_never_occur_warned(tmp_path):
    labels = [np.zeros((H, W), np.uint8), np.ones((H, W), np.uint8)]
    ds = _dataset(tmp_path, labels, 4, class_names=("a", "b", "c", "d"))
    with pytest.warns(DatasetWarning, match=r"2 of 4 classes never occur.*2 \('c'\), 3 \('d'\)"):
        _check(ds)


def _interpolated(rng, values):
    label = _blocks(rng, values, h=16, w=16, block=4)
    big = Image.fromarray(label).resize((48, 48), Image.BILINEAR)
    return np.asarray(big)


@pytest.mark.filterwarnings("ignore:.*never occur:keras_ann.data.errors.DatasetWarning")
def test_interpolated_masks_warned(tmp_path):
    rng = np.random.default_rng(5)
    labels = [_interpolated(rng, [0, 10, 20, 30]) for _ in range(2)]  # values 0..30, num_classes 40
    ds = _dataset(tmp_path, labels, 40)
    with pytest.warns(DatasetWarning, match=r"2 of 2 label files in img look interpolated.*nearest-neighbour"):
        _check(ds)
    # Nearest-neighbour resized masks are not flagged.
    nearest = [
        np.asarray(Image.fromarray(_blocks(rng, np.arange(40), 16, 16, 4)).resize((48, 48), Image.NEAREST))
        for _ in range(2)
    ]
    clean = _dataset(tmp_path / "nearest", nearest, 40)
    scan = scan_labels(clean, cache_dir=False, verbose=0)
    assert not [n for n in scan.notes if "interpolated" in n]


def test_interpolated_binary_masks_refused_with_the_interpolation_cause(tmp_path):
    rng = np.random.default_rng(6)
    labels = [_interpolated(rng, [0, 255]) for _ in range(2)]  # 0/255 masks resized bilinearly
    ds = _dataset(tmp_path, labels, 2, label_map={255: 1})
    with pytest.raises(DatasetError, match=r"6 distinct values out of range, and 2 files with ramps between classes: the masks look resized with interpolation"):
        _check(ds)


def test_float_labels_with_fractions_refused(tmp_path):
    label = np.zeros((H, W), np.float32)
    label[0, :4] = 0.5
    images, anns = _folder(str(tmp_path), [label], mode="F")
    with pytest.raises(DatasetError, match=r"s0\.tif.*mode 'F'.*integer class ids"):
        FolderDataset(images, anns, 2, label_suffix=".tif")
    ds = FolderDataset(images, anns, 2, label_suffix=".tif", verify="none")
    with pytest.raises(DatasetError, match=r"non-integer values \(4 pixels, e.g. \[0.5\] in .*s0\.tif"):
        _check(ds)


def test_16_bit_labels_over_255_refused(tmp_path):
    label = np.zeros((H, W), np.uint16)
    label[0, 0] = 300
    images, anns = _folder(str(tmp_path), [label])
    ds = FolderDataset(images, anns, 2)
    with pytest.raises(DatasetError, match=r"outside 0\.\.255: 300 \(1 pixels in 1 files, e.g. .*s0\.png"):
        _check(ds)


def test_a_bad_val_label_is_refused_before_training(tmp_path):
    good = np.zeros((H, W), np.uint8)
    train = _dataset(tmp_path / "train", [good, good + 1], 2)
    bad = good.copy()
    bad[3, 3] = 5
    val = _dataset(tmp_path / "val", [good, bad], 2)
    with pytest.raises(DatasetError, match=r"(?s)Label check failed before training.*5 \(1 pixels in 1 files.*val.*s1\.png"):
        _check(train, val)


def test_build_datasets_scans_both_splits(tmp_path, monkeypatch):
    from keras_ann.recipes import get_recipe
    from keras_ann.data.configs import build_datasets

    monkeypatch.setenv("KERAS_ANN_HOME", str(tmp_path / "home"))  # the default scan cache

    root = tmp_path / "camvid"
    label = np.zeros((H, W), np.uint8)
    label[:, 16:] = 1
    for split in ("train", "val"):
        bad = label.copy()
        if split == "val":
            bad[0, 0] = 14  # neither a class nor CamVid's void 11
        _folder(str(root / split), [label, bad])
        os.rename(root / split / "img", root / f"{split}_img")
        os.rename(root / split / "ann", root / f"{split}annot")
        os.rmdir(root / split)
        os.rename(root / f"{split}_img", root / split)
    with pytest.raises(DatasetError, match=r"(?s)camvid/val.*14 \(1 pixels in 1 files.*valannot.*s1\.png"):
        build_datasets(get_recipe("ann_r18_d8_camvid_cpu"), str(root), batch_size=2)
    assert len(os.listdir(tmp_path / "home" / "label_scans")) == 2  # one cache file per split


def test_the_cache_is_used_and_invalidated_when_a_file_changes(tmp_path):
    label = np.zeros((H, W), np.uint8)
    label[:, 16:] = 1
    ds = _dataset(tmp_path / "data", [label, label], 2)
    cache = tmp_path / "cache"
    first, _ = _check(ds, cache_dir=cache)
    assert first.cached == 0 and len(os.listdir(cache)) == 1
    second, _ = _check(ds, cache_dir=cache)
    assert second.cached == 2 and np.array_equal(first.pixels, second.pixels)
    # A label rewritten (same size, new content): read again, not taken from the cache.
    path = ds.files[1][1]
    stat = os.stat(path)
    bad = label.copy()
    bad[0, 0] = 3
    Image.fromarray(bad).save(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    with pytest.raises(DatasetError, match=r"3 \(1 pixels in 1 files, e.g. .*s1\.png"):
        _check(ds, cache_dir=cache)
    entries, cached = scan_label_files([p for _, p in ds.files], cache_dir=cache, verbose=0)
    assert cached == 2 and entries[1]["values"]["3"] == 1


def test_a_damaged_cache_is_rescanned(tmp_path):
    ds = _dataset(tmp_path / "data", [np.zeros((H, W), np.uint8), np.ones((H, W), np.uint8)], 2)
    cache = tmp_path / "cache"
    _check(ds, cache_dir=cache)
    (name,) = os.listdir(cache)
    (cache / name).write_text("{not json")
    scan, _ = _check(ds, cache_dir=cache)
    assert scan.cached == 0 and scan.pixels[1] == H * W


def test_rgb_to_labels_maps_colours_and_refuses_unknown_ones():
    palette = [(0, 0, 0), (128, 64, 128), (255, 255, 0)]
    mask = np.zeros((2, 3, 3), np.uint8)
    mask[0, 1] = (128, 64, 128)
    mask[1, 2] = (255, 255, 0)
    assert rgb_to_labels(mask, palette).tolist() == [[0, 1, 0], [0, 0, 2]]
    # An alpha channel is dropped; a batch axis is kept.
    rgba = np.concatenate([mask, np.full((2, 3, 1), 255, np.uint8)], -1)
    assert rgb_to_labels(rgba[None], palette).shape == (1, 2, 3)
    mask[0, 0] = (9, 9, 9)
    with pytest.raises(ValueError, match=r"1 colours of the mask are not in the palette: \(9, 9, 9\) \(1 pixels\)"):
        rgb_to_labels(mask, palette)
    assert rgb_to_labels(mask, palette, unknown="ignore")[0, 0] == 255
    assert rgb_to_labels(mask, {(9, 9, 9): 255, (0, 0, 0): 0, (128, 64, 128): 1, (255, 255, 0): 1}).tolist() == [
        [255, 1, 0],
        [0, 0, 1],
    ]
    with pytest.raises(ValueError, match=r"shape \(\.\.\., height, width, 3\)"):
        rgb_to_labels(mask[..., 0], palette)
    with pytest.raises(ValueError, match="two classes"):
        rgb_to_labels(mask, [(0, 0, 0), (0, 0, 0)])


def test_with_skip_bad_bad_files_are_warned_not_refused(tmp_path):
    good = np.zeros((H, W), np.uint8)
    good[:, 16:] = 1
    bad = good.copy()
    bad[0, 0] = 7
    ds = _dataset(tmp_path / "a", [good, bad], 2, skip_bad=True)
    with pytest.warns(DatasetWarning, match=r"7 \(1 pixels in 1 files, e.g. .*s1\.png.*skipped \(skip_bad=True\)"):
        _check(ds)
    # A mistake of the whole dataset (not of some files) is still refused.
    binary = np.where(good == 1, 255, 0).astype(np.uint8)
    with pytest.raises(DatasetError, match="label_map=\\{255: 1\\}"):
        _check(_dataset(tmp_path / "b", [binary, binary], 2, skip_bad=True))
