"""Reference ANN model built with mmsegmentation 1.2.2 (PyTorch, CPU).

Test-only harness: parity tests compare keras-ann against the model built
here. Requires the packages in ``tests/reference/REQUIREMENTS.txt``
(torch, mmengine, mmcv-lite, mmsegmentation); import this module only from
tests that ``pytest.importorskip`` those.

mmcv-lite ships the Python side of ``mmcv.ops`` but not the compiled
``mmcv._ext``, so ``import mmcv.ops`` fails and with it ``import mmseg.models``
(a few unrelated heads/losses import ops at module level). ANN needs none of
those ops, so before importing mmseg we install a stub ``mmcv.ops`` whose
attributes are placeholders that raise if anything actually uses them.

The model dict below is ``configs/_base_/models/ann_r50-d8.py`` of mmseg
1.2.2 (``mmseg/.mim/configs/_base_/models/ann_r50-d8.py``) with
``SyncBN -> BN`` and ``pretrained=None``.
"""

from __future__ import annotations

import collections
import copy
import importlib.util
import sys
import types

import numpy as np

# mmseg ``configs/_base_/models/ann_r50-d8.py`` (1.2.2). Only ``SyncBN`` was
# changed to ``BN`` and ``pretrained`` ('open-mmlab://resnet50_v1c') dropped.
MEAN = (123.675, 116.28, 103.53)  # RGB
STD = (58.395, 57.12, 57.375)  # RGB

_NORM_CFG = dict(type="BN", requires_grad=True)

ANN_R50_D8_CFG = dict(
    type="EncoderDecoder",
    data_preprocessor=dict(
        type="SegDataPreProcessor",
        mean=list(MEAN),
        std=list(STD),
        bgr_to_rgb=True,
        pad_val=0,
        seg_pad_val=255,
    ),
    pretrained=None,
    backbone=dict(
        type="ResNetV1c",
        depth=50,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        dilations=(1, 1, 2, 4),
        strides=(1, 2, 1, 1),
        norm_cfg=_NORM_CFG,
        norm_eval=False,
        style="pytorch",
        contract_dilation=True,
    ),
    decode_head=dict(
        type="ANNHead",
        in_channels=[1024, 2048],
        in_index=[2, 3],
        channels=512,
        project_channels=256,
        query_scales=(1,),
        key_pool_scales=(1, 3, 6, 8),
        dropout_ratio=0.1,
        num_classes=19,
        norm_cfg=_NORM_CFG,
        align_corners=False,
        loss_decode=dict(type="CrossEntropyLoss", use_sigmoid=False, loss_weight=1.0),
    ),
    auxiliary_head=dict(
        type="FCNHead",
        in_channels=1024,
        in_index=2,
        channels=256,
        num_convs=1,
        concat_input=False,
        dropout_ratio=0.1,
        num_classes=19,
        norm_cfg=_NORM_CFG,
        align_corners=False,
        loss_decode=dict(type="CrossEntropyLoss", use_sigmoid=False, loss_weight=0.4),
    ),
    train_cfg=dict(),
    test_cfg=dict(mode="whole"),
)

# Backbone strides/dilations per output stride (mmseg conventions: D8 as in
# the ANN configs, D16 as in e.g. deeplabv3 *-d16 / ResNet "D16" setups).
_OS_SETTINGS = {
    8: dict(strides=(1, 2, 1, 1), dilations=(1, 1, 2, 4)),
    16: dict(strides=(1, 2, 2, 1), dilations=(1, 1, 1, 2)),
    32: dict(strides=(1, 2, 2, 2), dilations=(1, 1, 1, 1)),
}


# ---------------------------------------------------------------------------
# mmcv.ops stub
# ---------------------------------------------------------------------------


def _make_placeholder(qualname: str):
    def _fail(*args, **kwargs):
        raise RuntimeError(
            f"mmcv.ops.{qualname} is a stub (mmcv-lite has no compiled ops); "
            "it is not needed by ANN and must not be used."
        )

    return type(qualname, (object,), {"__new__": staticmethod(lambda cls, *a, **k: _fail()),
                                       "__module__": "mmcv.ops"})


