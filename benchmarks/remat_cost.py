"""The time a training step pays for recomputation, by the parts of the
backbone recomputed: ours against ours, in one process.

Builds one ANN R-50-D8 (19 classes, random weights) per `--settings`
entry, each compiled with the recipe's loss and SGD, and times
`train_on_batch` on the `vs_mmseg.py` training task (crop 512x512, batch
2, float32) for each in turn. The order alternates from one round to the
next (A B C, then C B A, ...) so that a drift of the machine falls on every
setting alike; the first round, which traces the graphs, is not timed.
Each setting's median is reported with its ratio to the first setting's.
The memory of each setting needs a process of its own:
`training_memory.py --remat=PARTS`.

Usage:

    PYTHONPATH=. .venv/bin/python benchmarks/remat_cost.py --settings "none;stem,stage1;stem,stage1,stage2;all" --runs 4
"""

import argparse
import json
import os
import statistics
import tempfile
import time

import vs_mmseg  # benchmarks/ is this script's own directory


def _remat(setting):
    return {"none": False, "all": True}.get(setting, setting)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--settings", default="none;stem,stage1;stem,stage1,stage2;all",
        help="';'-separated remat settings: none, all, or comma-separated parts (stem, stage1..stage4)",
    )
    parser.add_argument("--runs", type=int, default=4, help="timed rounds (after one untimed round)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", help="write the measurements to this file")
    args = parser.parse_args(argv)
    settings = [s.strip() for s in args.settings.split(";") if s.strip()]
    if len(settings) < 2 or args.runs < 1:
        parser.error("--settings needs two settings or more, and --runs must be >= 1")

    worker_args = vs_mmseg.build_parser().parse_args(
        ["--threads", str(args.threads), "--checkpoint", os.path.join(tempfile.mkdtemp(), "unused.pth")]
    )
    vs_mmseg._OursWorker(worker_args)  # sets the thread counts
    import keras_ann
    from keras_ann.recipes import RECIPES
    from keras_ann.training import compile_for_recipe

    images, labels = vs_mmseg._inputs(worker_args, "train")
    models = {}
    for setting in settings:
        backbone = keras_ann.ResNetBackbone.from_name("resnet50_d8", remat=_remat(setting))
        model = keras_ann.ANNSegmenter(backbone=backbone, num_classes=19)
        compile_for_recipe(model, RECIPES[vs_mmseg.RECIPE], "float32")
        models[setting] = model
    seconds = {setting: [] for setting in settings}
    for round_ in range(args.runs + 1):
        for setting in settings if round_ % 2 == 0 else settings[::-1]:
            begin = time.perf_counter()
            models[setting].train_on_batch(images, labels)
            elapsed = time.perf_counter() - begin
            if round_:
                seconds[setting].append(elapsed)
            print(f"round {round_} {setting}: {elapsed:.2f} s" + ("" if round_ else " (traces; not timed)"), flush=True)

    cpu = vs_mmseg.cpu_info()
    medians = {setting: statistics.median(times) for setting, times in seconds.items()}
    print(f"\n{cpu['model']} ({', '.join(cpu['flags'])}), {args.threads} threads, float32, ANN R-50-D8 "
          f"training step 2x512x512, medians of {args.runs} alternating rounds\n")
    print(f"| remat | step (s) | range (s) | / {settings[0]} |\n|---|---:|---|---:|")
    for setting in settings:
        times = seconds[setting]
        print(f"| {setting} | {medians[setting]:.2f} | {min(times):.2f}-{max(times):.2f} | "
              f"{medians[setting] / medians[settings[0]]:.3f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"cpu": cpu, "threads": args.threads, "seconds": seconds, "medians": medians}, f, indent=2)
    return medians


if __name__ == "__main__":
    main()
