"""`python -m keras_ann.cli`: the `keras-ann` command."""

import sys

from keras_ann.cli import main

if __name__ == "__main__":  # not when a tool imports every module of the package
    sys.exit(main())
