"""Preset directories: a model in KerasHub's preset layout.

```
DIR/
  config.json       the model, as keras.saving.serialize_keras_object writes it
                    (module, class_name, config, registered_name), its
                    test protocol and data contract inside `config`
  metadata.json     keras_version, keras_ann_version, parameter_count,
                    date_saved; the test protocol and data contract; the
                    evaluation table when known; for a converted reference
                    model its recipe, published scores and provenance
  model.weights.h5  the weights (Keras's HDF5 weights file, no optimiser)
  README.md         the model card (Hugging Face front matter)
```

`ANNSegmenter.save_to_preset(DIR)` writes one (`save_preset`);
`ANNSegmenter.from_preset(DIR)` and the commands that take a model read it
(`load_preset_directory`), from a local directory or a model hub handle
(`hf://owner/name`, `kaggle://owner/model/keras/variant`, resolved by
`keras_ann.hub` one file at a time as KerasHub resolves its presets). What
is loaded is `config.json` and `model.weights.h5`; `metadata.json` and
the card describe the model for people and hubs.

Reading is bounded as for `.keras` files (`keras_ann.models.loading`):
each file must be a regular file within its size limit (`config.json` and
`metadata.json` a few MB, the weights `MAX_WEIGHTS_BYTES`), the
configuration must hold the asked class of the current layout before
Keras deserialises anything (in safe mode), and the weights may not read
other files (no HDF5 external or virtual datasets, external or soft links).

KerasHub's own loader reads such a directory:
`keras_hub.src.utils.preset_utils.get_preset_loader(DIR)` gives a
`KerasPresetLoader` whose `load_backbone(ANNSegmenter, True)` builds the
model from `config.json` and loads `model.weights.h5`. Its public entry
points, `keras_hub.models.Backbone.from_preset` and `Task.from_preset`,
refuse it: they load subclasses of KerasHub's `Backbone` and `Task`, and
`ANNSegmenter` is a `keras.Model`.
"""

import datetime
import json
import math
import os

from keras_ann.models.loading import (
    MAX_CONFIG_BYTES,
    MAX_METADATA_BYTES,
    MAX_WEIGHTS_BYTES,
    CheckpointError,
    _size,
    check_hdf5,
    check_model_config,
    irregular_kind,
    sniff_model_file,
)

__all__ = [
    "CONFIG_FILE",
    "METADATA_FILE",
    "README_FILE",
    "WEIGHTS_FILE",
    "check_preset_directory",
    "push_preset",
    "is_preset_directory",
    "load_preset_directory",
    "read_metadata",
    "save_preset",
]

CONFIG_FILE = "config.json"
METADATA_FILE = "metadata.json"
WEIGHTS_FILE = "model.weights.h5"
README_FILE = "README.md"

_LIMITS = {CONFIG_FILE: MAX_CONFIG_BYTES, METADATA_FILE: MAX_METADATA_BYTES, WEIGHTS_FILE: MAX_WEIGHTS_BYTES}


def is_preset_directory(path):
    """Whether `path` is a directory holding a `config.json`."""
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, CONFIG_FILE))


# --------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------


def _without(config, keys):
    """`config` without `keys` at any depth (KerasHub drops the compile and
    build configurations of a preset)."""
    if isinstance(config, dict):
        return {k: _without(v, keys) for k, v in config.items() if k not in keys}
    if isinstance(config, list):
        return [_without(v, keys) for v in config]
    return config


def _number(value):
    value = float(value)
    return None if math.isnan(value) else value


def evaluation_record(results, class_names=None, **about):
    """The JSON-ready evaluation table of `evaluate_dataset`'s `results`:
    `aAcc`, `mIoU`, `mAcc` and the per-class IoU and Acc (`null` for a
    class absent from labels and predictions), with `about` (e.g.
    `data="folder", split="val", images=2`) first.

    Example:

    >>> from keras_ann.metrics import metrics_from_confusion
    >>> record = evaluation_record(metrics_from_confusion([[3, 1], [0, 2]]), ["road", "sky"], split="val")
    >>> record["split"], round(record["mIoU"], 2), record["per_class"][1]["class"]
    ('val', 70.83, 'sky')
    """
    ious, accs = list(results["IoU"]), list(results["Acc"])
    names = list(class_names) if class_names is not None else [str(i) for i in range(len(ious))]
    record = dict(about)
    record.update({key: _number(results[key]) for key in ("aAcc", "mIoU", "mAcc")})
    record["per_class"] = [
        {"class": name, "IoU": _number(iou), "Acc": _number(acc)} for name, iou, acc in zip(names, ious, accs)
    ]
    return record


