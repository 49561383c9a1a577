"""Where the forward pass of ANN R-50-D8 spends its time, ours beside
mmsegmentation's, part by part (TensorFlow backend, CPU).

Both models hold the same weights (the test harness's reference model,
converted). Each part runs on the same inputs in both frameworks, the two
alternating run by run; the medians and their ratio are printed:

- `backbone`: the dilated ResNet-50 (stem to stage 4);
- `afnb`, `bottleneck` (3x3 conv 2048->512 + BN + ReLU), `apnb`,
  `classifier`: the decode head's parts, on the backbone's features;
- `resize`: bilinear resize of the 19-class logits to the input size;
- `total`: the whole forward pass (ours: `predict_on_batch`; theirs:
  preprocessing + `encode_decode`).

Usage:

    PYTHONPATH=. .venv/bin/python benchmarks/profile_forward.py --runs 3 [--precision mixed_bfloat16]
"""

import argparse
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, nargs=2, default=(512, 1024))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precision", default="float32", choices=("float32", "mixed_bfloat16"))
    parser.add_argument("--jit-compile", action="store_true", help="ours: XLA for every part")
    parser.add_argument("--parts", default="backbone,afnb,bottleneck,apnb,classifier,resize,total")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import numpy as np
    import tensorflow as tf
    import torch
    import torch.nn.functional as F

    import keras
    import keras_ann
    from keras_ann.ops import bilinear_resize

    if keras.backend.backend() != "tensorflow":
        sys.exit("profile_forward.py profiles the TensorFlow backend (KERAS_BACKEND=tensorflow)")
    torch.set_num_threads(args.threads)
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
    import tempfile

    import mmseg_ann

    reference = mmseg_ann.build_reference_ann(depth=50, num_classes=19, seed=0).eval()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "ann.pth")
        mmseg_ann.save_state_dict(reference, path)
        keras.config.set_dtype_policy(args.precision)
        ours = keras_ann.ANNSegmenter.from_preset(path)
        keras.config.set_dtype_policy("float32")

    h, w = args.size
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (1, h, w, 3)).astype("float32")
    normalized = mmseg_ann.normalize_rgb(images)
    x_torch = torch.from_numpy(normalized.transpose(0, 3, 1, 2).copy())
    with torch.no_grad():
        feats_t = reference.extract_feat(x_torch)
    low_t, high_t = feats_t[2], feats_t[3]
    head = reference.decode_head
    with torch.no_grad():
        fused_t = head.fusion(low_t, high_t)
        bottle_t = head.bottleneck(fused_t)
        context_t = head.context(bottle_t)
        logits_t = head.cls_seg(context_t)

    def nhwc(t):
        return tf.constant(t.permute(0, 2, 3, 1).numpy())

    low, high = nhwc(low_t), nhwc(high_t)
    fused, bottle, context, small_logits = nhwc(fused_t), nhwc(bottle_t), nhwc(context_t), nhwc(logits_t)
    image_tensor = tf.constant(normalized)
    dtype = ours.compute_dtype

    def ours_fn(layer, *inputs):
        fn = tf.function(lambda *xs: layer(*xs, training=False), jit_compile=args.jit_compile)
        cast = [tf.cast(x, dtype) if not isinstance(x, list) else [tf.cast(v, dtype) for v in x] for x in inputs]
        return lambda: fn(*cast)

    resize_fn = tf.function(lambda x: bilinear_resize(x, (h, w)), jit_compile=args.jit_compile)
    parts = {
        "backbone": (ours_fn(ours.backbone, image_tensor), lambda: reference.extract_feat(x_torch)),
        "afnb": (ours_fn(ours.get_layer("decode_fusion"), [low, high]), lambda: head.fusion(low_t, high_t)),
        "bottleneck": (ours_fn(ours.get_layer("decode_bottleneck"), fused), lambda: head.bottleneck(fused_t)),
        "apnb": (ours_fn(ours.get_layer("decode_context"), bottle), lambda: head.context(bottle_t)),
        "classifier": (ours_fn(ours.get_layer("decode_conv_seg"), context), lambda: head.cls_seg(context_t)),
        "resize": (
            lambda: resize_fn(small_logits),
            lambda: F.interpolate(logits_t, size=(h, w), mode="bilinear", align_corners=False),
        ),
        "total": (
            lambda: ours.predict_on_batch(images),
            lambda: mmseg_ann.reference_logits(reference, images),
        ),
    }
    print(f"ANN R-50-D8 forward {h}x{w}, ours {args.precision} (TensorFlow"
          f"{', XLA' if args.jit_compile else ''}) vs mmseg float32, {args.threads} threads, load {os.getloadavg()}")
    print("| part | ours median (s) | mmseg median (s) | ours/mmseg |")
    print("|---|---:|---:|---:|")
    for name in args.parts.split(","):
        mine, theirs = parts[name]
        times = {"ours": [], "mmseg": []}
        with torch.no_grad():
            mine(), theirs()  # warm-up
            for _ in range(args.runs):
                for key, fn in (("ours", mine), ("mmseg", theirs)):
                    start = time.perf_counter()
                    fn()
                    times[key].append(time.perf_counter() - start)
        a, b = statistics.median(times["ours"]), statistics.median(times["mmseg"])
        print(f"| {name} | {a:.3f} | {b:.3f} | {a / b:.2f} |", flush=True)
    print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
