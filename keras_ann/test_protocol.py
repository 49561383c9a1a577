"""How a model is tested, and how its data's labels are read: one value.

A `TestProtocol` is the reference's `test_cfg` and test pipeline (mode,
sliding window, test `Resize` scale, multi-scale + flip) together with the
*data contract* of the model: the data config it was trained on, its class
names and palette, and the label encoding its training read (label map,
`reduce_zero_label`, ignore index, RGB label palette). A model keeps it
(`ANNSegmenter(test_protocol=...)`, saved in the `.keras` file), so that
`keras-ann evaluate` and `predict`, `evaluate_dataset` and the evaluation
callback test the model as it was trained and read its labels the same
way, with no flag repeated. It is written once here; `Recipe.test_protocol`
makes one from a recipe, and the command line replaces the fields its flags
name.

The names are the fields' everywhere: the recipe's flat keys are
`test_` + the field (`test_mode`, `test_crop`, `test_stride`,
`test_scale`), the command line's flags `--mode`, `--crop`, `--stride`,
`--test-scale`, `--label-map`, ...

Example:

>>> protocol = TestProtocol(mode="slide", crop=(769, 769), stride=(513, 513), scale=(2049, 1025))
>>> protocol.window
((769, 769), (513, 513))
>>> TestProtocol.from_config(protocol.to_config()) == protocol
True
>>> protocol.replace(mode="whole").crop is None  # a window belongs to its mode
True
"""

import dataclasses

from keras_ann.checks import check_pair

__all__ = ["TestProtocol"]

_MODES = ("whole", "slide")


def duplicate_names_message(names):
    """The error for class names that repeat (`a,a,b`: the scores are
    keyed by name, so a repeated name left fewer IoU keys than classes)."""
    seen, repeated = set(), []
    for name in names:
        if name in seen and name not in repeated:
            repeated.append(name)
        seen.add(name)
    return (
        f"`class_names` must be distinct (the scores are keyed by name), got {', '.join(map(repr, repeated))} "
        f"more than once in {list(names)}."
    )


def label_map_pairs(value, name="label_map"):
    """`((raw, new), ...)` of a label map given as pairs or a dict; a
    `ValueError` naming `name` for anything else or a raw value given
    twice."""
    pairs = value.items() if isinstance(value, dict) else value
    try:
        result = tuple((int(old), int(new)) for old, new in pairs)
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be [raw, new] pairs, e.g. [[255, 1]], got {value!r}.") from None
    raws = [old for old, _ in result]
    if len(set(raws)) != len(raws):
        raise ValueError(f"`{name}` maps a raw value twice: {value!r}; give each raw value once.")
    return result


def rgb_colours(value, name="palette"):
    """`((r, g, b), ...)` of colours given as triples in 0..255; a
    `ValueError` naming `name` otherwise."""
    try:
        colours = tuple(tuple(int(c) for c in colour) for colour in value)
    except (TypeError, ValueError):
        colours = ((-1,),)
    if any(len(c) != 3 or not all(0 <= v <= 255 for v in c) for c in colours):
        raise ValueError(f"`{name}` must be RGB triples in 0..255, got {value!r}.")
    return colours


