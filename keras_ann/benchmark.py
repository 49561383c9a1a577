"""Speed and memory of ANN models: what `keras-ann benchmark` measures.

For a released model (a preset name) or a backbone name, the model's
architecture is built with fresh weights (timing does not depend on the
weights, so nothing is downloaded) and measured on random images:

- **inference**: whole-image forward passes of a batch through the compiled
  predict function (`predict_on_batch`, logits back on the host, as the
  reference's test loop returns them); warm-up runs (tracing, compilation)
  are excluded and the median of the timed runs is reported, as frames per
  second (`"Inf time (fps)"`, the reference table's column) and seconds per
  image;
- **training** (optional): optimisation steps (`train_on_batch`) on random
  crops and labels with the recipe's loss (cross-entropy ignoring 255, plus
  0.4 x the auxiliary head's) and optimiser (SGD with momentum, weight decay
  and poly decay), median seconds per step;
- **memory**: the peak resident memory of the process during each phase
  (Linux's `VmHWM`, reset before the phase; elsewhere the process's
  lifetime peak, `ru_maxrss`), and on a GPU the backend's peak device
  memory. `"Mem (GB)"` is the training phase's peak (device memory on a
  GPU, host memory otherwise), like the reference table's training memory;
  the inference phase's when training is not measured.

The backend is Keras's (`KERAS_BACKEND`); backend-specific calls (device
names, device memory) are isolated in the `_device_*` helpers below.

Example:

```python
from keras_ann.benchmark import resolve_spec, run_benchmark, format_results

spec = resolve_spec("resnet18_d8", num_classes=19, input_size=(64, 64), runs=1, warmup=1, train=False)
print(format_results([run_benchmark(spec)]))
```
"""

import dataclasses
import os
import resource
import statistics
import sys
import time

import numpy as np

from keras_ann.checks import PRECISIONS, check_pair, check_positive_int
from keras_ann.precision import resolve_precision
from keras_ann.presets import PRESETS
from keras_ann.recipes import RECIPES, Recipe

__all__ = [
    "BenchmarkSpec",
    "COLUMNS",
    "PRECISIONS",
    "build_model",
    "format_results",
    "parse_results",
    "resolve_spec",
    "run_benchmark",
]


# The reference's training memory is per GPU; its recipes put 4 GPUs to work.
_REFERENCE_GPUS = 4


@dataclasses.dataclass(frozen=True)
class BenchmarkSpec:
    """What to measure.

    Attributes:
        model: the preset or backbone name given.
        model_config: `ANNSegmenter` arguments.
        recipe: the `Recipe` whose loss and optimiser the training step uses.
        input_size: `(height, width)` of the inference images.
        batch_size: images per inference batch.
        precision: `"float32"`, `"mixed_float16"` or `"mixed_bfloat16"`.
        runs: timed runs of each phase (the median is reported).
        warmup: untimed runs before them.
        train: whether to time training steps.
        train_size: `(height, width)` of the training crops.
        train_batch_size: images per training step.
        jit_compile: `None` (Keras's `"auto"`), `True` or `False`.
        fold_batch_norm: time inference on the model with its batch norm
            folded into the convolutions (`keras_ann.fold_batch_norm`), as
            `keras-ann predict`, `evaluate` and `export` run it.
        remat: what training recomputes (`ResNetBackbone(remat=...)`):
            `True`, `False` or a tuple of the backbone's parts.
        reference_memory_gb: the reference's training memory (V100), or
            `None`.
        reference_fps: the reference's inference speed (V100), or `None`.
    """

    model: str
    model_config: dict
    recipe: Recipe
    input_size: tuple
    batch_size: int = 1
    precision: str = "float32"
    runs: int = 5
    warmup: int = 1
    train: bool = True
    train_size: tuple = None
    train_batch_size: int = 2
    jit_compile: bool = None
    fold_batch_norm: bool = True
    remat: object = False
    reference_memory_gb: float = None
    reference_fps: float = None


