"""The reference's 12 released ANN models, and loading them by name.

Numbers and addresses are those of mmsegmentation's `configs/ann/README.md`
(`../shared/reference/seed_ann_results.md` in this project). The last 8 hex
digits of each file name are the first 8 of the file's SHA-256, which the
download is checked against. Each preset carries its recipe's test
configuration (mode, window, stride, test scale, class names, palette):
`from_preset` stores it on the model, so that evaluation and prediction
test as the reference does by default.
"""

import dataclasses
import os

from keras_ann.data.configs import get_data_config
from keras_ann.models.loading import FILE_KINDS, sniff_model_file  # noqa: F401 (model files: see there)
from keras_ann.recipes import RECIPES
from keras_ann.weights import download

_BASE = "https://download.openmmlab.com/mmsegmentation/v0.5/ann"


@dataclasses.dataclass(frozen=True)
class Preset:
    """One released reference model.

    Its model, training and test settings are those of its recipe
    (`keras_ann.recipes`, the same name); the properties below read them.

    Attributes:
        name: our name, e.g. `"ann_r50_d8_cityscapes_512x1024_40k"`.
        recipe: the `Recipe` that trained it.
        miou: the reference's single-scale mIoU (%).
        miou_ms_flip: the reference's multi-scale + flip mIoU (%).
        memory_gb: training memory the reference reports (V100), or None.
        fps: inference speed the reference reports (V100), or None.
        url: address of the `.pth` file.
    """

    name: str
    recipe: object
    miou: float
    miou_ms_flip: float
    memory_gb: float
    fps: float
    url: str

    dataset = property(
        lambda self: get_data_config(self.recipe.data).loader,
        doc="`'cityscapes'`, `'ade20k'` or `'pascal_voc'` (the recipe's `data` names the data config).",
    )
    backbone = property(lambda self: self.recipe.backbone)
    num_classes = property(lambda self: self.recipe.num_classes)
    crop_size = property(lambda self: self.recipe.crop_size)
    iterations = property(lambda self: self.recipe.iterations)
    align_corners = property(lambda self: self.recipe.align_corners)
    test_mode = property(lambda self: self.recipe.test_mode)
    test_crop = property(lambda self: self.recipe.test_crop)
    test_stride = property(lambda self: self.recipe.test_stride)
    test_scale = property(lambda self: self.recipe.test_scale)

    @property
    def sha256_prefix(self):
        """The hex digits at the end of the published file name."""
        return download.sha256_prefix_of(self.url)

    @property
    def file_name(self):
        return self.url.rsplit("/", 1)[-1]

    class_names = property(lambda self: self.test_protocol().class_names)
    palette = property(lambda self: self.test_protocol().palette)

    def test_protocol(self):
        """The reference's test protocol of this model (see
        `Recipe.test_protocol`); `from_preset` stores it on the model."""
        return self.recipe.test_protocol()

    def model_config(self):
        """`ANNSegmenter` arguments of this model."""
        return {
            "backbone": self.backbone,
            "num_classes": self.num_classes,
            "align_corners": self.align_corners,
        }


def _preset(recipe_name, miou, ms, mem, fps, stamp):
    recipe = RECIPES[recipe_name]
    h, w = recipe.crop_size
    loader = get_data_config(recipe.data).loader
    mm_dataset = {"pascal_voc": "voc12aug"}.get(loader, loader)
    depth = recipe.backbone[len("resnet") : -len("_d8")]
    mm_name = f"ann_r{depth}-d8_{h}x{w}_{recipe.iterations // 1000}k_{mm_dataset}"
    return Preset(
        name=recipe_name,
        recipe=recipe,
        miou=miou,
        miou_ms_flip=ms,
        memory_gb=mem,
        fps=fps,
        url=f"{_BASE}/{mm_name}/{mm_name}_{stamp}.pth",
    )


