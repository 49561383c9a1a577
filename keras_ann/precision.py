"""The compute precision: `"auto"` is bfloat16 where the hardware runs it
natively, float32 elsewhere.

bfloat16 halves the memory traffic and, on hardware with bfloat16 units,
doubles (AVX512_BF16) or more (AMX, tensor cores) the matrix-multiply rate.
Without such units it is emulated and several times slower than float32
(an Intel Ice Lake: AVX-512 and VNNI, no AVX512_BF16, no AMX; BENCHMARKS.md,
"How to read these figures"). So `"auto"` looks at the
hardware the active Keras backend computes on:

- a CUDA GPU: `mixed_bfloat16` from compute capability 8.0 (Ampere) on,
  `mixed_float16` on 7.x (Volta, Turing: float16 tensor cores, no
  bfloat16), float32 before;
- a CPU: `mixed_bfloat16` when it has AMX-BF16 or AVX512_BF16 (x86) or the
  BF16 extension (Arm), float32 otherwise.

Example:

>>> resolve_precision("float32")
'float32'
>>> resolve_precision("auto") in ("float32", "mixed_bfloat16", "mixed_float16")
True
"""

import collections
import functools
import platform

import keras

from keras_ann.checks import PRECISIONS, check_precision

__all__ = ["CHOICES", "Hardware", "describe_hardware", "resolve_precision"]

# What training, benchmarks and the command line accept.
CHOICES = ("auto",) + PRECISIONS

# CPU flags (Linux /proc/cpuinfo names) of native bfloat16 arithmetic.
_BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16", "bf16")


# The device the active backend computes on (see `describe_hardware`).
Hardware = collections.namedtuple("Hardware", ["device", "name", "native_bfloat16", "native_float16"])


def _cpu():
    """`(model name, flags)` of this machine's CPU (Linux; elsewhere the
    platform's processor name and no flags)."""
    name, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                if key == "model name" and name in ("", platform.processor(), platform.machine()):
                    name = value.strip()
                elif key in ("flags", "features"):
                    flags.update(value.split())
    except OSError:
        pass
    return name, flags


def _gpu():
    """`(name, (major, minor))` of the first CUDA GPU of the active backend,
    or `None`."""
    backend = keras.backend.backend()
    try:
        if backend == "tensorflow":
            import tensorflow as tf

            gpus = tf.config.list_physical_devices("GPU")
            if gpus:
                details = tf.config.experimental.get_device_details(gpus[0])
                return details.get("device_name", "GPU"), tuple(details.get("compute_capability", (0, 0)))
        elif backend == "jax":
            import jax

            device = jax.devices()[0]
            if device.platform == "gpu":
                major, _, minor = str(getattr(device, "compute_capability", "0.0")).partition(".")
                return device.device_kind, (int(major), int(minor or 0))
        elif backend == "torch":
            import torch

            if torch.cuda.is_available():
                return torch.cuda.get_device_name(0), tuple(torch.cuda.get_device_capability(0))
    except Exception:  # noqa: BLE001 - no usable GPU: the CPU decides
        return None
    return None


@functools.lru_cache(maxsize=None)
def describe_hardware():
    """The device the active Keras backend computes on, and whether it runs
    bfloat16 and float16 natively.

    Returns:
        A `Hardware`: `device` (`"gpu"` or `"cpu"`), `name` (the GPU's or
        the CPU's model name), `native_bfloat16`, `native_float16` (GPUs
        only: auto never picks float16 on a CPU).
    """
    gpu = _gpu()
    if gpu is not None:
        name, capability = gpu
        return Hardware("gpu", name, capability >= (8, 0), capability >= (7, 0))
    name, flags = _cpu()
    return Hardware("cpu", name, any(flag in flags for flag in _BF16_CPU_FLAGS), False)


def resolve_precision(precision, log=None):
    """The Keras dtype policy for `precision`.

    Args:
        precision: `"auto"` or one of `PRECISIONS` (`"float32"`,
            `"mixed_float16"`, `"mixed_bfloat16"`).
        log: a function given one line saying what `"auto"` chose, and
            that an explicit `"mixed_bfloat16"` will be emulated (and
            slower than float32) on hardware without bfloat16 units;
            `None` says nothing.

    Returns:
        One of `PRECISIONS`.

    Raises:
        ValueError: for any other value, naming the choices.
    """
    if precision != "auto":
        check_precision(precision)
        hardware = describe_hardware()
        if precision == "mixed_bfloat16" and not hardware.native_bfloat16 and log is not None:
            log(
                f"precision: mixed_bfloat16 is emulated on this {hardware.device} ({hardware.name}: no AVX512_BF16, "
                "AMX or bfloat16 tensor cores) and slower than float32; --precision auto chooses float32 here"
            )
        return precision
    hardware = describe_hardware()
    if hardware.native_bfloat16:
        chosen, why = "mixed_bfloat16", "runs bfloat16 natively"
    elif hardware.device == "gpu" and hardware.native_float16:
        chosen, why = "mixed_float16", "has float16 tensor cores but no bfloat16"
    else:
        chosen, why = "float32", "has no native bfloat16 (it would be emulated, slower than float32)"
    if log is not None:
        log(f"precision: auto -> {chosen} (this {hardware.device}, {hardware.name}, {why})")
    return chosen