def _size(value, name):
    return None if value is None else check_pair(value, name)


def resolve_spec(
    model,
    *,
    num_classes=None,
    input_size=None,
    batch_size=1,
    precision="auto",
    runs=5,
    warmup=1,
    train=True,
    train_size=None,
    train_batch_size=None,
    jit_compile=None,
    fold_batch_norm=True,
    remat=False,
):
    """A `BenchmarkSpec` from user arguments, with a preset's defaults.

    Args:
        model: a preset name (`keras_ann.presets.PRESETS`) or a backbone name
            (`keras_ann.backbones.BACKBONE_NAMES`, e.g. `"resnet50_d8"`).
        num_classes: classes of the classifier; required for a backbone name,
            optional for a preset (defaults to its dataset's).
        input_size: `(height, width)` of the inference images. Defaults to a
            preset's test window (769x769 for slide-window presets) or its
            training crop; required for a backbone name.
        batch_size: inference batch. Defaults to 1.
        precision: `"auto"` (the default: `keras_ann.precision`), `"float32"`,
            `"mixed_float16"` or `"mixed_bfloat16"`.
        runs: timed runs per phase. Defaults to 5.
        warmup: untimed runs first. Defaults to 1.
        train: also time training steps. Defaults to `True`.
        train_size: `(height, width)` of the training crops. Defaults to the
            preset's crop, or `input_size` for a backbone name.
        train_batch_size: images per training step. Defaults to the images
            per GPU of the preset's recipe (2 for Cityscapes, 4 for ADE20K
            and Pascal VOC), 2 for a backbone name.
        jit_compile: `None` for Keras's default, or a bool.
        fold_batch_norm: bool, time inference with the batch norm folded
            into the convolutions. Defaults to `True`.
        remat: bool, or the backbone's parts to recompute (`"stem,stage1"`,
            see `ResNetBackbone`): time training with recomputation (less
            memory, a slower step). Defaults to `False`.

    Returns:
        A `BenchmarkSpec`.

    Raises:
        ValueError: naming the offending argument.
    """
    from keras_ann.backbones.resnet import BACKBONE_NAMES, remat_setting

    precision = resolve_precision(precision, log=print)
    if jit_compile not in (None, True, False):
        raise ValueError(f"`jit_compile` must be None, True or False, got {jit_compile!r}.")
    batch_size = check_positive_int(batch_size, "batch_size")
    runs = check_positive_int(runs, "runs")
    warmup = check_positive_int(warmup, "warmup", allow_zero=True)
    input_size = _size(input_size, "input_size")
    train_size = _size(train_size, "train_size")
    if num_classes is not None:
        num_classes = check_positive_int(num_classes, "num_classes")

    if model in PRESETS:
        preset = PRESETS[model]
        config = preset.model_config()
        if num_classes is not None:
            config["num_classes"] = num_classes
        recipe = RECIPES[model]
        default_input = preset.test_crop or preset.crop_size
        input_size = input_size or tuple(default_input)
        train_size = train_size or tuple(preset.crop_size)
        default_train_batch = recipe.images_per_gpu
        reference = (preset.memory_gb, preset.fps)
    elif model in BACKBONE_NAMES:
        if num_classes is None:
            raise ValueError(
                f"`num_classes` is required with a backbone name ({model!r}); "
                "give --num-classes, or use a preset name."
            )
        if input_size is None:
            raise ValueError(
                f"`input_size` is required with a backbone name ({model!r}); "
                "give --input-size H W."
            )
        config = {"backbone": model, "num_classes": num_classes, "align_corners": False}
        train_size = train_size or input_size
        recipe = Recipe(
            name=f"ann_{model}",
            data="folder",
            backbone=model,
            num_classes=num_classes,
            crop_size=train_size,
            iterations=40000,
            images_per_gpu=2,
            total_batch=2 * _REFERENCE_GPUS,
            val_interval=4000,
        )
        default_train_batch = 2
        reference = (None, None)
    else:
        raise ValueError(
            f"Unknown model {model!r}: expected a preset name ({', '.join(sorted(PRESETS))}) "
            f"or a backbone name ({', '.join(sorted(BACKBONE_NAMES))})."
        )
    train_batch_size = check_positive_int(
        default_train_batch if train_batch_size is None else train_batch_size, "train_batch_size"
    )
    return BenchmarkSpec(
        model=model,
        model_config=config,
        recipe=recipe,
        input_size=input_size,
        batch_size=batch_size,
        precision=precision,
        runs=runs,
        warmup=int(warmup),
        train=bool(train),
        train_size=train_size,
        train_batch_size=train_batch_size,
        jit_compile=jit_compile,
        fold_batch_norm=bool(fold_batch_norm),
        remat=remat_setting(remat),
        reference_memory_gb=reference[0],
        reference_fps=reference[1],
    )


