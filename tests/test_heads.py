"""ANNHead and FCNHead: serialisable layers that compute what
mmsegmentation 1.2.2's `ANNHead` and `FCNHead` compute."""

import keras
import numpy as np
import pytest

import keras_ann
from keras_ann.weights import convert


def _random_state(module, seed):
    """Every parameter and BN statistic of a torch module drawn at random
    (positive variances), as a state dict of NumPy arrays."""
    import torch

    rng = np.random.RandomState(seed)
    state = {}
    for key, value in module.state_dict().items():
        if key.endswith("num_batches_tracked"):
            state[key] = value.numpy()
            continue
        shape = tuple(value.shape)
        if key.endswith("running_var") or (key.endswith(".weight") and ".bn." in f".{key}"):
            array = rng.uniform(0.5, 1.5, shape)
        else:
            array = rng.normal(0, 0.3, shape)
        state[key] = array.astype("float32")
    module.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in state.items()})
    # Read back: parameters shared by two names (APNB's key and query
    # projection) hold the value loaded last under both.
    return {k: v.numpy().copy() for k, v in module.state_dict().items()}


def _torch_forward(module, inputs):
    import torch

    module.eval()
    with torch.no_grad():
        tensors = [torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))) for x in inputs]
        return module(tensors).numpy().transpose(0, 2, 3, 1)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(channels=8),  # ANN's auxiliary head (one 3x3 conv)
        dict(channels=8, num_convs=2, dilation_rate=2, concat_input=True),
        dict(channels=6, num_convs=0),
    ],
)
def test_fcn_head_matches_mmsegmentation(mmseg_ann, kwargs):
    in_channels = 6 if kwargs.get("num_convs", 1) == 0 else 12
    reference = mmseg_ann._import_mmseg().build(dict(
        type="FCNHead",
        in_channels=in_channels,
        channels=kwargs["channels"],
        num_convs=kwargs.get("num_convs", 1),
        concat_input=kwargs.get("concat_input", False),
        dilation=kwargs.get("dilation_rate", 1),
        dropout_ratio=0.1,
        num_classes=5,
        norm_cfg=dict(type="BN", requires_grad=True),
        align_corners=False,
    ))
    state = _random_state(reference, seed=1)
    features = np.random.default_rng(2).normal(size=(2, 11, 9, in_channels)).astype("float32")
    ours = keras_ann.FCNHead(5, **kwargs)
    ours(features)
    entries = convert.fcn_head_weight_map(ours, prefix="")
    assert convert.assign_weights(entries, state, source="FCNHead") == len(ours.weights)
    got = keras.ops.convert_to_numpy(ours(features, training=False))
    want = _torch_forward(reference, [features])
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def test_ann_head_matches_mmsegmentation(mmseg_ann):
    reference = mmseg_ann._import_mmseg().build(dict(
        type="ANNHead",
        in_channels=[12, 24],
        in_index=[0, 1],
        channels=16,
        project_channels=8,
        query_scales=(1,),
        key_pool_scales=(1, 3, 6, 8),
        dropout_ratio=0.1,
        num_classes=5,
        norm_cfg=dict(type="BN", requires_grad=True),
        align_corners=False,
    ))
    state = _random_state(reference, seed=3)
    rng = np.random.default_rng(4)
    low = rng.normal(size=(1, 13, 10, 12)).astype("float32")
    high = rng.normal(size=(1, 13, 10, 24)).astype("float32")
    ours = keras_ann.ANNHead(5, channels=16, project_channels=8)
    ours([low, high])
    entries = convert.ann_head_weight_map(ours, prefix="")
    # APNB's one shared key/query projection is two keys of the reference.
    assert convert.assign_weights(entries, state, source="ANNHead") == len(ours.weights)
    got = keras.ops.convert_to_numpy(ours([low, high], training=False))
    want = _torch_forward(reference, [low, high])
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


@pytest.mark.parametrize(
    "layer",
    [
        lambda: keras_ann.ANNHead(4, channels=8, project_channels=4, query_scales=(1, 2), dropout=0.2),
        lambda: keras_ann.FCNHead(4, channels=8, num_convs=2, kernel_size=1, concat_input=True),
    ],
)
def test_heads_round_trip_their_config(layer):
    head = layer()
    rng = np.random.default_rng(5)
    inputs = (
        [rng.normal(size=(1, 9, 8, 6)).astype("float32"), rng.normal(size=(1, 9, 8, 10)).astype("float32")]
        if isinstance(head, keras_ann.ANNHead)
        else rng.normal(size=(1, 9, 8, 6)).astype("float32")
    )
    out = head(inputs)
    assert tuple(out.shape) == (1, 9, 8, 4)
    clone = keras.layers.deserialize(keras.layers.serialize(head))
    assert type(clone) is type(head) and clone.get_config() == head.get_config()
    clone(inputs)
    clone.set_weights(head.get_weights())
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(clone(inputs)), keras.ops.convert_to_numpy(out))


def test_heads_refuse_bad_arguments():
    with pytest.raises(ValueError, match="num_classes"):
        keras_ann.ANNHead(0)
    with pytest.raises(ValueError, match="channels"):
        keras_ann.FCNHead(3, channels=-1)
    with pytest.raises(ValueError, match="kernel_size.*odd"):
        keras_ann.FCNHead(3, kernel_size=2)
    with pytest.raises(ValueError, match="concat_input"):
        keras_ann.FCNHead(3, num_convs=0, concat_input=True)
    with pytest.raises(ValueError, match="num_convs=0.*8"):
        keras_ann.FCNHead(3, channels=8, num_convs=0)(np.zeros((1, 4, 4, 5), "float32"))
