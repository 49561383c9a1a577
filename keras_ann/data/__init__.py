"""Datasets and `tf.data` pipelines reproducing mmsegmentation's transforms."""

from keras_ann.data.ade20k import ADE20K
from keras_ann.data.cityscapes import Cityscapes, cityscapes_label_id_map
from keras_ann.data.errors import DatasetError, DatasetWarning
from keras_ann.data.folder import FolderDataset, camvid
from keras_ann.data.io import load_sample, make_label_lut, read_image, read_label, verify_files
from keras_ann.data.label_scan import LabelScan, check_dataset_labels, scan_labels
from keras_ann.data.metainfo import METAINFO
from keras_ann.data.pascal_voc import PascalVOC
from keras_ann.data.rgb_labels import rgb_to_labels
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
    "DatasetError",
    "DatasetWarning",
    "FolderDataset",
    "LabelScan",
    "METAINFO",
    "MMSEG_PAD_VALUE",
    "PascalVOC",
    "SegmentationDataset",
    "TFDSSegmentation",
    "apply_eval_transforms",
    "apply_train_transforms",
    "camvid",
    "check_dataset_labels",
    "cityscapes_label_id_map",
    "load_sample",
    "load_tfds",
    "make_label_lut",
    "read_image",
    "read_label",
    "rgb_to_labels",
    "scan_labels",
    "test_transform",
    "tfds_example_to_pair",
    "train_transform",
    "verify_files",
]