# === Memory ===


def _read_vm_hwm():
    """Peak resident set size of this process in bytes (`VmHWM`), or None."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _reset_vm_hwm():
    """Reset `VmHWM` to the current RSS (Linux >= 4.0); False if impossible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _ru_maxrss_bytes():
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # kB on Linux


class _PeakHostMemory:
    """Peak RSS over a `with` block: `VmHWM` reset at entry where Linux
    allows it (`per_phase` True), otherwise the process's lifetime peak."""

    def __enter__(self):
        self.per_phase = _reset_vm_hwm() and _read_vm_hwm() is not None
        return self

    def __exit__(self, *exc):
        self.peak_bytes = _read_vm_hwm() if self.per_phase else _ru_maxrss_bytes()
        return False


# === Backend-specific helpers ===


def _device_kind():
    """`(platform, description)` of the device Keras computes on."""
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_logical_devices("GPU")
        if gpus:
            details = tf.config.experimental.get_device_details(tf.config.list_physical_devices("GPU")[0])
            return "gpu", details.get("device_name", gpus[0].name)
    elif backend == "jax":
        import jax

        device = jax.devices()[0]
        if device.platform != "cpu":
            return device.platform, device.device_kind
    elif backend == "torch":
        import torch

        if torch.cuda.is_available():
            return "gpu", torch.cuda.get_device_name(0)
    return "cpu", f"CPU x{os.cpu_count()}"


def _device_memory_reset():
    """Reset the backend's device peak-memory counter where it has one."""
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        for device in tf.config.list_logical_devices("GPU"):
            tf.config.experimental.reset_memory_stats(device.name)
    elif backend == "torch":
        import torch

        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
    # JAX has no reset: its peak is the process's peak so far.


def _device_memory_peak():
    """Peak device memory in bytes since the last reset, or None on a CPU."""
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        devices = tf.config.list_logical_devices("GPU")
        if devices:
            return int(tf.config.experimental.get_memory_info(devices[0].name)["peak"])
    elif backend == "jax":
        import jax

        device = jax.devices()[0]
        if device.platform != "cpu":
            stats = device.memory_stats() or {}
            return stats.get("peak_bytes_in_use")
    elif backend == "torch":
        import torch

        if torch.cuda.is_available():
            return int(torch.cuda.max_memory_allocated())
    return None


# === Measuring ===


def _timed(fn, runs, warmup):
    """`(first_call_seconds, [timed seconds])`; the first warm-up call's time
    includes tracing and compilation."""
    first = None
    for _ in range(warmup):
        start = time.perf_counter()
        fn()
        elapsed = time.perf_counter() - start
        first = elapsed if first is None else first
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return first, times


