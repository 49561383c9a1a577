"""Side-by-side speed of keras-ann and mmsegmentation 1.2.2 on this machine.

Both implementations run ANN R-50-D8 (Cityscapes, 19 classes) with the same
weights: the reference model is built by the test harness
(`tests/reference/mmseg_ann.py`, random weights and calibrated BN
statistics), saved as an mmseg `.pth` and converted by `from_preset`. Each
side lives in its own worker process (so its peak RSS is its own and
neither's threads compete with the other's), and the parent alternates the
timed runs, ours then theirs, so that load from other programs hits both
alike. Reported per task: the medians, their ratio (ours / theirs), the
ratio of each pair of neighbouring runs and its median (the figure least
disturbed by changing load), each
worker's peak RSS during the task, and the load average around the runs.

Tasks (`--tasks`; the default runs all six):

- `fp32`: forward pass, whole image 512x1024, batch 1, float32 (ours:
  `predict_on_batch` of the model with its batch norm folded into the
  convolutions, as `keras-ann predict`, `evaluate` and `export` run it;
  `--no-fold` times it unfolded; theirs: the data preprocessor +
  `encode_decode`, as the reference's test loop).
- `bf16`: ours under `mixed_bfloat16` against theirs in float32.
- `bf16_autocast`: ours under `mixed_bfloat16` against theirs under
  `torch.autocast("cpu", dtype=torch.bfloat16)`, the fair bfloat16
  comparison.
- `train`: one training step, crop 512x512, batch 2: forward with the
  auxiliary head, cross-entropy (+ 0.4 x auxiliary), backward, SGD with
  momentum 0.9 and weight decay 5e-4 (ours: the recipe's, compiled), both
  in float32.
- `train_bf16`, `train_bf16_autocast`: that step with ours under
  `mixed_bfloat16`, against theirs in float32 and under autocast.

`--remat [PARTS]` trains ours with recomputation (`ResNetBackbone(remat=...)`,
of all the backbone or of the parts named, e.g. `--remat=stem,stage1`),
`--with-cp` the reference with its own (`with_cp=True`).

Each figure is also given as a fraction of the machine's matrix-multiply
peak in its precision: both workers time a 2048x2048 matrix product in
float32 and bfloat16 with their own framework and thread count, and the
faster of the two is the peak. The model's arithmetic is counted by
TensorFlow's profiler on our frozen inference graph (convolutions and
matrix products, the einsums counted from their shapes); a training step
counts as three forward passes at its size (forward, and the two products
of the backward pass), the usual estimate. The CPU model and flags go with
the results.

`--profile N` then runs N more steps of each task under each framework's
profiler and prints the seconds per step by kind of operation, ours beside
theirs (`benchmarks/op_profile.py`): where a gap comes from.

Usage:

    PYTHONPATH=. .venv/bin/python benchmarks/vs_mmseg.py --threads 2 --runs 3
    PYTHONPATH=. KERAS_BACKEND=jax .venv/bin/python benchmarks/vs_mmseg.py --tasks fp32
    PYTHONPATH=. .venv/bin/python benchmarks/vs_mmseg.py --tasks bf16_autocast,train_bf16_autocast
    PYTHONPATH=. .venv/bin/python benchmarks/vs_mmseg.py --tasks fp32,train --profile 2

Needs the test harness's packages (`tests/reference/REQUIREMENTS.txt`).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECIPE = "ann_r50_d8_cityscapes_512x1024_40k"
# task -> (ours' precision, the reference's precision, training step?)
TASKS = {
    "fp32": ("float32", "float32", False),
    "bf16": ("bfloat16", "float32", False),
    "bf16_autocast": ("bfloat16", "bfloat16", False),
    "train": ("float32", "float32", True),
    "train_bf16": ("bfloat16", "float32", True),
    "train_bf16_autocast": ("bfloat16", "bfloat16", True),
}
PEAK_SIZE = 2048


def cpu_info():
    """The CPU model and the flags that decide float32 / bfloat16 / int8 speed."""
    model, flags = "unknown", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and model == "unknown":
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    wanted = (
        "avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "avx512_vnni", "avx_vnni",
        "amx_tile", "amx_bf16", "amx_int8",
    )  # fmt: skip
    return {"model": model, "flags": [flag for flag in wanted if flag in flags], "cores": os.cpu_count()}


def _median_seconds(fn, runs=5):
    fn()
    times = []
    for _ in range(runs):
        begin = time.perf_counter()
        fn()
        times.append(time.perf_counter() - begin)
    return statistics.median(times)


# === Memory (no framework imports: the workers' RSS stays their own) ===


def _reset_peak_rss():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_rss_gb():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024 / 1e9
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9


# === Workers ===


def _inputs(args, task):
    import numpy as np

    rng = np.random.default_rng(0)
    if TASKS[task][2]:
        h, w = args.train_size
        n = args.train_batch
        images = rng.uniform(0, 255, (n, h, w, 3)).astype("float32")
        labels = rng.integers(0, 19, (n, h, w)).astype("int32")
        return images, labels
    h, w = args.size
    return rng.uniform(0, 255, (args.batch, h, w, 3)).astype("float32"), None


class _MMSegWorker:
    def __init__(self, args):
        import torch

        torch.set_num_threads(args.threads)
        sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
        import mmseg_ann

        self.torch = torch
        self.harness = mmseg_ann
        self.args = args
        self.model = mmseg_ann.build_reference_ann(depth=50, num_classes=19, seed=args.seed)
        mmseg_ann.save_state_dict(self.model, args.checkpoint)
        mmseg_ann.set_with_cp(self.model, args.with_cp)
        self.optimizer = None

    def prepare(self, task):
        images, labels = _inputs(self.args, task)
        _, precision, training = TASKS[task]
        if training:
            run = self._train_step(images, labels)
        else:
            model = self.model.eval()
            run = lambda: self.harness.reference_logits(model, images)  # noqa: E731
        if precision == "float32":
            return run

        def autocast_run():
            with self.torch.autocast("cpu", dtype=self.torch.bfloat16):
                return run()

        return autocast_run

    def profile(self, step, runs):
        import op_profile

        return op_profile.profile_torch(step, runs)

    def matmul_peaks(self):
        torch = self.torch
        peaks = {}
        for name, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
            a = torch.randn(PEAK_SIZE, PEAK_SIZE).to(dtype)
            b = torch.randn(PEAK_SIZE, PEAK_SIZE).to(dtype)
            peaks[name] = 2 * PEAK_SIZE**3 / _median_seconds(lambda: torch.mm(a, b)) / 1e9
        return peaks

    def _train_step(self, images, labels):
        import numpy as np
        from mmengine.structures import PixelData
        from mmseg.structures import SegDataSample

        torch = self.torch
        model = self.model.train()
        if self.optimizer is None:
            self.optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
        n, h, w, _ = images.shape
        # The reference's training configs pad batches to the crop size.
        model.data_preprocessor.size = (h, w)
        bgr = np.ascontiguousarray(images[..., ::-1].transpose(0, 3, 1, 2))
        inputs = [torch.from_numpy(bgr[i].copy()) for i in range(n)]
        samples = []
        for i in range(n):
            sample = SegDataSample()
            sample.gt_sem_seg = PixelData(data=torch.from_numpy(labels[i][None].astype("int64")))
            sample.set_metainfo(dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w)))
            samples.append(sample)

        def step():
            data = model.data_preprocessor(dict(inputs=inputs, data_samples=samples), training=True)
            losses = model(**data, mode="loss")
            loss, _ = model.parse_losses(losses)
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            return float(loss.detach())

        return step


class _OursWorker:
    def __init__(self, args):
        import keras

        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            tf.config.threading.set_intra_op_parallelism_threads(args.threads)
            tf.config.threading.set_inter_op_parallelism_threads(args.threads)
        self.keras = keras
        self.args = args
        self.models = {}

    def _model(self, precision):
        if precision not in self.models:
            import keras_ann
            from keras_ann.recipes import RECIPES
            from keras_ann.training import compile_for_recipe

            # The policy stays the global one while the task runs (set
            # again by `prepare`), as in `keras-ann train`: the training
            # step is traced under it.
            self.keras.config.set_dtype_policy(precision)
            model = keras_ann.ANNSegmenter.from_preset(self.args.checkpoint)
            keras_ann.backbones.set_remat(model.backbone, self.args.remat)
            jit = {None: "auto", "true": True, "false": False}[self.args.jit_compile]
            compile_for_recipe(model, RECIPES[RECIPE], precision, jit_compile=jit)
            self.models[precision] = model
        return self.models[precision]

    def _predictor(self, precision):
        """The model that times the forward pass: folded, as `keras-ann
        predict`, `evaluate` and `export` run it, unless `--no-fold`."""
        key = ("folded", precision)
        if key not in self.models:
            import keras_ann

            model = self._model(precision)
            self.models[key] = keras_ann.fold_batch_norm(model) if self.args.fold else model
        return self.models[key]

    def prepare(self, task):
        images, labels = _inputs(self.args, task)
        precision, _, training = TASKS[task]
        precision = "mixed_bfloat16" if precision == "bfloat16" else "float32"
        if training:
            model = self._model(precision)
            self.keras.config.set_dtype_policy(precision)
            return lambda: model.train_on_batch(images, labels)
        model = self._predictor(precision)
        self.keras.config.set_dtype_policy(precision)
        return lambda: model.predict_on_batch(images)

    def profile(self, step, runs):
        if self.keras.backend.backend() != "tensorflow":
            return None
        import op_profile

        return op_profile.profile_tensorflow(step, runs)

    def matmul_peaks(self):
        if self.keras.backend.backend() != "tensorflow":
            return {}
        import tensorflow as tf

        peaks = {}
        for name, dtype in (("float32", tf.float32), ("bfloat16", tf.bfloat16)):
            a = tf.cast(tf.random.normal((PEAK_SIZE, PEAK_SIZE)), dtype)
            b = tf.cast(tf.random.normal((PEAK_SIZE, PEAK_SIZE)), dtype)
            product = tf.function(lambda: tf.matmul(a, b))
            peaks[name] = 2 * PEAK_SIZE**3 / _median_seconds(lambda: product().numpy()) / 1e9
        return peaks

    def gflops(self, size):
        """Forward-pass GFLOPs of one image of `size` (TensorFlow only)."""
        if self.keras.backend.backend() != "tensorflow":
            return None
        import numpy as np
        import tensorflow as tf
        from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

        model = self._model("float32")
        spec = tf.TensorSpec((1, *size, 3), tf.float32)
        graph = convert_variables_to_constants_v2(
            tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
        ).graph
        options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
        options["output"] = "none"
        flops = tf.compat.v1.profiler.profile(graph=graph, options=options).total_float_ops
        for op in graph.get_operations():  # the profiler has no rule for einsum
            if op.type == "Einsum":
                equation = op.get_attr("equation").decode()
                operands, _ = equation.replace(" ", "").split("->")
                sizes = {}
                for letters, tensor in zip(operands.split(","), op.inputs):
                    sizes.update(zip(letters, tensor.shape.as_list()))
                flops += 2 * int(np.prod(list(sizes.values())))
        return flops / 1e9


def worker_main(args):
    """Serve commands from the parent, one JSON object per line."""
    out = sys.stdout
    sys.stdout = sys.stderr  # library prints must not corrupt the protocol
    start = time.perf_counter()
    worker = (_MMSegWorker if args.worker == "mmseg" else _OursWorker)(args)
    info = {"ready": True, "build_s": time.perf_counter() - start, "pid": os.getpid()}
    if args.worker == "ours":
        info["backend"] = worker.keras.backend.backend()
    print(json.dumps(info), file=out, flush=True)
    step = None
    for line in sys.stdin:
        command = json.loads(line)
        if command["op"] == "quit":
            break
        if command["op"] == "peaks":
            reply = worker.matmul_peaks()
        elif command["op"] == "gflops":
            reply = {"gflops": worker.gflops(command["size"])}
        elif command["op"] == "profile":
            reply = worker.profile(step, command["runs"])
        elif command["op"] == "prepare":
            _reset_peak_rss()
            step = worker.prepare(command["task"])
            reply = {"ok": True}
        else:  # run
            begin = time.perf_counter()
            step()
            reply = {"seconds": time.perf_counter() - begin, "peak_rss_gb": _peak_rss_gb()}
        print(json.dumps(reply), file=out, flush=True)


# === Parent ===


class _Worker:
    def __init__(self, kind, argv, env):
        self.kind = kind
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--worker", kind, *argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.info = self._read()

    def _read(self):
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the {self.kind} worker exited (code {self.proc.wait()})")
        return json.loads(line)

    def call(self, **command):
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self):
        try:
            self.call(op="quit")
        except (RuntimeError, BrokenPipeError, ValueError):
            pass
        self.proc.wait()


def _load():
    return os.getloadavg()[0]


def compare(args, worker_argv):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    print(f"load average before: {os.getloadavg()}", flush=True)
    theirs = _Worker("mmseg", worker_argv, env)
    ours = _Worker("ours", worker_argv, env)
    print(f"built: mmseg {theirs.info['build_s']:.1f} s, ours ({ours.info['backend']}) {ours.info['build_s']:.1f} s", flush=True)
    results = {
        "argv": sys.argv[1:], "backend": ours.info["backend"], "threads": args.threads, "cpu": cpu_info(), "tasks": {}
    }
    try:
        peaks = {"ours": ours.call(op="peaks"), "mmseg": theirs.call(op="peaks")}
        results["matmul_gflops"] = peaks
        results["peak_gflops"] = {
            p: max(side.get(p, 0.0) for side in peaks.values()) for p in ("float32", "bfloat16")
        }
        results["model_gflops"] = {
            "forward": ours.call(op="gflops", size=list(args.size))["gflops"],
            "train_forward": ours.call(op="gflops", size=list(args.train_size))["gflops"],
        }
        print(f"matrix-multiply GFLOP/s: {peaks}; model GFLOPs {results['model_gflops']}", flush=True)
        for task in args.tasks:
            loads = [_load()]
            for worker in (ours, theirs):
                worker.call(op="prepare", task=task)
                for _ in range(args.warmup):
                    worker.call(op="run")
            times = {"ours": [], "mmseg": []}
            peaks = {}
            for r in range(args.runs):
                for name, worker in (("ours", ours), ("mmseg", theirs)):
                    reply = worker.call(op="run")
                    times[name].append(reply["seconds"])
                    peaks[name] = reply["peak_rss_gb"]
                    loads.append(_load())
                print(f"{task} run {r + 1}: ours {times['ours'][-1]:.2f} s, mmseg {times['mmseg'][-1]:.2f} s, "
                      f"load {loads[-1]:.2f}", flush=True)
            ours_median = statistics.median(times["ours"])
            theirs_median = statistics.median(times["mmseg"])
            pair_ratios = [a / b for a, b in zip(times["ours"], times["mmseg"])]
            results["tasks"][task] = {
                "ours_s": times["ours"],
                "mmseg_s": times["mmseg"],
                "ours_median_s": ours_median,
                "mmseg_median_s": theirs_median,
                "ratio": ours_median / theirs_median,
                "pair_ratios": pair_ratios,
                "median_pair_ratio": statistics.median(pair_ratios),
                "ours_peak_rss_gb": peaks["ours"],
                "mmseg_peak_rss_gb": peaks["mmseg"],
                "load_min": min(loads),
                "load_max": max(loads),
            }
            results["tasks"][task].update(_peak_fractions(results, task, args, ours_median, theirs_median))
            if args.profile:
                results["tasks"][task]["profile"] = {
                    "ours": ours.call(op="profile", runs=args.profile),
                    "mmseg": theirs.call(op="profile", runs=args.profile),
                }
                print(format_profile(task, results["tasks"][task]["profile"]), flush=True)
    finally:
        ours.close()
        theirs.close()
    return results


def _peak_fractions(results, task, args, ours_s, theirs_s):
    """Each side's achieved GFLOP/s as a fraction of the peak of its precision."""
    ours_p, theirs_p, training = TASKS[task]
    gflops = results["model_gflops"]["train_forward" if training else "forward"]
    if gflops is None:
        return {}
    work = gflops * (3 * args.train_batch if training else args.batch)
    peak = results["peak_gflops"]
    return {
        "ours_peak_fraction": work / ours_s / peak[ours_p],
        "mmseg_peak_fraction": work / theirs_s / peak[theirs_p],
    }


