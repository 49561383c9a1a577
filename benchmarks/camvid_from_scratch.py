"""CamVid from scratch on a CPU: the folder layout, and the report of runs.

`benchmarks/camvid_from_scratch.sh` trains the recipe
`ann_r18_d16_camvid_cpu_1h` twice (two seeds) through the folder-dataset
command line, as a user would train on their own images and masks; this
script does the rest:

    python benchmarks/camvid_from_scratch.py layout ../shared/data/camvid data/camvid11
    python benchmarks/camvid_from_scratch.py report runs/camvid_seed0 runs/camvid_seed1 \\
        --data-root ../shared/data/camvid --curves docs/camvid_curves.png \\
        --picture docs/camvid_prediction.png

`layout` links CamVid's SegNet release (`train/`, `trainannot/`, `val/`,
`valannot/`) into mmsegmentation's custom-dataset layout
(`img_dir/{train,val}`, `ann_dir/{train,val}`) without copying a file;
CamVid's void value 11 is mapped to the ignored 255 by `--label-map 11:255`
at training time.

`report` reads each run's `log.jsonl` and prints, as Markdown, the wall
time, the final val mIoU / mAcc / aAcc and the per-class IoU of every run
(and their spread), plots val mIoU and training loss against wall time
(`--curves`), and draws three validation images, their ground truth and the
first run's predictions (`--picture`).
"""

import argparse
import json
import os
import sys

from keras_ann.data.metainfo import CAMVID_CLASSES as CLASSES  # no TensorFlow


def make_layout(camvid_root, out_root):
    """Link `camvid_root`'s splits into `out_root/{img_dir,ann_dir}/<split>`."""
    camvid_root = os.path.abspath(camvid_root)
    for split in ("train", "val"):
        for kind, source in (("img_dir", split), ("ann_dir", split + "annot")):
            target = os.path.join(camvid_root, source)
            if not os.path.isdir(target):
                raise SystemExit(f"{target} is not a directory: is {camvid_root} CamVid's SegNet release?")
            link = os.path.join(out_root, kind, split)
            os.makedirs(os.path.dirname(link), exist_ok=True)
            if os.path.islink(link):
                os.remove(link)
            os.symlink(target, link)
    return out_root


def read_log(work_dir):
    """The run's `log.jsonl` records, and its evaluations (records with `IoU`)."""
    path = os.path.join(work_dir, "log.jsonl")
    with open(path) as f:
        records = [json.loads(line) for line in f if line.strip()]
    if not records:
        raise SystemExit(f"{path} has no records: has the run started?")
    return records, [r for r in records if "IoU" in r]


def _start_time(work_dir, records):
    # The run's start: the work dir's recipe.json is written before the
    # label scan and the first step.
    return min(os.path.getmtime(os.path.join(work_dir, "recipe.json")), records[0]["time"])


def _cell(value):
    # `null` in log.jsonl: a class absent from both labels and predictions.
    return "n/a" if value is None else f"{value:.2f}"


def markdown(runs):
    """A Markdown table of the final scores and per-class IoU of each run."""
    names = [os.path.basename(os.path.normpath(w)) for w in runs]
    rows = {}
    for work_dir, name in zip(runs, names):
        records, evaluations = read_log(work_dir)
        last = evaluations[-1]
        minutes = (records[-1]["time"] - _start_time(work_dir, records)) / 60
        rows[name] = {
            "iterations": str(last["iteration"]),
            "wall time (min)": f"{minutes:.1f}",
            "val mIoU": _cell(last["val_mIoU"]),
            "val mAcc": _cell(last["val_mAcc"]),
            "val aAcc": _cell(last["val_aAcc"]),
            **{f"{c} IoU": _cell(last["IoU"].get(c)) for c in CLASSES},
        }
    header = "| | " + " | ".join(names) + (" | spread |" if len(names) > 1 else " |")
    lines = [header, "|---|" + "---:|" * (len(names) + (len(names) > 1))]
    for key in next(iter(rows.values())):
        values = [rows[n][key] for n in names]
        line = f"| {key} | " + " | ".join(values) + " |"
        if len(names) > 1:
            try:
                numbers = [float(v) for v in values]
                line += f" {max(numbers) - min(numbers):.2f} |"
            except ValueError:
                line += " |"
        lines.append(line)
    return "\n".join(lines)


def plot_curves(runs, output):
    """Val mIoU and training loss of every run against wall time."""
    from keras_ann.visualization import _pyplot

    plt = _pyplot("plot_curves")
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    for work_dir in runs:
        records, evaluations = read_log(work_dir)
        start = _start_time(work_dir, records)
        name = os.path.basename(os.path.normpath(work_dir))
        left.plot(
            [(r["time"] - start) / 60 for r in evaluations], [r["val_mIoU"] for r in evaluations], "o-", label=name
        )
        right.plot([(r["time"] - start) / 60 for r in records], [r["loss"] for r in records], "-", label=name)
    left.axhline(45, color="grey", linestyle=":", label="45 % target")
    left.set_xlabel("wall time (min), evaluation included")
    left.set_ylabel("val mIoU (%), 101 images at 480x360")
    right.set_xlabel("wall time (min)")
    right.set_ylabel("training loss (incl. 0.4 x auxiliary)")
    for axis in (left, right):
        axis.grid(alpha=0.3)
        axis.legend()
    fig.tight_layout()
    fig.savefig(output, dpi=110)
    plt.close(fig)
    return output


def draw_picture(work_dir, data_root, output, indices=(0, 42, 84)):
    """Validation images, ground truth and the run's predictions (whole
    image at 480x360, the recipe's test protocol)."""
    import numpy as np

    import keras_ann
    from keras_ann import data
    from keras_ann.visualization import plot_segmentation

    model = keras_ann.ANNSegmenter.from_preset(os.path.join(work_dir, "latest.keras"))
    val = data.camvid(data_root, "val")
    images, labels = zip(*(val.load(i) for i in indices))
    predictions = model.predict_labels(np.stack(images).astype("float32"))
    plot_segmentation(
        list(images), list(predictions), list(labels), val.palette, val.class_names,
        output=output, panel_width=2.6, dpi=90,
    )  # fmt: skip
    return output


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    layout = commands.add_parser("layout", help="link CamVid into the folder-dataset layout")
    layout.add_argument("camvid_root")
    layout.add_argument("out_root")
    report = commands.add_parser("report", help="tables, curves and picture of finished runs")
    report.add_argument("runs", nargs="+", help="work directories of `keras-ann train`")
    report.add_argument("--data-root", help="CamVid (for --picture)")
    report.add_argument("--curves", help="PNG of val mIoU and loss against wall time")
    report.add_argument("--picture", help="PNG of val images, ground truth and predictions")
    report.add_argument("--images", default="0,42,84", help="indices of the val images of --picture")
    args = parser.parse_args(argv)
    if args.command == "layout":
        print(f"linked {args.camvid_root} into {make_layout(args.camvid_root, args.out_root)}")
        return 0
    print(markdown(args.runs))
    if args.curves:
        print(f"wrote {plot_curves(args.runs, args.curves)}")
    if args.picture:
        if not args.data_root:
            parser.error("--picture needs --data-root")
        indices = [int(i) for i in args.images.split(",")]
        print(f"wrote {draw_picture(args.runs[0], args.data_root, args.picture, indices)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
