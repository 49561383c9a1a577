"""The reference's 12 released ANN models, and loading them by name.

Numbers and addresses are those of mmsegmentation's `configs/ann/README.md`
(`../shared/reference/seed_ann_results.md` in this project). The last 8 hex
digits of each file name are the first 8 of the file's SHA-256, which the
download is checked against.
"""

import dataclasses
import os
import re

_BASE = "https://download.openmmlab.com/mmsegmentation/v0.5/ann"

# dataset -> number of classes
DATASETS = {
    "cityscapes": 19,
    "ade20k": 150,
    "pascal_voc": 21,
}


@dataclasses.dataclass(frozen=True)
class Preset:
    """One released reference model.

    Attributes:
        name: our name, e.g. `"ann_r50_d8_cityscapes_512x1024_40k"`.
        dataset: `"cityscapes"`, `"ade20k"` or `"pascal_voc"`.
        backbone: backbone name, e.g. `"resnet50_d8"`.
        crop_size: training crop `(height, width)`.
        iterations: length of the schedule.
        align_corners: the heads' `align_corners`.
        test_mode: `"whole"` or `"slide"`.
        test_crop: slide-window crop `(h, w)` or `None`.
        test_stride: slide-window stride `(h, w)` or `None`.
        miou: the reference's single-scale mIoU (%).
        miou_ms_flip: the reference's multi-scale + flip mIoU (%).
        memory_gb: training memory the reference reports (V100), or None.
        fps: inference speed the reference reports (V100), or None.
        url: address of the `.pth` file.
    """

    name: str
    dataset: str
    backbone: str
    crop_size: tuple
    iterations: int
    align_corners: bool
    test_mode: str
    test_crop: tuple
    test_stride: tuple
    miou: float
    miou_ms_flip: float
    memory_gb: float
    fps: float
    url: str

    @property
    def num_classes(self):
        return DATASETS[self.dataset]

    @property
    def sha256_prefix(self):
        """The hex digits at the end of the published file name."""
        match = re.search(r"-([0-9a-f]{8})\.pth$", self.url)
        return match.group(1) if match else None

    @property
    def file_name(self):
        return self.url.rsplit("/", 1)[-1]

    @property
    def class_names(self):
        from keras_ann.data.metainfo import METAINFO

        return tuple(METAINFO[self.dataset]["classes"])

    @property
    def palette(self):
        from keras_ann.data.metainfo import METAINFO

        return tuple(tuple(c) for c in METAINFO[self.dataset]["palette"])

    def model_config(self):
        """`ANNSegmenter` arguments of this model."""
        return {
            "backbone": self.backbone,
            "num_classes": self.num_classes,
            "align_corners": self.align_corners,
        }


def _preset(depth, dataset, crop, iters, miou, ms, mem, fps, stamp):
    h, w = crop
    mm_dataset = {"pascal_voc": "voc12aug"}.get(dataset, dataset)
    mm_name = f"ann_r{depth}-d8_{h}x{w}_{iters // 1000}k_{mm_dataset}"
    slide = dataset == "cityscapes" and crop == (769, 769)
    return Preset(
        name=f"ann_r{depth}_d8_{dataset}_{h}x{w}_{iters // 1000}k",
        dataset=dataset,
        backbone=f"resnet{depth}_d8",
        crop_size=crop,
        iterations=iters,
        align_corners=slide,
        test_mode="slide" if slide else "whole",
        test_crop=(769, 769) if slide else None,
        test_stride=(513, 513) if slide else None,
        miou=miou,
        miou_ms_flip=ms,
        memory_gb=mem,
        fps=fps,
        url=f"{_BASE}/{mm_name}/{mm_name}_{stamp}.pth",
    )


