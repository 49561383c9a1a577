"""Training settings chosen from the data, for your own data without a
recipe (`keras-ann train --dataset folder`): the scale of the images' own
size, a crop and batch that fit it and the memory at hand, and class
weights from the label frequencies where the classes are imbalanced.
Every choice comes with a line saying why and how to change it."""

import dataclasses

from keras_ann.checks import MemoryBudgetError, available_memory_bytes, check_memory
from keras_ann.data.class_weights import IMBALANCE_RATIO, class_shares, enet_class_weights, is_imbalanced
from keras_ann.data.inspect import MAX_LONG_SIDE, data_scale, image_sizes

__all__ = ["DataDefaults", "crop_and_batch", "defaults_from_data"]

# The crop of the best CPU recipe (CamVid, 480x360 images: 256), at most
# the short side, at least half of it up to 512.
CROP = 256
MAX_CROP = 512
# The training step may use this share of the memory available.
MEMORY_SHARE = 0.5


@dataclasses.dataclass(frozen=True)
class DataDefaults:
    """Recipe keys chosen from the data (`changes`, for `Recipe.replace`)
    and one line per choice (`notes`: the recipe key it explains,
    `"train_scale"`, `"crop_size"` or `"class_weight"`, -> the line)."""

    changes: dict
    notes: dict


def crop_and_batch(scale, num_classes, batch=8, precision="float32", budget=None):
    """The square crop and total batch for images of `scale` `(long,
    short)`: a crop of 256, or half the short side up to 512, never more
    than the short side (multiples of 8), then the batch halved (down to
    2) and the crop shrunk until a training step fits in half the memory.

    Example:

    >>> crop_and_batch((480, 360), 11), crop_and_batch((1024, 768), 3), crop_and_batch((64, 48), 2)
    (((256, 256), 8), ((384, 384), 8), ((48, 48), 8))
    """
    long, short = scale
    side = min(short, max(CROP, min(short // 2, MAX_CROP)))
    side = max(8, side - side % 8) if side >= 8 else side
    budget = budget if budget is not None else MEMORY_SHARE * available_memory_bytes()
    while True:
        try:
            check_memory(side, side, num_classes, what="training", flag="--crop-size", batch=batch, training=True,
                         precision=precision, budget=budget)  # fmt: skip
            return (side, side), batch
        except MemoryBudgetError:
            if batch > 2:
                batch //= 2
            elif side > 64:
                side = max(64, (side * 3 // 4) // 8 * 8)
            else:
                return (side, side), batch


def defaults_from_data(dataset, scan=None, *, batch=8, precision="float32", class_weights=True, scale=None):
    """Settings for training on `dataset` (its training split) from its
    images and labels.

    Args:
        dataset: the training `SegmentationDataset`.
        scan: its `LabelScan` (`keras_ann.data.label_scan.scan_labels`);
            needed for class weights.
        batch: the total batch to start from.
        precision: the training policy (for the memory estimate).
        class_weights: weigh imbalanced classes (ENet's rule); `False`
            never does.
        scale: the `(long, short)` scale the user chose, which the crop
            then fits (default: the images' own size).

    Returns:
        `DataDefaults`: `train_scale`, `test_scale`, `crop_size`,
        `total_batch` and, where the classes are imbalanced,
        `class_weight`, with a line for each.
    """
    sizes = image_sizes(path for path, _ in dataset.files)
    scale = tuple(scale) if scale else data_scale(sizes)
    (h, w), _ = sizes.most_common(1)[0]
    shrunk = f", shrunk to {MAX_LONG_SIDE} px on the long side" if scale[0] < max(h, w) else ""
    crop, batch = crop_and_batch(scale, dataset.num_classes, batch, precision)
    notes = {
        "train_scale": f"scale: {scale[0]}x{scale[1]} (long x short: the training images' own size, most often {w}x{h}"
        f"{shrunk}; --scale LONG SHORT changes it)",
        "crop_size": f"crop: {crop[0]}x{crop[1]}, batch {batch} (from the image size and the memory at hand; "
        "--crop-size, --batch-size change them)",
    }
    changes = dict(train_scale=scale, test_scale=scale, crop_size=crop, total_batch=batch, images_per_gpu=batch)
    if scan is not None and class_weights:
        shares = class_shares(scan.pixels, dataset.num_classes)
        present = [(p, i) for i, p in enumerate(shares) if p > 0]
        (most, i_most), (least, i_least) = max(present), min(present)
        names = dataset.class_names
        if is_imbalanced(shares):
            changes["class_weight"] = tuple(enet_class_weights(shares))
            notes["class_weight"] = (
                f"class weights: ENet's 1/ln(1.02 + share) of the training labels (imbalanced: {names[i_most]} "
                f"{100 * most:.1f}% vs {names[i_least]} {100 * least:.2f}% of the pixels): "
                f"{', '.join(f'{w:g}' for w in changes['class_weight'])}; --set class_weight=null turns them off"
            )
        else:
            notes["class_weight"] = (
                f"class weights: none (the classes are balanced within {IMBALANCE_RATIO:g}x: {names[i_most]} "
                f"{100 * most:.1f}% vs {names[i_least]} {100 * least:.1f}%)"
            )
    return DataDefaults(changes, notes)
