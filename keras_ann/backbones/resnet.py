"""Dilated ResNet-V1c backbones, as mmsegmentation's `ResNetV1c`."""

import functools

import keras

from keras_ann.layers.conv_bn import batch_norm, torch_conv2d
from keras_ann.layers.recomputation import recomputed


def input_dtype(dtype):
    """dtype of a model's `Input` under the dtype policy `dtype`: the
    policy's variable dtype (float32 for mixed precision, float64 for float64
    models, which `keras.Input`'s float32 default would truncate)."""
    return keras.dtype_policies.get(dtype).variable_dtype if dtype else None

# depth -> (block type, blocks per stage)
ARCHITECTURES = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}

# output stride -> (strides, dilations) of the four stages.
OUTPUT_STRIDES = {
    8: ((1, 2, 1, 1), (1, 1, 2, 4)),
    16: ((1, 2, 2, 1), (1, 1, 1, 2)),
    32: ((1, 2, 2, 2), (1, 1, 1, 1)),
}

# The parts of a backbone that `ResNetBackbone(remat=...)` can recompute.
SEGMENTS = ("stem", "stage1", "stage2", "stage3", "stage4")

# Names accepted by `ResNetBackbone.from_name` and `ANNSegmenter(backbone=)`.
BACKBONE_NAMES = {
    f"resnet{depth}_d{stride}": {"depth": depth, "output_stride": stride}
    for depth in (18, 50, 101)
    for stride in (8, 16)
}