def build_model(spec):
    """The spec's `ANNSegmenter` (fresh weights, the spec's precision),
    compiled with its recipe's loss and optimiser."""
    import keras

    from keras_ann.backbones.resnet import set_remat
    from keras_ann.models.ann_segmenter import ANNSegmenter
    from keras_ann.training import compile_for_recipe

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(spec.precision)
    try:
        model = ANNSegmenter(**spec.model_config)
        set_remat(model.backbone, spec.remat)
        jit = "auto" if spec.jit_compile is None else spec.jit_compile
        compile_for_recipe(model, spec.recipe, spec.precision, jit_compile=jit)
    finally:
        keras.config.set_dtype_policy(previous)
    return model


def check_benchmark_memory(spec):
    """`keras_ann.checks.MemoryBudgetError` (a `ValueError`) when the
    spec's inference or training batch cannot fit in this machine's
    memory (`keras_ann.checks.check_memory`), before anything is built."""
    from keras_ann.checks import check_memory

    classes = spec.model_config["num_classes"]
    h, w = spec.input_size
    check_memory(h, w, classes, what=f"inference on {spec.batch_size}x{h}x{w}", flag="--input-size or --batch-size",
                 batch=spec.batch_size, precision=spec.precision)  # fmt: skip
    if spec.train:
        h, w = spec.train_size
        check_memory(h, w, classes, what=f"training on {spec.train_batch_size}x{h}x{w}", training=True,
                     flag="--train-size or --train-batch-size", batch=spec.train_batch_size,
                     precision=spec.precision)  # fmt: skip


def run_benchmark(spec, *, seed=0, verbose=False):
    """Measure a `BenchmarkSpec`; returns a dict of results (see
    `COLUMNS` for the table's keys).

    The spec's precision is the global dtype policy while it measures, as
    in `keras-ann train` (the training step is traced under it), and the
    previous policy is restored afterwards."""
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(spec.precision)
    try:
        return _run_benchmark(spec, seed, verbose)
    finally:
        keras.config.set_dtype_policy(previous)