def install_mmcv_ops_stub() -> bool:
    """Install a stub ``mmcv.ops`` if the compiled ops are unavailable.

    Returns True if a stub was installed (or already present).
    """
    existing = sys.modules.get("mmcv.ops")
    if existing is not None:
        return bool(getattr(existing, "__keras_ann_stub__", False))
    import mmcv  # noqa: F401  (mmcv-lite: pure Python)

    if importlib.util.find_spec("mmcv._ext") is not None:
        return False  # full mmcv: use the real ops

    stub = types.ModuleType("mmcv.ops")
    stub.__keras_ann_stub__ = True
    cache: dict = {}

    def __getattr__(name):  # PEP 562: makes `from mmcv.ops import X` work
        if name.startswith("__"):
            raise AttributeError(name)
        if name not in cache:
            cache[name] = _make_placeholder(name)
        return cache[name]

    stub.__getattr__ = __getattr__
    sys.modules["mmcv.ops"] = stub
    mmcv.ops = stub
    return True


_REGISTERED = False


def _import_mmseg():
    global _REGISTERED
    install_mmcv_ops_stub()
    import warnings

    with warnings.catch_warnings():
        # mmcv-lite warns that MultiScaleDeformableAttention is missing.
        warnings.simplefilter("ignore")
        import mmseg  # noqa: F401
        import mmseg.models  # noqa: F401
        from mmseg.utils import register_all_modules

        if not _REGISTERED:
            register_all_modules(init_default_scope=True)
            _REGISTERED = True
    from mmseg.registry import MODELS

    return MODELS


# ---------------------------------------------------------------------------
# Building
# ---------------------------------------------------------------------------


def reference_config(
    depth: int = 50,
    num_classes: int = 19,
    align_corners: bool = False,
    output_stride: int = 8,
    query_scales=(1,),
    key_pool_scales=(1, 3, 6, 8),
) -> dict:
    """The (deep-copied) model dict for the requested variant.

    depth 50/101/152 use Bottleneck: ANNHead in_channels [1024, 2048],
    channels 512, project 256, aux FCN 1024 -> 256 (mmseg configs).
    depth 18/34 use BasicBlock: ANNHead in_channels [256, 512], channels 128,
    project 64, aux FCN 256 -> 64 (mmseg's usual R-18-D8 overrides; mmseg has
    no official ANN R-18 config).
    """
    if output_stride not in _OS_SETTINGS:
        raise ValueError(f"output_stride must be one of {sorted(_OS_SETTINGS)}")
    cfg = copy.deepcopy(ANN_R50_D8_CFG)
    cfg["backbone"]["depth"] = depth
    cfg["backbone"].update(_OS_SETTINGS[output_stride])
    dh, aux = cfg["decode_head"], cfg["auxiliary_head"]
    if depth in (18, 34):
        dh.update(in_channels=[256, 512], channels=128, project_channels=64)
        aux.update(in_channels=256, channels=64)
    elif depth not in (50, 101, 152):
        raise ValueError(f"unsupported depth {depth}")
    dh.update(
        num_classes=num_classes,
        align_corners=align_corners,
        query_scales=tuple(query_scales),
        key_pool_scales=tuple(key_pool_scales),
    )
    aux.update(num_classes=num_classes, align_corners=align_corners)
    return cfg


def build_reference_ann(
    depth: int = 50,
    num_classes: int = 19,
    align_corners: bool = False,
    output_stride: int = 8,
    seed: int = 0,
    randomize: bool = True,
    query_scales=(1,),
    key_pool_scales=(1, 3, 6, 8),
):
    """Build mmseg's ANN ``EncoderDecoder`` (eval mode, CPU, float32).

    ``randomize=True``: every parameter and BN running statistic is drawn
    deterministically from ``seed`` (see :func:`randomize_weights`).
    ``randomize=False``: mmseg's own ``init_weights()`` is applied instead
    (ResNet kaiming + zero_init_residual, ConvModule kaiming, conv_seg
    N(0, 0.01), out_project zero).
    """
    import torch

    MODELS = _import_mmseg()
    cfg = reference_config(
        depth, num_classes, align_corners, output_stride, query_scales, key_pool_scales
    )
    torch.manual_seed(seed)
    from mmengine.config import ConfigDict

    model = MODELS.build(ConfigDict(cfg))
    if randomize:
        randomize_weights(model, seed)
    else:
        import logging

        from mmengine.logging import MMLogger

        logger = MMLogger.get_current_instance()
        level = logger.level
        logger.setLevel(logging.ERROR)
        try:
            model.init_weights()
        finally:
            logger.setLevel(level)
    model = model.float().eval()
    return model


