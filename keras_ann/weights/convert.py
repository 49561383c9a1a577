"""Conversion of the reference's (mmsegmentation) ANN weights to keras-ann.

The reference names its parameters after PyTorch modules; each of them has
exactly one Keras variable here:

| reference (`state_dict` key)                         | keras-ann                              |
|------------------------------------------------------|----------------------------------------|
| `backbone.stem.{0,3,6}.weight`                        | backbone `stem_conv{1,2,3}`            |
| `backbone.stem.{1,4,7}.*`                             | backbone `stem_bn{1,2,3}`              |
| `backbone.layer{s}.{b}.conv{k}.weight`                | backbone `stage{s}_block{b+1}_conv{k}` |
| `backbone.layer{s}.{b}.bn{k}.*`                       | backbone `stage{s}_block{b+1}_bn{k}`   |
| `backbone.layer{s}.0.downsample.{0,1}.*`              | `stage{s}_block1_downsample_{conv,bn}` |
| `decode_head.{fusion,bottleneck,context,conv_seg}.*`  | `ANNHead` `model.decode_head`, same sub-layer names |
| `auxiliary_head.convs.{i}.*`                          | `FCNHead` `model.auxiliary_head.convs[i]` |
| `auxiliary_head.{conv_cat,conv_seg}.*`                | `model.auxiliary_head.{conv_cat,conv_seg}` |

Convolution kernels go from PyTorch's `(out, in, kh, kw)` to Keras's
`(kh, kw, in, out)`; batch norms map `weight, bias, running_mean,
running_var` to `gamma, beta, moving_mean, moving_variance`
(`num_batches_tracked` has no Keras counterpart and is dropped). APNB's
shared key/query projection appears twice in the reference's `state_dict`
(`key_project` and `query_project`); both copies must be equal.
"""

import re

import numpy as np

from keras_ann.weights.pth_reader import CheckpointError

__all__ = [
    "ConversionError",
    "ann_head_weight_map",
    "assign_weights",
    "backbone_weight_map",
    "fcn_head_weight_map",
    "infer_ann_config",
    "load_imagenet_backbone",
    "load_reference_weights",
    "segmenter_weight_map",
]

_BN_FIELDS = (
    ("weight", "gamma"),
    ("bias", "beta"),
    ("running_mean", "moving_mean"),
    ("running_var", "moving_variance"),
)
_IGNORED_SUFFIXES = ("num_batches_tracked",)


class ConversionError(CheckpointError):
    """A state dict does not fit the Keras model (lists every problem)."""


def _conv(key, layer, bias=False):
    entries = [(f"{key}.weight", layer.kernel, _conv_kernel)]
    if bias:
        entries.append((f"{key}.bias", layer.bias, None))
    return entries


def _bn(key, layer):
    return [(f"{key}.{src}", getattr(layer, dst), None) for src, dst in _BN_FIELDS]


def _conv_bn(key, block):
    """An mmcv `ConvModule` (`.conv`, `.bn`) -> our `ConvBNReLU`."""
    return _conv(f"{key}.conv", block.conv) + _bn(f"{key}.bn", block.bn)


def _conv_kernel(array):
    return np.transpose(array, (2, 3, 1, 0))


def backbone_weight_map(backbone, prefix="backbone."):
    """`[(state_dict_key, keras_variable, transform)]` for a `ResNetBackbone`.

    Args:
        backbone: a `ResNetBackbone`.
        prefix: key prefix, `"backbone."` in segmentation checkpoints and
            `""` in ImageNet classification checkpoints.
    """
    entries = []
    for i, (conv, bn) in enumerate([(0, 1), (3, 4), (6, 7)], start=1):
        entries += _conv(f"{prefix}stem.{conv}", backbone.get_layer(f"stem_conv{i}"))
        entries += _bn(f"{prefix}stem.{bn}", backbone.get_layer(f"stem_bn{i}"))
    names = {layer.name for layer in backbone.layers}
    pattern = re.compile(r"stage(\d)_block(\d+)_(conv|bn)(\d)$")
    for layer in backbone.layers:
        match = pattern.match(layer.name)
        if match:
            stage, block, kind, index = match.groups()
            key = f"{prefix}layer{stage}.{int(block) - 1}.{kind}{index}"
            entries += _conv(key, layer) if kind == "conv" else _bn(key, layer)
        elif layer.name.endswith("_downsample_conv"):
            stage = layer.name[len("stage")]
            key = f"{prefix}layer{stage}.0.downsample"
            bn = backbone.get_layer(layer.name.replace("_conv", "_bn"))
            entries += _conv(f"{key}.0", layer) + _bn(f"{key}.1", bn)
    assert "stem_conv1" in names
    return entries