def preset_metadata(model, evaluation=None, reference=None, provenance=None):
    """The contents of `metadata.json` for `model` (see `save_preset`)."""
    import keras

    import keras_ann

    protocol = model.test_protocol
    metadata = {
        "keras_version": keras.version(),
        "keras_ann_version": keras_ann.__version__,
        "parameter_count": int(model.count_params()),
        "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S"),
        "class_name": type(model).__name__,
        "backbone": _backbone_name(model),
        "num_classes": int(model.num_classes),
        "test_protocol": protocol.to_config(),
        "data_contract": json.loads(json.dumps({"data": protocol.data, **protocol.data_contract()})),
    }
    if evaluation is not None:
        if "per_class" not in evaluation:  # `evaluate_dataset`'s results
            about = {key: evaluation[key] for key in ("data", "split", "images") if key in evaluation}
            evaluation = evaluation_record(evaluation, protocol.class_names, **about)
        metadata["evaluation"] = evaluation
    if reference is not None:
        metadata["reference"] = reference
    if provenance is not None:
        metadata["provenance"] = provenance
    return metadata


def _backbone_name(model):
    backbone = model.backbone
    depth, stride = getattr(backbone, "depth", None), getattr(backbone, "output_stride", None)
    if depth is not None and stride is not None:
        return f"resnet{depth}_d{stride}"
    return type(backbone).__name__


def save_preset(model, directory, *, evaluation=None, reference=None, provenance=None):
    """Write `model` as a preset directory (see the module's docstring).

    The files are written under temporary names and renamed into place, so
    that an interrupted save leaves no half-written file under a final
    name; other files in `directory` are left alone.

    Args:
        model: an `ANNSegmenter`.
        directory: the directory (created if needed).
        evaluation: the scores of the model: `evaluate_dataset`'s results
            (the table is taken from them) or an `evaluation_record`, with
            what it was scored on.
        reference: for a converted reference model: its name, recipe,
            address and published scores (`keras_ann.presets`).
        provenance: where the weights came from (source file, SHA-256,
            the keys mapped, ...).

    Returns:
        The metadata written.

    Raises:
        CheckpointError: `directory` exists and is not a directory.
    """
    import keras

    if os.path.exists(directory) and not os.path.isdir(directory):
        raise CheckpointError(f"{directory} is a file: give a new or existing directory for the preset.")
    os.makedirs(directory, exist_ok=True)
    config = _without(keras.saving.serialize_keras_object(model), ("compile_config", "build_config"))
    metadata = preset_metadata(model, evaluation, reference, provenance)
    card = model_card(metadata, os.path.basename(os.path.abspath(directory)))

    def write(name, writer):
        temporary = os.path.join(directory, f".tmp-{os.getpid()}-{name}")  # still *.weights.h5 for Keras
        try:
            writer(temporary)
            os.replace(temporary, os.path.join(directory, name))
        finally:
            if os.path.exists(temporary):
                os.remove(temporary)

    def text(content):
        def writer(path):
            with open(path, "w", encoding="utf-8") as f:
                f.write(content)

        return writer

    write(WEIGHTS_FILE, model.save_weights)
    write(CONFIG_FILE, text(json.dumps(config, indent=2)))
    write(METADATA_FILE, text(json.dumps(metadata, indent=2)))
    write(README_FILE, text(card))
    return metadata


def _table_cells(value):
    return "—" if value is None else f"{value:.2f}"


