#!/usr/bin/env bash
# keras-ann (JAX backend) beside mmsegmentation on a GPU machine without
# internet that has PyTorch and JAX but neither TensorFlow nor Keras.
#
# 1. Here (with internet / the package index), fetch the wheels into
#    .whl/gpu (ignored by git; about 25 MB):
#        benchmarks/gpu_jax.sh prepare [python versions, default 3.10 3.11 3.12]
# 2. On the GPU machine (device tool: carry [".whl"]), install them and run:
#        benchmarks/gpu_jax.sh run [gpu_jax.py arguments]
#
# `run` installs Keras (and mmsegmentation 1.2.2 / mmengine / mmcv-lite for
# the reference) with `pip install --no-index` from .whl/gpu into the
# machine's Python, then runs benchmarks/gpu_jax.py with KERAS_BACKEND=jax
# and JAX's memory preallocation off (so peak memory is what is used).
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS=.whl/gpu
PYTHON=${PYTHON:-python3}

case "${1:-}" in
  prepare)
    shift
    versions=("${@:-3.10 3.11 3.12}")
    mkdir -p "$WHEELS"
    # Pure-Python wheels: Keras and what it imports, the reference's stack.
    "$PYTHON" -m pip download -q --no-deps -d "$WHEELS" \
      keras==3.15.1 namex absl-py rich markdown-it-py mdurl pygments \
      mmsegmentation==1.2.2 mmengine==0.10.7 mmcv-lite==2.2.0 addict yapf termcolor prettytable wcwidth
    # Compiled ones for the GPU machine's Python (the versions given).
    for pyver in ${versions[@]}; do
      "$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version "$pyver" \
        --platform manylinux2014_x86_64 -d "$WHEELS" optree h5py
    done
    du -sh "$WHEELS"
    ;;
  run)
    shift
    pip_install() { "$PYTHON" -m pip install -q --no-index --no-deps --find-links "$WHEELS" "$@"; }
    missing() { ! "$PYTHON" -c "import $1" 2>/dev/null; }
    "$PYTHON" -c "import jax; print('jax', jax.__version__, jax.devices())"
    for mod in absl:absl-py rich:rich markdown_it:markdown-it-py mdurl:mdurl pygments:pygments \
               namex:namex optree:optree h5py:h5py; do
      if missing "${mod%%:*}"; then pip_install "${mod##*:}"; fi
    done
    missing keras && pip_install keras
    for mod in addict:addict yapf:yapf termcolor:termcolor prettytable:prettytable wcwidth:wcwidth \
               mmengine:mmengine mmcv:mmcv-lite mmseg:mmsegmentation; do
      if missing "${mod%%:*}"; then pip_install "${mod##*:}" || echo "could not install ${mod##*:}"; fi
    done
    export KERAS_BACKEND=jax XLA_PYTHON_CLIENT_PREALLOCATE=false
    "$PYTHON" -c "import keras; print('keras', keras.__version__, keras.backend.backend())"
    PYTHONPATH=. "$PYTHON" benchmarks/gpu_jax.py "$@"
    ;;
  *)
    echo "usage: $0 prepare [python versions] | run [gpu_jax.py arguments]" >&2
    exit 2
    ;;
esac