def _attention(key, block):
    entries = _conv_bn(f"{key}.key_project", block.key_project)
    # APNB shares one projection; the reference saves it under both names.
    entries += _conv_bn(f"{key}.query_project", block.query_project)
    entries += _conv(f"{key}.value_project", block.value_project, bias=True)
    entries += _conv(f"{key}.out_project", block.out_project, bias=True)
    return entries


def _fusion(key, layer):
    entries = []
    for i, stage in enumerate(layer.stages):
        entries += _attention(f"{key}.stages.{i}", stage)
    return entries + _conv_bn(f"{key}.bottleneck", layer.bottleneck)


def ann_head_weight_map(head, prefix="decode_head."):
    """`[(state_dict_key, keras_variable, transform)]` for an `ANNHead`
    (the reference's `ANNHead`, keys `decode_head.*`)."""
    return (
        _fusion(f"{prefix}fusion", head.fusion)
        + _conv_bn(f"{prefix}bottleneck", head.bottleneck)
        + _fusion(f"{prefix}context", head.context)
        + _conv(f"{prefix}conv_seg", head.conv_seg, bias=True)
    )


def fcn_head_weight_map(head, prefix="auxiliary_head."):
    """`[(state_dict_key, keras_variable, transform)]` for an `FCNHead`
    (the reference's `FCNHead`, keys `auxiliary_head.*`)."""
    entries = []
    for i, conv in enumerate(head.convs):
        entries += _conv_bn(f"{prefix}convs.{i}", conv)
    if head.conv_cat is not None:
        entries += _conv_bn(f"{prefix}conv_cat", head.conv_cat)
    return entries + _conv(f"{prefix}conv_seg", head.conv_seg, bias=True)


def segmenter_weight_map(model, include=("backbone", "decode_head", "auxiliary_head")):
    """`[(state_dict_key, keras_variable, transform)]` for an `ANNSegmenter`.

    Args:
        model: an `ANNSegmenter`.
        include: which parts of the reference model to map.

    Raises:
        ConversionError: the backbone is mapped but is not a
            `ResNetBackbone` (the reference's ANN models are ResNet-V1c).
    """
    from keras_ann.backbones.resnet import ResNetBackbone

    entries = []
    if "backbone" in include:
        if not isinstance(model.backbone, ResNetBackbone):
            raise ConversionError(
                "The reference's ANN weights are for a ResNet-V1c backbone; this model's "
                f"backbone is a {type(model.backbone).__name__}. Load its own weights "
                "(e.g. KerasHub's `from_preset`) and convert the heads only with "
                "`segmenter_weight_map(model, include=('decode_head', 'auxiliary_head'))`."
            )
        entries += backbone_weight_map(model.backbone)
    if "decode_head" in include:
        entries += ann_head_weight_map(model.decode_head)
    if "auxiliary_head" in include and model.auxiliary_head is not None:
        entries += fcn_head_weight_map(model.auxiliary_head)
    return entries