@dataclasses.dataclass(frozen=True)
class TestProtocol:
    """The test protocol and data contract of a model.

    Args:
        mode: `"whole"` (one forward pass per image) or `"slide"` (the
            reference's sliding window, with `crop` and `stride`).
        crop: `(h, w)` window of `"slide"`; `None` for `"whole"`.
        stride: `(h, w)` window stride of `"slide"`; `None` for `"whole"`.
        scale: `(long, short)` of the test `Resize(keep_ratio=True)`, or
            `None` to test at the image's own size.
        ratios: the scales of multi-scale testing (mmseg's `img_ratios`,
            applied to the original image), or `None` for single scale.
        flip: also predict the horizontally flipped image and average
            (mmseg's TTA flip).
        data: the data config the model was trained on (e.g.
            `"cityscapes_769x769"`, `"folder"`), or `None` if unknown.
        class_names: the names of the model's classes, or `None`.
        palette: an RGB colour per class, or `None`.
        label_map: `((raw, new), ...)` applied to label values when read.
        reduce_zero_label: label 0 is ignored and `k` becomes `k - 1`
            (`None`: the data config's).
        ignore_index: the label value left out of scoring (`None`: the
            data config's).
        label_palette: for RGB colour label files, the colour of each
            class, or `None`.

    Example:

    >>> protocol = TestProtocol(data="folder", class_names=("bg", "cell"), label_map=((255, 1),))
    >>> protocol.data_contract()
    {'class_names': ('bg', 'cell'), 'label_map': ((255, 1),)}
    """

    __test__ = False  # not a pytest test class

    mode: str = "whole"
    crop: tuple = None
    stride: tuple = None
    scale: tuple = None
    ratios: tuple = None
    flip: bool = False
    data: str = None
    class_names: tuple = None
    palette: tuple = None
    label_map: tuple = None
    reduce_zero_label: bool = None
    ignore_index: int = None
    label_palette: tuple = None

    def __post_init__(self):
        set_ = lambda key, value: object.__setattr__(self, key, value)  # noqa: E731
        if self.mode not in _MODES:
            raise ValueError(f"`mode` must be one of {_MODES}, got {self.mode!r}.")
        if self.mode == "slide":
            if self.crop is None or self.stride is None:
                raise ValueError(
                    f"`mode='slide'` needs `crop` and `stride` (the window and its step), got crop={self.crop!r}, "
                    f"stride={self.stride!r}."
                )
        elif self.crop is not None or self.stride is not None:
            raise ValueError(
                f"`crop` and `stride` belong to `mode='slide'`; got mode={self.mode!r} with crop={self.crop!r}, "
                f"stride={self.stride!r}."
            )
        for key in ("crop", "stride", "scale"):
            if getattr(self, key) is not None:
                set_(key, check_pair(getattr(self, key), key))
        if self.ratios is not None:
            try:
                ratios = tuple(float(r) for r in self.ratios)
            except (TypeError, ValueError):
                ratios = ()
            if not ratios or not all(0 < r < 100 for r in ratios):
                raise ValueError(f"`ratios` must be positive scale factors, e.g. [0.5, 1.0, 1.5], got {self.ratios!r}.")
            set_("ratios", ratios)
        set_("flip", bool(self.flip))
        if self.class_names is not None:
            set_("class_names", tuple(str(name) for name in self.class_names))
            if len(set(self.class_names)) != len(self.class_names):
                raise ValueError(duplicate_names_message(self.class_names))
        for key in ("palette", "label_palette"):
            if getattr(self, key) is not None:
                set_(key, rgb_colours(getattr(self, key), key))
        if self.palette is not None and self.class_names is not None and len(self.palette) != len(self.class_names):
            raise ValueError(
                f"`palette` has {len(self.palette)} colours for {len(self.class_names)} class names; give one each."
            )
        if self.label_map is not None:
            set_("label_map", label_map_pairs(self.label_map))
        if self.reduce_zero_label is not None:
            set_("reduce_zero_label", bool(self.reduce_zero_label))
        if self.ignore_index is not None:
            set_("ignore_index", int(self.ignore_index))

    @property
    def window(self):
        """`(crop, stride)` of the sliding window, or `None` for `"whole"`."""
        return (self.crop, self.stride) if self.mode == "slide" else None

    @property
    def multiscale(self):
        """Whether testing averages several passes (scales or flips)."""
        return self.ratios is not None or self.flip

    def replace(self, **changes):
        """A copy with the given fields changed (`None` values are ignored,
        as flags not given). A new `mode` other than `"slide"` drops the
        window, and `"slide"` without a window keeps this one's.

        Raises:
            TypeError: for a name that is not a field, naming the fields.
        """
        changes = {key: value for key, value in changes.items() if value is not None}
        unknown = sorted(set(changes) - set(FIELDS))
        if unknown:
            raise TypeError(f"TestProtocol has no field(s) {unknown}; the fields are {', '.join(FIELDS)}.")
        if changes.get("mode", self.mode) != "slide":
            changes.update(crop=None, stride=None)
        return dataclasses.replace(self, **changes)

    def with_overrides(self, num_classes, model="the model", *, ms_flip=False, **changes):
        """This protocol with the fields a user names replaced (the command
        line's test and data flags), for a model of `num_classes` classes.

        Args:
            num_classes: the model's number of classes.
            model: how an error names the model (a file or preset name).
            ms_flip: test at the reference's multi-scale ratios
                (`keras_ann.inference.TTA_RATIOS`) with flips.
            **changes: the fields to replace (`None`: kept), e.g. `mode`,
                `crop`, `stride`, `scale`, `data`, `class_names`, `palette`,
                `label_map`, `reduce_zero_label`, `ignore_index`,
                `label_palette`.

        Raises:
            ValueError: a bad field, or class names for another number of
                classes than the model's.

        Example:

        >>> protocol = TestProtocol(mode="slide", crop=(64, 64), stride=(32, 32))
        >>> protocol.with_overrides(3, mode="whole", class_names=["a", "b", "c"]).window is None
        True
        """
        if ms_flip:
            from keras_ann.inference import TTA_RATIOS

            changes.update(ratios=TTA_RATIOS, flip=True)
        protocol = self.replace(**changes)
        if protocol.class_names is not None and len(protocol.class_names) != num_classes:
            raise ValueError(f"--classes names {len(protocol.class_names)} classes but {model} predicts {num_classes}")
        return protocol

    def for_classes(self, num_classes):
        """This protocol without class names and palette when they do not
        name `num_classes` classes (a model whose classifiers were
        replaced)."""
        if self.class_names is not None and len(self.class_names) != num_classes:
            return dataclasses.replace(self, class_names=None, palette=None)
        return self

    def data_contract(self):
        """The fields of the data contract that are set (classes, palette,
        label encoding), named as the recipe keys they are
        (`keras_ann.recipes.dataset_options` turns them into loader
        options)."""
        keys = ("class_names", "palette", "label_map", "reduce_zero_label", "ignore_index", "label_palette")
        return {key: getattr(self, key) for key in keys if getattr(self, key) is not None}

    def to_config(self):
        """A JSON-ready dict of every field (tuples as lists)."""

        def plain(value):
            return [plain(v) for v in value] if isinstance(value, tuple) else value

        return {key: plain(getattr(self, key)) for key in FIELDS}

    @classmethod
    def from_config(cls, config):
        """The protocol of a `to_config` dict; unknown keys are refused."""
        unknown = sorted(set(config) - set(FIELDS))
        if unknown:
            raise ValueError(f"Unknown test protocol key(s) {unknown}; the keys are {', '.join(FIELDS)}.")
        return cls(**config)

    @classmethod
    def of(cls, value):
        """A `TestProtocol` from a protocol, a `to_config` dict or `None`
        (the default protocol)."""
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, dict):
            return cls.from_config(value)
        raise TypeError(f"A test protocol must be a TestProtocol or its config dict, got {type(value).__name__}.")


FIELDS = tuple(field.name for field in dataclasses.fields(TestProtocol))
