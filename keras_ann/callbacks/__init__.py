"""Keras callbacks of the training loop, one per module."""

from keras_ann.callbacks.best_checkpoint import BestCheckpoint
from keras_ann.callbacks.evaluation import MeanIoUEvaluation
from keras_ann.callbacks.json_lines_log import JsonLinesLog
from keras_ann.callbacks.resume_state import ResumeState
from keras_ann.callbacks.snapshots import Snapshots
from keras_ann.callbacks.tensorboard_evaluation import TensorBoardEvaluation
from keras_ann.callbacks.time_budget import TimeBudget

__all__ = ["BestCheckpoint", "JsonLinesLog", "MeanIoUEvaluation", "ResumeState", "Snapshots", "TensorBoardEvaluation", "TimeBudget"]