def _run_benchmark(spec, seed, verbose):
    import keras

    def log(message):
        if verbose:
            print(message, file=sys.stderr, flush=True)

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    platform, device = _device_kind()
    log(f"building {spec.model} ({spec.precision}) on {device} ...")
    start = time.perf_counter()
    model = build_model(spec)
    build_seconds = time.perf_counter() - start
    params = int(sum(np.prod(w.shape) for w in model.weights if w.trainable))

    h, w = spec.input_size
    images = rng.uniform(0, 255, (spec.batch_size, h, w, 3)).astype("float32")
    predictor = model
    if spec.fold_batch_norm:
        from keras_ann.models.batch_norm_folding import fold_batch_norm

        predictor = fold_batch_norm(model)
    _device_memory_reset()
    log(f"inference: {spec.batch_size}x{h}x{w}, {spec.warmup} warm-up + {spec.runs} runs ...")
    with _PeakHostMemory() as inference_memory:
        first, times = _timed(lambda: predictor.predict_on_batch(images), spec.runs, spec.warmup)
    del predictor
    inference_device = _device_memory_peak()
    median = statistics.median(times)
    result = {
        "model": spec.model,
        "backend": keras.backend.backend(),
        "device": device,
        "platform": platform,
        "precision": spec.precision,
        "jit_compile": "auto" if spec.jit_compile is None else bool(spec.jit_compile),
        "fold_batch_norm": spec.fold_batch_norm,
        "remat": spec.remat,
        "input": f"{h}x{w}",
        "batch": spec.batch_size,
        "params": params,
        "build_s": build_seconds,
        "inference_first_s": first,
        "inference_times_s": times,
        "inference_median_s": median,
        "s_per_image": median / spec.batch_size,
        "fps": spec.batch_size / median,
        "inference_rss_gb": inference_memory.peak_bytes / 1e9,
        "inference_device_gb": None if inference_device is None else inference_device / 1e9,
        "rss_per_phase": inference_memory.per_phase,
        "train_crop": None,
        "train_batch": None,
        "train_first_s": None,
        "train_times_s": None,
        "train_step_s": None,
        "train_rss_gb": None,
        "train_device_gb": None,
        "reference_memory_gb": spec.reference_memory_gb,
        "reference_fps": spec.reference_fps,
    }
    if spec.train:
        th, tw = spec.train_size
        n = spec.train_batch_size
        crops = rng.uniform(0, 255, (n, th, tw, 3)).astype("float32")
        labels = rng.integers(0, spec.model_config["num_classes"], (n, th, tw)).astype("int32")
        _device_memory_reset()
        log(f"training: {n}x{th}x{tw}, {spec.warmup} warm-up + {spec.runs} steps ...")
        with _PeakHostMemory() as train_memory:
            first, times = _timed(lambda: model.train_on_batch(crops, labels), spec.runs, spec.warmup)
        train_device = _device_memory_peak()
        result.update(
            train_crop=f"{th}x{tw}",
            train_batch=n,
            train_first_s=first,
            train_times_s=times,
            train_step_s=statistics.median(times),
            train_rss_gb=train_memory.peak_bytes / 1e9,
            train_device_gb=None if train_device is None else train_device / 1e9,
        )
    on_device = platform != "cpu"
    if spec.train:
        result["mem_gb"] = result["train_device_gb"] if on_device else result["train_rss_gb"]
    else:
        result["mem_gb"] = result["inference_device_gb"] if on_device else result["inference_rss_gb"]
    result["load_average"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    return result


# === Output ===

# (key, header, format)
COLUMNS = (
    ("model", "model", "{}"),
    ("backend", "backend", "{}"),
    ("device", "device", "{}"),
    ("precision", "precision", "{}"),
    ("input", "input", "{}"),
    ("batch", "batch", "{}"),
    ("mem_gb", "Mem (GB)", "{:.2f}"),
    ("fps", "Inf time (fps)", "{:.3f}"),
    ("s_per_image", "s/image (median)", "{:.3f}"),
    ("train_crop", "train crop", "{}"),
    ("train_batch", "train batch", "{}"),
    ("train_step_s", "train step (s)", "{:.3f}"),
    ("inference_rss_gb", "peak RSS inf (GB)", "{:.2f}"),
    ("train_rss_gb", "peak RSS train (GB)", "{:.2f}"),
)


def format_results(results):
    """A Markdown table of `run_benchmark` results, one row each, with the
    reference table's `Mem (GB)` and `Inf time (fps)` columns."""
    header = "| " + " | ".join(title for _, title, _ in COLUMNS) + " |"
    rule = "|" + "|".join("---" for _ in COLUMNS) + "|"
    rows = []
    for result in results:
        cells = []
        for key, _, fmt in COLUMNS:
            value = result.get(key)
            cells.append("-" if value is None else fmt.format(value))
        rows.append("| " + " | ".join(cells) + " |")
    lines = [header, rule] + rows
    notes = []
    for result in results:
        if result.get("reference_fps") is not None:
            notes.append(
                f"reference ({result['model']}, mmsegmentation on a V100): "
                f"Mem {result['reference_memory_gb']} GB, {result['reference_fps']} fps"
            )
    where = "device memory" if any(r.get("platform") != "cpu" for r in results) else "host peak RSS"
    notes.append(
        f"Mem (GB): {where} of the training step (of inference with --no-train); "
        "times: median of the timed runs, warm-up excluded."
    )
    return "\n".join(lines + [""] + notes)


def parse_results(text):
    """Rows of a table written by `format_results`, as dicts keyed by the
    column titles (strings as printed)."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    if len(lines) < 2:
        raise ValueError("No benchmark table in the given text.")
    titles = [cell.strip() for cell in lines[0].strip("|").split("|")]
    return [
        dict(zip(titles, (cell.strip() for cell in line.strip("|").split("|"))))
        for line in lines[2:]
    ]
