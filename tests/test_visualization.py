"""Palettes, overlays, confusion-matrix and segmentation figures."""

import sys

import numpy as np
import pytest
from testing_utils import require

from keras_ann import visualization as vis
from keras_ann.data.metainfo import CAMVID_CLASSES, CAMVID_PALETTE, CITYSCAPES_PALETTE


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")


def _read_png(path):
    from PIL import Image

    with Image.open(path) as image:
        assert image.format == "PNG"
        return np.asarray(image)


def test_dataset_palette_is_the_dataset_metainfo():
    np.testing.assert_array_equal(vis.dataset_palette("camvid"), np.asarray(CAMVID_PALETTE, np.uint8))
    assert vis.dataset_palette("cityscapes").shape == (len(CITYSCAPES_PALETTE), 3)
    with pytest.raises(ValueError, match="dataset"):
        vis.dataset_palette("kitti")


def test_overlay_blends_colours_and_leaves_ignored_pixels():
    image = np.array([[[100, 50, 0], [10, 20, 30]], [[0, 0, 0], [255, 255, 255]]], np.uint8)
    labels = np.array([[0, 255], [1, 1]])
    palette = [[200, 0, 100], [0, 255, 0]]
    out = vis.overlay(image, labels, palette, alpha=0.25)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out[0, 0], [125, 38, 25])  # 0.75 * image + 0.25 * colour, rounded
    np.testing.assert_array_equal(out[0, 1], image[0, 1])  # ignore_index: the image shows through
    np.testing.assert_array_equal(out[1, 1], [191, 255, 191])
    np.testing.assert_array_equal(vis.overlay(image, labels, palette, alpha=1.0)[1, 0], [0, 255, 0])


def test_overlay_rejects_bad_input():
    image = np.zeros((4, 5, 3), np.uint8)
    with pytest.raises(ValueError, match="labels"):
        vis.overlay(image, np.zeros((5, 4), int), [[0, 0, 0]])
    with pytest.raises(ValueError, match="image"):
        vis.overlay(np.zeros((4, 5)), np.zeros((4, 5), int), [[0, 0, 0]])
    with pytest.raises(ValueError, match="alpha"):
        vis.overlay(image, np.zeros((4, 5), int), [[0, 0, 0]], alpha=1.5)
    with pytest.raises(ValueError, match="no colour"):
        vis.overlay(image, np.full((4, 5), 3), [[0, 0, 0]])


def test_normalize_confusion_rows_columns_and_all():
    confusion = np.array([[6, 2, 0], [1, 3, 0], [0, 0, 0]])
    rows = vis.normalize_confusion(confusion, "true")
    np.testing.assert_allclose(rows[0], [0.75, 0.25, 0.0])
    np.testing.assert_allclose(rows[1], [0.25, 0.75, 0.0])
    np.testing.assert_array_equal(rows[2], [0.0, 0.0, 0.0])  # a class absent from the labels
    columns = vis.normalize_confusion(confusion, "pred")
    np.testing.assert_allclose(columns[:, 0], [6 / 7, 1 / 7, 0.0])
    np.testing.assert_allclose(vis.normalize_confusion(confusion, "all").sum(), 1.0)
    np.testing.assert_array_equal(vis.normalize_confusion(confusion, None), confusion)
    with pytest.raises(ValueError, match="normalize"):
        vis.normalize_confusion(confusion, "rows")
    with pytest.raises(ValueError, match="confusion"):
        vis.normalize_confusion(np.zeros((2, 3)))


def test_plot_confusion_matrix_writes_png_with_normalised_rows(tmp_path):
    require("matplotlib")
    rng = np.random.default_rng(0)
    confusion = rng.integers(0, 50, (11, 11)) + 400 * np.eye(11, dtype=np.int64)
    path = tmp_path / "confusion.png"
    fig = vis.plot_confusion_matrix(confusion, CAMVID_CLASSES, output=str(path))
    pixels = _read_png(path)
    assert pixels.ndim == 3 and pixels.shape[0] > 300 and pixels.shape[1] > 300
    shown = fig.axes[0].images[0].get_array()
    np.testing.assert_allclose(np.asarray(shown).sum(axis=1), np.ones(11), rtol=1e-12)
    np.testing.assert_allclose(np.diag(shown), np.diag(confusion) / confusion.sum(axis=1))
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == list(CAMVID_CLASSES)
    assert len(fig.axes[0].texts) == 121  # annotated cells
    counts = vis.plot_confusion_matrix(confusion, normalize=None)
    np.testing.assert_array_equal(counts.axes[0].images[0].get_array(), confusion)


