"""ANNSegmenter: a backbone with the ANN decode head."""

import contextlib
import warnings

import keras
import numpy as np
from keras import ops

from keras_ann.backbones.feature_pyramid import feature_model, select_features
from keras_ann.backbones.resnet import ResNetBackbone, input_dtype
from keras_ann.checks import check_images, check_labels
from keras_ann.layers.conv_bn import unsynchronized
from keras_ann.layers.heads import ANNHead, FCNHead
from keras_ann.layers.normalize import IMAGENET_MEAN, IMAGENET_STD, ImageNormalization
from keras_ann.layers.resize import ResizeLike
from keras_ann.losses import SegmentationCrossEntropy
from keras_ann.metrics import PixelAccuracy, SegmentationIoU
from keras_ann.test_protocol import TestProtocol


# The base `keras.Model` arguments `ANNSegmenter` passes on.
BASE_ARGUMENTS = ("name", "dtype", "trainable")


def argument_names(cls=None):
    """The keyword arguments `ANNSegmenter(...)` (or a subclass `cls`) and
    its `from_preset` overrides take."""
    import inspect

    parameters = inspect.signature((cls or ANNSegmenter).__init__).parameters
    names = [n for n, p in parameters.items() if n != "self" and p.kind is not p.VAR_KEYWORD]
    return tuple(names) + BASE_ARGUMENTS


def check_arguments(given, where, cls=None):
    """Refuses keyword arguments that `ANNSegmenter` does not take:
    `TypeError` naming each one and its close match, if any (a misspelt
    `num_clases=5` was silently passed on to `keras.Model` and ignored)."""
    import difflib

    allowed = argument_names(cls)
    unknown = [name for name in given if name not in allowed]
    if not unknown:
        return
    parts = []
    for name in unknown:
        close = difflib.get_close_matches(name, allowed, n=1)
        parts.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    raise TypeError(
        f"{where} got unknown keyword argument(s) {', '.join(parts)}; it takes {', '.join(allowed)}."
    )


