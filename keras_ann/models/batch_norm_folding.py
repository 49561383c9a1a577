"""Batch normalisation folded into the convolution before it, for inference."""

import keras
import numpy as np

from keras_ann.layers.conv_bn import inference_scale_and_shift


def fold_batch_norm(model):
    """An inference copy of `model` with each batch normalisation of its
    backbone folded into the convolution before it.

    In inference a `BatchNormalization` that follows a convolution is an
    affine map per channel, `y = conv(x) * s + t` with
    `s = gamma / sqrt(moving_variance + epsilon)` and
    `t = beta - moving_mean * s`, so the pair equals one convolution with
    kernel `kernel * s` and bias `t` (plus `bias * s` when the convolution
    had one). The copy computes the same logits up to round-off (the
    folded weights are computed in float64) and skips a normalisation pass
    over every feature map: on a CPU that is most of the gain in bfloat16,
    where each normalisation also casts its input to float32 and back.

    Folded are the pairs of the backbone's functional graph (the
    ResNet-V1c's, and those of a KerasHub backbone's): a `Conv2D` without
    activation whose only consumer is a channels-last `BatchNormalization`.
    Any other layer is copied with its weights. The heads' convolution +
    batch-norm layers (`ConvBNReLU`) need no copy: they fold their batch
    norm themselves whenever it is in inference mode.

    The copy is for inference and export: trained, its convolutions would
    learn without batch normalisation. The original model is not changed.

    Args:
        model: a `keras_ann.ANNSegmenter`.

    Returns:
        A new `ANNSegmenter` of the same configuration whose backbone is
        a functional model with the folded convolutions (saved, loaded and
        exported like any other).

    Example:

    >>> import numpy as np
    >>> from keras_ann import ANNSegmenter
    >>> model = ANNSegmenter(backbone="resnet18_d8", num_classes=3, dtype="float64")
    >>> folded = fold_batch_norm(model)
    >>> images = np.random.default_rng(0).uniform(0, 255, (1, 33, 33, 3))
    >>> bool(np.allclose(folded.predict_on_batch(images), model.predict_on_batch(images)))
    True
    >>> count_batch_norm(model.backbone), count_batch_norm(folded.backbone)
    (22, 0)
    """
    from keras_ann.backbones.feature_pyramid import feature_model
    from keras_ann.models.ann_segmenter import ANNSegmenter

    if not isinstance(model, ANNSegmenter):
        raise TypeError(
            f"fold_batch_norm takes a keras_ann.ANNSegmenter, got {type(model).__name__}."
        )
    backbone = fold_functional(feature_model(model.backbone))
    config = model.get_config()
    config["backbone"] = backbone
    folded = ANNSegmenter.from_config(config)
    copied = {id(layer) for layer in backbone._flatten_layers(include_self=True, recursive=True)}
    for layer in folded.layers:
        if id(layer) in copied or not layer.weights:
            continue
        layer.set_weights(model.get_layer(layer.name).get_weights())
    if model.auxiliary_head is not None:
        folded.auxiliary_head.set_weights(model.auxiliary_head.get_weights())
    return folded


def fold_functional(model):
    """A copy of the functional `model` with each `Conv2D` -> inference
    `BatchNormalization` pair replaced by one biased `Conv2D` (see
    `fold_batch_norm`); nested functional models are folded too.

    Returns:
        A `keras.Model` (plain functional) with the same inputs and outputs
        and the weights of `model`, folded.
    """
    pairs = _foldable_pairs(model)
    clones = {}
    skipped = set()

    def clone(layer):
        if id(layer) in pairs:
            config = layer.get_config()
            config.update(use_bias=True, bias_initializer="zeros")
            new = keras.layers.Conv2D.from_config(config)
        else:
            new = layer.__class__.from_config(layer.get_config())
        if id(layer) in pairs.values():
            skipped.add(id(new))
        clones[id(layer)] = (layer, new)
        return new

    def call(layer, *args, **kwargs):
        if id(layer) in skipped:
            return args[0]
        return layer(*args, **kwargs)

    folded = keras.models.clone_model(model, clone_function=clone, call_function=call, recursive=True)
    bn_ids = set(pairs.values())
    layers_by_id = {id(layer): layer for layer in model._flatten_layers(include_self=True, recursive=True)}
    for layer_id, (old, new) in clones.items():
        if layer_id in bn_ids or not old.weights:
            continue
        if layer_id in pairs:
            kernel, bias = _folded_weights(old, layers_by_id[pairs[layer_id]])
            new.kernel.assign(kernel.astype(new.kernel.dtype))
            new.bias.assign(bias.astype(new.bias.dtype))
        else:
            new.set_weights(old.get_weights())
    return folded


def count_batch_norm(model):
    """The number of `BatchNormalization` layers in `model`, nested ones
    included."""
    return sum(
        isinstance(layer, keras.layers.BatchNormalization)
        for layer in model._flatten_layers(include_self=True, recursive=True)
    )


def _foldable_pairs(model):
    """`{id(conv): id(batch_norm)}` for the foldable pairs of a functional
    model and of the functional models nested in it."""
    pairs = {}
    for layer in model._flatten_layers(include_self=True, recursive=True):
        if not isinstance(layer, keras.layers.BatchNormalization) or len(layer._inbound_nodes) != 1:
            continue
        node = layer._inbound_nodes[0]
        if len(node.input_tensors) != 1:
            continue
        history = getattr(node.input_tensors[0], "_keras_history", None)
        conv = history.operation if history is not None else None
        if (
            type(conv) is keras.layers.Conv2D
            and conv.data_format == "channels_last"
            and layer.axis in (-1, len(conv.output.shape) - 1)
            and conv.activation in (None, keras.activations.linear)
            and len(conv._inbound_nodes) == 1
            and len(conv._outbound_nodes) == 1
        ):
            pairs[id(conv)] = id(layer)
    return pairs


def _folded_weights(conv, batch_norm):
    """The kernel and bias (float64) of `conv` followed by `batch_norm` in
    inference."""
    scale, shift = inference_scale_and_shift(batch_norm, lambda v: np.asarray(v, np.float64))
    kernel = np.asarray(conv.kernel, np.float64) * scale
    if conv.use_bias:
        shift = shift + np.asarray(conv.bias, np.float64) * scale
    return kernel, shift
