"""Pictures of segmentations: coloured label maps, overlays, image / ground
truth / prediction figures, confusion matrices and training curves.

`default_palette`, `dataset_palette`, `colorize`, `overlay`,
`side_by_side`, `legend`, `segmentation_figure`, `overlay_figure` and
`save_label_map` need
only NumPy and Pillow (dependencies of keras-ann: `keras-ann demo` and
`keras-ann predict` draw with them); the `plot_*` functions draw with
matplotlib (the optional `plot` extra: `pip install keras-ann[plot]`), which
is imported only when they are called, with the non-interactive Agg backend
unless pyplot is already loaded (e.g. in a notebook).
"""

import numpy as np


def default_palette(num_classes, seed=0):
    """A fixed, well-spread RGB palette for `num_classes` classes."""
    rng = np.random.default_rng(seed)
    palette = rng.integers(0, 256, (max(num_classes, 1), 3), dtype=np.uint8)
    return palette


def dataset_palette(dataset):
    """The RGB palette of a supported dataset, as a `(num_classes, 3)` uint8
    array (`"cityscapes"`, `"ade20k"`, `"pascal_voc"`, `"camvid"`).

    Example:

    >>> dataset_palette("camvid").shape
    (11, 3)
    """
    from keras_ann.data.metainfo import METAINFO

    if dataset not in METAINFO:
        raise ValueError(f"`dataset` must be one of {sorted(METAINFO)}, got {dataset!r}.")
    return np.asarray(METAINFO[dataset]["palette"], np.uint8)


def palette_for_classes(num_classes):
    """The palette of a model with `num_classes` classes and no colours of
    its own: the dataset's whose class count it has, if exactly one has it,
    else `default_palette`.

    Example:

    >>> palette_for_classes(11).tolist() == dataset_palette("camvid").tolist()
    True
    >>> len(palette_for_classes(5))
    5
    """
    from keras_ann.data.metainfo import METAINFO

    matches = [name for name, info in METAINFO.items() if len(info["classes"]) == num_classes]
    return dataset_palette(matches[0]) if len(matches) == 1 else default_palette(num_classes)


def colorize(labels, palette, ignore_index=255, ignore_color=(0, 0, 0)):
    """Colour an `(H, W)` label map with an `(num_classes, 3)` palette.

    Args:
        labels: integer array `(H, W)`.
        palette: `(num_classes, 3)` uint8 RGB colours.
        ignore_index: label drawn in `ignore_color`.
        ignore_color: RGB triple.

    Returns:
        `(H, W, 3)` uint8 image.

    Example:

    >>> colorize(np.array([[0, 1], [255, 1]]), np.array([[10, 20, 30], [1, 2, 3]], np.uint8))[1, 0].tolist()
    [0, 0, 0]
    """
    labels = np.asarray(labels)
    palette = np.asarray(palette, np.uint8)
    valid = (labels >= 0) & (labels < len(palette))
    out = np.empty(labels.shape + (3,), np.uint8)
    out[...] = np.asarray(ignore_color, np.uint8)
    out[valid] = palette[labels[valid]]
    if ((labels != ignore_index) & ~valid).any():
        bad = np.unique(labels[(labels != ignore_index) & ~valid])
        raise ValueError(f"Labels {bad.tolist()} have no colour in a palette of {len(palette)} classes.")
    return out


