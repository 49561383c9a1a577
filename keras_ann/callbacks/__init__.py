"""Keras callbacks of the training loop, one per module."""

from keras_ann.callbacks.evaluation import MeanIoUEvaluation
from keras_ann.callbacks.resume_state import ResumeState
from keras_ann.callbacks.time_budget import TimeBudget

__all__ = ["MeanIoUEvaluation", "ResumeState", "TimeBudget"]