@keras.saving.register_keras_serializable(package="keras_ann")
class ANNSegmenter(keras.Model):
    """Asymmetric Non-local Network for semantic segmentation.

    The reference's `EncoderDecoder` with `ANNHead` (mmsegmentation
    `configs/ann/`), as a functional Keras model:

    ```
    images (RGB, 0..255) -> normalise (ImageNet mean / std)
      -> backbone -> low- and high-level features (ResNet: stages 3 and 4)
      -> ANNHead([low, high]) -> bilinear resize to the input size -> logits
    ```

    The auxiliary `FCNHead` on the low-level features is trained only:
    `fit()` adds `auxiliary_loss_weight` times its loss to the loss. The
    model's output is the logits tensor (`predict()`, `evaluate()`,
    `model(x)` and `model(x, training=True)`), and the auxiliary head is not
    computed then; `model(x, training=True, return_auxiliary=True)` returns
    `{"logits": ..., "aux_logits": ...}` (as `fit()` does internally).

    The backbone is anything that yields named feature maps: a name or a
    `ResNetBackbone` (dilated ResNet-V1c, the reference's), a KerasHub
    `FeaturePyramidBackbone` (ResNet, CSPNet, MiT, EfficientNet, ...; the
    last two of its `pyramid_outputs` by default) or a functional model with
    a dict of outputs. Head widths follow the backbone: the head's 3x3 conv
    and APNB a quarter of the high-level channels, the attention an eighth,
    the auxiliary head a quarter of the low-level channels (the reference's
    512, 256 and 256 on ResNet-50/101; 128, 64, 64 on ResNet-18).

    Args:
        backbone: a name from `keras_ann.backbones.BACKBONE_NAMES`
            (`"resnet18_d8"`, `"resnet50_d8"`, `"resnet101_d8"`, ...), a
            `ResNetBackbone`, a KerasHub `FeaturePyramidBackbone` or a
            functional model with dict outputs. Defaults to `"resnet50_d8"`.
        num_classes: int, number of classes. Defaults to 19.
        feature_keys: `(low, high)` names of the backbone's feature maps
            the head uses. Defaults to the last two (`("stage3", "stage4")`
            for `ResNetBackbone`, `("P4", "P5")` for most KerasHub
            backbones).
        align_corners: bool, `align_corners` of the final bilinear resize
            (the reference's 769x769 recipes use `True`). Defaults to `False`.
        head_channels: int, width of the head's 3x3 conv and APNB.
        project_channels: int, channels of the attention (`key_channels`).
        query_scales: tuple of ints, query scales of AFNB and APNB.
            Defaults to `(1,)`.
        key_pool_scales: tuple of ints, the key pyramid. Defaults to
            `(1, 3, 6, 8)`.
        dropout: float, channel dropout of both heads. Defaults to 0.1.
        auxiliary_head: bool, build the auxiliary FCN head. Defaults to
            `True`.
        auxiliary_channels: int, width of the auxiliary head.
        auxiliary_loss_weight: float. Defaults to 0.4.
        ignore_index: int, the label value excluded from loss and metrics of
            the default `compile()`. Defaults to 255.
        mean: per-channel RGB mean subtracted inside the model.
        std: per-channel RGB standard deviation divided inside the model.
        test_protocol: how to test the model and read its data's labels
            (a `keras_ann.test_protocol.TestProtocol` or its config dict:
            mode, window, test scale, classes, palette, label encoding),
            kept with the saved model; presets and `train()` set it, and
            `predict_labels`, `evaluate_dataset`, the evaluation callback
            and `keras-ann evaluate` / `predict` use it. Defaults to
            whole-image inference at the image's size.
        **kwargs: base `keras.Model` arguments (`name`, `dtype`,
            `trainable`); any other name is refused (`TypeError` naming
            the close match), so that a misspelt argument is not ignored.

    Example:

    >>> import numpy as np
    >>> model = ANNSegmenter(backbone="resnet18_d8", num_classes=5)
    >>> images = np.random.uniform(0, 255, (1, 67, 93, 3)).astype("float32")
    >>> model.predict(images, verbose=0).shape
    (1, 67, 93, 5)
    >>> model.decode_head.channels, model.auxiliary_head.channels
    (128, 64)
    """

    def __init__(
        self,
        backbone="resnet50_d8",
        num_classes=19,
        feature_keys=None,
        align_corners=False,
        head_channels=None,
        project_channels=None,
        query_scales=(1,),
        key_pool_scales=(1, 3, 6, 8),
        dropout=0.1,
        auxiliary_head=True,
        auxiliary_channels=None,
        auxiliary_loss_weight=0.4,
        ignore_index=255,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        test_protocol=None,
        **kwargs,
    ):
        check_arguments(kwargs, "ANNSegmenter")
        dtype = kwargs.get("dtype")
        if isinstance(backbone, str):
            backbone = ResNetBackbone.from_name(backbone, dtype=dtype)
        features_of = feature_model(backbone)
        logits_dtype = input_dtype(dtype) or "float32"  # float32 logits under mixed precision

        # === Functional Model (its layers created with the widths they need) ===
        # The backbone's image shape: (None, None, 3) but for backbones of a
        # fixed size (KerasHub's MiT).
        images = keras.Input(shape=tuple(features_of.inputs[0].shape[1:]), dtype=input_dtype(dtype), name="images")
        features = features_of(ImageNormalization(mean, std, dtype=dtype, name="normalize")(images))
        feature_keys = select_features(features, feature_keys)
        low, high = (features[key] for key in feature_keys)
        decode_head = ANNHead(
            num_classes, head_channels or _fraction(high, 4), project_channels or _fraction(high, 8),
            query_scales, key_pool_scales, dropout, dtype=dtype, name="decode_head",
        )  # fmt: skip
        logits = ResizeLike(align_corners, dtype=logits_dtype, name="logits")([decode_head([low, high]), images])
        aux_head = aux_logits = None
        if auxiliary_head:
            channels = auxiliary_channels or _fraction(low, 4)
            aux_head = FCNHead(num_classes, channels, dropout=dropout, dtype=dtype, name="auxiliary_head")
            aux_logits = ResizeLike(align_corners, dtype=logits_dtype, name="aux_logits")([aux_head(low), images])
        super().__init__(inputs=images, outputs=logits, **kwargs)
        if dtype is not None:
            # A functional model ignores `dtype` and takes the global policy;
            # its config must name the one its layers were built with.
            self.dtype_policy = dtype
        # The training graph shares every layer with the inference graph and
        # adds the auxiliary head's output.
        self.training_graph = None
        if aux_head is not None:
            self.training_graph = keras.Model(images, {"logits": logits, "aux_logits": aux_logits}, name="training_graph")

        # === Config ===
        self.backbone = backbone
        self.decode_head = decode_head
        self.auxiliary_head = aux_head
        self.feature_keys = feature_keys
        self.align_corners = bool(align_corners)
        self.auxiliary_loss_weight = float(auxiliary_loss_weight)
        self.ignore_index = int(ignore_index)
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        # Class names of another class count (new classifiers) are dropped.
        self.test_protocol = TestProtocol.of(test_protocol).for_classes(num_classes)
        self._init_run_state()

    def _init_run_state(self):
        """What `fit()`, `evaluate()` and `__call__` keep between calls (not
        configuration): when the auxiliary output is returned, the one-time
        [0, 1]-images warning, and the two loss terms logged apart
        (`decode_loss`, `aux_loss`)."""
        self._auxiliary_in_training = False
        self._auxiliary_in_evaluation = False
        self._scale_warned = False
        self.decode_loss_tracker = keras.metrics.Mean(name="decode_loss")
        self.aux_loss_tracker = keras.metrics.Mean(name="aux_loss") if self.auxiliary_head is not None else None

    # Widths and settings that live in the heads (each fact in one place).
    num_classes = property(lambda self: self.decode_head.num_classes)
    head_channels = property(lambda self: self.decode_head.channels)
    project_channels = property(lambda self: self.decode_head.project_channels)
    query_scales = property(lambda self: self.decode_head.query_scales)
    key_pool_scales = property(lambda self: self.decode_head.key_pool_scales)
    dropout = property(lambda self: self.decode_head.dropout_rate)
    auxiliary_channels = property(
        lambda self: None if self.auxiliary_head is None else self.auxiliary_head.channels
    )

    def __call__(self, *args, **kwargs):
        # Before Keras converts the input (a boolean or complex array would
        # silently become float32, a wrong rank fail deep in the graph).
        images = args[0] if args else kwargs.get("inputs")
        if images is not None and not isinstance(images, (dict, list, tuple)):
            check_images(images, "images")
            self._warn_if_unit_scale(images)
        return super().__call__(*args, **kwargs)

    def _warn_if_unit_scale(self, images):
        """Warns once when float NumPy images all lie in (0, 1]: the model
        expects 0..255 pixels (it subtracts the ImageNet mean in that range).
        Only NumPy arrays are looked at (no copy from a device); a dataset's
        images are not read (see `_check_data`)."""
        if self._scale_warned or not isinstance(images, np.ndarray):
            return
        if not np.issubdtype(images.dtype, np.floating):
            return
        if images.size and 0.0 < float(np.max(images)) <= 1.0:  # all-black images say nothing
            self._scale_warned = True
            warnings.warn(
                "ANNSegmenter got float images whose values all lie in [0, 1]; it expects RGB "
                "pixel values in 0..255 (it normalises with the ImageNet mean and std of that "
                "range). Multiply the images by 255 (e.g. `keras.layers.Rescaling(255.0)`).",
                stacklevel=3,
            )

    def call(self, inputs, training=None, mask=None, return_auxiliary=None):
        """The logits; with `return_auxiliary=True` the dict
        `{"logits", "aux_logits"}` (the default inside `fit()` and
        `train_on_batch()`)."""
        if return_auxiliary is None:
            # Inside `fit()` (training) and `evaluate()` (not), so that the
            # training and the validation losses are the same quantity.
            return_auxiliary = self.training_graph is not None and (
                (bool(training) and self._auxiliary_in_training)
                or (not training and self._auxiliary_in_evaluation)
            )
        if return_auxiliary:
            if self.training_graph is None:
                raise ValueError(
                    "`return_auxiliary=True` needs the auxiliary head; this model "
                    "was built with `auxiliary_head=False`."
                )
            return self.training_graph(inputs, training=training)
        return super().call(inputs, training=training, mask=mask)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The compiled loss on the logits (`decode_loss`), plus
        `auxiliary_loss_weight` times the compiled loss on the auxiliary
        logits (`aux_loss`, logged weighted, as the reference's
        `aux.loss_ce`) in `fit()` and `evaluate()`. `loss` is their sum, in
        training and validation alike."""
        y = self._checked_labels(x, y)
        if not isinstance(y_pred, dict):
            loss = super().compute_loss(x, y, y_pred, sample_weight, training=training)
            self.decode_loss_tracker.update_state(loss)
            return loss
        loss = super().compute_loss(x, y, y_pred["logits"], sample_weight, training=training)
        self.decode_loss_tracker.update_state(loss)
        if self._compile_loss is not None:
            aux = self.auxiliary_loss_weight * self._compile_loss(y, y_pred["aux_logits"], sample_weight)
            self.aux_loss_tracker.update_state(aux)
            loss = loss + aux
        return loss

    # Data checked before Keras traces anything, and a traced function
    # dropped when its first trace failed (TensorFlow refuses to create the
    # optimiser's variables in a second first trace), so that a refused
    # input leaves the model usable.

    def fit(self, x=None, y=None, *args, **kwargs):
        x, y = _from_dict(x, y, "x")
        if "validation_data" in kwargs:
            kwargs["validation_data"] = _from_dict_validation(kwargs["validation_data"])
        self._warn_if_unit_scale_data(x)
        _check_data(x, y, self.num_classes, self.ignore_index, kwargs.get("validation_data"))
        if hasattr(x, "element_spec"):  # a dataset is shuffled by its pipeline: Keras's default would warn
            kwargs.setdefault("shuffle", False)
        with self._dropped_on_error("train_function"), self._training_with_auxiliary():
            return super().fit(x, y, *args, **kwargs)

    def train_on_batch(self, x, y=None, *args, **kwargs):
        with self._dropped_on_error("train_function"), self._training_with_auxiliary():
            return super().train_on_batch(x, y, *args, **kwargs)

    @contextlib.contextmanager
    def _auxiliary_output(self, flag):
        # Keras's train and test steps call `self(x, training=...)`; inside
        # `fit()` / `evaluate()` that call returns the auxiliary logits too,
        # for `compute_loss` (`flag`: which of the two `call` looks at).
        previous = getattr(self, flag)
        setattr(self, flag, True)
        try:
            yield
        finally:
            setattr(self, flag, previous)

    def _training_with_auxiliary(self):
        return self._auxiliary_output("_auxiliary_in_training")

    def _evaluating_with_auxiliary(self):
        return self._auxiliary_output("_auxiliary_in_evaluation")

    def evaluate(self, x=None, y=None, *args, **kwargs):
        x, y = _from_dict(x, y, "x")
        self._warn_if_unit_scale_data(x)
        _check_data(x, y, self.num_classes, self.ignore_index)
        with self._dropped_on_error("test_function"), self._evaluating_with_auxiliary():
            return super().evaluate(x, y, *args, **kwargs)

    def test_on_batch(self, x, y=None, *args, **kwargs):
        with self._dropped_on_error("test_function"), self._evaluating_with_auxiliary():
            return super().test_on_batch(x, y, *args, **kwargs)

    def _warn_if_unit_scale_data(self, x):
        if x is not None and hasattr(x, "shape") and not hasattr(x, "element_spec"):
            self._warn_if_unit_scale(x)

    def predict(self, x, *args, **kwargs):
        x, _ = _from_dict(x, None, "x", labels=False)
        self._warn_if_unit_scale_data(x)
        _check_data(x, None)
        with self._dropped_on_error("predict_function"):
            return super().predict(x, *args, **kwargs)

    @contextlib.contextmanager
    def _dropped_on_error(self, function_name):
        try:
            yield
        except Exception:
            setattr(self, function_name, None)
            raise

    def _checked_labels(self, x, y):
        """`y` checked against `x`; labels of unknown rank (tf.function
        relaxes shapes when it retraces) are reshaped to the images'
        `(batch, height, width)`, which fails at run time unless the sizes
        agree."""
        if x is None or y is None or isinstance(y, (dict, list, tuple)):
            return y
        images_shape = check_images(x, "x")
        check_labels(y, images_shape, "y")
        try:
            rank = len(y.shape)
        except (TypeError, ValueError):
            rank = None
        if rank != 3:
            y = ops.reshape(y, ops.shape(x)[:3])
        return y

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        y = self._checked_labels(x, y)
        if isinstance(y_pred, dict):
            y_pred = y_pred["logits"]
        return super().compute_metrics(x, y, y_pred, sample_weight)

    def compile(self, optimizer="auto", loss="auto", *, metrics="auto", **kwargs):
        """Configure training with the reference's defaults.

        `fit()` and `evaluate()` log `loss` (the total: decode loss plus the
        weighted auxiliary loss, the same quantity in training and in
        validation, so `EarlyStopping(monitor="val_loss")` compares like
        with like), `decode_loss`, `aux_loss`, and the metrics.

        Args:
            optimizer: `"auto"` is SGD with learning rate 0.01 and momentum
                0.9; or any Keras optimizer.
            loss: `"auto"` is `SegmentationCrossEntropy(ignore_index)`,
                averaged over all pixels as the reference; or any Keras loss
                taking `(labels, logits)`. The model outputs logits: the
                string `"sparse_categorical_crossentropy"` is taken as
                `SegmentationCrossEntropy(ignore_index)` (with a message);
                `"categorical_crossentropy"` (one-hot labels), every other
                loss name (`"mse"`, ...) and Keras cross-entropy losses
                with `from_logits=False` are refused.
            metrics: `"auto"` is `SegmentationIoU` (the reference's mIoU,
                accumulated over the whole evaluation set) and
                `PixelAccuracy` (the reference's aAcc), both leaving out
                `ignore_index`; or any list of metrics.
            **kwargs: further `keras.Model.compile` arguments.
        """
        if isinstance(optimizer, str) and optimizer == "auto":
            optimizer = keras.optimizers.SGD(learning_rate=0.01, momentum=0.9)
        loss = self._segmentation_loss(loss)
        if isinstance(metrics, str) and metrics == "auto":
            metrics = [
                SegmentationIoU(self.num_classes, ignore_index=self.ignore_index, name="mean_iou"),
                PixelAccuracy(ignore_index=self.ignore_index, name="pixel_accuracy"),
            ]
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

    def _segmentation_loss(self, loss):
        """`compile()`'s loss, checked against this model's logits."""
        if isinstance(loss, str):
            if loss == "auto":
                return SegmentationCrossEntropy(ignore_index=self.ignore_index)
            if loss == "sparse_categorical_crossentropy":
                print(
                    "ANNSegmenter.compile: the model outputs logits; loss "
                    "'sparse_categorical_crossentropy' is taken as "
                    f"SegmentationCrossEntropy(ignore_index={self.ignore_index}) (from logits, "
                    f"label {self.ignore_index} ignored)."
                )
                return SegmentationCrossEntropy(ignore_index=self.ignore_index)
            if loss == "categorical_crossentropy":
                raise ValueError(
                    "ANNSegmenter.compile: loss 'categorical_crossentropy' expects one-hot labels; "
                    "this model trains on integer label maps (batch, height, width). Convert one-hot "
                    "masks with `argmax(masks, axis=-1)` and use loss='auto' "
                    "(SegmentationCrossEntropy)."
                )
            # Any other Keras loss name ('mse', 'binary_crossentropy', ...)
            # compares labels and outputs of one shape: it failed later,
            # in `fit()`, with a raw traceback.
            raise ValueError(
                f"ANNSegmenter.compile: loss {loss!r} does not apply: the model outputs logits "
                "(batch, height, width, classes) and the labels are class ids (batch, height, width); "
                "use loss='auto' (SegmentationCrossEntropy) or a keras_ann.losses loss "
                "(e.g. keras_ann.losses.build_loss([{'type': 'DiceLoss'}]))."
            )
        config = loss.get_config() if isinstance(loss, keras.losses.Loss) else {}
        if config.get("from_logits") is False:
            raise ValueError(
                f"ANNSegmenter.compile: the loss {type(loss).__name__} has from_logits=False, but "
                "this model outputs logits (no softmax). Pass it with from_logits=True (and "
                f"ignore_class={self.ignore_index}), or use loss='auto' "
                f"(SegmentationCrossEntropy(ignore_index={self.ignore_index}))."
            )
        return loss

    def compile_from_config(self, config):
        # Keras skips compiling models that override `compile()` on load;
        # ours takes the same arguments, so the saved configuration applies.
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def predict_labels(self, images, protocol=None, batch_size=None):
        """Label maps `(batch, H, W)` (int32) for raw RGB images, tested as
        the model's `test_protocol` says (`keras_ann.inference.segment`).

        Args:
            images: `(batch, H, W, 3)` RGB pixel values in [0, 255].
            protocol: a `TestProtocol` instead of the model's own.
            batch_size: images or windows per model call.
        """
        from keras_ann.inference import segment

        return segment(self, images, protocol, batch_size=batch_size)

    @classmethod
    def from_preset(cls, name_or_path, *, cache_dir=None, verbose=True, **overrides):
        """A released reference model, a preset directory (local or on a
        model hub), a local `.pth` or a `.keras` file.

        - A preset name (see `keras_ann.presets.PRESETS`, e.g.
          `"ann_r50_d8_cityscapes_512x1024_40k"`) downloads the reference's
          checkpoint into the cache (`$KERAS_ANN_HOME`, default
          `~/.cache/keras_ann`) with a progress bar, checks it against the
          8 hex digits of the SHA-256 in its published name (a mismatch
          deletes the file and raises), converts it, and caches the Keras
          weights, so later calls work offline.
        - A path to a reference `.pth` file converts it offline; backbone
          depth, number of classes and head widths come from the weights.
        - A path to a `.keras` file loads it, checked first
          (`keras_ann.models.loading`).
        - A preset directory (`save_to_preset`, KerasHub's layout) loads
          its `config.json` and `model.weights.h5`, checked first
          (`keras_ann.models.preset_directory`).
        - A model hub handle, `hf://owner/name` (Hugging Face Hub, through
          `huggingface_hub`) or `kaggle://owner/model/keras/variant[/N]`
          (Kaggle Models, through `kagglehub`), is a preset directory
          there, downloaded into the hub library's cache (see
          `keras_ann.hub`; `pip install "keras-ann[hub]"`).

        Args:
            name_or_path: preset name, file or directory path, or hub
                handle.
            cache_dir: overrides the cache directory.
            verbose: show download progress.
            **overrides: `ANNSegmenter` arguments that replace the preset's,
                e.g. `align_corners=True`, or `num_classes=11` (everything
                but the classifiers is loaded then, from `.pth` and `.keras`
                files alike).

        Example:

        ```python
        model = keras_ann.ANNSegmenter.from_preset("ann_r50_d8_cityscapes_512x1024_40k")
        model = keras_ann.ANNSegmenter.from_preset("ann.pth", num_classes=11)
        model = keras_ann.ANNSegmenter.from_preset("hf://keras-ann/ann_r50_cityscapes")
        ```
        """
        from keras_ann.presets import load_preset

        return load_preset(cls, name_or_path, cache_dir=cache_dir, verbose=verbose, **overrides)

    def save_to_preset(self, preset_dir, *, evaluation=None):
        """Write the model as a preset directory in KerasHub's layout.

        `config.json` (the model and its test protocol), `metadata.json`
        (Keras and keras-ann versions, parameter count, the test protocol
        and data contract, the evaluation table when given),
        `model.weights.h5` and a `README.md` model card. `from_preset(DIR)`
        and `keras-ann evaluate / predict / export DIR` load it and test as
        its protocol says; `keras-ann push DIR hf://owner/name` uploads it.

        Args:
            preset_dir: the directory (created if needed).
            evaluation: the model's scores, as `evaluate_dataset` returns
                them (optionally with `data`, `split` and `images` keys
                saying what was scored), written into metadata.json and the
                card.

        Example:

        >>> import os, tempfile
        >>> model = ANNSegmenter(backbone="resnet18_d8", num_classes=2)
        >>> directory = os.path.join(tempfile.mkdtemp(), "cells")
        >>> model.save_to_preset(directory)
        >>> sorted(os.listdir(directory))
        ['README.md', 'config.json', 'metadata.json', 'model.weights.h5']
        >>> ANNSegmenter.from_preset(directory).num_classes
        2
        """
        from keras_ann.models.preset_directory import save_preset

        save_preset(self, preset_dir, evaluation=evaluation)

    def get_config(self):
        backbone = keras.layers.serialize(self.backbone)
        return {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.saving.serialize_keras_object(self.dtype_policy),
            # Synchronised batch norm is a run-time setting, never saved.
            "backbone": unsynchronized(backbone),
            "num_classes": self.num_classes,
            "feature_keys": self.feature_keys,
            "align_corners": self.align_corners,
            "head_channels": self.head_channels,
            "project_channels": self.project_channels,
            "query_scales": self.query_scales,
            "key_pool_scales": self.key_pool_scales,
            "dropout": self.dropout,
            "auxiliary_head": self.auxiliary_head is not None,
            "auxiliary_channels": self.auxiliary_channels,
            "auxiliary_loss_weight": self.auxiliary_loss_weight,
            "ignore_index": self.ignore_index,
            "mean": self.mean,
            "std": self.std,
            "test_protocol": self.test_protocol.to_config(),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if "synchronized" in config:
            raise ValueError("This configuration is of the unreleased 0.1.0 layout (`synchronized`), no longer read.")
        if isinstance(config.get("backbone"), dict):
            config["backbone"] = keras.layers.deserialize(unsynchronized(config["backbone"]))
        return cls(**config)


IMAGE_KEYS = ("images", "image")
MASK_KEYS = ("segmentation_masks", "segmentation_mask", "labels", "masks")


def _split_dict(element, name, labels=True):
    """`(images, masks)` of a dict element (`{"images": ...,
    "segmentation_masks": ...}`, as Keras 3 augmentation layers and
    KerasHub use); `masks` is `None` when absent or `labels` is False."""
    image_key = next((k for k in IMAGE_KEYS if k in element), None)
    if image_key is None:
        raise ValueError(
            f"`{name}` is a dict with keys {sorted(element)}; ANNSegmenter reads the images from "
            f"key 'images' and the label maps from 'segmentation_masks'."
        )
    mask_key = next((k for k in MASK_KEYS if k in element), None) if labels else None
    return element[image_key], (None if mask_key is None else element[mask_key])


def _from_dict(x, y, name, labels=True):
    """`(x, y)` with a dict `x` (arrays or a dataset of dicts) turned into
    images and label maps."""
    if isinstance(x, dict):
        if y is not None:
            raise ValueError(f"`{name}` is a dict of images and masks; do not pass `y` as well.")
        return _split_dict(x, name, labels)
    spec = getattr(x, "element_spec", None)
    if isinstance(spec, dict) and hasattr(x, "map"):
        _split_dict(spec, f"{name} (the dataset's elements)", labels)  # the keys, checked up front
        if labels and _split_dict(spec, name)[1] is not None:
            return x.map(lambda element: _split_dict(element, name)), y
        return x.map(lambda element: _split_dict(element, name, labels=False)[0]), y
    return x, y


def _from_dict_validation(validation_data):
    """`fit()`'s `validation_data` with dicts turned into `(images, masks)`."""
    if isinstance(validation_data, dict) or isinstance(getattr(validation_data, "element_spec", None), dict):
        x, y = _from_dict(validation_data, None, "validation_data")
        return x if y is None else (x, y)
    return validation_data


def _check_data(x, y, num_classes=None, ignore_index=255, validation_data=None):
    """Checks `fit`/`evaluate`/`predict` data whose shapes are known up
    front: arrays and tensors, or a `tf.data.Dataset`'s element spec.

    Label values (`num_classes` given: class indices or `ignore_index`, no
    negative or fractional values) are checked on arrays and eager tensors.
    A dataset's labels are not read here: iterating a `tf.data.Dataset`
    before `fit` would advance the random state of its `shuffle` and
    random ops (fit would then see other batches than without the check),
    use up a one-shot generator and fill shuffle buffers. keras-ann's own
    datasets are checked file by file before training
    (`keras_ann.data.check_dataset_labels`); for another pipeline call
    `keras_ann.checks.check_label_values` on a batch.

    `validation_data` (of `fit`) is checked the same way, so that a bad
    validation label is refused before training, not at the first
    evaluation."""
    if isinstance(validation_data, (tuple, list)) and len(validation_data) >= 2:
        xv, yv = validation_data[0], validation_data[1]
        if hasattr(xv, "shape") and hasattr(yv, "shape"):
            check_labels(
                yv,
                check_images(xv, "validation_data[0]"),
                "validation_data[1]",
                num_classes=num_classes,
                ignore_index=ignore_index,
            )
    spec = getattr(x, "element_spec", None)
    if spec is not None:
        if isinstance(spec, (tuple, list)) and spec:
            images = check_images(spec[0], "x (the dataset's images)")
            if len(spec) > 1 and not isinstance(spec[1], (dict, list, tuple)):
                check_labels(spec[1], images, "y (the dataset's labels)")
        elif not isinstance(spec, dict):
            check_images(spec, "x (the dataset's images)")
        return
    if x is None or isinstance(x, (dict, list, tuple)) or not hasattr(x, "shape"):
        return  # generators, PyDatasets: checked when traced
    images = check_images(x, "x")
    if y is not None and hasattr(y, "shape"):
        check_labels(y, images, "y", num_classes=num_classes, ignore_index=ignore_index)


def logits_to_labels(logits):
    """Turn `(..., num_classes)` logits into int32 label maps (`argmax`).

    Example:

    >>> import numpy as np
    >>> logits_to_labels(np.array([[[[0.1, 0.9], [2.0, -1.0]]]])).tolist()
    [[[1, 0]]]
    """
    return ops.convert_to_numpy(ops.cast(ops.argmax(logits, axis=-1), "int32"))


def _fraction(features, divisor):
    """Default head width: the features' channels over `divisor` (the
    reference's widths on ResNet-50/101), at least 1."""
    return max(int(features.shape[-1]) // divisor, 1)