def side_by_side(panels, titles=None, gap=4):
    """Join `(H, W, 3)` uint8 panels horizontally into one Pillow image,
    with optional titles above each panel."""
    from PIL import Image, ImageDraw

    height = max(p.shape[0] for p in panels)
    title_h = 14 if titles else 0
    width = sum(p.shape[1] for p in panels) + gap * (len(panels) - 1)
    canvas = Image.new("RGB", (width, height + title_h), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    x = 0
    for i, panel in enumerate(panels):
        canvas.paste(Image.fromarray(np.asarray(panel, np.uint8)), (x, title_h))
        if titles:
            draw.text((x + 2, 1), titles[i], fill=(0, 0, 0))
        x += panel.shape[1] + gap
    return canvas


def legend(class_names, palette, width, swatch=12, pad=4):
    """A legend strip: a colour swatch and the name of each class, wrapped
    into rows `width` pixels wide (Pillow only).

    Args:
        class_names: the names, one per class.
        palette: `(num_classes, 3)` RGB colours (at least one per name).
        width: the strip's width in pixels.
        swatch: the side of each colour square in pixels.
        pad: pixels between entries and around the strip.

    Returns:
        A Pillow RGB image `width` pixels wide.

    Example:

    >>> strip = legend(["sky", "road"], [[128, 128, 128], [128, 64, 128]], width=200)
    >>> strip.size[0], strip.getpixel((6, 8))
    (200, (128, 128, 128))
    """
    from PIL import Image, ImageDraw, ImageFont

    palette = np.asarray(palette, np.uint8)
    if len(palette) < len(class_names):
        raise ValueError(f"`palette` has {len(palette)} colours for {len(class_names)} class names.")
    font = ImageFont.load_default()
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    entries = [swatch + 3 + int(measure.textlength(str(name), font=font)) + 2 * pad for name in class_names]
    rows, x = [[]], pad
    for index, entry in enumerate(entries):
        if rows[-1] and x + entry > width:
            rows.append([])
            x = pad
        rows[-1].append((index, x))
        x += entry
    row_height = swatch + pad
    canvas = Image.new("RGB", (width, len(rows) * row_height + pad), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for r, row in enumerate(rows):
        y = pad + r * row_height
        for index, x in row:
            draw.rectangle((x, y, x + swatch - 1, y + swatch - 1), fill=tuple(int(c) for c in palette[index]),
                           outline=(64, 64, 64))  # fmt: skip
            draw.text((x + swatch + 3, y), str(class_names[index]), fill=(0, 0, 0), font=font)
    return canvas


def _checked_panels(images, predictions, labels, palette, ignore_index):
    """The figure functions' inputs as lists of arrays of matching sizes,
    and the palette (default: over the largest label)."""
    images = [np.asarray(i) for i in images]
    predictions = [np.asarray(p) for p in predictions]
    if len(images) != len(predictions) or not images:
        raise ValueError(
            f"`images` and `predictions` must be non-empty and of equal length, "
            f"got {len(images)} and {len(predictions)}."
        )
    if labels is not None:
        labels = [np.asarray(label) for label in labels]
        if len(labels) != len(images):
            raise ValueError(f"`labels` has {len(labels)} maps for {len(images)} images.")
    for n, (image, prediction) in enumerate(zip(images, predictions)):
        if image.ndim != 3 or image.shape[-1] != 3:
            raise ValueError(f"`images[{n}]` must have shape (H, W, 3), got {image.shape}.")
        shapes = [prediction.shape] + ([labels[n].shape] if labels is not None else [])
        if any(shape != image.shape[:2] for shape in shapes):
            raise ValueError(
                f"Image {n} is {image.shape[:2]} but its label maps are {shapes}: they must match."
            )
    if palette is None:
        largest = max(int(np.max(p)) for p in predictions)
        if labels is not None:
            largest = max([largest] + [int(np.max(np.where(l == ignore_index, 0, l))) for l in labels])
        palette = default_palette(largest + 1)
    palette = np.asarray(palette, np.uint8)
    return images, predictions, labels, palette


def segmentation_figure(
    images,
    predictions,
    labels=None,
    palette=None,
    class_names=None,
    ignore_index=255,
    titles=("image", "ground truth", "prediction"),
    zoom=1,
):
    """Image / ground truth / prediction, one row per image, with a legend
    of the classes' colours, as one Pillow image (no matplotlib needed).

    Args:
        images: `(N, H, W, 3)` RGB images in [0, 255] (or a list of them).
        predictions: `(N, H, W)` predicted label maps.
        labels: optional `(N, H, W)` ground truth (`ignore_index` in black);
            without it the figure has two columns.
        palette: `(num_classes, 3)` RGB colours; defaults to
            `default_palette` over the largest label.
        class_names: optional names for the legend.
        ignore_index: label value drawn in black.
        titles: column titles.
        zoom: positive int, each pixel drawn as a `zoom` x `zoom` square
            (for small images).

    Returns:
        A Pillow RGB image (`.save("figure.png")` writes it).

    Example:

    >>> images = np.zeros((2, 20, 30, 3), np.uint8)
    >>> figure = segmentation_figure(images, np.zeros((2, 20, 30), int), np.ones((2, 20, 30), int),
    ...                              class_names=["a", "b"])
    >>> figure.size[0] > 3 * 30 and figure.size[1] > 2 * 20
    True
    """
    images, predictions, labels, palette = _checked_panels(images, predictions, labels, palette, ignore_index)
    if int(zoom) != zoom or zoom < 1:
        raise ValueError(f"`zoom` must be a positive integer, got {zoom!r}.")
    zoom = int(zoom)
    rows = []
    for n, image in enumerate(images):
        panels = [image.astype(np.uint8)]
        if labels is not None:
            panels.append(colorize(labels[n], palette, ignore_index))
        panels.append(colorize(predictions[n], palette, ignore_index))
        panels = [panel.repeat(zoom, axis=0).repeat(zoom, axis=1) for panel in panels]
        column_titles = titles if labels is not None else (titles[0], titles[-1])
        rows.append(side_by_side(panels, column_titles if n == 0 else None))
    width = max(row.size[0] for row in rows)
    parts = rows + ([legend(class_names, palette, width)] if class_names is not None else [])
    return _stack(parts)


def overlay_figure(image, labels, palette, class_names=None, alpha=0.5, ignore_index=255):
    """The image beside its label map blended over it, with a legend of the
    classes in the picture (what `keras-ann predict` writes as
    `*_overlay.png`).

    Args:
        image: `(H, W, 3)` RGB image, values in [0, 255].
        labels: `(H, W)` integer label map.
        palette: `(num_classes, 3)` RGB colours.
        class_names: names of the classes (default: their numbers).
        alpha: the weight of the colours in the overlay.
        ignore_index: label value left uncoloured.

    Returns:
        A Pillow RGB image.

    Example:

    >>> figure = overlay_figure(np.zeros((40, 60, 3)), np.ones((40, 60), int), [[0, 0, 0], [255, 0, 0]], ["bg", "car"])
    >>> figure.size[0] > 2 * 60 and figure.size[1] > 40
    True
    """
    image = np.asarray(image)
    blended = side_by_side([image.astype(np.uint8), overlay(image, labels, palette, alpha, ignore_index)])
    present = [int(c) for c in np.unique(labels) if c != ignore_index]
    names = [str(c) for c in range(len(palette))] if class_names is None else list(class_names)
    strip = legend([names[c] for c in present], np.asarray(palette, np.uint8)[present], blended.size[0])
    return _stack([blended, strip])


def _stack(parts, gap=4):
    """Pillow images stacked vertically on white."""
    from PIL import Image

    width = max(p.size[0] for p in parts)
    canvas = Image.new("RGB", (width, sum(p.size[1] for p in parts) + gap * (len(parts) - 1)), (255, 255, 255))
    y = 0
    for part in parts:
        canvas.paste(part, (0, y))
        y += part.size[1] + gap
    return canvas


def save_label_map(labels, path, palette=None):
    """Write a label map as a palette PNG: the pixel values are the class
    ids (as mmseg's and Cityscapes' label files), and the PNG's palette
    shows each class in its colour, so image viewers draw it in colour
    rather than near-black greys.

    Args:
        labels: `(H, W)` integer label map with values in 0..255.
        path: the `.png` path.
        palette: `(num_classes, 3)` RGB colours; defaults to
            `default_palette` over the largest label.

    Example:

    >>> import os, tempfile
    >>> from PIL import Image
    >>> path = os.path.join(tempfile.mkdtemp(), "labels.png")
    >>> save_label_map(np.array([[0, 1], [1, 2]]), path, [[0, 0, 0], [255, 0, 0], [0, 0, 255]])
    >>> with Image.open(path) as image:
    ...     image.mode, np.asarray(image).tolist(), image.getpalette()[3:6]
    ('P', [[0, 1], [1, 2]], [255, 0, 0])
    """
    from PIL import Image

    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.size and (labels.min() < 0 or labels.max() > 255):
        raise ValueError(f"`labels` must be an (H, W) map of values in 0..255, got shape {labels.shape}.")
    if palette is None:
        palette = default_palette(int(labels.max()) + 1 if labels.size else 1)
    colours = np.zeros((256, 3), np.uint8)
    palette = np.asarray(palette, np.uint8)[:256]
    colours[: len(palette)] = palette
    image = Image.fromarray(labels.astype(np.uint8))  # mode L: the values are kept
    image.putpalette(colours.reshape(-1).tolist())  # and L becomes P
    image.save(path)


def overlay(image, labels, palette, alpha=0.5, ignore_index=255):
    """Blend a coloured label map over an image.

    Args:
        image: `(H, W, 3)` RGB image, values in [0, 255].
        labels: `(H, W)` integer label map.
        palette: `(num_classes, 3)` RGB colours.
        alpha: float in [0, 1], the weight of the colours. Defaults to 0.5.
        ignore_index: label value left uncoloured (the image shows through).

    Returns:
        `(H, W, 3)` uint8 image.

    Example:

    >>> image = np.full((2, 2, 3), 100, np.uint8)
    >>> overlay(image, np.array([[0, 255], [0, 0]]), [[200, 0, 0]])[:, :, 0].tolist()
    [[150, 100], [150, 150]]
    """
    image = np.asarray(image)
    labels = np.asarray(labels)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"`image` must have shape (H, W, 3), got {image.shape}.")
    if labels.shape != image.shape[:2]:
        raise ValueError(f"`labels` must have shape {image.shape[:2]} (the image's), got {labels.shape}.")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"`alpha` must be in [0, 1], got {alpha}.")
    out = np.empty(image.shape, np.uint8)
    # In bands of rows: the float copies of a 9000x9000 image would be GBs.
    step = max(1, (8 << 20) // max(1, image.shape[1]))
    for top in range(0, image.shape[0], step):
        part, part_labels = image[top : top + step].astype(np.float32), labels[top : top + step]
        colours = colorize(part_labels, palette, ignore_index=ignore_index).astype(np.float32)
        blended = (1.0 - alpha) * part + alpha * colours
        blended = np.where((part_labels == ignore_index)[..., None], part, blended)
        out[top : top + step] = np.clip(np.round(blended), 0, 255)
    return out


def plot_training_curves(history_csv, output, title=None):
    """Plot training loss and validation mIoU from a run's `history.csv`.

    Args:
        history_csv: the `history.csv` that `keras-ann train` writes (one
            row per checkpoint interval: `epoch`, `loss`, ... and `val_mIoU`
            where an evaluation ran).
        output: PNG path.
        title: figure title.

    Returns:
        `output`.
    """
    import csv

    plt = _pyplot("plot_training_curves")

    with open(history_csv) as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{history_csv} has no rows.")
    epochs = [int(r["epoch"]) + 1 for r in rows]
    loss = [float(r["loss"]) for r in rows]
    # Intervals without an evaluation hold NaN (or nothing).
    miou = [
        (e, float(r["val_mIoU"]))
        for e, r in zip(epochs, rows)
        if r.get("val_mIoU") not in (None, "", "NA") and float(r["val_mIoU"]) == float(r["val_mIoU"])
    ]
    fig, left = plt.subplots(figsize=(6, 3.5))
    left.plot(epochs, loss, "o-", color="tab:blue", label="training loss")
    left.set_xlabel("checkpoint interval")
    left.set_ylabel("loss (incl. 0.4 x auxiliary)", color="tab:blue")
    if miou:
        right = left.twinx()
        right.plot([e for e, _ in miou], [m for _, m in miou], "s-", color="tab:red", label="val mIoU")
        right.set_ylabel("validation mIoU (%)", color="tab:red")
    if title:
        left.set_title(title)
    fig.tight_layout()
    fig.savefig(output, dpi=120)
    plt.close(fig)
    return output


def _pyplot(caller):
    """matplotlib.pyplot, with the Agg backend unless pyplot is already in use."""
    import sys

    try:
        import matplotlib

        if "matplotlib.pyplot" not in sys.modules:
            matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:  # matplotlib is optional
        raise ImportError(
            f"{caller} needs matplotlib: pip install 'keras-ann[plot]' (or matplotlib)"
        ) from error
    return plt


def normalize_confusion(confusion, normalize="true"):
    """Normalise a confusion matrix (rows labels, columns predictions).

    Args:
        confusion: `(C, C)` counts.
        normalize: `"true"` (each row sums to one: recall per class),
            `"pred"` (each column sums to one: precision), `"all"` (the
            matrix sums to one) or `None` (counts, as float).

    Returns:
        `(C, C)` float64 array; rows (columns) with no pixels are 0.

    Example:

    >>> normalize_confusion([[3, 1], [0, 0]]).tolist()
    [[0.75, 0.25], [0.0, 0.0]]
    """
    confusion = np.asarray(confusion, np.float64)
    if confusion.ndim != 2 or confusion.shape[0] != confusion.shape[1]:
        raise ValueError(f"`confusion` must be a square (C, C) matrix, got shape {confusion.shape}.")
    if normalize is None:
        return confusion
    if normalize == "true":
        total = confusion.sum(axis=1, keepdims=True)
    elif normalize == "pred":
        total = confusion.sum(axis=0, keepdims=True)
    elif normalize == "all":
        total = confusion.sum(keepdims=True)
    else:
        raise ValueError(f"`normalize` must be 'true', 'pred', 'all' or None, got {normalize!r}.")
    return np.divide(confusion, total, out=np.zeros_like(confusion), where=total > 0)


def plot_confusion_matrix(
    confusion,
    class_names=None,
    output=None,
    normalize="true",
    title=None,
    cmap="Blues",
    annotate=None,
    ax=None,
):
    """Draw a confusion matrix (rows ground truth, columns prediction).

    Args:
        confusion: `(C, C)` counts, e.g. `evaluate_dataset(...)["confusion"]`.
        class_names: `C` names for the axes (default: `0 .. C-1`).
        output: optional path; the figure is saved there (PNG, 120 dpi).
        normalize: `"true"` (default: rows sum to one, the diagonal is each
            class's accuracy), `"pred"`, `"all"` or `None` (raw counts); see
            `normalize_confusion`.
        title: figure title.
        cmap: matplotlib colour map.
        annotate: write the values in the cells; default when `C <= 20`.
        ax: draw into this matplotlib axes instead of a new figure.

    Returns:
        The matplotlib `Figure`.

    Example:

    ```python
    results = keras_ann.evaluation.evaluate_dataset(model, dataset.eval_dataset())
    plot_confusion_matrix(results["confusion"], dataset.class_names, "confusion.png")
    ```
    """
    matrix = normalize_confusion(confusion, normalize)
    size = matrix.shape[0]
    if class_names is None:
        class_names = [str(i) for i in range(size)]
    class_names = [str(c) for c in class_names]
    if len(class_names) != size:
        raise ValueError(f"`class_names` has {len(class_names)} names for a {size}x{size} matrix.")
    if annotate is None:
        annotate = size <= 20
    plt = _pyplot("plot_confusion_matrix")
    if ax is None:
        side = max(4.0, 0.45 * size + 2.0)
        fig, ax = plt.subplots(figsize=(side + 1.0, side))
    else:
        fig = ax.figure
    vmax = 1.0 if normalize else max(float(matrix.max()), 1.0)
    image = ax.imshow(matrix, cmap=cmap, vmin=0.0, vmax=vmax, interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(size), class_names, rotation=60, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(size), class_names)
    ax.set_xlabel("prediction")
    ax.set_ylabel("ground truth")
    if annotate:
        for i in range(size):
            for j in range(size):
                value = matrix[i, j]
                text = f"{value:.2f}" if normalize else f"{int(value)}"
                colour = "white" if value > 0.6 * vmax else "black"
                ax.text(j, i, text, ha="center", va="center", color=colour, fontsize=7)
    ax.set_title(title or ("confusion matrix" + (f" (normalised over {normalize})" if normalize else "")))
    fig.tight_layout()
    if output is not None:
        fig.savefig(output, dpi=120)
    return fig


def plot_segmentation(
    images,
    predictions,
    labels=None,
    palette=None,
    class_names=None,
    output=None,
    ignore_index=255,
    titles=("image", "ground truth", "prediction"),
    panel_width=3.2,
    dpi=100,
):
    """Image / ground truth / prediction figure, one row per image, with a
    legend of the classes' colours.

    Args:
        images: `(N, H, W, 3)` RGB images in [0, 255] (or a list of them).
        predictions: `(N, H, W)` predicted label maps.
        labels: optional `(N, H, W)` ground truth (`ignore_index` in black);
            without it the figure has two columns.
        palette: `(num_classes, 3)` RGB colours; defaults to
            `default_palette` over the largest label.
        class_names: optional names for the legend.
        output: optional PNG path.
        ignore_index: label value drawn in black.
        titles: column titles.
        panel_width: inches per panel.
        dpi: resolution of the saved PNG.

    Returns:
        The matplotlib `Figure`.

    Example:

    ```python
    predictions = model.predict_labels(images)
    plot_segmentation(images, predictions, labels, dataset_palette("camvid"),
                      CAMVID_CLASSES, output="predictions.png")
    ```
    """
    images, predictions, labels, palette = _checked_panels(images, predictions, labels, palette, ignore_index)
    columns = 3 if labels is not None else 2
    plt = _pyplot("plot_segmentation")
    height, width = images[0].shape[:2]
    panel_height = panel_width * height / width
    legend_columns = min(len(palette), 6)
    legend_height = 0.0 if class_names is None else 0.2 * -(-len(palette) // legend_columns) + 0.1
    figure_height = (panel_height + 0.1) * len(images) + 0.3 + legend_height
    fig, axes = plt.subplots(
        len(images), columns, figsize=(panel_width * columns, figure_height), squeeze=False
    )
    for n in range(len(images)):
        panels = [images[n].astype(np.uint8)]
        if labels is not None:
            panels.append(colorize(labels[n], palette, ignore_index))
        panels.append(colorize(predictions[n], palette, ignore_index))
        for c, panel in enumerate(panels):
            axes[n, c].imshow(panel, interpolation="nearest")
            axes[n, c].set_axis_off()
            if n == 0:
                column_titles = titles if labels is not None else (titles[0], titles[-1])
                axes[n, c].set_title(column_titles[c], fontsize=10)
    if class_names is not None:
        from matplotlib.patches import Patch

        handles = [Patch(color=np.asarray(c) / 255.0, label=name) for c, name in zip(palette, class_names)]
        fig.legend(handles=handles, loc="lower center", ncol=legend_columns, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, legend_height / figure_height, 1, 1), pad=0.3)
    if output is not None:
        fig.savefig(output, dpi=dpi)
    return fig