def randomize_weights(
    model, seed: int = 0, calib_hw=(128, 128), residual_gamma=(0.05, 0.3)
) -> None:
    """Deterministically randomise all parameters and BN running stats.

    Everything is drawn from ``numpy.random.RandomState(seed)`` (a stream that
    is stable across numpy versions), visiting modules in
    ``named_modules()`` order:

    * Conv2d weight ~ N(0, gain / fan_in): gain 2 (He-normal) for convs that
      feed BN(+ReLU) (backbone convs, ConvModule ``*.conv``), gain 1 for the
      plain convs (``value_project``, ``out_project``, ``conv_seg``); conv
      bias ~ N(0, 0.1). ``out_project`` convs (zero-initialised by mmseg)
      therefore become non-zero.
    * BN weight ~ U(0.5, 1.5), bias ~ N(0, 0.1); except the last BN of every
      residual branch (``bn3`` of a Bottleneck, ``bn2`` of a BasicBlock),
      whose weight ~ U(*residual_gamma), small as in trained ResNets. With
      U(0.5, 1.5) there too, float32 round-off of the reference *itself*
      (float32 vs float64) reaches ~1e-4 of the largest logit, the
      tolerance of the parity test; with small residual scales it is ~1e-6,
      which makes the comparison far more sensitive to a real mismatch.
    * BN running stats: random stats that ignore the data make the
      (un-normalised) residual stream grow ~1.6x per block (logits ~1e4
      for R-50), so they are *calibrated then perturbed*: one eval-mode
      forward of a seeded random RGB image (``calib_hw``) sets, per BN, in
      execution order, running_mean = m + N(0, 0.1) * s and
      running_var = s^2 * U(0.5, 1.5) where m, s^2 are the per-channel mean
      / variance of that BN's actual input (upstream BNs already fixed).
      Activations stay O(1) through the whole network.
    * num_batches_tracked is left as is.
    """
    import torch
    from torch import nn

    rng = np.random.RandomState(seed)

    def _set(t, arr):
        with torch.no_grad():
            t.copy_(torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32)))

    bns = []
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            fan_in = m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
            plain = not name.endswith(".conv") and not name.startswith("backbone")
            gain = 1.0 if plain else 2.0
            _set(m.weight, rng.normal(0.0, np.sqrt(gain / fan_in), m.weight.shape))
            if m.bias is not None:
                _set(m.bias, rng.normal(0.0, 0.1, m.bias.shape))
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            c = m.num_features
            last_in_branch = name.startswith("backbone.layer") and (
                name.endswith(".bn3")
                or (name.endswith(".bn2") and not hasattr(_parent(model, name), "bn3"))
            )
            low, high = residual_gamma if last_in_branch else (0.5, 1.5)
            _set(m.weight, rng.uniform(low, high, c))
            _set(m.bias, rng.normal(0.0, 0.1, c))
            _set(m.running_mean, np.zeros(c))
            _set(m.running_var, np.ones(c))
            bns.append((name, m))
        else:
            own = [p for p, _ in m.named_parameters(recurse=False)]
            if own:
                raise TypeError(f"unexpected parameters in {name} ({type(m).__name__}): {own}")

    # Per-BN noise drawn up front (fixed order, independent of execution order).
    noise = {
        name: (rng.normal(0.0, 0.1, m.num_features), rng.uniform(0.5, 1.5, m.num_features))
        for name, m in bns
    }
    done = set()

    def _pre_hook(name):
        def hook(mod, args):
            if name in done:  # shared key/query projection runs twice
                return
            x = args[0].detach().double()
            mean = x.mean(dim=(0, 2, 3)).numpy()
            var = x.var(dim=(0, 2, 3), unbiased=False).numpy()
            var = np.maximum(var, 1e-4)
            dm, fv = noise[name]
            _set(mod.running_mean, mean + dm * np.sqrt(var))
            _set(mod.running_var, var * fv)
            done.add(name)

        return hook

    handles = [m.register_forward_pre_hook(_pre_hook(n)) for n, m in bns]
    try:
        h, w = calib_hw
        img = rng.uniform(0.0, 255.0, (1, 3, h, w)).astype(np.float32)
        x = (torch.from_numpy(img) - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(
            STD
        ).view(1, 3, 1, 1)
        was_training = model.training
        model.eval()
        with torch.no_grad():
            feats = model.extract_feat(x.float())
            model.decode_head.forward(feats)
            if getattr(model, "auxiliary_head", None) is not None:
                aux = model.auxiliary_head
                for head in aux if isinstance(aux, nn.ModuleList) else [aux]:
                    head.forward(feats)
        model.train(was_training)
    finally:
        for hd in handles:
            hd.remove()
    missing = [n for n, _ in bns if n not in done]
    if missing:
        raise RuntimeError(f"BN layers not reached during calibration: {missing}")


def _parent(model, name):
    return model.get_submodule(name.rsplit(".", 1)[0])


# ---------------------------------------------------------------------------
# Inference
# ---------------------------------------------------------------------------


def set_with_cp(model, with_cp: bool = True) -> None:
    """Turn the reference's recomputation on or off: ``with_cp`` of every
    residual block of the backbone (mmcv's ``checkpoint`` of the block's
    forward pass in training)."""
    for module in model.backbone.modules():
        if hasattr(module, "with_cp"):
            module.with_cp = with_cp


def reference_logits(model, images, return_aux: bool = False):
    """Whole-image mmseg inference; returns decode-head logits, NHWC float32.

    ``images``: (N, H, W, 3) or (H, W, 3) RGB in [0, 255] (uint8 or float).
    Mirrors mmseg's test path: ``model.data_preprocessor`` (BGR->RGB swap of
    the loaded BGR image, then (x - mean) / std; no padding because the base
    config has no test size/size_divisor), then ``model.encode_decode``
    (backbone -> ANNHead.forward -> bilinear resize to the input size with
    ``decode_head.align_corners``). Since mmseg expects BGR (cv2-loaded)
    inputs, the RGB images are flipped to BGR before the preprocessor.

    ``return_aux=True`` additionally returns the auxiliary FCN head logits
    at feature resolution (NHWC, not resized).
    """
    import torch

    x = np.asarray(images)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"expected (N, H, W, 3) RGB images, got {x.shape}")
    n, h, w, _ = x.shape
    bgr = np.ascontiguousarray(x[..., ::-1].transpose(0, 3, 1, 2))
    if bgr.dtype != np.uint8:
        bgr = bgr.astype(np.float32)
    inputs = [torch.from_numpy(bgr[i].copy()) for i in range(n)]
    metas = [
        dict(ori_shape=(h, w), img_shape=(h, w), pad_shape=(h, w), padding_size=[0, 0, 0, 0])
        for _ in range(n)
    ]
    model.eval()
    with torch.no_grad():
        data = model.data_preprocessor(dict(inputs=inputs), training=False)
        seg = model.encode_decode(data["inputs"], metas)
        out = seg.float().permute(0, 2, 3, 1).contiguous().numpy().astype(np.float32)  # float() for autocast
        if not return_aux:
            return out
        feats = model.extract_feat(data["inputs"])
        aux = model.auxiliary_head.forward(feats)
        return out, aux.permute(0, 2, 3, 1).contiguous().numpy().astype(np.float32)


