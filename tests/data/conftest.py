"""Small on-disk fixtures in the exact layouts of the supported datasets."""

import os

import numpy as np
import pytest
from PIL import Image

from data_fixtures import CAMVID_ROOT, blocky_label, random_image, save


def _cityscapes(root, rng, with_train_ids=True):
    for split, cities in (("train", ("aachen", "bochum")), ("val", ("frankfurt",))):
        for city in cities:
            for k in range(2):
                stem = f"{city}_{k:06d}_000019"
                save(random_image(rng), f"{root}/leftImg8bit/{split}/{city}/{stem}_leftImg8bit.png")
                ids = blocky_label(rng, [0, 1, 7, 8, 11, 21, 23, 26, 33])
                save(ids, f"{root}/gtFine/{split}/{city}/{stem}_gtFine_labelIds.png")
                if with_train_ids:
                    train_ids = blocky_label(rng, list(range(19)) + [255])
                    save(train_ids, f"{root}/gtFine/{split}/{city}/{stem}_gtFine_labelTrainIds.png")
    return root


@pytest.fixture(scope="session")
def cityscapes_root(tmp_path_factory):
    rng = np.random.default_rng(1)
    return _cityscapes(str(tmp_path_factory.mktemp("cityscapes")), rng)


@pytest.fixture(scope="session")
def cityscapes_label_ids_root(tmp_path_factory):
    rng = np.random.default_rng(2)
    return _cityscapes(str(tmp_path_factory.mktemp("cityscapes_ids")), rng, with_train_ids=False)


@pytest.fixture(scope="session")
def ade_root(tmp_path_factory):
    rng = np.random.default_rng(3)
    root = str(tmp_path_factory.mktemp("ade"))
    base = f"{root}/ADEChallengeData2016"
    for split, n in (("training", 3), ("validation", 2)):
        for k in range(n):
            stem = f"ADE_{split[:5]}_{k:08d}"
            save(random_image(rng), f"{base}/images/{split}/{stem}.jpg", quality=95)
            save(blocky_label(rng, [0, 1, 2, 75, 150]), f"{base}/annotations/{split}/{stem}.png")
    return root


def _voc_palette_png(label, path):
    from keras_ann.data.metainfo import VOC_PALETTE

    im = Image.fromarray(label, mode="P")
    flat = [c for rgb in VOC_PALETTE for c in rgb]
    flat += [0] * (3 * 256 - len(flat))
    flat[3 * 255 : 3 * 256] = [224, 224, 192]
    im.putpalette(flat)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    im.save(path)


@pytest.fixture(scope="session")
def voc_root(tmp_path_factory):
    rng = np.random.default_rng(4)
    root = str(tmp_path_factory.mktemp("voc"))
    base = f"{root}/VOCdevkit/VOC2012"
    ids = {
        "train": ["2007_000032", "2007_000039"],
        "val": ["2007_000033"],
        "aug": ["2008_000001", "2008_000002", "2008_000003"],
    }
    for split, names in ids.items():
        for name in names:
            save(random_image(rng), f"{base}/JPEGImages/{name}.jpg", quality=95)
            label = blocky_label(rng, [0, 1, 15, 20])
            label[:2] = 255  # VOC's boundary value
            if split == "aug":
                save(label, f"{base}/SegmentationClassAug/{name}.png")
            else:
                _voc_palette_png(label, f"{base}/SegmentationClass/{name}.png")
        os.makedirs(f"{base}/ImageSets/Segmentation", exist_ok=True)
        with open(f"{base}/ImageSets/Segmentation/{split}.txt", "w") as f:
            f.write("\n".join(names) + "\n")
    return root


@pytest.fixture(scope="session")
def folder_root(tmp_path_factory):
    rng = np.random.default_rng(5)
    root = str(tmp_path_factory.mktemp("folder"))
    for k in range(4):
        save(random_image(rng), f"{root}/images/img{k}.png")
        save(blocky_label(rng, [0, 1, 2, 11]), f"{root}/labels/img{k}.png")
    with open(f"{root}/list.txt", "w") as f:
        f.write("# image label\n")
        for k in range(4):
            f.write(f"images/img{k}.png labels/img{k}.png\n")
    return root


@pytest.fixture(scope="session")
def camvid_root():
    if not os.path.isdir(CAMVID_ROOT):
        if os.environ.get("CI"):
            pytest.fail(f"CamVid copy required in CI but not found at {CAMVID_ROOT}")
        pytest.skip(f"CamVid copy not found at {CAMVID_ROOT}")
    return CAMVID_ROOT
