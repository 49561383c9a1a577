"""The reference's training recipes (mmsegmentation `configs/ann/`), as data.

Each released model of `keras_ann.presets` has the recipe that trained it,
under the same name (e.g. `"ann_r50_d8_cityscapes_512x1024_40k"`):

- model: dilated ResNet-V1c (`resnet50_d8` / `resnet101_d8`) from the
  reference's ImageNet weights (`open-mmlab://resnet50_v1c`), ANN head with
  auxiliary FCN head (loss weight 0.4), `align_corners` True only for the
  769x769 Cityscapes recipes;
- optimisation (`configs/_base_/schedules/schedule_*k.py`): SGD, learning
  rate 0.01, momentum 0.9, weight decay 5e-4 (coupled, on every parameter),
  poly decay per iteration with power 0.9 down to 1e-4;
- data (`configs/_base_/datasets/*.py`): RandomResize of the dataset scale
  with ratio 0.5-2.0, RandomCrop (cat_max_ratio 0.75), RandomFlip 0.5,
  PhotoMetricDistortion; 4 GPUs x 2 images (Cityscapes) or x 4 (ADE20K,
  VOC);
- evaluation and checkpoints every 4000 iterations for 40k schedules (the
  reference's `val_interval`: 2000 for 20k, 8000 for 80k, 16000 for 160k);
  test on the whole image, or by sliding 769x769 windows with stride 513
  for the 769x769 recipes.
"""

import dataclasses

from keras_ann.presets import PRESETS

IMAGENET_CHECKPOINTS = {
    # The reference's `open-mmlab://resnet{50,101}_v1c` (mmcv's model zoo).
    "resnet50_d8": "https://download.openmmlab.com/pretrain/third_party/resnet50_v1c-2cccc1ad.pth",
    "resnet101_d8": "https://download.openmmlab.com/pretrain/third_party/resnet101_v1c-e67eebb6.pth",
}

# dataset -> (scale of RandomResize and test Resize, images per GPU)
_DATA = {
    "cityscapes": ((2048, 1024), 2),
    "ade20k": ((2048, 512), 4),
    "pascal_voc": ((2048, 512), 4),
}
_EVAL_INTERVAL = {20000: 2000, 40000: 4000, 80000: 8000, 160000: 16000}


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A training recipe.

    Attributes:
        name: e.g. `"ann_r50_d8_cityscapes_512x1024_40k"`.
        dataset: `"cityscapes"`, `"ade20k"`, `"pascal_voc"`, or
            `"folder"` for custom data.
        backbone: backbone name.
        num_classes: int.
        crop_size: `(height, width)` of the training crops.
        scale: `(long, short)` scale of RandomResize and of the test resize
            (mmseg's `(2048, 1024)` convention), or `None` for no resize.
        ratio_range: RandomResize ratio range.
        iterations: number of optimisation steps.
        batch_size: total batch over all devices (the reference's 4 GPUs x
            images per GPU).
        learning_rate, momentum, weight_decay, min_learning_rate, power:
            SGD with poly decay.
        eval_interval: evaluate and checkpoint every so many iterations.
        align_corners: the heads' `align_corners`.
        test_mode: `"whole"` or `"slide"`; `test_crop`, `test_stride` for
            slide.
        auxiliary_loss_weight: 0.4.
        imagenet_checkpoint: URL or path of the ImageNet backbone, or
            `None` to train from scratch.
    """

    name: str
    dataset: str
    backbone: str
    num_classes: int
    crop_size: tuple
    scale: tuple
    iterations: int
    batch_size: int
    eval_interval: int
    align_corners: bool = False
    test_mode: str = "whole"
    test_crop: tuple = None
    test_stride: tuple = None
    ratio_range: tuple = (0.5, 2.0)
    learning_rate: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    min_learning_rate: float = 1e-4
    power: float = 0.9
    auxiliary_loss_weight: float = 0.4
    imagenet_checkpoint: str = None

    def replace(self, **changes):
        """A copy with some fields changed (e.g. `iterations=1000`)."""
        return dataclasses.replace(self, **changes)

    def per_replica_batch(self, num_replicas):
        """Images per device so that the total batch stays the recipe's."""
        if self.batch_size % num_replicas:
            raise ValueError(
                f"The recipe's total batch of {self.batch_size} images cannot be "
                f"split evenly over {num_replicas} devices."
            )
        return self.batch_size // num_replicas


def _from_preset(preset):
    scale, per_gpu = _DATA[preset.dataset]
    return Recipe(
        name=preset.name,
        dataset=preset.dataset,
        backbone=preset.backbone,
        num_classes=preset.num_classes,
        crop_size=preset.crop_size,
        scale=scale,
        iterations=preset.iterations,
        batch_size=4 * per_gpu,
        eval_interval=_EVAL_INTERVAL[preset.iterations],
        align_corners=preset.align_corners,
        test_mode=preset.test_mode,
        test_crop=preset.test_crop,
        test_stride=preset.test_stride,
        imagenet_checkpoint=IMAGENET_CHECKPOINTS[preset.backbone],
    )


RECIPES = {name: _from_preset(preset) for name, preset in PRESETS.items()}

# Not a reference recipe: the reference's settings scaled to CamVid (11
# classes, 480x360 images; ../shared/data/camvid) and to a CPU, from
# scratch (no ImageNet weights can be downloaded there).
# Images at half resolution (240x180), 128x128 crops, batch 8, 600
# iterations: about 20 minutes on 2 CPU cores.
RECIPES["ann_r18_d8_camvid_cpu"] = Recipe(
    name="ann_r18_d8_camvid_cpu",
    dataset="camvid",
    backbone="resnet18_d8",
    num_classes=11,
    crop_size=(128, 128),
    scale=(240, 180),
    iterations=600,
    batch_size=8,
    eval_interval=100,
)


def get_recipe(name):
    """The recipe called `name`; a clear error listing the names otherwise."""
    if isinstance(name, Recipe):
        return name
    if name not in RECIPES:
        raise ValueError(
            f"Unknown recipe {name!r}. Known recipes:\n  " + "\n  ".join(sorted(RECIPES))
        )
    return RECIPES[name]
