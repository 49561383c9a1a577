"""Settings from the data (`keras_ann.data.defaults`): the CamVid CPU
recipe's class weights come back from CamVid's own labels, the crop and
batch follow the images and the memory, every choice is said."""

import numpy as np
import pytest
from PIL import Image
from testing_utils import shared_path

from keras_ann.data import camvid
from keras_ann.data.class_weights import class_shares, enet_class_weights, is_imbalanced
from keras_ann.data.defaults import crop_and_batch, defaults_from_data
from keras_ann.data.label_scan import scan_labels
from keras_ann.recipes import get_recipe


def test_enet_weights_of_the_camvid_training_labels_are_the_cpu_recipes_class_weights():
    train = camvid(shared_path("data", "camvid"), "train")
    shares = class_shares(scan_labels(train, verbose=0).pixels, 11)
    assert is_imbalanced(shares)
    assert tuple(enet_class_weights(shares)) == get_recipe("ann_r18_d16_camvid_cpu_1h").class_weight


def test_crop_and_batch_shrink_to_the_memory_at_hand():
    assert crop_and_batch((480, 360), 11, budget=64e9) == ((256, 256), 8)
    crop, batch = crop_and_batch((480, 360), 11, budget=0.6e9)
    assert batch < 8 or crop[0] < 256
    small_crop, small_batch = crop_and_batch((480, 360), 11, budget=0.05e9)
    assert small_crop[0] * small_crop[1] * small_batch < crop[0] * crop[1] * batch


def _folder(root, make_label, size, count=3):
    rng = np.random.default_rng(0)
    (root / "img").mkdir(parents=True)
    (root / "annot").mkdir(parents=True)
    for i in range(count):
        Image.fromarray(rng.integers(0, 255, size + (3,), dtype=np.uint8)).save(root / "img" / f"{i}.png")
        Image.fromarray(make_label(size)).save(root / "annot" / f"{i}.png")


def test_thin_structures_get_class_weights_and_the_images_keep_their_size(tmp_path):
    def thin(size):
        label = np.zeros(size, np.uint8)
        label[:, ::16] = 1  # one-pixel lines: 1/16 of the pixels
        return label

    from keras_ann.data import FolderDataset

    _folder(tmp_path, thin, (512, 512))
    data = FolderDataset(str(tmp_path / "img"), str(tmp_path / "annot"), num_classes=2, class_names=("bg", "line"))
    defaults = defaults_from_data(data, scan_labels(data, verbose=0, cache_dir=False))
    assert defaults.changes["train_scale"] == (512, 512) and defaults.changes["crop_size"] == (256, 256)
    assert defaults.changes["class_weight"][1] > 5 * defaults.changes["class_weight"][0]
    assert "imbalanced: bg 93.8% vs line 6.25%" in defaults.notes["class_weight"], defaults.notes
    assert "--set class_weight=null" in defaults.notes["class_weight"]


def test_balanced_classes_get_no_class_weights_and_the_log_says_so(tmp_path):
    from keras_ann.data import FolderDataset

    _folder(tmp_path, lambda size: (np.arange(size[1]) >= size[1] // 2).astype(np.uint8)[None].repeat(size[0], 0),
            (48, 64))  # fmt: skip
    data = FolderDataset(str(tmp_path / "img"), str(tmp_path / "annot"), num_classes=2)
    defaults = defaults_from_data(data, scan_labels(data, verbose=0, cache_dir=False))
    assert "class_weight" not in defaults.changes
    assert defaults.notes["class_weight"].startswith("class weights: none (the classes are balanced")
    assert defaults.changes["crop_size"] == (48, 48)
