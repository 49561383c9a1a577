"""Issue 29, round 3: misspelt arguments, `--set` values, flags and data
that were accepted and gave a raw traceback or a silently wrong run are
refused up front in one line naming the argument, key, flag or file."""

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import keras
import keras_ann
from keras_ann import cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _tiny_model(**kwargs):
    backbone = keras_ann.ResNetBackbone(depth=18, output_stride=8, stem_channels=8, base_channels=8)
    return keras_ann.ANNSegmenter(
        backbone, num_classes=3, head_channels=16, project_channels=8, auxiliary_channels=8, **kwargs
    )


def _last_line(text):
    return [line for line in text.splitlines() if line.strip()][-1]


# --------------------------------------------------------------------------
# 1. Strict arguments
# --------------------------------------------------------------------------


def test_a_misspelt_constructor_argument_is_refused_naming_the_close_match():
    with pytest.raises(TypeError, match=r"unknown keyword argument\(s\) 'num_clases' \(did you mean 'num_classes'\?\)"):
        _tiny_model(num_clases=5)


def test_the_base_model_arguments_name_dtype_and_trainable_still_work():
    model = _tiny_model(name="mine", dtype="float32", trainable=False)
    assert (model.name, model.trainable) == ("mine", False)


def test_a_misspelt_from_preset_override_is_refused_before_loading(tmp_path):
    path = str(tmp_path / "m.keras")
    _tiny_model().save(path)
    with pytest.raises(TypeError, match=r"from_preset got unknown keyword argument\(s\) 'num_clases' \(did you mean 'num_classes'\?\)"):
        keras_ann.ANNSegmenter.from_preset(path, num_clases=5)
    with pytest.raises(TypeError, match="'align_corner' \\(did you mean 'align_corners'"):
        keras_ann.ANNSegmenter.from_preset("no-such-file.keras", align_corner=True)  # before the file is looked for
    assert keras_ann.ANNSegmenter.from_preset(path, num_classes=5).num_classes == 5


@pytest.mark.parametrize("loss", ["mse", "mean_absolute_error", "binary_crossentropy"])
def test_compile_refuses_loss_names_that_do_not_take_class_ids_in_one_line(loss):
    with pytest.raises(ValueError, match=f"loss '{loss}' does not apply: the model outputs logits") as error:
        _tiny_model().compile(loss=loss)
    assert "\n" not in str(error.value)
