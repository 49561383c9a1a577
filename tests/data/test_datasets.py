"""Loaders on fixtures in the datasets' own layouts, and on the real CamVid copy."""

import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from data_fixtures import H, W, blocky_label, random_image, save
from keras_ann.data import (
    ADE20K,
    Cityscapes,
    DatasetError,
    FolderDataset,
    PascalVOC,
    camvid,
    cityscapes_label_id_map,
    make_label_lut,
)
from keras_ann.data.metainfo import (
    ADE20K_CLASSES,
    ADE20K_PALETTE,
    CITYSCAPES_CLASSES,
    CITYSCAPES_PALETTE,
    VOC_CLASSES,
    VOC_PALETTE,
)


def _raw_label(path):
    return np.asarray(Image.open(path))


# ------------------------------------------------------------------ metainfo


def test_metainfo_sizes():
    assert len(CITYSCAPES_CLASSES) == len(CITYSCAPES_PALETTE) == 19
    assert len(ADE20K_CLASSES) == len(ADE20K_PALETTE) == 150
    assert len(VOC_CLASSES) == len(VOC_PALETTE) == 21
    assert CITYSCAPES_CLASSES[13] == "car" and CITYSCAPES_PALETTE[13] == (0, 0, 142)
    assert ADE20K_CLASSES[-1] == "flag" and ADE20K_PALETTE[-1] == (92, 0, 255)
    assert VOC_PALETTE[15] == (192, 128, 128)


def test_label_lut_rules():
    lut = make_label_lut(reduce_zero_label=True)
    assert lut[0] == 255 and lut[1] == 0 and lut[150] == 149 and lut[255] == 255
    lut = make_label_lut({11: 255})
    assert lut[11] == 255 and lut[10] == 10
    assert make_label_lut() is None
    ids = cityscapes_label_id_map()
    assert ids[7] == 0 and ids[26] == 13 and ids[33] == 18 and ids[0] == 255 and ids[34] == 255
    assert sorted(v for v in ids.values() if v != 255) == list(range(19))


# ------------------------------------------------------------------ Cityscapes


def test_cityscapes_train_ids(cityscapes_root):
    ds = Cityscapes(cityscapes_root, "train")
    assert len(ds) == 4 and ds.num_classes == 19 and ds.label_type == "trainIds"
    assert ds.class_names == CITYSCAPES_CLASSES and ds.palette == CITYSCAPES_PALETTE
    for image, label in ds.files:
        assert image.endswith("_leftImg8bit.png") and label.endswith("_gtFine_labelTrainIds.png")
        assert os.path.basename(image)[:-16] == os.path.basename(label)[:-25]
        assert image.split(os.sep)[-2] == label.split(os.sep)[-2]  # same city
    image, label = ds.load(0)
    assert image.shape == (H, W, 3) and image.dtype == np.uint8 and label.shape == (H, W)
    np.testing.assert_array_equal(label, _raw_label(ds.files[0][1]))
    assert (ds.crop_size, ds.train_scale, ds.test_scale) == (
        (512, 1024),
        (2048, 1024),
        (2048, 1024),
    )
    ds769 = Cityscapes(cityscapes_root, "val", recipe="769x769")
    assert len(ds769) == 2 and ds769.crop_size == (769, 769) and ds769.train_scale == (2049, 1025)


def test_cityscapes_label_ids_are_mapped(cityscapes_label_ids_root):
    ds = Cityscapes(cityscapes_label_ids_root, "train")
    assert ds.label_type == "labelIds"
    ids = cityscapes_label_id_map()
    for k in range(len(ds)):
        raw = _raw_label(ds.files[k][1])
        _, label = ds.load(k)
        expected = np.vectorize(ids.get)(raw)
        np.testing.assert_array_equal(label, expected)
    assert set(np.unique(label)) <= set(range(19)) | {255}


def test_cityscapes_missing_split(cityscapes_root, tmp_path):
    with pytest.raises(DatasetError, match="leftImg8bit.test"):
        Cityscapes(cityscapes_root, "test")
    os.makedirs(tmp_path / "leftImg8bit" / "train" / "x")
    with pytest.raises(DatasetError, match="is empty.*leftImg8bit"):
        Cityscapes(tmp_path, "train")


# ------------------------------------------------------------------ ADE20K


def test_ade20k_reduce_zero_label(ade_root):
    ds = ADE20K(ade_root, "train")
    assert len(ds) == 3 and ds.num_classes == 150
    assert len(ADE20K(os.path.join(ade_root, "ADEChallengeData2016"), "validation")) == 2
    raw = _raw_label(ds.files[0][1])
    _, label = ds.load(0)
    np.testing.assert_array_equal(label, np.where(raw == 0, 255, raw.astype(int) - 1))
    assert ds.crop_size == (512, 512) and ds.train_scale == (2048, 512)


# ------------------------------------------------------------------ Pascal VOC


def test_voc_splits_and_palette_labels(voc_root):
    train = PascalVOC(voc_root, "train")
    assert len(train) == 2 and train.num_classes == 21
    path = train.files[0][1]
    assert Image.open(path).mode == "P" and "SegmentationClass" + os.sep in path
    _, label = train.load(0)
    assert set(np.unique(label)) <= {0, 1, 15, 20, 255} and (label[:2] == 255).all()
    aug = PascalVOC(os.path.join(voc_root, "VOCdevkit"), "aug")
    assert len(aug) == 3 and all("SegmentationClassAug" in l for _, l in aug.files)
    both = PascalVOC(voc_root, "train_aug")
    assert both.files == train.files + aug.files  # train.txt then aug.txt, as mmseg
    assert len(PascalVOC(os.path.join(voc_root, "VOCdevkit", "VOC2012"), "voc12aug")) == 5
    assert len(PascalVOC(voc_root, "val")) == 1


