"""Recipes, the training driver (fit, resume), and learning on
real CamVid images."""

import json
import os
from unittest.mock import ANY

import numpy as np
import pytest

from keras_ann import recipes, training
from testing_utils import camvid_subset


def test_recipes_follow_the_reference():
    assert len(recipes.RECIPES) == 18  # 16 released models + the two CPU CamVid recipes
    r = recipes.get_recipe("ann_r50_d8_cityscapes_512x1024_40k")
    assert (r.backbone, r.crop_size, r.iterations, r.total_batch, r.val_interval) == (
        "resnet50_d8", (512, 1024), 40000, 8, 4000)
    assert (r.lr, r.momentum, r.weight_decay, r.min_lr, r.poly_power) == (0.01, 0.9, 5e-4, 1e-4, 0.9)
    assert r.test_mode == "whole" and not r.align_corners and r.backbone_init.endswith("resnet50_v1c-2cccc1ad.pth")
    r = recipes.get_recipe("ann_r101_d8_cityscapes_769x769_80k")
    assert r.align_corners and r.test_mode == "slide" and r.test_crop == (769, 769) and r.test_stride == (513, 513)
    assert r.val_interval == 8000
    r = recipes.get_recipe("ann_r50_d8_ade20k_512x512_160k")
    assert (r.num_classes, r.total_batch, r.val_interval, r.train_scale) == (150, 16, 16000, (2048, 512))
    r = recipes.get_recipe("ann_r50_d8_pascal_voc_512x512_20k")
    assert (r.num_classes, r.total_batch, r.val_interval) == (21, 16, 2000)
    # The total batch is the recipe's whatever the number of devices.
    assert r.per_replica_batch(4) == 4 and r.per_replica_batch(1) == 16
    with pytest.raises(ValueError, match="3 devices"):
        r.per_replica_batch(3)
    with pytest.raises(ValueError, match="ann_r50_d8_cityscapes_512x1024_40k"):
        recipes.get_recipe("ann_r50")


def test_first_100_learning_rates_equal_the_reference_formula():
    import keras_ann
    from keras_ann.training import compile_for_recipe

    recipe = recipes.get_recipe("ann_r50_d8_cityscapes_512x1024_40k")
    model = keras_ann.ANNSegmenter(backbone="resnet18_d8", num_classes=19)
    compile_for_recipe(model, recipe)
    schedule = model.optimizer._learning_rate  # the LearningRateSchedule itself
    got = np.array([float(schedule(step)) for step in range(100)])
    it = np.arange(100)
    want = (0.01 - 1e-4) * (1 - it / 40000) ** 0.9 + 1e-4
    np.testing.assert_allclose(got, want, rtol=1e-6)


class _Interrupt(Exception):
    pass


def test_overfits_a_few_camvid_images_and_resumes(tmp_path):
    import keras

    from keras_ann import training

    root = camvid_subset(tmp_path, 4)
    work = str(tmp_path / "run")
    common = dict(
        iterations=60, batch_size=4, crop_size=(128, 128), scale=(240, 180), eval_interval=30,
        checkpoint_interval=10, seed=0, verbose=0,
    )

    class Crash(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if int(self.model.optimizer.iterations.numpy()) == 25:
                raise _Interrupt()

    # A run that dies at iteration 25: the state of iteration 20 is on disk.
    original_fit = keras.Model.fit

    def crashing_fit(self, *args, **kwargs):
        kwargs["callbacks"] = list(kwargs.get("callbacks", [])) + [Crash()]
        return original_fit(self, *args, **kwargs)

    keras.Model.fit = crashing_fit
    try:
        with pytest.raises(_Interrupt):
            training.train("ann_r18_d8_camvid_cpu", root, work, **common)
    finally:
        keras.Model.fit = original_fit
    with open(os.path.join(work, "resume", "state.json")) as f:
        assert json.load(f) == {
            "iteration": 20, "weights": "state-20.npz", "sha256": ANY, "seed_states": ANY,
            "log_lines": {"history.csv": 3, "log.jsonl": 2},
        }
    # The same command again continues at iteration 20 and ends at 60.
    model, history = training.train("ann_r18_d8_camvid_cpu", root, work, **common)
    assert int(model.optimizer.iterations.numpy()) == 60
    assert len(history.history["loss"]) == 4  # epochs 3..6 of 10 iterations
    lr = float(model.optimizer._learning_rate(60))
    assert lr == pytest.approx(1e-4)
    evaluations = history.history["val_mIoU"]
    # Overfitting 4 images: well above chance for 11 classes.
    assert evaluations[-1] > 15.0, evaluations
    assert os.path.exists(os.path.join(work, "latest.keras"))


@pytest.mark.parametrize("eval_steps", [0, -2, 2.5])
def test_train_refuses_eval_steps_that_are_not_positive_before_any_work(eval_steps, tmp_path):
    # 0 used to mean "all validation images" here, and "none" in evaluate.
    with pytest.raises(ValueError, match="`eval_steps` must be a positive integer"):
        training.train("ann_r18_d8_camvid_cpu", str(tmp_path), str(tmp_path / "work"), eval_steps=eval_steps)
    assert not (tmp_path / "work").exists()


@pytest.mark.parametrize("count", [-1, 2.5, True])
def test_train_refuses_a_tensorboard_image_count_that_is_not_a_count_before_any_work(count, tmp_path):
    with pytest.raises(ValueError, match="`tensorboard_images` must be a non-negative integer"):
        training.train("ann_r18_d8_camvid_cpu", str(tmp_path), str(tmp_path / "work"), tensorboard_images=count)
    assert not (tmp_path / "work").exists()
