"""ANN R-50-D8 on one GPU: keras-ann (JAX backend) beside mmsegmentation.

For each Cityscapes setting of the reference table (512x1024, and 769x769
with `align_corners=True`) this measures

- ours: `keras-ann benchmark` of the preset, each in a fresh process so that
  JAX's peak device memory (`peak_bytes_in_use`, which cannot be reset)
  belongs to that setting alone: inference fps (whole image, batch 1,
  median after warm-up) and the peak device memory of training steps on the
  preset's crop with 2 images, the reference's images per GPU;
- theirs: mmsegmentation 1.2.2's ANN (the test harness
  `tests/reference/mmseg_ann.py`) on the same GPU with PyTorch: the same
  forward timing (`torch.cuda.synchronize()` around each run) and
  `torch.cuda.max_memory_allocated()` of training steps (what mmseg's logger
  reports as memory, the reference table's "Mem (GB)").

The reference table (V100): R-50-D8 512x1024 6.0 GB, 3.71 fps; 769x769
6.8 GB, 1.70 fps (its fps come from mmseg's own benchmark tool on its test
pipeline; here both sides get the same input).

Run it through `benchmarks/gpu_jax.sh` (installs Keras from carried wheels
on a machine without internet). Directly:

    KERAS_BACKEND=jax XLA_PYTHON_CLIENT_PREALLOCATE=false \
        PYTHONPATH=. python benchmarks/gpu_jax.py --runs 10 --warmup 3

CPU check with tiny sizes (what the repository's own machine can run):

    KERAS_BACKEND=jax PYTHONPATH=. python benchmarks/gpu_jax.py \
        --sizes 64x128 --train-size 64 64 --runs 1 --warmup 1 --device cpu
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import types

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRESETS = {
    "512x1024": "ann_r50_d8_cityscapes_512x1024_40k",
    "769x769": "ann_r50_d8_cityscapes_769x769_40k",
}


def _size(text):
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW, e.g. 512x1024, got {text!r}")
    return h, w


def _preset_for(size):
    """The preset whose setting `size` is (align_corners for 769x769), or
    the 512x1024 preset for other sizes (tiny checks)."""
    h, w = size
    return PRESETS.get(f"{h}x{w}", PRESETS["512x1024"])


# === Ours ===


def run_ours(size, args, precision):
    preset = _preset_for(size)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "result.json")
        command = [
            sys.executable, "-m", "keras_ann.cli", "benchmark", preset,
            "--input-size", str(size[0]), str(size[1]),
            "--runs", str(args.runs), "--warmup", str(args.warmup),
            "--precision", precision, "--train-batch-size", str(args.train_batch),
            "--json", path,
        ]
        if args.train_size:
            command += ["--train-size", *map(str, args.train_size)]
        if args.remat:
            command.append("--remat")
        env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
        env.setdefault("KERAS_BACKEND", "jax")
        env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
        subprocess.run(command, check=True, env=env, stdout=sys.stderr)
        with open(path) as f:
            return json.load(f)


# === Theirs (mmsegmentation on PyTorch) ===


def _install_cv2_stub():
    """mmcv imports OpenCV at import time; ANN's forward and training step
    on tensors never call it. Where OpenCV is not installed (its wheel is
    too large to carry to the GPU machine) a placeholder module lets the
    import succeed: its constants are 0 and calling a function raises."""
    try:
        import cv2  # noqa: F401

        return False
    except ImportError:
        pass

    class _Missing:
        def __init__(self, name):
            self.name = name

        def __call__(self, *args, **kwargs):
            raise RuntimeError(f"cv2.{self.name} called, but OpenCV is not installed (stub)")

    stub = types.ModuleType("cv2")
    stub.__version__ = "0.0.0-stub"

    def __getattr__(name):
        if name.startswith("__"):
            raise AttributeError(name)
        if name.upper() == name:  # a constant (IMREAD_COLOR, INTER_LINEAR, ...)
            return 0
        return _Missing(name)

    stub.__getattr__ = __getattr__
    sys.modules["cv2"] = stub
    return True


def mmseg_worker(args):
    import numpy as np
    import torch

    stubbed = _install_cv2_stub()
    sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
    import mmseg_ann
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if not cuda:
        torch.set_num_threads(max(1, os.cpu_count() or 1))

    def sync():
        if cuda:
            torch.cuda.synchronize()

    rng = np.random.default_rng(0)
    results = {"device": torch.cuda.get_device_name(0) if cuda else "cpu", "cv2_stub": stubbed, "sizes": {}}
    for size in args.sizes:
        h, w = size
        align_corners = f"{h}x{w}" == "769x769"
        model = mmseg_ann.build_reference_ann(depth=50, num_classes=19, align_corners=align_corners, seed=0)
        model = model.to(device).eval()
        images = rng.uniform(0, 255, (1, h, w, 3)).astype("float32")
        bgr = torch.from_numpy(np.ascontiguousarray(images[..., ::-1].transpose(0, 3, 1, 2)))
        meta = [dict(ori_shape=(h, w), img_shape=(h, w), pad_shape=(h, w), padding_size=[0, 0, 0, 0])]

        def forward():
            with torch.no_grad():
                data = model.data_preprocessor(dict(inputs=[bgr[0].to(device)]), training=False)
                model.encode_decode(data["inputs"], meta).cpu()

        times = []
        for i in range(args.warmup + args.runs):
            sync()
            start = time.perf_counter()
            forward()
            sync()
            if i >= args.warmup:
                times.append(time.perf_counter() - start)

        th, tw = args.train_size or size
        n = args.train_batch
        crops = rng.uniform(0, 255, (n, th, tw, 3)).astype("float32")
        labels = rng.integers(0, 19, (n, th, tw))
        model.train()
        model.data_preprocessor.size = (th, tw)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
        inputs = [torch.from_numpy(np.ascontiguousarray(c[..., ::-1].transpose(2, 0, 1))).to(device) for c in crops]
        samples = []
        for i in range(n):
            sample = SegDataSample()
            sample.gt_sem_seg = PixelData(data=torch.from_numpy(labels[i][None]).to(device))
            sample.set_metainfo(dict(img_shape=(th, tw), ori_shape=(th, tw), pad_shape=(th, tw)))
            samples.append(sample)
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        train_times = []
        for i in range(args.warmup + args.runs):
            sync()
            start = time.perf_counter()
            data = model.data_preprocessor(dict(inputs=inputs, data_samples=samples), training=True)
            loss, _ = model.parse_losses(model(**data, mode="loss"))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            sync()
            if i >= args.warmup:
                train_times.append(time.perf_counter() - start)
        results["sizes"][f"{h}x{w}"] = {
            "inference_times_s": times,
            "fps": 1.0 / statistics.median(times),
            "train_step_s": statistics.median(train_times),
            "train_crop": f"{th}x{tw}",
            "train_memory_gb": torch.cuda.max_memory_allocated() / 1e9 if cuda else None,
        }
        model = optimizer = None  # free the GPU memory before the next size
        if cuda:
            torch.cuda.empty_cache()
    print(json.dumps(results))


def run_mmseg(args):
    command = [sys.executable, os.path.abspath(__file__), "--mmseg-worker", *sys.argv[1:]]
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run(command, check=True, env=env, stdout=subprocess.PIPE, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


# === Report ===


def _fmt(value, spec="{:.2f}"):
    return "-" if value is None else spec.format(value)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=_size, nargs="+", default=[(512, 1024), (769, 769)])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--train-size", type=int, nargs=2, metavar=("H", "W"), help="default: the preset's crop")
    parser.add_argument("--train-batch", type=int, default=2, help="images per training step (reference: 2 per GPU)")
    parser.add_argument("--precisions", nargs="+", default=["float32", "mixed_bfloat16"])
    parser.add_argument("--device", default="cuda", help="mmseg's torch device")
    parser.add_argument("--remat", action="store_true",
                        help="ours: train with recomputation (keras-ann benchmark --remat; JAX's jax.checkpoint)")
    parser.add_argument("--skip-mmseg", action="store_true")
    parser.add_argument("--skip-ours", action="store_true")
    parser.add_argument("--json", help="write all results to this file")
    parser.add_argument("--mmseg-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.mmseg_worker:
        return mmseg_worker(args)

    report = {"date": time.strftime("%Y-%m-%d %H:%M"), "argv": sys.argv[1:], "ours": {}, "mmseg": None}
    if not args.skip_ours:
        for size in args.sizes:
            for precision in args.precisions:
                result = run_ours(size, args, precision)
                report["ours"][f"{size[0]}x{size[1]} {precision}"] = result
                print(f"ours {size} {precision}: {result['fps']:.2f} fps, Mem {_fmt(result['mem_gb'])} GB",
                      file=sys.stderr, flush=True)
    if not args.skip_mmseg:
        report["mmseg"] = run_mmseg(args)

    lines = [
        "| input | precision | ours fps | mmseg fps | ours/mmseg speed | ours train Mem (GB) | "
        "mmseg train Mem (GB) | ours train step (s) | mmseg train step (s) | device |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for size in args.sizes:
        key = f"{size[0]}x{size[1]}"
        theirs = (report["mmseg"] or {}).get("sizes", {}).get(key, {})
        for precision in args.precisions if not args.skip_ours else ["float32"]:
            ours = report["ours"].get(f"{key} {precision}", {})
            speed = ours.get("fps") / theirs["fps"] if ours.get("fps") and theirs.get("fps") else None
            device = ours.get("device") or (report["mmseg"] or {}).get("device")
            lines.append(
                f"| {key} | {precision} | {_fmt(ours.get('fps'))} | {_fmt(theirs.get('fps'))} | "
                f"{_fmt(speed)} | {_fmt(ours.get('mem_gb'))} | {_fmt(theirs.get('train_memory_gb'))} | "
                f"{_fmt(ours.get('train_step_s'), '{:.3f}')} | {_fmt(theirs.get('train_step_s'), '{:.3f}')} | {device} |"
            )
    print("\n".join(lines))
    print("mmseg runs in float32 in every row; Mem: peak device memory of training steps "
          f"({args.train_batch} images per step; host RSS when run on a CPU).")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