def _normalized_nchw(images):
    """RGB (N, H, W, 3) in [0, 255] -> (x - mean) / std, NCHW float64 tensor.

    What ``model.data_preprocessor`` computes, but in float64 (the
    preprocessor casts to float32 first).
    """
    import torch

    x = np.asarray(images, dtype=np.float64)
    x = (x - np.asarray(MEAN)) / np.asarray(STD)
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def reference_logits_float64(model, images):
    """Eval-mode decode-head logits of a float64 model (``model.double()``),
    NHWC float64, through ``model.encode_decode``."""
    import torch

    x = _normalized_nchw(images)
    h, w = x.shape[2:]
    metas = [dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w))] * x.shape[0]
    model.eval()
    with torch.no_grad():
        out = model.encode_decode(x, metas)
    return out.permute(0, 2, 3, 1).contiguous().numpy()


def reference_train_steps(
    model, images, labels, steps=2, lr=0.01, momentum=0.9, weight_decay=5e-4
):
    """Train the reference for ``steps`` SGD steps on one batch, in float64.

    The reference's training iteration without its data pipeline:
    ``model.loss`` (backbone, decode and auxiliary heads in training mode,
    each head's ``CrossEntropyLoss`` with its ``loss_weight``),
    ``model.parse_losses`` (the sum of every ``*loss*`` entry) and
    ``torch.optim.SGD(lr, momentum, weight_decay)`` over all parameters, as
    the reference's ``optim_wrapper`` (no ``paramwise_cfg``). Dropout layers
    keep their modules but get ``p = 0``. The model is converted to float64
    in place and left in eval mode.

    Args:
        model: an ANN ``EncoderDecoder`` from :func:`build_reference_ann`.
        images: (N, H, W, 3) RGB in [0, 255].
        labels: (N, H, W) integer labels (255 ignored).

    Returns:
        list of the ``steps`` total losses (Python floats), each computed
        before its step's update.
    """
    import torch
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    model.double().train()
    for module in model.modules():
        if isinstance(module, torch.nn.modules.dropout._DropoutNd):
            module.p = 0.0
    x = _normalized_nchw(images)
    h, w = x.shape[2:]
    samples = []
    for label in np.asarray(labels):
        sample = SegDataSample(
            metainfo=dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w))
        )
        sample.gt_sem_seg = PixelData(data=torch.from_numpy(label.astype(np.int64)[None]))
        samples.append(sample)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay
    )
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss, _ = model.parse_losses(model.loss(x, samples))
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    model.eval()
    return losses


