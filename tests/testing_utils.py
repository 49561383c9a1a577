"""Helpers shared by the tests: optional modules and ../shared data."""

import os

import pytest

# ../shared beside the checkout (CI clones main with shared/ beside it).
SHARED_DIR = os.environ.get(
    "KERAS_ANN_SHARED", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared")
)


def shared_path(*parts):
    """A path under ../shared; skips the test when absent (fails under CI)."""
    path = os.path.join(SHARED_DIR, *parts)
    if not os.path.exists(path):
        if os.environ.get("CI"):
            pytest.fail(f"{path} is required in CI but missing")
        pytest.skip(f"{path} is not available")
    return path


def require(module):
    """Import `module`, or skip the test; under CI a missing module fails
    instead, so that CI never passes by skipping."""
    import importlib
    import importlib.util

    if importlib.util.find_spec(module) is None:
        if os.environ.get("CI"):
            pytest.fail(f"{module} is required in CI but not installed")
        pytest.skip(f"{module} is not installed")
    return importlib.import_module(module)
