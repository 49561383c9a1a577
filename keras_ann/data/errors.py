"""Errors and warnings of the data pipelines."""

__all__ = ["DatasetError", "DatasetWarning"]


class DatasetError(ValueError):
    """A dataset is missing, empty, or holds an unusable image or label.

    The message always names the file(s) or the directory concerned.
    """


class DatasetWarning(UserWarning):
    """A bad sample was skipped (`skip_bad=True`)."""