def format_table(results, args):
    precision = {"float32": "float32", "bfloat16": "bfloat16 (autocast)"}
    titles = {}
    for task, (ours_p, theirs_p, training) in TASKS.items():
        what = (
            f"training step {args.train_size[0]}x{args.train_size[1]}, batch {args.train_batch}"
            if training
            else f"forward {args.size[0]}x{args.size[1]}, batch {args.batch}"
        )
        titles[task] = f"{what}, ours {ours_p} vs mmseg {precision[theirs_p]}"
    lines = [
        "| task | ours median (s) | mmseg median (s) | ratio of medians | per-pair ratios | median pair ratio | "
        "ours / mmseg % of peak | ours peak RSS (GB) | mmseg peak RSS (GB) | load (1 min) |",
        "|---|---:|---:|---:|---|---:|---:|---:|---:|---|",
    ]
    for task, r in results["tasks"].items():
        pairs = ", ".join(f"{x:.2f}" for x in r["pair_ratios"])
        if "ours_peak_fraction" in r:
            fractions = f"{100 * r['ours_peak_fraction']:.0f} / {100 * r['mmseg_peak_fraction']:.0f}"
        else:
            fractions = "-"
        lines.append(
            f"| {titles[task]} | {r['ours_median_s']:.2f} | {r['mmseg_median_s']:.2f} | "
            f"{r['ratio']:.2f} | {pairs} | **{r['median_pair_ratio']:.2f}** | {fractions} | {r['ours_peak_rss_gb']:.2f} | {r['mmseg_peak_rss_gb']:.2f} | "
            f"{r['load_min']:.1f}-{r['load_max']:.1f} |"
        )
    cpu = results["cpu"]
    notes = [f"CPU: {cpu['model']} ({', '.join(cpu['flags'])}), {args.threads} threads per side"]
    notes += [f"{p} matrix-multiply peak {g:.0f} GFLOP/s" for p, g in results.get("peak_gflops", {}).items()]
    forward = results.get("model_gflops", {}).get("forward")
    if forward:
        notes.append(f"model {forward:.0f} GFLOPs per forward pass")
    lines.append("\n" + "; ".join(notes))
    return "\n".join(lines)


