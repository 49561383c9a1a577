"""Class weights from the label frequencies of a dataset (ENet's rule)."""

import math

__all__ = ["IMBALANCE_RATIO", "class_shares", "enet_class_weights", "is_imbalanced"]

# Classes are imbalanced, and weighted by default, where the most frequent
# class covers this many times the pixels of the rarest one present.
IMBALANCE_RATIO = 10.0


def class_shares(pixels, num_classes):
    """The share of each class `0..num_classes - 1` among the labelled
    pixels (ignored pixels left out).

    Args:
        pixels: pixel counts indexed by class id (e.g. `LabelScan.pixels`,
            after the label mapping: an array over 0..255, or a dict); other
            ids (the ignore index) are left out.
        num_classes: int.

    Example:

    >>> class_shares({0: 30, 1: 10, 255: 60}, 3)
    [0.75, 0.25, 0.0]
    """
    counts = [float(pixels.get(c, 0) if isinstance(pixels, dict) else pixels[c]) for c in range(num_classes)]
    total = sum(counts)
    if total <= 0:
        raise ValueError("no labelled pixels: class weights cannot be computed from the labels.")
    return [count / total for count in counts]


def enet_class_weights(shares, c=1.02, decimals=3):
    """ENet's class weights `1 / ln(c + p)` of the class shares `p`
    (Paszke et al. 2016, used by the CamVid CPU recipe), normalised to a
    mean of 1 and rounded.

    Args:
        shares: each class's share of the labelled pixels.
        c: ENet's constant (1.02): the weights lie in `(0, 1 / ln(c)]`.
        decimals: rounding of the weights.

    Example:

    >>> enet_class_weights([0.9, 0.1])
    [0.296, 1.704]
    """
    raw = [1.0 / math.log(c + p) for p in shares]
    mean = sum(raw) / len(raw)
    return [round(w / mean, decimals) for w in raw]


def is_imbalanced(shares, ratio=IMBALANCE_RATIO):
    """Whether the most frequent class covers at least `ratio` times the
    pixels of the rarest class present.

    Example:

    >>> is_imbalanced([0.6, 0.4]), is_imbalanced([0.95, 0.05])
    (False, True)
    """
    present = [p for p in shares if p > 0]
    return len(present) > 1 and max(present) >= ratio * min(present)