@keras.saving.register_keras_serializable(package="keras_ann")
class ResNetBackbone(keras.Model):
    """Dilated ResNet-V1c, the backbone of the reference's ANN models.

    ResNet-V1c (mmsegmentation's `ResNetV1c`, also "ResNet-D stem") replaces
    the 7x7 stem by three 3x3 convolutions (32, 32, 64 channels, the first
    with stride 2) followed by a 3x3 max-pool with stride 2. Bottleneck
    blocks carry the stride on their 3x3 convolution (the "pytorch" style).
    Stages 3 and 4 trade stride for dilation to keep an output stride of 8
    (strides (1, 2, 1, 1), dilations (1, 1, 2, 4)) or 16 (strides
    (1, 2, 2, 1), dilations (1, 1, 1, 2)). With `contract_dilation` the first
    block of a dilated stage uses half the stage's dilation. A stage whose
    stride or width changes starts with a 1x1 convolution + BN shortcut.

    Padding equals PyTorch's (symmetric, `dilation * (k - 1) // 2`; Keras's
    `"same"` would pad stride-2 layers on one side only), batch
    normalisation uses epsilon 1e-5 and PyTorch's momentum 0.1, and
    initialisation follows the reference when no pretrained weights are
    loaded: He normal with fan-out for convolutions, gamma 1 and beta 0, and
    the last batch normalisation of every residual branch at gamma 0
    (`zero_init_residual`).

    The input is an already normalised image; `ANNSegmenter` normalises raw
    pixels itself. The output is a dict of the four stages' features,
    `"stage1"` (stride 4) to `"stage4"`.

    Args:
        depth: int, one of 18, 34, 50, 101, 152.
        output_stride: int, 8, 16 or 32. Defaults to 8.
        stem_channels: int, output channels of the stem. Defaults to 64.
        base_channels: int, width of the first stage. Defaults to 64.
        contract_dilation: bool. Defaults to `True`.
        zero_init_residual: bool. Defaults to `True`.
        remat: bool, or the parts to recompute (names from `SEGMENTS`:
            `"stem"`, `"stage1"` ... `"stage4"`, as a sequence or one
            comma-separated string). Recomputation in training: a training
            call keeps only the input of the stem and of each residual
            block of those parts for the backward pass, which computes
            their activations again (the reference's `with_cp=True`, and
            its stem too). `True` recomputes all of them. The same
            gradients and moving statistics up to round-off. `True` saves
            the most memory for the longest step; `"stem,stage1,stage2"`,
            the parts whose activations are large for the arithmetic they
            cost, saves much of that memory for a small part of the time
            (figures: BENCHMARKS.md, "Training memory: `--remat`").
            Inference is unchanged,
            and so are the weights and their names: a model trains and
            loads the same either way (`set_remat` turns it on for a
            loaded model).
            Defaults to `False`.
        input_shape: tuple, the image shape. Defaults to
            `(None, None, 3)`.
        **kwargs: base `keras.Model` arguments (`name`, `dtype`).

    Example:

    >>> import numpy as np
    >>> backbone = ResNetBackbone(depth=18, output_stride=8)
    >>> features = backbone(np.zeros((1, 65, 65, 3), "float32"))
    >>> [tuple(features[k].shape) for k in ("stage3", "stage4")]
    [(1, 9, 9, 256), (1, 9, 9, 512)]
    """

    def __init__(
        self,
        depth,
        output_stride=8,
        stem_channels=64,
        base_channels=64,
        contract_dilation=True,
        zero_init_residual=True,
        remat=False,
        input_shape=(None, None, 3),
        **kwargs,
    ):
        if depth not in ARCHITECTURES:
            raise ValueError(
                f"`depth` must be one of {sorted(ARCHITECTURES)}, got {depth!r}."
            )
        if output_stride not in OUTPUT_STRIDES:
            raise ValueError(
                f"`output_stride` must be one of {sorted(OUTPUT_STRIDES)}, "
                f"got {output_stride!r}."
            )
        block_type, stage_blocks = ARCHITECTURES[depth]
        strides, dilations = OUTPUT_STRIDES[output_stride]
        expansion = 4 if block_type == "bottleneck" else 1
        dtype = kwargs.get("dtype")
        builder = _LayerBuilder(dtype)

        # === Layers ===
        # Each segment (the stem, then every residual block) is a function
        # of `(x, training)` over its layers: the functional graph below is
        # built from them, and a training call with `remat=True` runs them
        # one by one, each recomputed in the backward pass.
        stem = builder.stem(stem_channels)
        stages = []
        in_channels = stem_channels
        for stage, num_blocks in enumerate(stage_blocks):
            planes = base_channels * 2**stage
            dilation = dilations[stage]
            first_dilation = (
                dilation // 2 if contract_dilation and dilation > 1 else dilation
            )
            blocks = []
            for block in range(num_blocks):
                stride = strides[stage] if block == 0 else 1
                needs_shortcut = block == 0 and (
                    stride != 1 or in_channels != planes * expansion
                )
                block_fn = (
                    builder.bottleneck if block_type == "bottleneck" else builder.basic
                )
                blocks.append(
                    block_fn(
                        planes,
                        stride,
                        first_dilation if block == 0 else dilation,
                        needs_shortcut,
                        f"stage{stage + 1}_block{block + 1}",
                    )
                )
                in_channels = planes * expansion
            stages.append(blocks)

        # === Functional Model ===
        inputs = keras.Input(shape=input_shape, dtype=input_dtype(dtype), name="images")
        x = stem(inputs)
        outputs = {}
        for stage, blocks in enumerate(stages):
            for block in blocks:
                x = block(x)
            outputs[f"stage{stage + 1}"] = x

        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        if dtype is not None:
            # A functional model ignores `dtype` and takes the global policy;
            # its config must name the one its layers were built with.
            self.dtype_policy = dtype

        # === Config ===
        self.depth = depth
        self.output_stride = output_stride
        self.stem_channels = stem_channels
        self.base_channels = base_channels
        self.contract_dilation = contract_dilation
        self.zero_init_residual = zero_init_residual
        self.remat = remat
        self._segments = (stem, tuple(tuple(blocks) for blocks in stages))
        self.image_shape = tuple(input_shape)
        self.block_type = block_type
        self.stage_channels = tuple(
            base_channels * 2**i * expansion for i in range(len(stage_blocks))
        )
        if zero_init_residual:
            last_bn = "bn3" if block_type == "bottleneck" else "bn2"
            for layer in self.layers:
                if layer.name.startswith("stage") and layer.name.endswith(
                    f"_{last_bn}"
                ):
                    layer.gamma.assign(keras.ops.zeros(layer.gamma.shape))

    @property
    def remat(self):
        """What a training call recomputes: `True` (all of `SEGMENTS`),
        `False` (nothing) or a tuple of their names."""
        return remat_setting(self._remat_segments)

    @remat.setter
    def remat(self, remat):
        self._remat_segments = remat_segments(remat)

    def call(self, inputs, training=None, mask=None):
        if not (self._remat_segments and training):
            return super().call(inputs, training=training, mask=mask)
        # Training with recomputation: each segment (the stem, each
        # residual block) of the chosen parts keeps only its input for the
        # backward pass, which computes its activations again.

        def run(part, segment):
            segment = functools.partial(segment, training=True)
            return recomputed(segment) if part in self._remat_segments else segment

        stem, stages = self._segments
        x = run("stem", stem)(inputs)
        outputs = {}
        for stage, blocks in enumerate(stages):
            part = f"stage{stage + 1}"
            for block in blocks:
                x = run(part, block)(x)
            outputs[part] = x
        return outputs

    @classmethod
    def from_name(cls, name, **kwargs):
        """Build a backbone by name, e.g. `"resnet50_d8"` or `"resnet101_d16"`.

        Args:
            name: str, a key of `BACKBONE_NAMES`.
            **kwargs: further constructor arguments.
        """
        if name not in BACKBONE_NAMES:
            raise ValueError(
                f"Unknown backbone {name!r}; expected one of "
                f"{sorted(BACKBONE_NAMES)} or a `ResNetBackbone` instance."
            )
        return cls(**BACKBONE_NAMES[name], **kwargs)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.saving.serialize_keras_object(self.dtype_policy),
            "depth": self.depth,
            "output_stride": self.output_stride,
            "stem_channels": self.stem_channels,
            "base_channels": self.base_channels,
            "contract_dilation": self.contract_dilation,
            "zero_init_residual": self.zero_init_residual,
            "remat": self.remat,
            "input_shape": self.image_shape,
        }

    @classmethod
    def from_config(cls, config):
        # Files of keras-ann 0.1 store `synchronized`; it is a run-time
        # setting now (`keras_ann.layers.set_synchronized_batch_norm`).
        config = {k: v for k, v in config.items() if k != "synchronized"}
        return cls(**config)