def test_plot_confusion_matrix_rejects_bad_shapes():
    require("matplotlib")
    with pytest.raises(ValueError, match="square"):
        vis.plot_confusion_matrix(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="class_names"):
        vis.plot_confusion_matrix(np.eye(3), ["a", "b"])


def test_plot_segmentation_writes_png(tmp_path):
    require("matplotlib")
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (2, 36, 48, 3), dtype=np.uint8)
    labels = rng.integers(0, 11, (2, 36, 48))
    labels[0, :4] = 255
    predictions = rng.integers(0, 11, (2, 36, 48))
    path = tmp_path / "segmentation.png"
    fig = vis.plot_segmentation(
        images, predictions, labels, vis.dataset_palette("camvid"), CAMVID_CLASSES, output=str(path)
    )
    assert _read_png(path).shape[2] in (3, 4)
    shown = [ax.images[0].get_array() for ax in fig.axes[:3]]
    np.testing.assert_array_equal(shown[0], images[0])
    np.testing.assert_array_equal(shown[1], vis.colorize(labels[0], CAMVID_PALETTE))
    np.testing.assert_array_equal(shown[2], vis.colorize(predictions[0], CAMVID_PALETTE))
    assert len(fig.axes) == 6 and len(fig.legends[0].get_texts()) == 11
    two_columns = vis.plot_segmentation(images[:1], predictions[:1])
    assert len(two_columns.axes) == 2


def test_plot_segmentation_rejects_mismatched_maps():
    require("matplotlib")
    images = np.zeros((1, 8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="must match"):
        vis.plot_segmentation(images, np.zeros((1, 8, 9), int))
    with pytest.raises(ValueError, match="labels"):
        vis.plot_segmentation(images, np.zeros((1, 8, 8), int), labels=np.zeros((2, 8, 8), int))
    with pytest.raises(ValueError, match="equal length"):
        vis.plot_segmentation(images, np.zeros((2, 8, 8), int))


@pytest.mark.parametrize("palette_arg, expected", [(None, "camvid"), ("cityscapes", "cityscapes")])
def test_cli_predict_writes_labels_and_an_overlay_in_the_dataset_colours(tmp_path, palette_arg, expected):
    from PIL import Image

    import keras_ann
    from keras_ann import cli

    backbone = keras_ann.ResNetBackbone(depth=18, output_stride=8, stem_channels=8, base_channels=8)
    model = keras_ann.ANNSegmenter(backbone, num_classes=11, head_channels=16, project_channels=8, auxiliary_channels=8)
    path = str(tmp_path / "model.keras")
    model.save(path)
    image = np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    Image.fromarray(image).save(tmp_path / "street.png")
    argv = ["predict", path, str(tmp_path / "street.png"), "--output-dir", str(tmp_path / "out")]
    cli.main(argv + ([] if palette_arg is None else ["--palette", palette_arg]))

    labels = _read_png(tmp_path / "out" / "street_labels.png")
    np.testing.assert_array_equal(labels, model.predict_labels(image[None].astype("float32"))[0])
    with Image.open(tmp_path / "out" / "street_labels.png") as png:  # class ids, shown in the class colours
        assert png.mode == "P"
        colours = np.asarray(png.getpalette()[: 3 * 11]).reshape(11, 3)
    np.testing.assert_array_equal(colours, vis.dataset_palette(expected)[:11])
    panels = _read_png(tmp_path / "out" / "street_overlay.png")
    want = vis.overlay(image, labels, vis.dataset_palette(expected), alpha=0.5)
    right = panels[: image.shape[0], -image.shape[1] :]
    assert right.shape == want.shape
    np.testing.assert_array_equal(right, want)
    # Below the pictures, a legend: a swatch of the first predicted class's colour.
    legend = panels[image.shape[0] :].reshape(-1, 3)
    first = vis.dataset_palette(expected)[np.unique(labels)[0]]
    assert (legend == first).all(axis=1).sum() >= 100
