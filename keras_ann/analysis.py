"""Looking at runs, models and data: training curves of several runs, a
model's confusion matrix as a picture and a CSV, a contact sheet of a
dataset's images beside their decoded labels, and the multiply-adds and
parameters of each part of an ANN (what `keras-ann analyze` prints and
writes).

`contact_sheet` and `count_macs` need only NumPy, Pillow and Keras;
`plot_curves` and the picture of `write_confusion` draw with matplotlib
(the optional `plot` extra: `pip install "keras-ann[plot]"`).
"""

import csv
import json
import math
import os

import numpy as np

__all__ = [
    "read_log",
    "plot_curves",
    "write_confusion",
    "contact_sheet",
    "architecture_model",
    "count_macs",
    "format_macs",
]

PLOT_HINT = 'pip install "keras-ann[plot]"'


def _pyplot(what):
    """matplotlib.pyplot (Agg unless pyplot is already in use), or an
    `ImportError` of one line saying what to install."""
    import sys

    try:
        import matplotlib

        if "matplotlib.pyplot" not in sys.modules:
            matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError(f"{what} draws with matplotlib, which is not installed: {PLOT_HINT}") from None
    return plt


# --------------------------------------------------------------------------
# Training curves
# --------------------------------------------------------------------------


def read_log(work_dir):
    """The records of a run's `log.jsonl`, one per checkpoint interval, in
    order of iteration (a line repeated by a resumed run: the last one).

    Args:
        work_dir: a `keras-ann train` work directory (or its `log.jsonl`).

    Returns:
        A list of dicts with at least `iteration`; `loss`, `lr` and
        `val_mIoU` where the run logged them (`None` for NaN).

    Raises:
        ValueError: no `log.jsonl`, an empty one, or a line that is not a
            JSON object with an `iteration`, named by file and line.

    Example:

    >>> import tempfile
    >>> run = tempfile.mkdtemp()
    >>> with open(os.path.join(run, "log.jsonl"), "w") as f:
    ...     _ = f.write('{"iteration": 2, "loss": 1.5}\\n{"iteration": 4, "loss": 1.0, "val_mIoU": 20.0}\\n')
    >>> [(r["iteration"], r["loss"]) for r in read_log(run)]
    [(2, 1.5), (4, 1.0)]
    """
    path = os.path.join(work_dir, "log.jsonl") if os.path.isdir(work_dir) else work_dir
    if not os.path.isfile(path):
        raise ValueError(
            f"{work_dir} has no log.jsonl: give the --work-dir of a keras-ann train run "
            "(it writes log.jsonl at every checkpoint interval)"
        )
    by_iteration = {}
    with open(path) as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path} line {number} is not JSON ({error.msg}); fix or delete that line") from None
            if not isinstance(record, dict) or not isinstance(record.get("iteration"), int):
                raise ValueError(f"{path} line {number} has no integer 'iteration'; is it a keras-ann log.jsonl?")
            by_iteration[record["iteration"]] = record
    if not by_iteration:
        raise ValueError(f"{path} is empty: the run has not finished a checkpoint interval yet")
    return [by_iteration[i] for i in sorted(by_iteration)]


def _series(records, key):
    points = [(r["iteration"], r.get(key)) for r in records]
    return [(i, float(v)) for i, v in points if isinstance(v, (int, float)) and math.isfinite(v)]


def _run_labels(work_dirs):
    """Each run's name on the figure: its folder name, or more of its path
    where two runs share that name."""
    paths = [os.path.normpath(os.path.abspath(w)) for w in work_dirs]
    paths = [os.path.dirname(p) if p.endswith("log.jsonl") else p for p in paths]
    depth = 1
    while True:
        labels = [os.path.join(*p.split(os.sep)[-depth:]) for p in paths]
        if len(set(labels)) == len(labels) or depth > 8:
            return labels
        depth += 1