PRESETS = {
    p.name: p
    for p in [
        _preset("ann_r50_d8_cityscapes_512x1024_40k", 77.40, 78.57, 6.0, 3.71, "20200605_095211-049fc292"),
        _preset("ann_r101_d8_cityscapes_512x1024_40k", 76.55, 78.85, 9.5, 2.55, "20200605_095243-adf6eece"),
        _preset("ann_r50_d8_cityscapes_769x769_40k", 78.89, 80.46, 6.8, 1.70, "20200530_025712-2b46b04d"),
        _preset("ann_r101_d8_cityscapes_769x769_40k", 79.32, 80.94, 10.7, 1.15, "20200530_025720-059bff28"),
        _preset("ann_r50_d8_cityscapes_512x1024_80k", 77.34, 78.65, None, None, "20200607_101911-5a9ad545"),
        _preset("ann_r101_d8_cityscapes_512x1024_80k", 77.14, 78.81, None, None, "20200607_013728-aceccc6e"),
        _preset("ann_r50_d8_cityscapes_769x769_80k", 78.88, 80.57, None, None, "20200607_044426-cc7ff323"),
        _preset("ann_r101_d8_cityscapes_769x769_80k", 78.80, 80.34, None, None, "20200607_013713-a9d4be8d"),
        _preset("ann_r50_d8_ade20k_512x512_80k", 41.01, 42.30, 9.1, 21.01, "20200615_014818-26f75e11"),
        _preset("ann_r101_d8_ade20k_512x512_80k", 42.94, 44.18, 12.5, 14.12, "20200615_014818-c0153543"),
        _preset("ann_r50_d8_ade20k_512x512_160k", 41.74, 42.62, None, None, "20200615_231733-892247bc"),
        _preset("ann_r101_d8_ade20k_512x512_160k", 42.94, 44.06, None, None, "20200615_231733-955eb1ec"),
        _preset("ann_r50_d8_pascal_voc_512x512_20k", 74.86, 76.13, 6.0, 20.92, "20200617_222246-dfcb1c62"),
        _preset("ann_r101_d8_pascal_voc_512x512_20k", 77.47, 78.70, 9.5, 13.94, "20200617_222246-2fad0042"),
        _preset("ann_r50_d8_pascal_voc_512x512_40k", 76.56, 77.51, None, None, "20200613_231314-b5dac322"),
        _preset("ann_r101_d8_pascal_voc_512x512_40k", 76.70, 78.06, None, None, "20200613_231314-bd205bbe"),
    ]
}


def get_preset(name):
    """The `Preset` called `name`; a clear error listing the names otherwise."""
    if name not in PRESETS:
        raise ValueError(
            f"Unknown preset {name!r}. Known presets:\n  " + "\n  ".join(sorted(PRESETS))
        )
    return PRESETS[name]


def load_preset(cls, name_or_path, *, cache_dir=None, verbose=True, **overrides):
    """Implementation of `ANNSegmenter.from_preset`; see there."""
    from keras_ann.models.ann_segmenter import check_arguments
    from keras_ann.weights import convert, download

    from keras_ann import hub

    check_arguments(overrides, f"{cls.__name__}.from_preset", cls)  # before any file is read or downloaded
    spec = str(name_or_path)
    if hub.is_handle(spec) or os.path.isdir(spec):
        from keras_ann.models.preset_directory import load_preset_directory

        return load_preset_directory(cls, spec, overrides)
    if os.path.exists(spec):
        from keras_ann.models.loading import load_model_file

        return load_model_file(cls, spec, overrides)
    if spec.endswith((".pth", ".keras")):
        raise FileNotFoundError(f"No checkpoint file at {name_or_path!r}.")
    if "://" in spec:
        hub.parse_handle(spec)  # the ValueError naming the handles there are
    if spec not in PRESETS and (os.sep in spec or "/" in spec):
        raise FileNotFoundError(
            f"No model file or preset directory at {spec!r} (and it is no preset name: see keras-ann presets)."
        )
    preset = get_preset(name_or_path)
    directory = os.path.join(cache_dir or download.cache_dir(), "presets")
    pth = reference_file(preset, cache_dir, verbose)
    config = dict(preset.model_config(), **overrides)
    if "test_protocol" not in overrides:  # a new classifier: not these classes
        config["test_protocol"] = preset.test_protocol().for_classes(config["num_classes"])
    weights = os.path.join(directory, f"{preset.name}.weights.h5")
    model = cls(**config)
    same_weights = config["num_classes"] == preset.num_classes and all(
        key in ("align_corners", "name", "dtype", "dropout", "ignore_index", "test_protocol") for key in overrides
    )
    if same_weights and os.path.exists(weights):
        model.load_weights(weights)
        return model
    convert.load_reference_weights(
        model, pth, partial=None if config["num_classes"] == preset.num_classes else "new_classifier"
    )
    if same_weights:
        tmp = weights + ".tmp.weights.h5"
        model.save_weights(tmp)
        os.replace(tmp, weights)
    return model