def assign_weights(entries, state_dict, *, source="state dict", allow_unexpected=(), skip=()):
    """Check every entry against `state_dict`, then assign them all.

    Nothing is assigned unless everything fits: missing keys, unexpected
    keys and shape mismatches are collected and raised together.

    Args:
        entries: `[(key, variable, transform)]` from the weight maps.
        state_dict: dict of NumPy arrays.
        source: name of the checkpoint, for messages.
        allow_unexpected: key prefixes that may be present without use
            (e.g. `("fc.",)` for ImageNet checkpoints, or
            `("auxiliary_head.",)`).
        skip: key prefixes of entries to leave at their initial values
            (e.g. a new classifier).

    Raises:
        ConversionError: listing every missing, unexpected and mis-shaped
            key.
    """
    missing, mismatched, plan = [], [], []
    shared = {}
    for key, variable, transform in entries:
        if key.startswith(tuple(skip)):
            continue
        if key not in state_dict:
            missing.append(key)
            continue
        value = np.asarray(state_dict[key])
        value = transform(value) if transform is not None else value
        if tuple(value.shape) != tuple(variable.shape):
            mismatched.append(
                f"{key}: checkpoint {tuple(state_dict[key].shape)} -> "
                f"{tuple(value.shape)}, model {variable.path} {tuple(variable.shape)}"
            )
            continue
        if id(variable) in shared:
            other_key, other = shared[id(variable)]
            if not np.array_equal(other, value):
                mismatched.append(
                    f"{key}: differs from {other_key}, but both are one shared "
                    f"variable ({variable.path})"
                )
            continue
        shared[id(variable)] = (key, value)
        plan.append((variable, value))
    used = {key for key, _, _ in entries}
    unexpected = sorted(
        key
        for key in state_dict
        if key not in used
        and not key.endswith(_IGNORED_SUFFIXES)
        and not key.startswith(tuple(allow_unexpected))
    )
    if missing or unexpected or mismatched:
        parts = [f"The weights in {source} do not fit the model:"]
        for title, items in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("shape mismatches", mismatched),
        ):
            if items:
                shown = "\n    ".join(items[:50])
                more = f"\n    ... and {len(items) - 50} more" if len(items) > 50 else ""
                parts.append(f"  {len(items)} {title}:\n    {shown}{more}")
        parts.append(
            "Pass `partial='backbone'` to load the backbone only, or "
            "`partial='new_classifier'` to keep everything but the classifiers."
        )
        raise ConversionError("\n".join(parts))
    for variable, value in plan:
        variable.assign(value.astype(variable.dtype))
    return len(plan)


def infer_ann_config(state_dict):
    """Backbone depth, number of classes and head widths from a reference
    ANN `state_dict`.

    The output stride (8 or 16) is not visible in the weights; the
    reference's released ANN models all use 8.

    Returns:
        dict of `ANNSegmenter` arguments: `backbone`, `num_classes`,
        `head_channels`, `project_channels`, `auxiliary_head`,
        `auxiliary_channels`, `query_scales`.

    Raises:
        ConversionError: when the state dict is not an ANN model's.
    """
    def need(key):
        if key not in state_dict:
            raise ConversionError(
                f"Not an ANN segmentation state dict: no {key!r} "
                f"(first keys: {list(state_dict)[:5]})."
            )
        return state_dict[key]

    blocks = {}
    for key in state_dict:
        match = re.match(r"backbone\.layer(\d)\.(\d+)\.", key)
        if match:
            stage, block = int(match.group(1)), int(match.group(2))
            blocks[stage] = max(blocks.get(stage, 0), block + 1)
    bottleneck = "backbone.layer1.0.conv3.weight" in state_dict
    counts = tuple(blocks.get(s, 0) for s in (1, 2, 3, 4))
    depths = {
        (True, (3, 4, 6, 3)): 50,
        (True, (3, 4, 23, 3)): 101,
        (False, (2, 2, 2, 2)): 18,
    }
    depth = depths.get((bottleneck, counts))
    if depth is None:
        raise ConversionError(
            f"Unsupported backbone in the state dict: blocks per stage {counts}, "
            f"{'bottleneck' if bottleneck else 'basic'} blocks."
        )
    conv_seg = need("decode_head.conv_seg.weight")
    num_stages = len({k.split(".")[3] for k in state_dict if k.startswith("decode_head.fusion.stages.")})
    config = {
        "backbone": f"resnet{depth}_d8",
        "num_classes": int(conv_seg.shape[0]),
        "head_channels": int(need("decode_head.bottleneck.conv.weight").shape[0]),
        "project_channels": int(need("decode_head.fusion.stages.0.key_project.conv.weight").shape[0]),
        "auxiliary_head": "auxiliary_head.conv_seg.weight" in state_dict,
        "query_scales": (1,) * max(num_stages, 1),
    }
    if config["auxiliary_head"]:
        config["auxiliary_channels"] = int(state_dict["auxiliary_head.convs.0.conv.weight"].shape[0])
    return config


