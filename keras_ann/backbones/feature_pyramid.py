"""Feature maps of any backbone: a functional model with named (dict)
outputs, such as `ResNetBackbone`, or a KerasHub `FeaturePyramidBackbone`
(its `pyramid_outputs`), without importing KerasHub."""

import keras


def feature_model(backbone):
    """A functional model from images to a dict of the backbone's feature
    maps, in the backbone's order (shallow to deep).

    - A functional model whose outputs are a dict (`ResNetBackbone`:
      `"stage1"` ... `"stage4"`) is returned as it is.
    - A KerasHub `FeaturePyramidBackbone` (`ResNetBackbone`,
      `CSPNetBackbone`, `MiTBackbone`, `EfficientNetBackbone`, ...) gives a
      model over its `pyramid_outputs` (`"P1"` ... `"P5"`), sharing its
      layers, as KerasHub's own segmenters do.

    Args:
        backbone: the backbone.

    Returns:
        A `keras.Model` with a dict of outputs.

    Raises:
        ValueError: when the backbone yields no named feature maps.

    Example:

    >>> from keras_ann.backbones import ResNetBackbone
    >>> model = feature_model(ResNetBackbone(depth=18))
    >>> list(model.output)
    ['stage1', 'stage2', 'stage3', 'stage4']
    """
    pyramid = getattr(backbone, "pyramid_outputs", None)
    if isinstance(pyramid, dict) and pyramid:
        inputs = backbone.inputs[0] if len(backbone.inputs) == 1 else backbone.inputs
        return keras.Model(inputs, dict(pyramid), name=f"{backbone.name}_pyramid")
    outputs = getattr(backbone, "output", None) if isinstance(backbone, keras.Model) else None
    if isinstance(outputs, dict) and len(outputs) >= 1:
        return backbone
    raise ValueError(
        "`backbone` must yield named feature maps: a `keras_ann.backbones."
        "ResNetBackbone` (or its name), a KerasHub `FeaturePyramidBackbone` "
        "(with `pyramid_outputs`), or a functional `keras.Model` whose outputs "
        f"are a dict of feature maps; got a {type(backbone).__name__}."
    )


def select_features(features, feature_keys=None):
    """The names of the low- and high-level feature maps ANN uses.

    Args:
        features: the dict of feature tensors (or `KerasTensor`s), in order.
        feature_keys: `(low, high)` names, or `None` for the last two.

    Returns:
        `(low_key, high_key)`.

    Raises:
        ValueError: unknown names, or fewer than two feature maps.

    Example:

    >>> select_features({"P2": 0, "P3": 0, "P4": 0, "P5": 0})
    ('P4', 'P5')
    """
    names = list(features)
    if feature_keys is None:
        if len(names) < 2:
            raise ValueError(
                f"ANN needs two feature maps (low and high level); the backbone yields {names}."
            )
        return names[-2], names[-1]
    keys = tuple(feature_keys)
    if len(keys) != 2 or any(k not in features for k in keys):
        raise ValueError(
            f"`feature_keys` must name two of the backbone's feature maps {names} "
            f"as (low, high), got {feature_keys!r}."
        )
    return keys