def model_card(metadata, title):
    """The `README.md` of a preset directory: Hugging Face front matter,
    how to load it, its test protocol, data contract, scores and origin."""
    protocol, contract = metadata["test_protocol"], metadata["data_contract"]
    reference, provenance, evaluation = (metadata.get(k) for k in ("reference", "provenance", "evaluation"))
    title = reference["name"] if reference else title
    lines = [
        "---",
        "library_name: keras-ann",
        "pipeline_tag: image-segmentation",
        "tags:",
        "- keras",
        "- keras-ann",
        "- semantic-segmentation",
        "license: apache-2.0",
        "---",
        "",
        f"# {title}",
        "",
        f"An Asymmetric Non-local Network (ANN, Zhu et al., ICCV 2019) for semantic segmentation, saved by keras-ann "
        f"{metadata['keras_ann_version']} (Keras {metadata['keras_version']}) as a preset directory in KerasHub's "
        f"layout: {metadata['backbone']}, {metadata['num_classes']} classes, {metadata['parameter_count']:,} "
        "parameters.",
        "",
        "## Use",
        "",
        "```python",
        "import keras_ann",
        "",
        'model = keras_ann.ANNSegmenter.from_preset("hf://OWNER/NAME")  # or the directory\'s path',
        "labels = model.predict_labels(images)  # (N, H, W) class ids of RGB images in 0..255",
        "```",
        "",
        "```bash",
        "keras-ann evaluate hf://OWNER/NAME --data-root DATA   # tests as below, no other flag needed",
        "keras-ann predict hf://OWNER/NAME photos/*.jpg",
        "```",
        "",
        "## Test protocol",
        "",
        "| mode | window | stride | test scale | multi-scale + flip |",
        "|---|---|---|---|---|",
        "| {} | {} | {} | {} | {} |".format(
            protocol["mode"],
            "x".join(map(str, protocol["crop"])) if protocol["crop"] else "—",
            "x".join(map(str, protocol["stride"])) if protocol["stride"] else "—",
            "x".join(map(str, protocol["scale"])) if protocol["scale"] else "the image's own size",
            f"{protocol['ratios']} + flip" if protocol["ratios"] else ("flip" if protocol["flip"] else "no"),
        ),
        "",
        "## Data contract",
        "",
        f"- data config: {contract.get('data') or 'not recorded'}",
        f"- classes: {', '.join(contract['class_names']) if contract.get('class_names') else 'not named'}",
    ]
    for key in ("label_map", "reduce_zero_label", "ignore_index", "label_palette"):
        if key in contract:
            lines.append(f"- {key}: {contract[key]}")
    if evaluation:
        about = ", ".join(f"{k} {evaluation[k]}" for k in ("data", "split", "images") if k in evaluation)
        lines += [
            "",
            "## Evaluation",
            "",
            f"Measured by keras-ann{' on ' + about if about else ''}, with the test protocol above.",
            "",
            "| aAcc | mIoU | mAcc |",
            "|---|---|---|",
            f"| {_table_cells(evaluation['aAcc'])} | {_table_cells(evaluation['mIoU'])} | {_table_cells(evaluation['mAcc'])} |",
            "",
            "| class | IoU | Acc |",
            "|---|---|---|",
        ]
        lines += [f"| {c['class']} | {_table_cells(c['IoU'])} | {_table_cells(c['Acc'])} |" for c in evaluation["per_class"]]
    if reference:
        published = reference["published"]
        lines += [
            "",
            "## Reference",
            "",
            f"mmsegmentation's released model `{reference['file_name']}` ({reference['url']}), trained by the recipe "
            f"`{reference['name']}` (`keras-ann recipes`; the recipe is in metadata.json). Its published "
            f"{published['data']} {published['split']} mIoU: {published['mIoU']:.2f} single-scale, "
            f"{published['mIoU_ms_flip']:.2f} multi-scale + flip (mmsegmentation's configs/ann/README.md).",
        ]
    if provenance:
        matches = provenance.get("matches_published")
        lines += [
            "",
            "## Provenance",
            "",
            f"Converted by keras-ann {provenance['keras_ann_version']} from `{provenance['source_file']}` "
            f"(SHA-256 {provenance['sha256']}), {len(provenance['keys_mapped'])} state-dict keys mapped "
            "(the mapping is in metadata.json)"
            + (f", {len(provenance['keys_ignored'])} ignored ({', '.join(sorted({k.rsplit('.', 1)[-1] for k in provenance['keys_ignored']}))})."
               if provenance.get("keys_ignored") else "."),
        ]
        if matches is True:
            lines.append("Its SHA-256 begins with the digits of the published file name: it is the released file.")
        elif matches is False:
            lines.append(
                "**Its SHA-256 does not begin with the digits of the published file name: these weights are not the "
                "released ones, and the published scores above are not theirs.**"
            )
    lines += [
        "",
        "## Files",
        "",
        "config.json (the model), metadata.json (versions, parameter count, protocol, scores, origin), "
        "model.weights.h5 (the weights), README.md (this card). "
        "See https://github.com/keras-team/keras-hub for the layout.",
        "",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------


def _file(source, name, required=True):
    """The local path of `name` in the preset directory `source` (a path
    or a hub handle), after the path checks; `None` if absent and not
    `required`."""
    from keras_ann import hub

    if hub.is_handle(source):
        path = hub.get_file(source, name, required=required)
        if path is None:
            return None
        label = f"{source} ({name})"
    else:
        path = os.path.join(source, name)
        label = path
        if not os.path.lexists(path):
            if not required:
                return None
            raise CheckpointError(
                f"{source} is not a preset directory: it has no {name} (a preset directory holds config.json, "
                "metadata.json, model.weights.h5 and README.md; write one with model.save_to_preset(DIR))."
            )
    try:
        kind = irregular_kind(path)
    except FileNotFoundError:
        raise CheckpointError(f"{label} is a broken link: download or copy the preset directory again.") from None
    if kind is not None:
        raise CheckpointError(f"{label} is {kind}, not a file: save, download or copy the preset directory again.")
    size = os.path.getsize(path)
    limit = _LIMITS.get(name)
    if limit is not None and size > limit:
        raise CheckpointError(
            f"{label} is {_size(size)}, over the limit of {_size(limit)} for it: refused as "
            "damaged or hostile; save or download the preset again."
        )
    return path


def _read_json(source, name, required=True):
    path = _file(source, name, required)
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (ValueError, UnicodeDecodeError) as error:
        raise CheckpointError(
            f"{source}: its {name} is not valid JSON ({type(error).__name__}: {error}); save or download it again."
        ) from None


def read_metadata(source):
    """The `metadata.json` of a preset directory or handle (a dict), or
    `None` when it has none."""
    return _read_json(source, METADATA_FILE, required=False)


def _weights(source):
    path = _file(source, WEIGHTS_FILE)
    kind = sniff_model_file(path)
    if kind != "keras_weights":
        raise CheckpointError(
            f"{source}: its {WEIGHTS_FILE} is not a Keras weights file (HDF5) but {kind}: save or download it again."
        )
    check_hdf5(path, f"{source} ({WEIGHTS_FILE})")
    return path


def check_preset_directory(cls, source):
    """Check a preset directory (or handle) as loading does, without
    building the model: its configuration holds a `cls`, its weights file
    is a safe HDF5 file within the bounds.

    Returns:
        `(config, weights_path)`.

    Raises:
        CheckpointError: naming the directory, the file and what is wrong.
    """
    config = _read_json(source, CONFIG_FILE)
    check_model_config(cls, config, f"{source} ({CONFIG_FILE})")
    return config, _weights(source)


def load_preset_directory(cls, source, overrides=None):
    """The `cls` model of a preset directory, local or on a hub.

    Args:
        cls: `ANNSegmenter` (or a subclass).
        source: a directory path or an `hf://` / `kaggle://` handle.
        overrides: as in `keras_ann.models.keras_file.apply_overrides`
            (`num_classes` gives new classifiers, every other weight kept).

    Raises:
        CheckpointError: a file is missing, refused or damaged (one line
            naming the directory and the file).
        keras_ann.hub.HubError: a handle that cannot be resolved.
    """
    import keras

    from keras_ann.models.keras_file import apply_overrides

    config, weights = check_preset_directory(cls, source)
    try:
        model = keras.saving.deserialize_keras_object(config, safe_mode=True)
    except Exception as error:  # Keras raises many types for a bad configuration
        text = " ".join(str(error).split())
        raise CheckpointError(
            f"{source}: its {CONFIG_FILE} does not build a model ({type(error).__name__}: {text[:300]}); "
            "save or download the preset again."
        ) from error
    if not isinstance(model, cls):
        raise CheckpointError(f"{source} holds a {type(model).__name__}, not a keras_ann {cls.__name__}.")
    try:
        model.load_weights(weights)
    except Exception as error:
        text = " ".join(str(error).split())
        raise CheckpointError(
            f"{source}: its {WEIGHTS_FILE} does not fit its {CONFIG_FILE} ({type(error).__name__}: {text[:300]}); "
            "save or download the preset again."
        ) from error
    return apply_overrides(cls, model, source, **(overrides or {}))


def push_preset(cls, directory, handle):
    """Upload the local preset directory `directory` to the Hugging Face
    Hub repository `handle` (`hf://owner/name`), after checking it as
    loading does (`check_preset_directory`).

    Returns:
        The URL of the commit.

    Raises:
        CheckpointError: `directory` is not a local preset directory of a
            `cls`.
        keras_ann.hub.HubError: the handle or the upload failed.
    """
    from keras_ann import hub

    hub.parse_handle(handle)  # a malformed handle before anything is read
    if hub.is_handle(directory) or not os.path.isdir(directory):
        raise CheckpointError(
            f"{directory} is not a local directory: push uploads a preset directory written by "
            "model.save_to_preset(DIR), keras-ann convert MODEL DIR --preset or keras-ann evaluate ... --save-preset DIR."
        )
    check_preset_directory(cls, directory)
    return hub.upload(directory, handle)
