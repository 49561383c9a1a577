"""Host memory of a training step, ours beside mmsegmentation's, each in a
fresh process.

`vs_mmseg.py` keeps one worker per side for all its tasks, so our worker's
peak RSS during the training tasks also counts the inference models of the
forward tasks (folded float32 and bfloat16 copies of ANN R-50-D8, about
0.2 GB each), which the reference's single model does not have. Here each
measurement is a new process that builds one model (random weights: the
memory does not depend on their values), runs `--steps` training steps of
the `vs_mmseg.py` task (crop 512x512, batch 2, the recipe's SGD) and
reports, from `/proc/self/status`:

- `before_gb`: the resident size after imports and the model build, before
  the first step (the framework's libraries, the model, the data);
- `first_step_peak_gb`: the peak during the first step (graph tracing,
  buffers created on first use);
- `peak_gb`: the peak of the later steps (the optimizer's buffers and, in
  PyTorch, the `.grad` tensors kept between steps);
- `step_gb = peak_gb - before_gb`: what the training step itself adds.

The two sides alternate, `--repeats` times each. `--remat [PARTS]` trains
ours with recomputation (`ResNetBackbone(remat=...)`: all of the backbone,
or the parts named, e.g. `--remat=stem,stage1`), `--with-cp` the
reference with its own (`with_cp=True` in every residual block).

Usage:

    PYTHONPATH=. .venv/bin/python benchmarks/training_memory.py --repeats 2 [--precision bfloat16] [--remat[=PARTS]] [--with-cp]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import vs_mmseg  # benchmarks/ is this script's own directory

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _measure(side, precision, steps, threads, remat=False, with_cp=False):
    """In this (fresh) process: build one side's model, run its steps."""
    import tempfile

    argv = ["--threads", str(threads), "--checkpoint", os.path.join(tempfile.mkdtemp(), "unused.pth")]
    argv += _flags(remat, with_cp)
    args = vs_mmseg.build_parser().parse_args(argv)
    if side == "mmseg":
        worker = vs_mmseg._MMSegWorker(args)  # with_cp set there
        step = worker.prepare({"float32": "train", "bfloat16": "train_bf16_autocast"}[precision])
    else:
        import keras

        import keras_ann
        from keras_ann.training import compile_for_recipe

        worker = vs_mmseg._OursWorker(args)  # sets the thread counts
        policy = "mixed_bfloat16" if precision == "bfloat16" else "float32"
        keras.config.set_dtype_policy(policy)
        backbone = keras_ann.backbones.ResNetBackbone.from_name("resnet50_d8", remat=args.remat)
        model = keras_ann.ANNSegmenter(backbone=backbone, num_classes=19)
        compile_for_recipe(model, _recipe(), policy)
        images, labels = vs_mmseg._inputs(args, "train")
        step = lambda: model.train_on_batch(images, labels)  # noqa: E731
    vs_mmseg._reset_peak_rss()
    result = {"side": side, "precision": precision, "remat": side == "ours" and remat,
              "with_cp": side == "mmseg" and with_cp, "before_gb": vs_mmseg._peak_rss_gb(), "seconds": []}
    for i in range(steps):
        begin = time.perf_counter()
        step()
        result["seconds"].append(time.perf_counter() - begin)
        if i == 0:
            result["first_step_peak_gb"] = vs_mmseg._peak_rss_gb()
            vs_mmseg._reset_peak_rss()
    result["peak_gb"] = vs_mmseg._peak_rss_gb()
    result["step_gb"] = result["peak_gb"] - result["before_gb"]
    return result


def _flags(remat, with_cp):
    """The command-line flags of `remat` (`True`, `False` or the parts as
    "stem,stage1") and `with_cp`."""
    flags = [] if not remat else ["--remat"] if remat is True else [f"--remat={remat}"]
    return flags + ["--with-cp"] * with_cp


def _recipe():
    from keras_ann.recipes import RECIPES

    return RECIPES[vs_mmseg.RECIPE]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--precision", default="float32", choices=("float32", "bfloat16"),
                        help="bfloat16: ours under mixed_bfloat16, theirs under torch.autocast")
    parser.add_argument("--steps", type=int, default=3, help="training steps per process (>= 2)")
    parser.add_argument("--repeats", type=int, default=2, help="fresh processes per side")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--remat", nargs="?", const=True, default=False, metavar="PARTS",
                        help="ours: ResNetBackbone(remat=...), each residual block recomputed in the backward pass; "
                        "PARTS, e.g. stem,stage1, limits it to those (default all)")
    parser.add_argument("--with-cp", action="store_true",
                        help="mmseg: the backbone's with_cp=True, its blocks checkpointed")
    parser.add_argument("--json", help="write the measurements to this file")
    parser.add_argument("--side", choices=("ours", "mmseg"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.steps < 2 or args.repeats < 1:
        parser.error("--steps must be >= 2 and --repeats >= 1")
    if args.side:
        print(json.dumps(_measure(args.side, args.precision, args.steps, args.threads, args.remat, args.with_cp)))
        return None
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    runs = {"ours": [], "mmseg": []}
    for _ in range(args.repeats):
        for side in ("ours", "mmseg"):
            command = [sys.executable, os.path.abspath(__file__), "--side", side, "--precision", args.precision,
                       "--steps", str(args.steps), "--threads", str(args.threads)]
            command += _flags(args.remat, args.with_cp)
            out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
            runs[side].append(json.loads(out.strip().splitlines()[-1]))
            print(json.dumps(runs[side][-1]), flush=True)
    keys = ("before_gb", "first_step_peak_gb", "peak_gb", "step_gb")
    medians = {side: {k: statistics.median(r[k] for r in rs) for k in keys} for side, rs in runs.items()}
    cpu = vs_mmseg.cpu_info()
    print(f"\n{cpu['model']} ({', '.join(cpu['flags'])}), {args.threads} threads, {args.precision}, "
          f"training step 512x512 batch 2, medians of {args.repeats} fresh processes per side\n")
    print("| GB | ours | mmseg | ours / mmseg |\n|---|---:|---:|---:|")
    for k in keys:
        a, b = medians["ours"][k], medians["mmseg"][k]
        print(f"| {k} | {a:.2f} | {b:.2f} | {a / b:.2f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"cpu": cpu, "precision": args.precision, "runs": runs, "medians": medians}, f, indent=2)
    return medians


if __name__ == "__main__":
    main()
