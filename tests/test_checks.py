"""Label values of arrays given to `fit` / `evaluate`: refused before the
first step with the values, their counts and the fix."""

import keras
import numpy as np
import pytest

from keras_ann import ANNSegmenter
from keras_ann.checks import check_label_values, check_labels


@pytest.fixture(scope="module")
def model():
    model = ANNSegmenter(backbone="resnet18_d8", num_classes=11)
    model.compile()
    return model


def _data(value=None, dtype="int32"):
    x = np.full((2, 32, 32, 3), 100.0, "float32")
    y = np.zeros((2, 32, 32), dtype)
    y[:, :4] = 3
    if value is not None:
        y[0, 0, :5] = value
    return x, y


def test_a_value_equal_to_num_classes_names_ignore_index(model):
    x, y = _data(11)
    with pytest.raises(ValueError) as info:
        model.fit(x, y, epochs=1, verbose=0)
    message = str(info.value)
    assert "`y` holds labels outside [0, 11) that are not the ignore index 255: 11 (5 pixels)" in message
    assert "num_classes=11" in message and "ANNSegmenter(..., ignore_index=11)" in message


def test_label_minus_one_refused(model):
    x, y = _data(-1)
    with pytest.raises(ValueError, match=r"negative labels: -1 \(5 pixels\).*last class.*ignore_index=-1"):
        model.fit(x, y, epochs=1, verbose=0)


def test_non_integer_float_labels_refused(model):
    x, y = _data(0.5, "float32")
    with pytest.raises(ValueError, match=r"non-integer labels, e.g. \[0.5\] \(5 pixels\).*nearest-neighbour"):
        model.fit(x, y, epochs=1, verbose=0)


def test_labels_divided_by_255_named(model):
    x, y = _data(None, "float32")
    y = y / 255.0
    with pytest.raises(ValueError, match=r"non-integer.*divided by 255"):
        model.fit(x, y, epochs=1, verbose=0)


def test_nan_labels_refused(model):
    x, y = _data(np.nan, "float32")
    with pytest.raises(ValueError, match=r"5 NaN or infinite labels"):
        model.fit(x, y, epochs=1, verbose=0)


def test_bad_validation_labels_refused_before_training(model):
    x, y = _data()
    xv, yv = _data(12)
    with pytest.raises(ValueError, match=r"`validation_data\[1\]` holds labels outside \[0, 11\).*12 \(5 pixels\)"):
        model.fit(x, y, validation_data=(xv, yv), epochs=1, verbose=0)


def test_evaluate_refuses_bad_labels(model):
    x, y = _data(200)
    with pytest.raises(ValueError, match=r"200 \(5 pixels\)"):
        model.evaluate(x, y, verbose=0)


def test_eager_tensors_are_checked(model):
    x, y = _data(11)
    with pytest.raises(ValueError, match=r"11 \(5 pixels\)"):
        model.fit(keras.ops.convert_to_tensor(x), keras.ops.convert_to_tensor(y), epochs=1, verbose=0)


def test_valid_labels_pass():
    x, y = _data(255)  # the ignore index
    check_labels(y, x.shape, "y", num_classes=11)
    check_label_values(y.astype("float32"), 11)  # integral floats are class indices
    x, y = _data(11)
    check_labels(y, x.shape, "y", num_classes=11, ignore_index=11)  # 11 declared void
    x, y = _data(-1)
    check_label_values(y, 11, ignore_index=-1)


def test_several_values_above_listed_with_counts():
    y = np.array([[0, 11, 12, 12, 254]])
    with pytest.raises(ValueError, match=r"11 \(1 pixels\), 12 \(2 pixels\), 254 \(1 pixels\).*set void pixels to the ignore index 255"):
        check_label_values(y, 11, name="y")


def test_symbolic_labels_are_not_read():
    y = keras.KerasTensor((None, 8, 8), "int32")
    check_labels(y, (None, 8, 8, 3), "y", num_classes=2)


def test_binary_0_255_masks_with_two_classes_are_refused_naming_the_label_map():
    model = ANNSegmenter(backbone="resnet18_d8", num_classes=2)
    model.compile()
    x = np.full((2, 32, 32, 3), 100.0, "float32")
    y = np.zeros((2, 32, 32), "uint8")
    y[:, 8:24, 8:24] = 255  # as image tools write masks
    with pytest.raises(ValueError) as info:
        model.fit(x, y, epochs=1, verbose=0)
    message = str(info.value)
    assert "`y` holds only 0 and 255, but 255 is the ignore index" in message
    assert "np.where(masks == 255, 1, masks)" in message and "--label-map 255:1" in message
    # Mapped, they train.
    model.fit(x, np.where(y == 255, 1, y), epochs=1, verbose=0)


def test_one_hot_masks_are_refused_with_the_argmax_fix(model):
    x, y = _data()
    one_hot = np.eye(11, dtype="float32")[y]
    with pytest.raises(ValueError, match=r"one-hot|argmax"):
        model.fit(x, one_hot, epochs=1, verbose=0)
