"""A synthetic scene dataset made on the fly, for the demo and for tests.

Every image is a textured background with a few objects of four kinds: a
disc, a square, a triangle, and a striped patch. Colours are drawn from the
same distribution for every class (and for the background), so the classes
differ by shape and texture only: a model has to look at spatial context,
colour alone does not separate them.
"""

import numpy as np

SYNTHETIC_CLASSES = ("background", "disc", "square", "triangle", "stripes")
SYNTHETIC_PALETTE = ((40, 40, 40), (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200))


def _texture(rng, height, width):
    colour = rng.uniform(40, 215, 3)
    noise = rng.normal(0, 18, (height, width, 1))
    return np.clip(colour + noise, 0, 255)


def make_scene(rng, height=96, width=96, max_objects=4):
    """One `(image, label)` pair: float32 RGB in [0, 255], uint8 labels."""
    image = _texture(rng, height, width)
    label = np.zeros((height, width), np.uint8)
    yy, xx = np.mgrid[0:height, 0:width]
    for _ in range(rng.integers(1, max_objects + 1)):
        kind = int(rng.integers(1, len(SYNTHETIC_CLASSES)))
        size = rng.integers(min(height, width) // 8, min(height, width) // 3)
        cy, cx = rng.integers(size, height - size), rng.integers(size, width - size)
        if kind == 1:
            mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= size**2
        elif kind == 2:
            mask = (np.abs(yy - cy) <= size) & (np.abs(xx - cx) <= size)
        elif kind == 3:
            mask = (yy - cy <= size) & (yy - cy >= 2 * np.abs(xx - cx) - size)
        else:
            mask = (np.abs(yy - cy) <= size) & (np.abs(xx - cx) <= size)
        fill = _texture(rng, height, width)
        if kind == 4:
            stripes = ((xx + yy) // max(2, size // 4)) % 2 == 0
            fill = np.where(stripes[..., None], fill, _texture(rng, height, width))
        image[mask] = fill[mask]
        label[mask] = kind
    return image.astype(np.float32), label


def make_scenes(count, height=96, width=96, seed=0):
    """`count` scenes as arrays `(count, H, W, 3)` float32 and `(count, H, W)` uint8."""
    rng = np.random.default_rng(seed)
    pairs = [make_scene(rng, height, width) for _ in range(count)]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
