"""Colour masks (one RGB colour per class) to label maps of class ids."""

import numpy as np

__all__ = ["rgb_to_labels"]


def _codes(rgb):
    rgb = rgb.astype(np.int64)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def rgb_to_labels(mask, palette, *, unknown="error", ignore_index=255):
    """Converts an RGB colour mask to a label map of class ids.

    Many datasets (CamVid's original release, many exports of annotation
    tools) store labels as colour images: each class painted in its own
    colour. Training needs one class id per pixel; this maps each colour of
    `palette` to its class.

    Args:
        mask: `uint8 [..., H, W, 3]` array (a fourth, alpha channel is
            dropped), e.g. `np.asarray(Image.open(path).convert("RGB"))`.
        palette: the colour of each class: a sequence of RGB triples (class
            `i` has colour `palette[i]`), or a dict `{(r, g, b): class_id}`
            (several colours may share a class; a class id may be
            `ignore_index` to mark void colours).
        unknown: what a colour missing from `palette` becomes: `"error"`
            (default) raises a `ValueError` naming the colours and their
            pixel counts; `"ignore"` maps them to `ignore_index`.
        ignore_index: int, the value of ignored pixels. Defaults to 255.

    Returns:
        `uint8 [..., H, W]` class ids.

    Raises:
        ValueError: a malformed mask or palette, or (with `unknown="error"`)
            colours that are not in the palette.

    Example:

    >>> import numpy as np
    >>> mask = np.array([[[0, 0, 0], [255, 0, 0]], [[0, 255, 0], [255, 0, 0]]], np.uint8)
    >>> rgb_to_labels(mask, [(0, 0, 0), (255, 0, 0), (0, 255, 0)]).tolist()
    [[0, 1], [2, 1]]
    >>> rgb_to_labels(mask, {(255, 0, 0): 0, (0, 255, 0): 1}, unknown="ignore").tolist()
    [[255, 0], [1, 0]]
    """
    if unknown not in ("error", "ignore"):
        raise ValueError(f"`unknown` must be 'error' or 'ignore', got {unknown!r}.")
    if not 0 <= int(ignore_index) <= 255:
        raise ValueError(f"`ignore_index` must be in 0..255, got {ignore_index!r}.")
    mask = np.asarray(mask)
    if mask.ndim < 3 or mask.shape[-1] not in (3, 4):
        raise ValueError(
            f"`mask` must be an RGB image of shape (..., height, width, 3), got shape {mask.shape}."
        )
    if mask.dtype != np.uint8:
        if mask.dtype.kind not in "iu" or (mask.size and (mask.min() < 0 or mask.max() > 255)):
            raise ValueError(f"`mask` must hold 8-bit colours (uint8), got dtype {mask.dtype}.")
    if isinstance(palette, dict):
        items = list(palette.items())
    else:
        items = [(colour, label) for label, colour in enumerate(palette)]
    if not items:
        raise ValueError("`palette` is empty.")
    colours, labels = [], []
    for colour, label in items:
        colour = tuple(int(c) for c in colour)
        if len(colour) != 3 or not all(0 <= c <= 255 for c in colour):
            raise ValueError(f"`palette` colours must be RGB triples in 0..255, got {colour}.")
        if not 0 <= int(label) <= 255:
            raise ValueError(f"`palette` class ids must be in 0..255, got {label} for {colour}.")
        colours.append(colour)
        labels.append(int(label))
    codes = _codes(np.array(colours))
    order = np.argsort(codes, kind="stable")
    codes, labels = codes[order], np.array(labels, np.uint8)[order]
    duplicate = np.nonzero(codes[1:] == codes[:-1])[0]
    if duplicate.size and np.any(labels[duplicate] != labels[duplicate + 1]):
        i = duplicate[np.argmax(labels[duplicate] != labels[duplicate + 1])]
        colour = tuple(int(c) for c in np.array(colours)[order][i])
        raise ValueError(f"`palette` gives the colour {colour} to two classes.")
    pixels = _codes(mask[..., :3])
    index = np.clip(np.searchsorted(codes, pixels), 0, len(codes) - 1)
    known = codes[index] == pixels
    out = np.where(known, labels[index], np.uint8(ignore_index)).astype(np.uint8)
    if unknown == "error" and not np.all(known):
        values, counts = np.unique(pixels[~known], return_counts=True)
        top = np.argsort(-counts)[:5]
        listed = ", ".join(
            f"{((int(values[i]) >> 16) & 255, (int(values[i]) >> 8) & 255, int(values[i]) & 255)} "
            f"({int(counts[i])} pixels)"
            for i in top
        )
        more = f" and {len(values) - 5} more" if len(values) > 5 else ""
        raise ValueError(
            f"{len(values)} colours of the mask are not in the palette: {listed}{more}. Add them "
            f"to the palette (a dict may map a colour to {ignore_index} to ignore it), or pass "
            f"unknown='ignore' to ignore every unknown colour."
        )
    return out