def format_profile(task, profile):
    """The per-category seconds of one task's profiles, ours beside theirs."""
    import op_profile

    ours, theirs = profile["ours"], profile["mmseg"]
    if ours is None:
        return f"{task}: no profile of ours (the TensorFlow backend only)"
    lines = [
        f"\n{task}: seconds per step by kind of operation, each kind charged its share of the step's wall "
        "time under the profiler (benchmarks/op_profile.py; raw op-time sums in brackets)",
        "",
        "| operations | ours (s) | mmseg (s) | ours - mmseg (s) | ours/mmseg |",
        "|---|---:|---:|---:|---:|",
    ]
    for category in op_profile.CATEGORIES:
        a, b = ours["wall_shares"][category], theirs["wall_shares"][category]
        if a < 5e-4 and b < 5e-4:
            continue
        ratio = f"{a / b:.2f}" if b > 0 else "-"
        raw = f"[{ours['categories'][category]:.3f}]", f"[{theirs['categories'][category]:.3f}]"
        lines.append(f"| {category} | {a:.3f} {raw[0]} | {b:.3f} {raw[1]} | {a - b:+.3f} | {ratio} |")
    for key, label in (("wall_s", "wall time under the profiler"), ("op_sum_s", "sum of the op times")):
        a, b = ours[key], theirs[key]
        lines.append(f"| {label} | {a:.3f} | {b:.3f} | {a - b:+.3f} | {a / b:.2f} |")
    for side, result in (("ours", ours), ("mmseg", theirs)):
        top = ", ".join(f"{k} {v:.3f}" for k, v in list(result["top_ops"].items())[:10])
        lines.append(f"\ntop ops, {side}: {top}")
    return "\n".join(lines)


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", default=",".join(TASKS), type=lambda s: [t for t in s.split(",") if t])
    parser.add_argument("--runs", type=int, default=3, help="timed runs per side and task")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2, help="threads of each side (torch.set_num_threads)")
    parser.add_argument("--size", type=int, nargs=2, default=(512, 1024), metavar=("H", "W"))
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--train-size", type=int, nargs=2, default=(512, 512), metavar=("H", "W"))
    parser.add_argument("--train-batch", type=int, default=2)
    parser.add_argument("--jit-compile", choices=("true", "false"), help="ours: XLA (default: Keras's choice)")
    parser.add_argument(
        "--fold", action=argparse.BooleanOptionalAction, default=True,
        help="ours: the forward pass with batch norm folded into the convolutions, as keras-ann predict, "
        "evaluate and export run it (default: on)",
    )
    parser.add_argument(
        "--profile", type=int, default=0, metavar="N",
        help="after each task's timed runs, run N more steps under each framework's profiler and print "
        "where the time goes, by kind of operation (benchmarks/op_profile.py; ours: TensorFlow backend)",
    )
    parser.add_argument(
        "--remat", nargs="?", const=True, default=False, metavar="PARTS",
        help="ours: train with recomputation (ResNetBackbone(remat=...): each residual block's activations "
        "computed again in the backward pass); PARTS, e.g. stem,stage1, limits it to those (default all)",
    )
    parser.add_argument(
        "--with-cp", action="store_true",
        help="mmseg: train with its recomputation (with_cp=True in every residual block)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="write all timings to this file")
    parser.add_argument("--worker", choices=("ours", "mmseg"), help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint", help=argparse.SUPPRESS)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    unknown = set(args.tasks) - set(TASKS)
    if unknown:
        parser.error(f"--tasks: unknown {sorted(unknown)}; choose from {', '.join(TASKS)}")
    if args.runs < 1 or args.warmup < 0 or args.threads < 1:
        parser.error("--runs and --threads must be >= 1, --warmup >= 0")
    if args.worker:
        return worker_main(args)
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = os.path.join(tmp, "ann_r50_d8.pth")
        argv = list(argv if argv is not None else sys.argv[1:]) + ["--checkpoint", checkpoint]
        results = compare(args, argv)
    results["date"] = time.strftime("%Y-%m-%d %H:%M")
    table = format_table(results, args)
    print(table)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
