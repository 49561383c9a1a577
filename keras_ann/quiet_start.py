"""The `keras-ann` command prints its own words only: TensorFlow's C++
start-up lines are hidden unless `--verbose` is given.

Standard library only: `keras_ann/__init__.py` runs this before it imports
Keras, when the process is the `keras-ann` command (or `python -m
keras_ann....`); a Python program importing keras_ann is left as it is.
"""

import os
import sys


def load_tensorflow_quietly(argv):
    """Loads TensorFlow (when installed) with file descriptor 2 sent to
    /dev/null, unless `argv` holds `--verbose`: its C++ libraries print
    their start-up lines (oneDNN, CPU features, absl) there while they load,
    before any Python or `TF_CPP_MIN_LOG_LEVEL` setting applies. The
    descriptor is restored at once, so every error of the command itself
    (a failed import included) is shown. `keras_ann/__init__.py` calls
    this first when the process is the `keras-ann` command."""
    import importlib.util

    if "--verbose" in argv or "tensorflow" in sys.modules or importlib.util.find_spec("tensorflow") is None:
        return
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
