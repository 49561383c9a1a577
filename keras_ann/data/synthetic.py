"""A synthetic scene dataset made on the fly, for the demo and for tests.

Every image is a noisy background with one to four objects of four kinds: a
disc, a square, a triangle, and a striped square. Objects do not overlap,
so each shape is seen whole. Colours are drawn from the same distribution
for every class (and for the background), so the classes differ by shape
and texture only: a model has to look at spatial context, colour alone does
not separate them. Each object's colour is drawn again until it stands out
from the background (by the same rule for every class), so the shapes are
visible to a person too.
"""

import numpy as np

SYNTHETIC_CLASSES = ("background", "disc", "square", "triangle", "stripes")
SYNTHETIC_PALETTE = ((40, 40, 40), (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200))

# An object's colour differs from the background's by at least this much in
# some channel (of 0..255).
_CONTRAST = 70
_NOISE = 12


def _colour(rng, avoid=()):
    while True:
        colour = rng.uniform(30, 225, 3)
        if all(np.max(np.abs(colour - other)) >= _CONTRAST for other in avoid):
            return colour


def _texture(rng, colour, height, width):
    return np.clip(colour + rng.normal(0, _NOISE, (height, width, 1)), 0, 255)


def _shape(kind, yy, xx, cy, cx, size):
    if kind == 1:
        return (yy - cy) ** 2 + (xx - cx) ** 2 <= size**2
    if kind == 3:
        return (yy - cy <= size) & (yy - cy >= 2 * np.abs(xx - cx) - size)
    return (np.abs(yy - cy) <= size) & (np.abs(xx - cx) <= size)


def make_scene(rng, height=96, width=96, max_objects=4):
    """One `(image, label)` pair: float32 RGB in [0, 255], uint8 labels.

    Args:
        rng: a `numpy.random.Generator`.
        height, width: the image size.
        max_objects: at most this many objects (at least one).

    Example:

    >>> image, label = make_scene(np.random.default_rng(0), 64, 64)
    >>> image.shape, label.shape, int(label.max()) > 0
    ((64, 64, 3), (64, 64), True)
    """
    background = _colour(rng)
    image = _texture(rng, background, height, width)
    label = np.zeros((height, width), np.uint8)
    yy, xx = np.mgrid[0:height, 0:width]
    side = min(height, width)
    boxes = []
    for _ in range(rng.integers(1, max_objects + 1)):
        kind = int(rng.integers(1, len(SYNTHETIC_CLASSES)))
        for _attempt in range(20):  # a free place, with a gap to the others
            size = int(rng.integers(max(2, side // 8), max(3, side // 4) + 1))
            cy = int(rng.integers(size, height - size))
            cx = int(rng.integers(size, width - size))
            gap = max(1, side // 32)
            if all(abs(cy - y) > size + s + gap or abs(cx - x) > size + s + gap for y, x, s in boxes):
                break
        else:
            continue
        boxes.append((cy, cx, size))
        mask = _shape(kind, yy, xx, cy, cx, size)
        colour = _colour(rng, [background])
        fill = _texture(rng, colour, height, width)
        if kind == 4:
            other = _texture(rng, _colour(rng, [background, colour]), height, width)
            stripes = ((xx + yy) // max(2, size // 3)) % 2 == 0
            fill = np.where(stripes[..., None], fill, other)
        image[mask] = fill[mask]
        label[mask] = kind
    return image.astype(np.float32), label


def make_scenes(count, height=96, width=96, seed=0):
    """`count` scenes as arrays `(count, H, W, 3)` float32 and `(count, H, W)` uint8.

    Example:

    >>> images, labels = make_scenes(2, 32, 48, seed=0)
    >>> images.shape, labels.shape, images.dtype.name, labels.dtype.name
    ((2, 32, 48, 3), (2, 32, 48), 'float32', 'uint8')
    """
    rng = np.random.default_rng(seed)
    pairs = [make_scene(rng, height, width) for _ in range(count)]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
