"""The `keras-ann` command line: one module per command, each adding its
own parser (`add_parser`) and running as parse -> call the library ->
print; the argument types are in `arguments`, the flag groups several
commands share in `options`.

Arguments are checked by the parser (`type=`) before anything is loaded or
trained; a bad one ends the command with argparse's usage line and
`keras-ann <cmd>: error: <what is wrong>` (exit 2). An error of the run
itself (bad data, a bad file, a full disk) prints one line
`keras-ann <cmd>: error: <message>` and exits with 1; set
`KERAS_ANN_DEBUG=1` to see the traceback as well.
"""

import os
import re
import sys

from keras_ann.cli import (
    analyze, benchmark, convert, demo, evaluate, export, inspect, predict, presets, push, recipes, train,
)  # fmt: skip
from keras_ann.cli.arguments import Parser

# In the order `keras-ann --help` lists them.
COMMANDS = (demo, convert, train, inspect, evaluate, predict, benchmark, export, push, presets, recipes, analyze)


def build_parser():
    """The parser of `keras-ann` and all its commands."""
    parser = Parser(
        prog="keras-ann",
        description="Asymmetric Non-local Networks for semantic segmentation (Keras 3).",
    )
    parser.add_argument(
        "--verbose", action="store_true",
        help="also show the start-up log lines of TensorFlow's C++ libraries (hidden by default)",
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(subparsers)
    return parser


# Errors of the run that are the user's to fix: one line, no traceback.
_DOMAIN_ERRORS = (ValueError, OSError, ImportError, FloatingPointError)


def _pipeline_error(error):
    """The message of an error raised inside a `tf.data` pipeline, or None.

    A `DatasetError` raised by a `tf.numpy_function` load reaches Python as
    a TensorFlow `OpError` ("Graph execution error: ...") whose text holds
    the original message after `DatasetError: `; other op errors give
    their first line of substance.
    """
    try:
        from tensorflow.errors import OpError
    except ImportError:  # pragma: no cover - TensorFlow is a dependency
        return None
    if not isinstance(error, OpError):
        return None
    text = str(getattr(error, "message", "") or error)
    match = re.search(r"DatasetError: (.*?)\]?\s*$", text, re.MULTILINE)
    if match:
        return match.group(1)
    lines = [
        line.strip() for line in text.splitlines()
        if line.strip() and not line.strip().startswith(("Graph execution error", "Detected at node", "<stack", "[["))
    ]
    return f"{type(error).__name__}: {lines[0] if lines else text.strip()}"


def main(argv=None):
    """Runs `keras-ann`; returns the exit status.

    Args:
        argv: the arguments (default: the process's command line).

    An error of the run prints `keras-ann <cmd>: error: <message>` on stderr
    (with the traceback too when `KERAS_ANN_DEBUG=1`) and gives status 1.
    Run as the process's own command line (`argv=None`), the process then
    ends at once (`os._exit` after flushing): Python's normal shutdown
    destroys a failed `tf.data` iterator while holding the GIL and would
    wait forever for the pipeline's `tf.numpy_function` loads, which need it.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
        return 0
    except Exception as error:  # noqa: BLE001 - reported below, then the process ends
        message = _pipeline_error(error)
        if message is None and isinstance(error, _DOMAIN_ERRORS):
            message = str(error) or type(error).__name__
        if message is None or os.environ.get("KERAS_ANN_DEBUG", "") not in ("", "0"):
            import traceback

            traceback.print_exc()
        if message is not None:
            print(f"{parser.prog} {args.command}: error: {message}", file=sys.stderr)
        if argv is None:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(1)
        return 1