def remat_segments(remat):
    """The parts of a `ResNetBackbone` that `remat` recomputes, in order.

    Args:
        remat: bool, or names from `SEGMENTS` as a sequence or one
            comma-separated string (`"stem,stage1"`).

    Returns:
        A tuple of names from `SEGMENTS`: all of them for `True`, none for
        `False`, `None` or an empty sequence.

    Raises:
        ValueError: a name that is not one of `SEGMENTS`, or a string
            that names none.

    Example:

    >>> remat_segments("stage1, stem")
    ('stem', 'stage1')
    >>> remat_segments(True) == SEGMENTS
    True
    """
    if remat is None or isinstance(remat, bool):
        return SEGMENTS if remat else ()
    names = remat.split(",") if isinstance(remat, str) else list(remat)
    names = [name.strip() if isinstance(name, str) else name for name in names]
    names = [name for name in names if name != ""]
    unknown = [name for name in names if name not in SEGMENTS]
    if unknown or (isinstance(remat, str) and not names):
        raise ValueError(
            f"`remat` takes True, False or the backbone's parts to recompute, from "
            f"{', '.join(SEGMENTS)} (e.g. \"stem,stage1\"); got {remat!r}"
            + (f", where {', '.join(map(repr, unknown))} is not one of them." if unknown else ".")
        )
    return tuple(name for name in SEGMENTS if name in names)


def remat_setting(remat):
    """`remat` in the form `ResNetBackbone.remat` gives it: `True` for all
    of `SEGMENTS`, `False` for none, else a tuple of names in order.

    Args:
        remat: as `remat_segments` takes it.

    Raises:
        ValueError: as `remat_segments`.

    Example:

    >>> remat_setting(["stage1", "stem"]), remat_setting(SEGMENTS), remat_setting(None)
    (('stem', 'stage1'), True, False)
    """
    segments = remat_segments(remat)
    if segments == SEGMENTS:
        return True
    return segments or False