def _read_state_dict(checkpoint):
    """`(state_dict, source)` from a path, a checkpoint dict or a state dict."""
    from keras_ann.weights.pth_reader import extract_state_dict, load_torch_checkpoint

    if isinstance(checkpoint, (str, bytes)) or hasattr(checkpoint, "__fspath__"):
        return extract_state_dict(load_torch_checkpoint(checkpoint)), str(checkpoint)
    return extract_state_dict(checkpoint), "the given state dict"


_CLASSIFIERS = ("decode_head.conv_seg.", "auxiliary_head.conv_seg.")


def load_reference_weights(model, checkpoint, partial=None, source=None):
    """Load a reference (mmsegmentation) ANN checkpoint into an `ANNSegmenter`.

    Args:
        model: an `ANNSegmenter` of the checkpoint's architecture.
        checkpoint: path to a `.pth` file, or an already-read checkpoint or
            state dict (NumPy arrays).
        partial: `None` (every weight must fit), `"backbone"` (load the
            backbone only), or `"new_classifier"` (everything but the two
            classifiers, e.g. for another number of classes).
        source: name of the checkpoint in error messages (defaults to the
            path).

    Returns:
        The number of variables assigned.

    Raises:
        ConversionError: listing all missing, unexpected or mis-shaped keys.

    Example:

    ```python
    model = keras_ann.ANNSegmenter("resnet50_d8", num_classes=19)
    load_reference_weights(model, "ann_r50-d8_512x1024_40k_cityscapes.pth")
    ```
    """
    if partial not in (None, "backbone", "new_classifier"):
        raise ValueError(
            f"`partial` must be None, 'backbone' or 'new_classifier', got {partial!r}."
        )
    state_dict, default_source = _read_state_dict(checkpoint)
    source = source or default_source
    allow, skip = [], []
    if partial == "backbone":
        entries = segmenter_weight_map(model, include=("backbone",))
        allow += ["decode_head.", "auxiliary_head."]
    else:
        entries = segmenter_weight_map(model)
        if partial == "new_classifier":
            skip += list(_CLASSIFIERS)
            allow += list(_CLASSIFIERS)
    if model.auxiliary_head is None:
        allow.append("auxiliary_head.")
    return assign_weights(
        entries, state_dict, source=source, allow_unexpected=tuple(allow), skip=tuple(skip)
    )


def load_imagenet_backbone(backbone, checkpoint):
    """Load an ImageNet ResNet-V1c checkpoint (the reference's
    `open-mmlab://resnet50_v1c` and `resnet101_v1c`, keys `stem.0.weight`,
    `layer1.0.conv1.weight`, ..., `fc.*`) into a `ResNetBackbone`.

    Keys prefixed with `backbone.` are accepted too; the classifier (`fc.*`)
    is ignored.

    Args:
        backbone: a `ResNetBackbone` (or an `ANNSegmenter`, whose backbone
            is used).
        checkpoint: path to a `.pth` file, or a checkpoint / state dict.

    Returns:
        The number of variables assigned.
    """
    backbone = getattr(backbone, "backbone", backbone)
    state_dict, source = _read_state_dict(checkpoint)
    if any(key.startswith("backbone.") for key in state_dict):
        state_dict = {
            key[len("backbone."):]: value
            for key, value in state_dict.items()
            if key.startswith("backbone.")
        }
    return assign_weights(
        backbone_weight_map(backbone, prefix=""),
        state_dict,
        source=source,
        allow_unexpected=("fc.",),
    )
