"""An `ANNSegmenter` loaded from a `.keras` file, with overrides.

`ANNSegmenter.from_preset(path)` loads `.keras` files through
`keras_ann.models.loading`; arguments such as `num_classes=N` rebuild the
model here and keep every weight but those they change (the classifiers).
"""

# Weights of a new class count start from their initialisers.
CLASSIFIERS = ("decode_head/conv_seg/", "auxiliary_head/conv_seg/")


def _weights(model):
    graph = getattr(model, "training_graph", None)
    return (graph if graph is not None else model).weights


def apply_overrides(cls, model, path, **overrides):
    """`model` (loaded from `path`) rebuilt with `overrides`, every weight
    kept but those they change; `model` itself when there are none.

    `num_classes` gives new classifiers (every other weight kept);
    `auxiliary_head=False` drops the auxiliary head; settings without
    weights (`align_corners`, `dropout`, `ignore_index`, ...) apply as
    given. Overrides that change other weights' shapes are refused
    (`ValueError`)."""
    if not overrides:
        return model
    rebuilt = cls.from_config(dict(model.get_config(), **overrides))
    saved = {v.path: v for v in _weights(model)}
    new_classes = rebuilt.num_classes != model.num_classes
    problems = []
    for variable in _weights(rebuilt):
        old = saved.get(variable.path)
        if old is not None and tuple(old.shape) == tuple(variable.shape):
            variable.assign(old.value)
        elif not (new_classes and variable.path.startswith(CLASSIFIERS)):
            found = "missing" if old is None else tuple(old.shape)
            problems.append(f"{variable.path}: file {found}, model {tuple(variable.shape)}")
    new_paths = {v.path for v in _weights(rebuilt)}
    unused = [p for p in saved if p not in new_paths]
    if overrides.get("auxiliary_head") is False:
        unused = [p for p in unused if not p.startswith("auxiliary_head/")]
    if problems or unused:
        raise ValueError(
            f"The overrides {sorted(overrides)} change weights of {path} other than the "
            "classifiers, which cannot be kept:\n  "
            + "\n  ".join((problems + [f"{p}: not in the new model" for p in unused])[:50])
            + "\nOverride only `num_classes`, `auxiliary_head=False` or settings without weights."
        )
    return rebuilt
