"""`.keras` files of keras-ann 0.1.0, whose heads were flat layers.

keras-ann 0.1.0 built the decode and auxiliary heads of `ANNSegmenter` as
separate layers of the model (`decode_fusion`, `decode_bottleneck`,
`decode_context`, `decode_conv_seg`, `aux_conv`, `aux_conv_seg`) and saved
`synchronized` in its configurations. Now the heads are the layers
`ANNHead` and `FCNHead`, so Keras cannot match the weights of such a file to
the model by itself. `keras.saving.load_model` refuses these files with a
message that says how to convert them; `ANNSegmenter.from_preset(path)`
converts them (weights moved to the heads, `synchronized` dropped).
"""

import io
import json
import os
import tempfile
import zipfile

LEGACY_LAYOUT_MESSAGE = (
    "{source} was saved by keras-ann 0.1.0, whose heads were flat layers "
    "(`decode_fusion`, ..., `aux_conv_seg`, and `synchronized` in the config); "
    "the heads are `ANNHead` and `FCNHead` layers now. Convert the file once with "
    "`model = keras_ann.ANNSegmenter.from_preset(path)` and save it with "
    "`model.save(new_path)`."
)

# Weight paths of the current layout -> those of 0.1.0 (the rest are equal).
_MOVED = (
    ("layers/ann_head/fusion/", "layers/afnb/"),
    ("layers/ann_head/bottleneck/", "layers/conv_bn_re_lu/"),
    ("layers/ann_head/context/", "layers/apnb/"),
    ("layers/ann_head/conv_seg/", "layers/conv2d/"),
    ("auxiliary_head/convs/conv_bn_re_lu/", "training_graph/layers/conv_bn_re_lu_1/"),
    ("auxiliary_head/conv_seg/", "training_graph/layers/conv2d/"),
)


class LegacyLayoutError(ValueError):
    """A model file or configuration of keras-ann 0.1.0's layout."""


def legacy_config(path):
    """The `ANNSegmenter` configuration of a 0.1.0 `.keras` file, or `None`
    when the file is of another kind or layout."""
    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))
    inner = config.get("config", {})
    if config.get("class_name") == "ANNSegmenter" and "synchronized" in inner:
        return inner
    return None


def _old_path(path):
    for new, old in _MOVED:
        if path.startswith(new):
            return old + path[len(new):]
    return path


def load_legacy(cls, path):
    """Load a 0.1.0 `.keras` file into the current layout.

    Every weight of the file is moved to its place in the heads; nothing is
    loaded unless every weight of the model is found with its shape and
    every weight of the file is used. The optimiser state and compile
    settings of the file are not carried over.

    Args:
        cls: `ANNSegmenter`.
        path: the `.keras` file.

    Returns:
        The model.

    Raises:
        LegacyLayoutError: the weights do not fit, listing them.
    """
    import h5py

    config = dict(legacy_config(path))
    config.pop("synchronized")
    model = cls.from_config(config)
    with zipfile.ZipFile(path) as archive:
        old = h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r")
    with tempfile.TemporaryDirectory() as tmp, old:
        converted = os.path.join(tmp, "converted.weights.h5")
        model.save_weights(converted)
        referenced, problems = set(), []
        with h5py.File(converted, "r+") as new:
            datasets = []
            new.visititems(lambda name, obj: datasets.append(name) if isinstance(obj, h5py.Dataset) else None)
            for name in datasets:
                source = _old_path(name)
                referenced.add(source)
                if source not in old or old[source].shape != new[name].shape:
                    found = old[source].shape if source in old else "missing"
                    problems.append(f"{source}: file {found}, model {new[name].shape}")
                    continue
                new[name][...] = old[source][...]
        unused = []
        old.visititems(
            lambda name, obj: unused.append(name)
            if isinstance(obj, h5py.Dataset) and name not in referenced and not name.startswith("optimizer/")
            else None
        )
        if problems or unused:
            raise LegacyLayoutError(
                f"The weights in {path} do not fit keras-ann 0.1.0's layout:\n  "
                + "\n  ".join(problems + [f"{name}: not used" for name in unused][:50])
            )
        model.load_weights(converted)
    return model
