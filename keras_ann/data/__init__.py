"""Datasets and `tf.data` pipelines reproducing mmsegmentation's transforms."""

from keras_ann.data.ade20k import ADE20K
from keras_ann.data.cityscapes import Cityscapes, cityscapes_label_id_map
from keras_ann.data.configs import DATA_CONFIGS, DataConfig, build_dataset, get_data_config
from keras_ann.data.errors import DatasetError, DatasetWarning
from keras_ann.data.folder import FolderDataset, camvid
from keras_ann.data.io import load_sample, make_label_lut, read_image, read_label, verify_files
from keras_ann.data.metainfo import METAINFO
from keras_ann.data.pascal_voc import PascalVOC
from keras_ann.data.pipeline import (
    MMSEG_PAD_VALUE,
    SegmentationDataset,
    apply_eval_transforms,
    apply_train_transforms,
)
from keras_ann.data.tfds import TFDSSegmentation, load_tfds, tfds_example_to_pair
from keras_ann.data.transforms import test_transform, train_transform

__all__ = [
    "ADE20K",
    "Cityscapes",
    "DATA_CONFIGS",
    "DataConfig",
    "DatasetError",
    "DatasetWarning",
    "FolderDataset",
    "METAINFO",
    "MMSEG_PAD_VALUE",
    "PascalVOC",
    "SegmentationDataset",
    "TFDSSegmentation",
    "apply_eval_transforms",
    "apply_train_transforms",
    "build_dataset",
    "camvid",
    "cityscapes_label_id_map",
    "get_data_config",
    "load_sample",
    "load_tfds",
    "make_label_lut",
    "read_image",
    "read_label",
    "test_transform",
    "tfds_example_to_pair",
    "train_transform",
    "verify_files",
]
