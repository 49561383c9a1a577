"""Datasets and `tf.data` pipelines reproducing mmsegmentation's transforms.

Every name here is imported from its module on first access (PEP 562), so
`from keras_ann.data.metainfo import CITYSCAPES_CLASSES` (class names,
palettes, label maps) or `keras_ann.data.DatasetError` import no
TensorFlow; the loaders and pipelines (`Cityscapes`, `SegmentationDataset`,
`train_transform`, ...) import it when first used.

Example:

>>> from keras_ann import data
>>> data.METAINFO["camvid"]["classes"][:3]
('sky', 'building', 'pole')
>>> data.SegmentationDataset.__module__
'keras_ann.data.pipeline'
"""

import importlib

# Public name -> the submodule that defines it.
_NAMES = {
    "ADE20K": "ade20k",
    "Cityscapes": "cityscapes",
    "cityscapes_label_id_map": "cityscapes",
    "DatasetError": "errors",
    "DatasetWarning": "errors",
    "FolderDataset": "folder",
    "camvid": "folder",
    "load_sample": "io",
    "make_label_lut": "io",
    "read_image": "io",
    "read_label": "io",
    "verify_files": "io",
    "DATA_CONFIGS": "configs",
    "DataConfig": "configs",
    "build_dataset": "configs",
    "get_data_config": "configs",
    "enet_class_weights": "class_weights",
    "defaults_from_data": "defaults",
    "DataReport": "inspect",
    "inspect_dataset": "inspect",
    "LabelScan": "label_scan",
    "check_dataset_labels": "label_scan",
    "scan_labels": "label_scan",
    "rgb_to_labels": "rgb_labels",
    "METAINFO": "metainfo",
    "PascalVOC": "pascal_voc",
    "MMSEG_PAD_VALUE": "pipeline",
    "SegmentationDataset": "pipeline",
    "apply_eval_transforms": "pipeline",
    "apply_train_transforms": "pipeline",
    "TFDSSegmentation": "tfds",
    "load_tfds": "tfds",
    "tfds_example_to_pair": "tfds",
    "test_transform": "transforms",
    "train_transform": "transforms",
}

# Submodules reachable as attributes (`keras_ann.data.io`); `configs` holds
# the named data configs and the dataset factory.
_SUBMODULES = (
    "ade20k",
    "cityscapes",
    "class_weights",
    "configs",
    "defaults",
    "errors",
    "folder",
    "inspect",
    "io",
    "label_scan",
    "metainfo",
    "pascal_voc",
    "pipeline",
    "rgb_labels",
    "synthetic",
    "tfds",
    "transforms",
)

__all__ = sorted(_NAMES)


def __getattr__(name):
    if name in _NAMES:
        value = getattr(importlib.import_module(f"{__name__}.{_NAMES[name]}"), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_NAMES) | set(_SUBMODULES))