def set_remat(backbone, remat):
    """Turn recomputation in training (`ResNetBackbone(remat=...)`) on or
    off for a model's backbone, e.g. one loaded from a file.

    Args:
        backbone: the backbone (`model.backbone`).
        remat: bool, or the parts to recompute (see `remat_segments`).

    Raises:
        ValueError: `remat` names a part that does not exist, or asks for
            recomputation in a backbone other than a `ResNetBackbone`
            (only it has recomputation).

    Example:

    >>> backbone = ResNetBackbone(depth=18)
    >>> set_remat(backbone, True)
    >>> backbone.remat
    True
    >>> set_remat(backbone, "stem,stage1")
    >>> backbone.remat
    ('stem', 'stage1')
    """
    if isinstance(backbone, ResNetBackbone):
        backbone.remat = remat
    elif remat_segments(remat):
        raise ValueError(
            f"`remat={remat!r}` needs a keras-ann `ResNetBackbone`; this model's backbone is a "
            f"{type(backbone).__name__} ({backbone.name}). Train without `remat` (`--remat`)."
        )


class _LayerBuilder:
    """Creates the backbone's named layers with the reference's settings;
    each method returns a function of `(x, training=None)` over the layers
    it created."""

    def __init__(self, dtype):
        self.dtype = dtype

    def conv_bn(self, filters, kernel_size, strides, dilation, conv_name, bn_name):
        pad, conv = torch_conv2d(filters, kernel_size, strides, dilation, self.dtype, conv_name)
        bn = batch_norm(bn_name, dtype=self.dtype)

        def apply(x, training=None):
            if pad is not None:
                x = pad(x)
            return bn(conv(x), training=training)

        return apply

    def relu(self, name):
        return keras.layers.ReLU(dtype=self.dtype, name=name)

    def stem(self, channels):
        half = channels // 2
        units = [
            (self.conv_bn(filters, 3, stride, 1, f"stem_conv{i}", f"stem_bn{i}"), self.relu(f"stem_relu{i}"))
            for i, (filters, stride) in enumerate([(half, 2), (half, 1), (channels, 1)], start=1)
        ]
        # The input of the pool is non-negative (after ReLU), so zero padding
        # is equivalent to PyTorch's -inf padding.
        pad = keras.layers.ZeroPadding2D(1, dtype=self.dtype, name="stem_pool_pad")
        pool = keras.layers.MaxPooling2D(3, 2, dtype=self.dtype, name="stem_pool")

        def apply(x, training=None):
            for conv_bn, relu in units:
                x = relu(conv_bn(x, training))
            return pool(pad(x))

        return apply

    def _shortcut(self, filters, stride, needs_shortcut, prefix):
        if not needs_shortcut:
            return lambda x, training=None: x
        return self.conv_bn(
            filters, 1, stride, 1, f"{prefix}_downsample_conv", f"{prefix}_downsample_bn"
        )

    def _merge(self, prefix):
        add = keras.layers.Add(dtype=self.dtype, name=f"{prefix}_add")
        relu = self.relu(f"{prefix}_out")
        return lambda residual, shortcut: relu(add([residual, shortcut]))

    def bottleneck(self, planes, stride, dilation, needs_shortcut, prefix):
        shortcut = self._shortcut(planes * 4, stride, needs_shortcut, prefix)
        conv1 = self.conv_bn(planes, 1, 1, 1, f"{prefix}_conv1", f"{prefix}_bn1")
        relu1 = self.relu(f"{prefix}_relu1")
        conv2 = self.conv_bn(planes, 3, stride, dilation, f"{prefix}_conv2", f"{prefix}_bn2")
        relu2 = self.relu(f"{prefix}_relu2")
        conv3 = self.conv_bn(planes * 4, 1, 1, 1, f"{prefix}_conv3", f"{prefix}_bn3")
        merge = self._merge(prefix)

        def apply(x, training=None):
            identity = shortcut(x, training)
            y = relu1(conv1(x, training))
            y = relu2(conv2(y, training))
            return merge(conv3(y, training), identity)

        return apply

    def basic(self, planes, stride, dilation, needs_shortcut, prefix):
        shortcut = self._shortcut(planes, stride, needs_shortcut, prefix)
        conv1 = self.conv_bn(planes, 3, stride, dilation, f"{prefix}_conv1", f"{prefix}_bn1")
        relu1 = self.relu(f"{prefix}_relu1")
        # The reference's BasicBlock does not dilate its second convolution.
        conv2 = self.conv_bn(planes, 3, 1, 1, f"{prefix}_conv2", f"{prefix}_bn2")
        merge = self._merge(prefix)

        def apply(x, training=None):
            identity = shortcut(x, training)
            y = relu1(conv1(x, training))
            return merge(conv2(y, training), identity)

        return apply
