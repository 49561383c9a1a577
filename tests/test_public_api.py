"""The public surface: what `import keras_ann` imports, what it reaches
lazily (PEP 562), and that model-only use on JAX or PyTorch, and the class
names and palettes, import no TensorFlow."""

import importlib
import importlib.util
import os
import pkgutil
import subprocess
import sys
import textwrap

import pytest

import keras_ann
import keras_ann.data

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# Eager at `import keras_ann`: the modules a model needs to be built, fitted
# and loaded from a `.keras` file (they register its Keras objects).
EAGER = {"backbones", "checks", "layers", "losses", "metrics", "models", "ops", "optimizers", "schedules", "test_protocol"}
# The list, and the modules being split out of training.py.
LAZY = {
    "analysis", "attention_maps", "benchmark", "budget", "callbacks", "data", "demo", "distribute", "evaluation",
    "export", "file_lists", "hub", "inference", "precision", "presets", "quantize", "recipes", "resizing",
    "tiled_inference", "training", "visualization", "weights", "work_dir",
}  # fmt: skip


def _run_python(code, backend):
    env = dict(os.environ, KERAS_BACKEND=backend, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
    env.setdefault("CUDA_VISIBLE_DEVICES", "")
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stdout


def _require_backend(backend):
    if importlib.util.find_spec(backend) is None:
        if os.environ.get("CI"):
            pytest.fail(f"{backend} is required in CI but not installed")
        pytest.skip(f"{backend} is not installed")


def test_lazy_table_is_the_stated_rule():
    assert set(keras_ann._LAZY_SUBMODULES) == LAZY
    assert set(keras_ann.__all__) >= EAGER
    assert not set(keras_ann.__all__) & LAZY  # `import *` stays TensorFlow-free
    assert set(dir(keras_ann)) >= LAZY | EAGER | {"ANNSegmenter", "ResNetBackbone"}


def test_every_module_of_the_package_is_eager_or_lazy():
    # A new top-level module must be placed on one side of the rule.
    on_disk = {m.name for m in pkgutil.iter_modules(keras_ann.__path__)}
    command_line = {"cli", "quiet_start"}  # run by `keras-ann`, not part of the library's namespace
    assert on_disk - command_line <= EAGER | LAZY, on_disk - command_line - EAGER - LAZY


@pytest.mark.parametrize("name", sorted(LAZY))
def test_lazy_submodule_resolves_on_access(name):
    if importlib.util.find_spec(f"keras_ann.{name}") is None:
        # Listed ahead of its module (callbacks/, distribute.py are being
        # split out of training.py): access must fail then, and only then.
        with pytest.raises(ModuleNotFoundError, match=f"keras_ann.{name}"):
            getattr(keras_ann, name)
        return
    module = getattr(keras_ann, name)
    assert module is importlib.import_module(f"keras_ann.{name}")
    assert getattr(keras_ann, name) is module


def test_missing_lazy_module_fails_only_when_accessed(monkeypatch):
    monkeypatch.setattr(keras_ann, "_LAZY_SUBMODULES", keras_ann._LAZY_SUBMODULES + ("not_a_module",))
    assert "not_a_module" in dir(keras_ann)
    with pytest.raises(ModuleNotFoundError, match="keras_ann.not_a_module"):
        keras_ann.not_a_module


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="keras_ann.*no_such_name"):
        keras_ann.no_such_name
    with pytest.raises(AttributeError, match="keras_ann.data.*no_such_name"):
        keras_ann.data.no_such_name
    assert not hasattr(keras_ann, "no_such_name")


def test_data_names_resolve_to_their_modules():
    for name, module in keras_ann.data._NAMES.items():
        value = getattr(keras_ann.data, name)
        assert value is getattr(importlib.import_module(f"keras_ann.data.{module}"), name)
    assert sorted(keras_ann.data.__all__) == sorted(keras_ann.data._NAMES)
    from keras_ann.data import SegmentationDataset, camvid  # noqa: F401  (the from-import form)


def test_data_submodules_are_listed():
    on_disk = {m.name for m in pkgutil.iter_modules(keras_ann.data.__path__)}
    assert on_disk <= set(keras_ann.data._SUBMODULES), on_disk - set(keras_ann.data._SUBMODULES)
    assert keras_ann.data.metainfo is importlib.import_module("keras_ann.data.metainfo")


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_model_only_use_imports_no_tensorflow(backend):
    _require_backend(backend)
    out = _run_python(
        f"""
        import sys
        import numpy as np
        import keras
        import keras_ann

        assert keras.config.backend() == {backend!r}
        model = keras_ann.ANNSegmenter(backbone="resnet18_d8", num_classes=3)
        images = np.random.default_rng(0).uniform(0, 255, (1, 33, 41, 3)).astype("float32")
        assert tuple(model(images).shape) == (1, 33, 41, 3)
        logits = keras_ann.inference.predict_logits(model, images, mode="slide", crop_size=24, stride=17)
        assert tuple(logits.shape) == (1, 33, 41, 3), logits.shape
        keras_ann.presets, keras_ann.recipes, keras_ann.metrics.SegmentationIoU
        # The recipes read their numbers from the data configs (TensorFlow-free);
        # the tf.data pipeline module must stay unloaded.
        print("tensorflow" in sys.modules, "keras_ann.data.pipeline" in sys.modules)
        """,
        backend,
    )
    assert out.split()[-2:] == ["False", "False"], out


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_class_names_and_palettes_import_no_tensorflow(backend):
    _require_backend(backend)
    out = _run_python(
        """
        import sys
        from keras_ann.data.metainfo import CITYSCAPES_CLASSES, CITYSCAPES_PALETTE, METAINFO
        from keras_ann.data import DatasetError, METAINFO as same
        import keras_ann.data

        assert same is METAINFO and len(CITYSCAPES_CLASSES) == len(CITYSCAPES_PALETTE) == 19
        assert "camvid" in dir(keras_ann.data) and "Cityscapes" in dir(keras_ann.data)
        print("tensorflow" in sys.modules)
        keras_ann.data.Cityscapes  # the loaders do import it, on access
        print("tensorflow" in sys.modules)
        """,
        backend,
    )
    assert out.split()[-2:] == ["False", "True"], out