def test_voc_missing_list(voc_root):
    with pytest.raises(DatasetError, match="trainval.txt"):
        PascalVOC(voc_root, "trainval")


# ------------------------------------------------------------------ folder


def test_folder_pairs_by_stem_and_maps(folder_root):
    ds = FolderDataset(
        os.path.join(folder_root, "images"),
        os.path.join(folder_root, "labels"),
        num_classes=11,
        label_map={11: 255},
    )
    assert len(ds) == 4
    for image, label in ds.files:
        assert os.path.basename(image) == os.path.basename(label)
    raw = _raw_label(ds.files[0][1])
    _, label = ds.load(0)
    np.testing.assert_array_equal(label, np.where(raw == 11, 255, raw))
    listed = FolderDataset.from_list_file(
        os.path.join(folder_root, "list.txt"), 11, label_map={11: 255}
    )
    assert [tuple(map(os.path.normpath, f)) for f in listed.files] == [
        tuple(map(os.path.normpath, f)) for f in ds.files
    ]


def test_folder_errors(folder_root, tmp_path):
    with pytest.raises(DatasetError, match="nowhere"):
        FolderDataset(tmp_path / "nowhere", tmp_path, 3)
    os.makedirs(tmp_path / "img")
    with pytest.raises(DatasetError, match=r"No images .* found in .*img"):
        FolderDataset(tmp_path / "img", folder_root, 3)
    shutil.copy(os.path.join(folder_root, "images", "img0.png"), tmp_path / "img" / "lonely.png")
    with pytest.raises(DatasetError, match="no label.*lonely.png"):
        FolderDataset(tmp_path / "img", os.path.join(folder_root, "labels"), 3)
    with pytest.raises(DatasetError, match="values outside"):
        # 11 is not mapped here: a bad value, reported with its file
        FolderDataset(
            os.path.join(folder_root, "images"),
            os.path.join(folder_root, "labels"),
            num_classes=11,
            verify="full",
        )


# ------------------------------------------------------------------ CamVid (real data)


def test_camvid_counts_pairing_and_labels(camvid_root):
    train = camvid(camvid_root, "train")
    val = camvid(camvid_root, "val", verify="full")  # decodes all 101 pairs
    assert (len(train), len(val)) == (367, 101)
    assert train.num_classes == 11 and len(train.class_names) == 11
    for ds in (train, val):
        for image, label in ds.files:
            assert image.endswith(".jpg") and label.endswith(".png")
            assert (
                os.path.splitext(os.path.basename(image))[0]
                == os.path.splitext(os.path.basename(label))[0]
            )
            assert (
                os.path.basename(os.path.dirname(label))
                == os.path.basename(os.path.dirname(image)) + "annot"
            )
    raw_values = set()
    for k in range(0, 367, 46):
        image, label = train.load(k)
        raw = _raw_label(train.files[k][1])
        assert image.shape == (360, 480, 3) and label.shape == (360, 480)
        raw_values |= set(np.unique(raw).tolist())
        np.testing.assert_array_equal(label, np.where(raw == 11, 255, raw))
        assert set(np.unique(label)) <= set(range(11)) | {255}
    assert max(raw_values) <= 11 and 11 in raw_values


def test_camvid_pipelines(camvid_root):
    ds = camvid(camvid_root, "val", crop_size=(192, 256), train_scale=(960, 720))
    images, labels = next(iter(ds.train_dataset(batch_size=2, seed=0)))
    assert images.shape == (2, 192, 256, 3) and images.dtype == tf.float32
    assert labels.shape == (2, 192, 256) and labels.dtype == tf.int32
    assert set(np.unique(labels.numpy())) <= set(range(11)) | {255}
    image, label = next(iter(ds.eval_dataset(scale=(240, 180))))
    assert image.shape == (1, 180, 240, 3) and label.shape == (1, 360, 480)


@pytest.mark.parametrize(
    "fixture, make, label_glob, what",
    [
        ("cityscapes_root", lambda r: Cityscapes(r, "train", label_type="trainIds"), "gtFine/train/*/*labelTrainIds.png", "Cityscapes 'train' label"),
        ("ade_root", lambda r: ADE20K(r, "train"), "ADEChallengeData2016/annotations/training/*.png", "ADE20K 'train' annotation"),
        ("voc_root", lambda r: PascalVOC(r, "train"), "VOCdevkit/VOC2012/SegmentationClass/*.png", "Pascal VOC 'train' image and label"),
    ],
)
def test_a_missing_label_file_is_named(fixture, make, label_glob, what, request, tmp_path):
    import glob

    root = str(tmp_path / "copy")
    shutil.copytree(request.getfixturevalue(fixture), root)
    victim = sorted(glob.glob(os.path.join(root, label_glob)))[0]
    os.remove(victim)
    with pytest.raises(DatasetError, match=rf"{what} files missing: 1 of \d+, e\.g\. {victim}"):
        make(root)