def plot_curves(work_dirs, output, labels=None):
    """Training loss, learning rate and validation mIoU against iterations
    of one or more runs, one colour per run, as a PNG (matplotlib).

    Args:
        work_dirs: `keras-ann train` work directories (their `log.jsonl`).
        output: the PNG path.
        labels: the runs' names in the legend (default: their folder names).

    Returns:
        `{label: {"loss": [(iteration, value), ...], "lr": [...],
        "val_mIoU": [...]}}`, the plotted points.

    Raises:
        ValueError: see `read_log`.
        ImportError: without matplotlib (one line: what to install).

    Example:

    >>> import tempfile
    >>> run = tempfile.mkdtemp()
    >>> with open(os.path.join(run, "log.jsonl"), "w") as f:
    ...     for i in (10, 20):
    ...         _ = f.write(json.dumps({"iteration": i, "loss": 2 / i, "lr": 0.01, "val_mIoU": i}) + "\\n")
    >>> points = plot_curves([run], os.path.join(run, "curves.png"))
    >>> list(points.values())[0]["val_mIoU"]
    [(10, 10.0), (20, 20.0)]
    """
    if not work_dirs:
        raise ValueError("plot_curves needs at least one work directory")
    logs = [read_log(w) for w in work_dirs]  # before matplotlib: data errors first
    labels = list(labels) if labels is not None else _run_labels(work_dirs)
    plt = _pyplot("keras-ann analyze curves")
    panels = (("loss", "training loss"), ("lr", "learning rate"), ("val_mIoU", "validation mIoU (%)"))
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    points = {}
    for n, (label, records) in enumerate(zip(labels, logs)):
        colour = f"C{n % 10}"
        points[label] = {}
        for ax, (key, _) in zip(axes, panels):
            series = _series(records, key)
            points[label][key] = series
            if series:
                marker = "o-" if key == "val_mIoU" else "-"
                ax.plot(*zip(*series), marker, color=colour, label=label, markersize=4)
    for ax, (key, title) in zip(axes, panels):
        ax.set_title(title)
        ax.set_xlabel("iteration")
        ax.grid(True, alpha=0.3)
        if not any(points[label][key] for label in labels):
            ax.text(0.5, 0.5, f"no {key} in the logs", ha="center", va="center", transform=ax.transAxes, color="grey")
    axes[2].set_ylim(bottom=0)
    handles, names = axes[0].get_legend_handles_labels()
    if len(labels) > 1 and handles:
        fig.legend(handles, names, loc="lower center", ncol=min(len(labels), 4), frameon=False)
        fig.tight_layout(rect=(0, 0.1, 1, 1))
    else:
        fig.suptitle(labels[0])
        fig.tight_layout()
    fig.savefig(output, dpi=110)
    plt.close(fig)
    return points


# --------------------------------------------------------------------------
# Confusion matrix
# --------------------------------------------------------------------------


def write_confusion(confusion, class_names, csv_path, png_path=None, title=None):
    """The row-normalised confusion matrix (each row: where the pixels of
    that ground-truth class went) as a CSV with class names and, with
    `png_path`, as a picture (`visualization.plot_confusion_matrix`).

    The CSV has a header `ground truth \\ prediction, <class>, ...,
    pixels`, then one row per class: its name, the fractions (summing to 1;
    all 0 for a class with no labelled pixels) and its pixel count.

    Args:
        confusion: `(C, C)` counts, rows ground truth, columns prediction
            (`evaluate_dataset(...)["confusion"]`).
        class_names: `C` names.
        csv_path: the CSV to write.
        png_path: optional PNG to draw (needs matplotlib).
        title: the picture's title.

    Returns:
        The `(C, C)` row-normalised matrix.

    Example:

    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "confusion.csv")
    >>> write_confusion([[3, 1], [0, 2]], ["road", "car"], path).tolist()
    [[0.75, 0.25], [0.0, 1.0]]
    >>> open(path).read().splitlines()[1]
    'road,0.750000,0.250000,4'
    """
    from keras_ann.visualization import normalize_confusion, plot_confusion_matrix

    confusion = np.asarray(confusion, np.int64)
    names = [str(n) for n in class_names]
    if confusion.ndim != 2 or confusion.shape != (len(names), len(names)):
        raise ValueError(f"`confusion` must be {len(names)}x{len(names)} (one row per class name), got {confusion.shape}")
    matrix = normalize_confusion(confusion, "true")
    with open(csv_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["ground truth \\ prediction", *names, "pixels"])
        for name, row, pixels in zip(names, matrix, confusion.sum(axis=1)):
            writer.writerow([name, *(f"{v:.6f}" for v in row), int(pixels)])
    if png_path is not None:
        plt = _pyplot("the confusion matrix picture")
        fig = plot_confusion_matrix(confusion, names, png_path, normalize="true", title=title)
        plt.close(fig)
    return matrix