def reference_file(preset, cache_dir=None, verbose=True):
    """The local copy of `preset`'s reference `.pth`, downloaded into the
    cache (`<cache>/presets/`) and checked against its published hash the
    first time."""
    from keras_ann.weights import download

    pth = os.path.join(cache_dir or download.cache_dir(), "presets", preset.file_name)
    if not os.path.exists(pth):
        try:
            download.download(preset.url, pth, preset.sha256_prefix, verbose=verbose)
        except download.DownloadError as error:
            raise download.DownloadError(
                f"{preset.name}: {error} Or convert a copy you have: keras-ann convert {preset.file_name} "
                f"{preset.name}.keras, then use {preset.name}.keras."
            ) from None
    return pth


def _sha256(path):
    from keras_ann.weights.download import file_sha256

    return file_sha256(path)


def identify_reference(path, sha256=None):
    """The `Preset` whose released file `path` is, by its SHA-256 (the
    published name's digits) or its name (the published file name, or
    the preset's name with `.pth`), or `None`."""
    sha256 = sha256 or _sha256(path)
    name = os.path.basename(path)
    for preset in PRESETS.values():
        if sha256.startswith(preset.sha256_prefix) or name in (preset.file_name, f"{preset.name}.pth"):
            return preset
    return None


def reference_card(preset):
    """What a preset directory records of a released reference model: its
    name, file, address, recipe and published scores."""
    data = get_data_config(preset.recipe.data)
    return {
        "name": preset.name,
        "file_name": preset.file_name,
        "url": preset.url,
        "sha256_prefix": preset.sha256_prefix,
        "recipe": preset.recipe.to_config(),
        "published": {
            "data": data.name,
            "split": "val",
            "mIoU": preset.miou,
            "mIoU_ms_flip": preset.miou_ms_flip,
            "memory_gb": preset.memory_gb,
            "fps": preset.fps,
            "source": "mmsegmentation configs/ann/README.md",
        },
    }


