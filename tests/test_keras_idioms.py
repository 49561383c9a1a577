"""Keras idioms on ANNSegmenter: they work, or fail loudly (issue 14 item 3)."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_ann
from keras_ann.losses import SegmentationCrossEntropy
from keras_ann.metrics import PixelAccuracy, SegmentationIoU

NUM_CLASSES = 3


def tiny_model(**kwargs):
    backbone = keras_ann.ResNetBackbone(depth=18, output_stride=8, stem_channels=8, base_channels=8)
    return keras_ann.ANNSegmenter(backbone=backbone, num_classes=NUM_CLASSES, **kwargs)


def data(n=2, size=32, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 255, (n, size, size, 3)).astype("float32")
    labels = rng.integers(0, NUM_CLASSES, (n, size, size)).astype("int32")
    labels[:, :4] = 255
    return images, labels


# === compile(): losses and metrics ===


def test_sparse_categorical_crossentropy_string_is_the_logits_loss_with_ignore_index(capsys):
    model = tiny_model(ignore_index=7)
    model.compile(loss="sparse_categorical_crossentropy")
    assert isinstance(model.loss, SegmentationCrossEntropy) and model.loss.ignore_index == 7
    assert "taken as SegmentationCrossEntropy(ignore_index=7)" in capsys.readouterr().out


def test_categorical_crossentropy_string_is_refused():
    with pytest.raises(ValueError, match="one-hot labels.*argmax"):
        tiny_model().compile(loss="categorical_crossentropy")


@pytest.mark.parametrize(
    "loss", [keras.losses.SparseCategoricalCrossentropy(), keras.losses.CategoricalCrossentropy()]
)
def test_probability_losses_are_refused(loss):
    with pytest.raises(ValueError, match="from_logits=False.*outputs logits"):
        tiny_model().compile(loss=loss)


def test_logits_loss_objects_are_accepted():
    model = tiny_model()
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=255)
    model.compile(loss=loss)
    assert model.loss is loss


def test_default_metrics_are_reference_miou_and_pixel_accuracy():
    model = tiny_model()
    model.compile()
    images, labels = data()
    result = model.evaluate(images, labels, verbose=0, return_dict=True)
    logits = model.predict(images, verbose=0)
    iou = SegmentationIoU(NUM_CLASSES)
    iou.update_state(labels, logits)
    predicted = logits.argmax(-1)
    valid = labels != 255
    np.testing.assert_allclose(result["mean_iou"], float(iou.result()), rtol=1e-5)
    np.testing.assert_allclose(
        result["pixel_accuracy"], 100 * (predicted == labels)[valid].mean(), rtol=1e-5  # percent, as mIoU
    )


def test_pixel_accuracy_leaves_void_out_and_accumulates():
    metric = PixelAccuracy()
    labels = np.array([[[0, 1, 255, 255]]])
    logits = np.eye(2, dtype="float32")[[[[0, 0, 0, 0]]]]  # predicts class 0 everywhere
    metric.update_state(labels, logits)
    assert float(metric.result()) == pytest.approx(50.0)  # void pixels not counted wrong; percent
    metric.update_state(np.array([[[0, 0, 0, 0]]]), logits)
    assert float(metric.result()) == pytest.approx(500 / 6)
    restored = PixelAccuracy.from_config(metric.get_config())
    assert restored.ignore_index == 255


# === losses logged: training and validation the same quantity ===


def test_loss_is_decode_plus_aux_in_training_and_validation():
    model = tiny_model()
    model.compile()
    images, labels = data()
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=5)
    history = model.fit(
        images, labels, epochs=1, batch_size=2, validation_data=(images, labels), callbacks=[stop], verbose=0
    ).history
    for prefix in ("", "val_"):
        total = history[f"{prefix}decode_loss"][0] + history[f"{prefix}aux_loss"][0]
        assert history[f"{prefix}loss"][0] == pytest.approx(total, rel=1e-5)
    # What EarlyStopping compares is the total, auxiliary loss included.
    assert stop.best == pytest.approx(history["val_loss"][0])
    assert history["val_aux_loss"][0] > 0

    # val_loss is decode + 0.4 * aux, computed by hand in inference mode.
    outputs = model(images, training=False, return_auxiliary=True)
    loss = SegmentationCrossEntropy()
    decode = float(loss(labels, outputs["logits"]))
    aux = 0.4 * float(loss(labels, outputs["aux_logits"]))
    result = model.evaluate(images, labels, verbose=0, return_dict=True)
    assert result["decode_loss"] == pytest.approx(decode, rel=1e-4)
    assert result["aux_loss"] == pytest.approx(aux, rel=1e-4)
    assert result["loss"] == pytest.approx(decode + aux, rel=1e-4)


def test_without_auxiliary_head_loss_is_decode_loss():
    model = tiny_model(auxiliary_head=False)
    model.compile()
    images, labels = data()
    result = model.evaluate(images, labels, verbose=0, return_dict=True)
    assert "aux_loss" not in result
    assert result["loss"] == pytest.approx(result["decode_loss"], rel=1e-6)


def test_call_in_training_mode_returns_logits():
    model = tiny_model()
    images, _ = data(1)
    out = model(images, training=True)
    assert not isinstance(out, dict) and tuple(out.shape) == (1, 32, 32, NUM_CLASSES)


# === dict data (Keras 3 augmentation layers, KerasHub) ===


def test_dict_arrays_in_fit_evaluate_predict():
    model = tiny_model()
    model.compile()
    images, labels = data()
    batch = {"images": images, "segmentation_masks": labels[..., None]}
    model.fit(batch, epochs=1, batch_size=2, validation_data=batch, verbose=0)
    result = model.evaluate(batch, verbose=0, return_dict=True)
    expected = model.evaluate(images, labels, verbose=0, return_dict=True)
    assert result["loss"] == pytest.approx(expected["loss"], rel=1e-6)
    np.testing.assert_allclose(
        model.predict(batch, verbose=0), model.predict(images, verbose=0), rtol=1e-6
    )


def test_dict_datasets_in_fit_evaluate_predict():
    model = tiny_model()
    model.compile()
    images, labels = data()
    ds = tf.data.Dataset.from_tensor_slices({"images": images, "segmentation_masks": labels}).batch(2)
    history = model.fit(ds, epochs=1, validation_data=ds, verbose=0).history
    assert np.isfinite(history["val_loss"][0])
    result = model.evaluate(ds, verbose=0, return_dict=True)
    expected = model.evaluate(images, labels, verbose=0, return_dict=True)["loss"]
    assert result["loss"] == pytest.approx(expected, rel=1e-5)
    assert model.predict(ds, verbose=0).shape == (2, 32, 32, NUM_CLASSES)


def test_dict_without_images_key_is_refused_naming_the_keys():
    model = tiny_model()
    model.compile()
    images, labels = data()
    with pytest.raises(ValueError, match=r"keys \['pixels', 'segmentation_masks'\].*'images'"):
        model.fit({"pixels": images, "segmentation_masks": labels}, verbose=0)


def test_one_hot_masks_are_refused():
    model = tiny_model()
    model.compile()
    images, labels = data()
    one_hot = np.eye(NUM_CLASSES, dtype="int32")[np.where(labels == 255, 0, labels)]
    with pytest.raises(ValueError, match="label maps of shape"):
        model.fit({"images": images, "segmentation_masks": one_hot}, verbose=0)


# === pixel scale ===


def test_unit_scale_images_warn_once():
    model = tiny_model()
    images, _ = data(1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.predict(images, verbose=0)
        assert not [w for w in caught if "0..255" in str(w.message)]
        model.predict(images / 255.0, verbose=0)
        model.predict(images / 255.0, verbose=0)
        model(images / 255.0)
    assert len([w for w in caught if "[0, 1]" in str(w.message)]) == 1


# === the documented example ===


def test_augment_with_keras_layers_example_runs(capsys):
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).parents[1] / "examples" / "augment_with_keras_layers.py"
    spec = importlib.util.spec_from_file_location("augment_example", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    history = example.main(size=32, steps=1).history
    assert {"loss", "decode_loss", "aux_loss", "val_loss", "val_mean_iou", "val_pixel_accuracy"} <= set(history)
    assert all(np.isfinite(v[-1]) for v in history.values())
    assert "predicted label maps: (2, 32, 32)" in capsys.readouterr().out