PRESETS = {
    p.name: p
    for p in [
        _preset(50, "cityscapes", (512, 1024), 40000, 77.40, 78.57, 6.0, 3.71, "20200605_095211-049fc292"),
        _preset(101, "cityscapes", (512, 1024), 40000, 76.55, 78.85, 9.5, 2.55, "20200605_095243-adf6eece"),
        _preset(50, "cityscapes", (769, 769), 40000, 78.89, 80.46, 6.8, 1.70, "20200530_025712-2b46b04d"),
        _preset(101, "cityscapes", (769, 769), 40000, 79.32, 80.94, 10.7, 1.15, "20200530_025720-059bff28"),
        _preset(50, "cityscapes", (512, 1024), 80000, 77.34, 78.65, None, None, "20200607_101911-5a9ad545"),
        _preset(101, "cityscapes", (512, 1024), 80000, 77.14, 78.81, None, None, "20200607_013728-aceccc6e"),
        _preset(50, "cityscapes", (769, 769), 80000, 78.88, 80.57, None, None, "20200607_044426-cc7ff323"),
        _preset(101, "cityscapes", (769, 769), 80000, 78.80, 80.34, None, None, "20200607_013713-a9d4be8d"),
        _preset(50, "ade20k", (512, 512), 80000, 41.01, 42.30, 9.1, 21.01, "20200615_014818-26f75e11"),
        _preset(101, "ade20k", (512, 512), 80000, 42.94, 44.18, 12.5, 14.12, "20200615_014818-c0153543"),
        _preset(50, "ade20k", (512, 512), 160000, 41.74, 42.62, None, None, "20200615_231733-892247bc"),
        _preset(101, "ade20k", (512, 512), 160000, 42.94, 44.06, None, None, "20200615_231733-955eb1ec"),
        _preset(50, "pascal_voc", (512, 512), 20000, 74.86, 76.13, 6.0, 20.92, "20200617_222246-dfcb1c62"),
        _preset(101, "pascal_voc", (512, 512), 20000, 77.47, 78.70, 9.5, 13.94, "20200617_222246-2fad0042"),
        _preset(50, "pascal_voc", (512, 512), 40000, 76.56, 77.51, None, None, "20200613_231314-b5dac322"),
        _preset(101, "pascal_voc", (512, 512), 40000, 76.70, 78.06, None, None, "20200613_231314-bd205bbe"),
    ]
}


def get_preset(name):
    """The `Preset` called `name`; a clear error listing the names otherwise."""
    if name not in PRESETS:
        raise ValueError(
            f"Unknown preset {name!r}. Known presets:\n  " + "\n  ".join(sorted(PRESETS))
        )
    return PRESETS[name]


def load_preset(cls, name_or_path, *, cache_dir=None, verbose=True, **overrides):
    """Implementation of `ANNSegmenter.from_preset`; see there."""
    from keras_ann.weights import convert, download

    if os.path.isfile(str(name_or_path)):
        path = str(name_or_path)
        if path.endswith(".keras"):
            from keras_ann.models.keras_file import load_keras_file

            return load_keras_file(cls, path, **overrides)
        return _from_checkpoint(cls, path, overrides)
    if str(name_or_path).endswith((".pth", ".keras")):
        raise FileNotFoundError(f"No checkpoint file at {name_or_path!r}.")
    preset = get_preset(name_or_path)
    directory = os.path.join(cache_dir or download.cache_dir(), "presets")
    pth = os.path.join(directory, preset.file_name)
    if not os.path.exists(pth):
        download.download(preset.url, pth, preset.sha256_prefix, verbose=verbose)
    config = dict(preset.model_config(), **overrides)
    weights = os.path.join(directory, f"{preset.name}.weights.h5")
    model = cls(**config)
    same_weights = config["num_classes"] == preset.num_classes and all(
        key in ("align_corners", "name", "dtype", "dropout", "ignore_index") for key in overrides
    )
    if same_weights and os.path.exists(weights):
        model.load_weights(weights)
        return model
    convert.load_reference_weights(
        model, pth, partial=None if config["num_classes"] == preset.num_classes else "new_classifier"
    )
    if same_weights:
        tmp = weights + ".tmp.weights.h5"
        model.save_weights(tmp)
        os.replace(tmp, weights)
    return model


def _from_checkpoint(cls, path, overrides):
    from keras_ann.weights import convert, pth_reader

    state_dict = pth_reader.extract_state_dict(pth_reader.load_torch_checkpoint(path))
    config = convert.infer_ann_config(state_dict)
    inferred_classes = config["num_classes"]
    config.update(overrides)
    model = cls(**config)
    partial = None if config["num_classes"] == inferred_classes else "new_classifier"
    convert.load_reference_weights(model, state_dict, partial=partial, source=path)
    return model
