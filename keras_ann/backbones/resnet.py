"""Dilated ResNet-V1c backbones, as mmsegmentation's `ResNetV1c`."""

import keras

from keras_ann.layers.conv_bn import batch_norm, torch_conv2d


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

        # === Functional Model ===
        inputs = keras.Input(shape=input_shape, dtype=input_dtype(dtype), name="images")
        x = inputs
        half = stem_channels // 2
        for i, (filters, stride) in enumerate(
            [(half, 2), (half, 1), (stem_channels, 1)], start=1
        ):
            x = builder.conv_bn(x, filters, 3, stride, 1, f"stem_conv{i}", f"stem_bn{i}")
            x = keras.layers.ReLU(dtype=dtype, name=f"stem_relu{i}")(x)
        # The input of the pool is non-negative (after ReLU), so zero padding
        # is equivalent to PyTorch's -inf padding.
        x = keras.layers.ZeroPadding2D(1, dtype=dtype, name="stem_pool_pad")(x)
        x = keras.layers.MaxPooling2D(3, 2, dtype=dtype, name="stem_pool")(x)

        outputs = {}
        in_channels = stem_channels
        for stage, num_blocks in enumerate(stage_blocks):
            planes = base_channels * 2**stage
            dilation = dilations[stage]
            first_dilation = (
                dilation // 2 if contract_dilation and dilation > 1 else dilation
            )
            for block in range(num_blocks):
                prefix = f"stage{stage + 1}_block{block + 1}"
                stride = strides[stage] if block == 0 else 1
                needs_shortcut = block == 0 and (
                    stride != 1 or in_channels != planes * expansion
                )
                block_fn = (
                    builder.bottleneck if block_type == "bottleneck" else builder.basic
                )
                x = block_fn(
                    x,
                    planes,
                    stride,
                    first_dilation if block == 0 else dilation,
                    needs_shortcut,
                    prefix,
                )
                in_channels = planes * expansion
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
            "input_shape": self.image_shape,
        }

    @classmethod
    def from_config(cls, config):
        # Files of keras-ann 0.1 store `synchronized`; it is a run-time
        # setting now (`keras_ann.layers.set_synchronized_batch_norm`).
        config = {k: v for k, v in config.items() if k != "synchronized"}
        return cls(**config)


class _LayerBuilder:
    """Creates the backbone's named layers with the reference's settings."""

    def __init__(self, dtype):
        self.dtype = dtype

    def conv_bn(self, x, filters, kernel_size, strides, dilation, conv_name, bn_name):
        pad, conv = torch_conv2d(filters, kernel_size, strides, dilation, self.dtype, conv_name)
        if pad is not None:
            x = pad(x)
        x = conv(x)
        return batch_norm(bn_name, dtype=self.dtype)(x)

    def _shortcut(self, x, filters, stride, needs_shortcut, prefix):
        if not needs_shortcut:
            return x
        return self.conv_bn(
            x, filters, 1, stride, 1, f"{prefix}_downsample_conv", f"{prefix}_downsample_bn"
        )

    def _merge(self, residual, shortcut, prefix):
        x = keras.layers.Add(dtype=self.dtype, name=f"{prefix}_add")([residual, shortcut])
        return keras.layers.ReLU(dtype=self.dtype, name=f"{prefix}_out")(x)

    def bottleneck(self, x, planes, stride, dilation, needs_shortcut, prefix):
        shortcut = self._shortcut(x, planes * 4, stride, needs_shortcut, prefix)
        y = self.conv_bn(x, planes, 1, 1, 1, f"{prefix}_conv1", f"{prefix}_bn1")
        y = keras.layers.ReLU(dtype=self.dtype, name=f"{prefix}_relu1")(y)
        y = self.conv_bn(y, planes, 3, stride, dilation, f"{prefix}_conv2", f"{prefix}_bn2")
        y = keras.layers.ReLU(dtype=self.dtype, name=f"{prefix}_relu2")(y)
        y = self.conv_bn(y, planes * 4, 1, 1, 1, f"{prefix}_conv3", f"{prefix}_bn3")
        return self._merge(y, shortcut, prefix)

    def basic(self, x, planes, stride, dilation, needs_shortcut, prefix):
        shortcut = self._shortcut(x, planes, stride, needs_shortcut, prefix)
        y = self.conv_bn(x, planes, 3, stride, dilation, f"{prefix}_conv1", f"{prefix}_bn1")
        y = keras.layers.ReLU(dtype=self.dtype, name=f"{prefix}_relu1")(y)
        # The reference's BasicBlock does not dilate its second convolution.
        y = self.conv_bn(y, planes, 3, 1, 1, f"{prefix}_conv2", f"{prefix}_bn2")
        return self._merge(y, shortcut, prefix)