def convert_to_preset(source, directory, name=None, *, cache_dir=None, verbose=True, evaluation=None, **overrides):
    """Write the model of `source` as a preset directory (see
    `keras_ann.models.preset_directory`).

    A reference `.pth` (or a preset name, whose file is downloaded) of one
    of the 16 released models (`name`, or recognised by its SHA-256 or file
    name) is converted with that model's recipe and test protocol, and the
    directory records its recipe, class names, published scores and the
    provenance: the source file's name and SHA-256 (and whether it is the
    published file), the state-dict keys mapped to each Keras variable,
    the keys ignored, and the keras-ann version. Any other model
    (`.keras`, another `.pth`, a preset directory or handle) is saved as it
    loads; a `.pth` records its provenance all the same.

    Args:
        source: a `.pth` or `.keras` file, a preset name, a preset
            directory or hub handle.
        directory: the preset directory to write.
        name: the reference model the `.pth` is (a key of `PRESETS`), when
            its name and hash do not say.
        cache_dir, verbose: as in `ANNSegmenter.from_preset`.
        evaluation: the model's scores (see `ANNSegmenter.save_to_preset`).
        **overrides: `ANNSegmenter` arguments (not for a reference model,
            whose recipe sets them).

    Returns:
        `(model, metadata)`: the model written and its metadata.

    Raises:
        CheckpointError: the `.pth` is not of the named reference model's
            architecture, or overrides are given for a reference model.
    """
    from keras_ann.models.ann_segmenter import ANNSegmenter, check_arguments
    from keras_ann.models.loading import CheckpointError, refuse_mismatch, sniff_model_file
    from keras_ann.models.preset_directory import save_preset

    import keras_ann

    check_arguments(overrides, "convert_to_preset", ANNSegmenter)
    spec = str(source)
    if name is not None:
        get_preset(name)  # the error listing the names
    if spec in PRESETS and not os.path.exists(spec):
        name, spec = spec, reference_file(PRESETS[spec], cache_dir, verbose)
    is_pth = os.path.isfile(spec) and not spec.endswith(".keras") and sniff_model_file(spec) in ("torch_zip", "torch_legacy")
    if not is_pth:
        if name is not None:
            raise CheckpointError(f"{spec} is not a reference .pth file: only those are converted as reference model {name}.")
        model = ANNSegmenter.from_preset(spec, cache_dir=cache_dir, verbose=verbose, **overrides)
        return model, save_preset(model, directory, evaluation=evaluation)
    from keras_ann.weights import convert, pth_reader

    refuse_mismatch(spec, sniff_model_file(spec))
    sha256 = _sha256(spec)
    preset = get_preset(name) if name is not None else identify_reference(spec, sha256)
    state_dict = pth_reader.extract_state_dict(pth_reader.load_torch_checkpoint(spec))
    inferred = convert.infer_ann_config(state_dict)
    if preset is None:
        config = dict(inferred, **overrides)
    else:
        if overrides:
            raise CheckpointError(
                f"{os.path.basename(spec)} is the reference model {preset.name}, whose recipe sets the model: "
                f"leave out {', '.join(sorted(overrides))} (or convert to .keras first)."
            )
        wanted = {key: preset.model_config()[key] for key in ("backbone", "num_classes")}
        found = {key: inferred[key] for key in wanted}
        if found != wanted:
            raise CheckpointError(
                f"{os.path.basename(spec)} holds a {found['backbone']} ANN with {found['num_classes']} classes, not "
                f"the reference model {preset.name} ({wanted['backbone']}, {wanted['num_classes']} classes): "
                "name the right one with --preset NAME (see keras-ann presets)."
            )
        config = dict(inferred, align_corners=preset.align_corners, test_protocol=preset.test_protocol())
    model = ANNSegmenter(**config)
    partial = None if model.num_classes == inferred["num_classes"] else "new_classifier"
    convert.load_reference_weights(model, state_dict, partial=partial, source=spec)
    mapped = {key: variable.path for key, variable, _ in convert.segmenter_weight_map(model)}
    if partial:
        mapped = {key: path for key, path in mapped.items() if not key.startswith(("decode_head.conv_seg.", "auxiliary_head.conv_seg."))}
    provenance = {
        "source_file": os.path.basename(spec),
        "sha256": sha256,
        "matches_published": None if preset is None else sha256.startswith(preset.sha256_prefix),
        "keys_mapped": mapped,
        "keys_ignored": sorted(key for key in state_dict if key not in mapped),
        "keras_ann_version": keras_ann.__version__,
    }
    reference = None if preset is None else reference_card(preset)
    metadata = save_preset(model, directory, evaluation=evaluation, reference=reference, provenance=provenance)
    return model, metadata


def load_model(spec, *, inference=False, **overrides):
    """The model of a preset name, a reference `.pth` file or a `.keras`
    file (`ANNSegmenter.from_preset`); for inference (`evaluate`,
    `predict`) with its batch norm folded into the convolutions
    (`keras_ann.fold_batch_norm`: the same logits up to round-off, faster).

    Args:
        spec: a preset name (`PRESETS`), a `.pth` or a `.keras` path, a
            preset directory or a hub handle (`hf://...`, `kaggle://...`).
        inference: fold the batch norm (no training afterwards).
        **overrides: `from_preset`'s overrides, e.g. `num_classes`.

    Example:

    >>> import os, tempfile
    >>> import keras_ann
    >>> path = os.path.join(tempfile.mkdtemp(), "m.keras")
    >>> keras_ann.ANNSegmenter(backbone="resnet18_d8", num_classes=2).save(path)
    >>> load_model(path, inference=True).num_classes
    2
    """
    from keras_ann.models import ANNSegmenter, fold_batch_norm

    model = ANNSegmenter.from_preset(spec, **overrides)
    return fold_batch_norm(model) if inference else model
