"""keras_ann.callbacks.TensorBoardEvaluation: each evaluation's per-class
IoU and a fixed set of validation images with ground truth and prediction,
read back from the event files."""

import numpy as np
import pytest

from keras_ann import ANNSegmenter
from keras_ann.callbacks import MeanIoUEvaluation, TensorBoardEvaluation
from keras_ann.test_protocol import TestProtocol
from testing_utils import read_events

PALETTE = ((10, 200, 30), (220, 20, 60))


def test_each_evaluation_writes_per_class_iou_and_the_same_images_with_ground_truth_and_prediction(tmp_path):
    model = ANNSegmenter(backbone="resnet18_d8", num_classes=2)
    model.test_protocol = TestProtocol(class_names=("sky", "road"), palette=PALETTE)
    model.compile()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 40, 56, 3)).astype(np.uint8)
    labels = np.zeros((3, 40, 56), np.int32)
    labels[:, 20:] = 1
    labels[0, :2, :2] = 255  # ignored pixels, drawn in black
    pairs = [(images[i : i + 1], labels[i : i + 1]) for i in range(3)]
    evaluation = MeanIoUEvaluation(pairs, every_n_epochs=2)
    board = TensorBoardEvaluation(tmp_path, evaluation, pairs[:2], max_side=28)
    model.fit(images.astype("float32"), labels, batch_size=3, epochs=4, callbacks=[evaluation, board], verbose=0)

    events = read_events(tmp_path)
    # Evaluations after epochs 2 and 4: iterations 2 and 4 (one batch an epoch).
    assert board.written == [2, 4]
    assert {tag for tag in events} == {"val/IoU/sky", "val/IoU/road", "val/predictions"}
    for name, index in (("sky", 0), ("road", 1)):
        steps, values = zip(*events[f"val/IoU/{name}"])
        assert steps == (2, 4)
        assert values == pytest.approx([results["IoU"][index] for results in evaluation.history])
    steps, figures = zip(*events["val/predictions"])
    assert steps == (2, 4)
    figure = np.asarray(figures[-1].convert("RGB"))
    np.testing.assert_array_equal(figure, np.asarray(board.figure()))  # the final model's predictions
    assert figure.shape[0] > 2 * 20 and figure.shape[1] > 3 * 28
    # The ground truth in the palette's colours, ignored pixels in black.
    colours = {tuple(c) for c in figure.reshape(-1, 3)}
    assert set(PALETTE) <= colours and (0, 0, 0) in colours


def test_a_sample_that_is_not_an_image_and_its_label_map_is_refused_naming_the_shapes(tmp_path):
    model = ANNSegmenter(backbone="resnet18_d8", num_classes=2)
    evaluation = MeanIoUEvaluation([])
    board = TensorBoardEvaluation(tmp_path, evaluation, [(np.zeros((8, 8, 3)), np.zeros((8, 9)))])
    board.set_model(model)
    with pytest.raises(ValueError, match=r"\(H, W, 3\) image and its \(H, W\) label map, got shapes \(8, 8, 3\) and \(8, 9\)"):
        board.figure()
