"""Colouring label maps and putting images side by side (NumPy + Pillow)."""

import numpy as np


def default_palette(num_classes, seed=0):
    """A fixed, well-spread RGB palette for `num_classes` classes."""
    rng = np.random.default_rng(seed)
    palette = rng.integers(0, 256, (max(num_classes, 1), 3), dtype=np.uint8)
    return palette


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

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:  # matplotlib is optional
        raise ImportError("plot_training_curves needs matplotlib: pip install matplotlib") from error

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
