"""The command line prints its own words only: no TensorFlow C++ start-up
lines (unless `--verbose`), no Keras warning that keras-ann itself causes."""

import os
import subprocess
import sys
import warnings

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NATIVE_LINES = ("absl::InitializeLog", "oneDNN custom operations", "cpu_feature_guard")


def _keras_ann(*argv):
    env = dict(os.environ, PYTHONPATH=ROOT)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # as a user's shell has it
    return subprocess.run([sys.executable, "-m", "keras_ann.cli", *argv], capture_output=True, text=True,
                          timeout=300, env=env, cwd=ROOT)  # fmt: skip


def test_a_command_prints_no_tensorflow_start_up_lines_unless_verbose():
    quiet = _keras_ann("presets")
    assert quiet.returncode == 0 and "ann_r50_d8_cityscapes_512x1024_40k" in quiet.stdout
    assert quiet.stderr == ""
    verbose = _keras_ann("--verbose", "presets")
    assert verbose.returncode == 0 and verbose.stdout == quiet.stdout
    if not any(line in verbose.stderr for line in NATIVE_LINES):  # this TensorFlow build says nothing anyway
        return
    assert not any(line in quiet.stderr for line in NATIVE_LINES)


def test_an_error_of_the_command_is_still_shown():
    result = _keras_ann("evaluate", "no-such-model.keras", "--data-root", ".")
    assert result.returncode != 0 and "error" in result.stderr and "no-such-model.keras" in result.stderr


def test_fit_on_a_dataset_does_not_warn_about_shuffle():
    import tensorflow as tf

    import keras_ann

    model = keras_ann.ANNSegmenter(backbone="resnet18_d8", num_classes=2)
    model.compile()
    data = tf.data.Dataset.from_tensor_slices((np.zeros((2, 33, 33, 3), "float32"), np.zeros((2, 33, 33), "int32")))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(data.batch(2), epochs=1, verbose=0)
    assert not [w for w in caught if "shuffle" in str(w.message)]