# --------------------------------------------------------------------------
# Contact sheet of a dataset
# --------------------------------------------------------------------------


def _fit_height(array, height, resample):
    from PIL import Image

    h, w = array.shape[:2]
    width = max(1, round(w * height / h))
    return np.asarray(Image.fromarray(array).resize((width, height), resample))


def contact_sheet(dataset, count=8, height=160, columns=2, indices=None):
    """Images beside their labels as the training loader decodes them
    (after `reduce_zero_label`, `label_map`, colour masks), with a legend
    of the classes shown (Pillow only): the way to check one's labels
    before training.

    Args:
        dataset: a `SegmentationDataset` (e.g. from
            `keras_ann.data.configs.build_dataset`); its `load` reads each
            pair as training does.
        count: how many samples (the first ones, or `indices`).
        height: each panel's height in pixels (aspect kept).
        columns: image/label pairs per row.
        indices: which samples (default: the first `count`).

    Returns:
        A Pillow RGB image. Void (ignored) pixels are black; each image
        panel is titled with its file name.

    Example:

    >>> import tempfile
    >>> from PIL import Image
    >>> from keras_ann.data.pipeline import SegmentationDataset
    >>> root = tempfile.mkdtemp()
    >>> files = []
    >>> for n in range(3):
    ...     image, label = os.path.join(root, f"{n}.png"), os.path.join(root, f"{n}_label.png")
    ...     Image.fromarray(np.full((30, 40, 3), 80 * n, np.uint8)).save(image)
    ...     Image.fromarray(np.full((30, 40), n, np.uint8)).save(label)
    ...     files.append((image, label))
    >>> ds = SegmentationDataset(files, 3, class_names=["a", "b", "c"])
    >>> sheet = contact_sheet(ds, count=3, height=60, columns=2)
    >>> sheet.size[0] >= 2 * 2 * 80 and sheet.size[1] > 2 * 60
    True
    """
    from PIL import Image

    from keras_ann.visualization import _stack, colorize, default_palette, legend, side_by_side

    if indices is None:
        indices = range(min(int(count), len(dataset)))
    indices = list(indices)
    if not indices:
        raise ValueError(f"{dataset.name} has no samples to show")
    palette = np.asarray(dataset.palette if dataset.palette else default_palette(dataset.num_classes), np.uint8)
    ignore = dataset.ignore_index
    pairs, seen = [], np.zeros(256, bool)
    for index in indices:
        image, label = dataset.load(index)
        seen[np.unique(label)] = True
        panels = [
            _fit_height(image, height, Image.BILINEAR),
            _fit_height(colorize(label, palette, ignore), height, Image.NEAREST),
        ]
        name = os.path.basename(dataset.files[index][0])
        title = f"{name} ({image.shape[1]}x{image.shape[0]})"
        pairs.append(side_by_side(panels, [title[: max(8, panels[0].shape[1] // 6)], "labels"]))
    rows = []
    for start in range(0, len(pairs), columns):
        group = [np.asarray(p) for p in pairs[start : start + columns]]
        rows.append(side_by_side(group, gap=16) if len(group) > 1 else Image.fromarray(group[0]))
    width = max(r.size[0] for r in rows)
    present = [c for c in range(dataset.num_classes) if seen[c]]
    names = [dataset.class_names[c] for c in present]
    colours = [palette[c] for c in present]
    if seen[ignore]:
        names.append(f"void ({ignore}, ignored)")
        colours.append(np.zeros(3, np.uint8))
    parts = rows + ([legend(names, np.asarray(colours, np.uint8), width)] if names else [])
    return _stack(parts, gap=8)


# --------------------------------------------------------------------------
# Multiply-adds and parameters
# --------------------------------------------------------------------------

PARTS = ("backbone", "AFNB", "APNB", "decode head (rest)", "auxiliary head")


def _conv_macs(layer, output_shape):
    """H_out * W_out * C_in / groups * kh * kw * C_out of one image (any
    spatial rank)."""
    kernel = tuple(layer.kernel.shape)  # (*kernel_size, C_in / groups, C_out)
    return int(np.prod(output_shape[1:-1])) * int(np.prod(kernel))


def _dense_macs(layer, output_shape):
    return int(np.prod(output_shape[1:-1])) * int(np.prod(layer.kernel.shape))


class _Recorder:
    """Counts the multiply-adds of convolutions, dense layers and the
    attention's two matrix products while a model runs, by wrapping their
    classes' `call` (restored afterwards)."""

    def __init__(self):
        import keras

        from keras_ann.layers.asymmetric_attention import AsymmetricNonLocalAttention
        from keras_ann.layers.conv_bn import ConvBNReLU

        self.calls = []  # (layer, macs per image)
        self.patches = []
        recorder = self

        def wrap(cls, attribute, count):
            original = getattr(cls, attribute)
            had = attribute in cls.__dict__

            def wrapped(layer, *args, **kwargs):
                out = original(layer, *args, **kwargs)
                recorder.calls.append((layer, count(layer, args, out)))
                return out

            self.patches.append((cls, attribute, original, had))
            setattr(cls, attribute, wrapped)

        def shape(tensor):
            return tuple(int(d) for d in tensor.shape)

        def attention(layer, args, out):
            weights, value, _ = out  # (B, N, S), (B, S, C)
            b, n, s = shape(weights)
            # Q K^T: N x S x C_key; weights x V: N x S x C_value.
            return n * s * (layer.key_channels + shape(value)[-1])

        from keras.src.layers.convolutional.base_conv import BaseConv

        wrap(BaseConv, "call", lambda layer, args, out: _conv_macs(layer, shape(out)))
        wrap(keras.layers.Dense, "call", lambda layer, args, out: _dense_macs(layer, shape(out)))
        wrap(AsymmetricNonLocalAttention, "_attend", attention)
        # In inference a ConvBNReLU runs its convolution with the batch norm
        # folded in, without calling its Conv2D.
        wrap(ConvBNReLU, "_folded_conv", lambda layer, args, out: _conv_macs(layer.conv, shape(out)))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for cls, attribute, original, had in reversed(self.patches):
            if had:
                setattr(cls, attribute, original)
            else:
                delattr(cls, attribute)


def _part_layers(model):
    """`[(part, layer)]` of an `ANNSegmenter`, most specific first."""
    head = model.decode_head
    parts = [("AFNB", getattr(head, "fusion", None)), ("APNB", getattr(head, "context", None)),
             ("decode head (rest)", head), ("auxiliary head", model.auxiliary_head)]  # fmt: skip
    return [(name, layer) for name, layer in parts if layer is not None]


def _is_statistic(variable):
    return variable.path.rsplit("/", 1)[-1] in ("moving_mean", "moving_variance")


def architecture_model(name, num_classes=None):
    """An `ANNSegmenter` of a named architecture, to count
    (`count_macs`): a preset's or a backbone name's without downloading
    weights, or the model of a `.keras`/`.pth` file.

    Args:
        name: a preset name (`keras_ann.presets.PRESETS`), a backbone name
            (e.g. `"resnet50_d8"`) or a model file.
        num_classes: the classes (default: the model's; 19 for a backbone
            name).

    Raises:
        FileNotFoundError: for a name that is none of these.

    Example:

    >>> architecture_model("resnet18_d8", num_classes=2).num_classes
    2
    """
    import keras_ann
    from keras_ann.backbones.resnet import BACKBONE_NAMES
    from keras_ann.presets import PRESETS, load_model

    if name in PRESETS:
        config = PRESETS[name].model_config()
        if num_classes is not None:
            config["num_classes"] = num_classes
        return keras_ann.ANNSegmenter(**config)
    if name in BACKBONE_NAMES:
        return keras_ann.ANNSegmenter(backbone=name, num_classes=num_classes or 19)
    if not os.path.exists(name):
        raise FileNotFoundError(
            f"{name} is no preset (`keras-ann presets`), backbone name ({', '.join(BACKBONE_NAMES)}) or model file"
        )
    return load_model(name, **({} if num_classes is None else {"num_classes": num_classes}))


def count_macs(model, input_size):
    """Multiply-adds and parameters of each part of an ANN for one image:
    backbone, AFNB, APNB, the rest of the decode head (bottleneck,
    classifier) and the auxiliary head.

    The multiply-adds are counted from the layers as the model runs on one
    `(1, H, W, channels)` image (3 channels unless the model's input says
    otherwise): a convolution `H_out * W_out * C_in / groups *
    kh * kw * C_out`, a dense layer `inputs * units` per position, and each
    asymmetric attention's two matrix products `N * S * C_key` (queries
    times the `S` pooled keys) and `N * S * C_value` (weights times
    values). Biases, batch norm, activations, pooling, resizing and the
    softmax are not counted (each at most a few per output element). The
    auxiliary head runs in training only; it is counted apart. Parameters
    are the weights without batch norm's moving statistics (PyTorch's
    parameters).

    Args:
        model: an `ANNSegmenter`, or any Keras model (then all of it counts
            as `backbone`).
        input_size: `(H, W)`.

    Returns:
        `{part: {"macs": int, "params": int}}` with the parts of `PARTS`
        present in the model.

    Example:

    >>> from keras_ann import ANNSegmenter, ResNetBackbone
    >>> backbone = ResNetBackbone(depth=18, stem_channels=8, base_channels=8)
    >>> model = ANNSegmenter(backbone, num_classes=3, head_channels=16, project_channels=8, auxiliary_channels=8)
    >>> counts = count_macs(model, (32, 32))
    >>> sorted(counts) == sorted(PARTS), counts["auxiliary head"]["macs"]  # 4x4 x (32*9*8 + 8*3)
    (True, 37248)
    """
    from keras_ann.checks import check_pair

    h, w = check_pair(input_size, "input_size")
    owners = {}
    parts = _part_layers(model) if hasattr(model, "decode_head") else []
    for name, part in parts:
        for layer in part._flatten_layers(include_self=True, recursive=True):
            owners.setdefault(id(layer), name)
    inputs = getattr(model, "inputs", None)
    channels = int(inputs[0].shape[-1]) if inputs and inputs[0].shape[-1] else 3
    images = np.zeros((1, h, w, channels), "float32")
    with _Recorder() as recorder:
        if getattr(model, "training_graph", None) is not None:
            model(images, training=False, return_auxiliary=True)
        else:
            model(images, training=False)
    counts = {name: {"macs": 0, "params": 0} for name in PARTS if name == "backbone" or name in dict(parts)}
    for layer, macs in recorder.calls:
        counts[owners.get(id(layer), "backbone")]["macs"] += macs
    part_of_variable = {}
    for name, part in parts:
        for variable in part.weights:
            part_of_variable.setdefault(id(variable), name)
    seen = set()
    for variable in model.weights:
        if _is_statistic(variable) or id(variable) in seen:
            continue
        seen.add(id(variable))
        counts[part_of_variable.get(id(variable), "backbone")]["params"] += int(np.prod(variable.shape))
    return counts


def format_macs(counts, title=None):
    """The table of `count_macs`: multiply-adds (G, or M for small models),
    share of the inference total, parameters in millions; the inference
    total leaves out the auxiliary head (training only).

    Example:

    >>> print(format_macs({"backbone": {"macs": 3 * 10**9, "params": 2 * 10**6},
    ...                    "auxiliary head": {"macs": 10**9, "params": 10**6}}))
    part                         GMACs   share  params (M)
    backbone                     3.000  100.0%       2.000
    auxiliary head (training)    1.000       -       1.000
    inference total              3.000  100.0%       2.000
    training total               4.000       -       3.000
    """
    inference = sum(v["macs"] for k, v in counts.items() if k != "auxiliary head")
    inference_params = sum(v["params"] for k, v in counts.items() if k != "auxiliary head")
    unit, scale = ("GMACs", 1e9) if inference >= 1e9 else ("MMACs", 1e6)
    rows = [(("auxiliary head (training)" if k == "auxiliary head" else k), v["macs"], v["params"],
             k != "auxiliary head") for k, v in counts.items()]  # fmt: skip
    rows.append(("inference total", inference, inference_params, True))
    if "auxiliary head" in counts:
        aux = counts["auxiliary head"]
        rows.append(("training total", inference + aux["macs"], inference_params + aux["params"], False))
    lines = ([title] if title else []) + [f"{'part':27} {unit:>6} {'share':>7} {'params (M)':>11}"]
    for label, macs, params, shared in rows:
        share = f"{100 * macs / inference:.1f}%" if shared and inference else "-"
        lines.append(f"{label:27} {macs / scale:6.3f} {share:>7} {params / 1e6:11.3f}")
    return "\n".join(lines)