def normalize_rgb(images):
    """(x - mean) / std in RGB order, NHWC float32 (what the preprocessor does)."""
    x = np.asarray(images, dtype=np.float32)
    return (x - np.asarray(MEAN, np.float32)) / np.asarray(STD, np.float32)


# ---------------------------------------------------------------------------
# Checkpoint writing
# ---------------------------------------------------------------------------

CITYSCAPES_CLASSES = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light",
    "traffic sign", "vegetation", "terrain", "sky", "person", "rider", "car",
    "truck", "bus", "train", "motorcycle", "bicycle",
)
CITYSCAPES_PALETTE = [
    [128, 64, 128], [244, 35, 232], [70, 70, 70], [102, 102, 156],
    [190, 153, 153], [153, 153, 153], [250, 170, 30], [220, 220, 0],
    [107, 142, 35], [152, 251, 152], [70, 130, 180], [220, 20, 60],
    [255, 0, 0], [0, 0, 142], [0, 0, 70], [0, 60, 100], [0, 80, 100],
    [0, 0, 230], [119, 11, 32],
]


def save_state_dict(model, path, wrap_meta: bool = True, meta: dict | None = None) -> None:
    """``torch.save`` (zip format) the model's state dict like an mmseg checkpoint.

    wrap_meta=True: ``{"meta": {...}, "state_dict": OrderedDict}`` where meta
    holds only plain containers (str/int/float/tuple/list/dict), in the style
    of mmseg's released checkpoints (env_info/config/CLASSES/PALETTE/...).
    wrap_meta=False: the bare ``OrderedDict`` state dict.
    """
    import torch

    sd = collections.OrderedDict(
        (k, v.detach().cpu().clone()) for k, v in model.state_dict().items()
    )
    if not wrap_meta:
        torch.save(sd, path)
        return
    n_cls = model.decode_head.num_classes
    m = {
        "mmseg_version": "1.2.2",
        "config": repr(reference_config_from_model(model)),
        "seed": 0,
        "exp_name": "keras_ann_reference.py",
        "epoch": 1,
        "iter": 40000,
        "CLASSES": CITYSCAPES_CLASSES if n_cls == 19 else tuple(f"class_{i}" for i in range(n_cls)),
        "PALETTE": CITYSCAPES_PALETTE if n_cls == 19 else [[i % 256, 0, 0] for i in range(n_cls)],
        "dataset_meta": {"num_classes": n_cls},
        "hook_msgs": {},
    }
    if meta:
        m.update(meta)
    torch.save({"meta": m, "state_dict": sd}, path)


def reference_config_from_model(model) -> dict:
    b, dh = model.backbone, model.decode_head
    return dict(
        backbone=dict(type="ResNetV1c", depth=b.depth, strides=tuple(b.strides),
                      dilations=tuple(b.dilations), contract_dilation=True),
        decode_head=dict(type="ANNHead", in_channels=list(dh.in_channels),
                         channels=dh.channels, project_channels=dh.project_channels,
                         num_classes=dh.num_classes, align_corners=dh.align_corners),
    )


def count_trainable_params(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
