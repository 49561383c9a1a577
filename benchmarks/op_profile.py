"""Where a step's time goes, by kind of operation, in TensorFlow and PyTorch.

`profile_tensorflow(step, runs)` runs `step` under TensorFlow's profiler and
sums the durations of the executed graph ops (the `name:Type` events of
the `tf_Compute` threads of the profile's XPlane); `profile_torch(step,
runs)` runs it under `torch.profiler` and sums each aten op's self time.
Both sort the ops into the same categories (`CATEGORIES`) and return
seconds per step per category, so the two frameworks' steps can be read
side by side (`vs_mmseg.py --profile`).

The sums are of op durations, not of wall time: ops that overlap on
TensorFlow's inter-op threads count twice, Python and framework overhead
between ops not at all; each result also gives the step's wall time under
the profiler and each category's share of it (`wall_shares`), the figure
to compare across the two frameworks.
"""

import collections
import glob
import os
import re
import tempfile
import time

CATEGORIES = (
    "convolution forward",
    "convolution backward",
    "batch norm",
    "matrix products (attention, 1x1 as matmul)",
    "elementwise & activations",
    "reductions",
    "casts & copies",
    "pooling & resize",
    "loss",
    "optimizer update",
    "other",
)

_OPTIMIZER = re.compile(r"(^|/)(torch_?sgd|sgd|optimizer)[^/]*/", re.IGNORECASE)
_LOSS = re.compile(r"(^|/)[^/]*(loss|cross_?entropy)[^/]*/", re.IGNORECASE)


def tensorflow_category(name, op_type):
    """The category of a TensorFlow op `name` of type `op_type`."""
    t = op_type.lstrip("_").replace("MklNative", "").replace("Mkl", "")
    if _OPTIMIZER.search(name) and not name.startswith("gradient"):
        return "optimizer update"
    if "Conv2DBackprop" in t or "DepthwiseConv2dNativeBackprop" in t:
        return "convolution backward"
    if "Conv2D" in t or "DepthwiseConv2dNative" in t or "Conv3D" in t:
        return "convolution forward"
    if "BatchNorm" in t:
        return "batch norm"
    if "MatMul" in t or t == "Einsum":
        return "matrix products (attention, 1x1 as matmul)"
    if _LOSS.search(name):
        return "loss"
    if t in ("Cast", "Identity", "Transpose", "ConcatV2", "Pack", "Slice", "StridedSlice", "Pad", "Reshape",
             "Tile", "GatherV2", "Split", "SplitV", "Fill", "ZerosLike", "OnesLike", "Select", "SelectV2"):
        return "casts & copies"
    if "Pool" in t or "Resize" in t:
        return "pooling & resize"
    if t in ("Sum", "Mean", "Max", "Min", "Prod", "ArgMax", "BiasAddGrad", "All", "Any"):
        return "reductions"
    if t in ("ReadVariableOp", "AssignVariableOp", "AssignAddVariableOp", "AssignSubVariableOp", "NoOp",
             "Const", "VarHandleOp", "_Arg", "_Retval", "Shape", "Size", "Rank"):
        return "other"
    return "elementwise & activations"


def torch_category(name):
    """The category of a PyTorch op (a `torch.profiler` event name)."""
    n = name.lower()
    if "optimizer" in n or "_foreach" in n or "sgd" in n:
        return "optimizer update"
    if "convolution_backward" in n or "conv" in n and "backward" in n:
        return "convolution backward"
    if "conv" in n:
        return "convolution forward"
    if "batch_norm" in n:
        return "batch norm"
    if re.search(r"aten::(mm|bmm|addmm|baddbmm|matmul|einsum|linear)\b", n):
        return "matrix products (attention, 1x1 as matmul)"
    if "nll_loss" in n or "cross_entropy" in n or "log_softmax" in n:
        return "loss"
    if re.search(r"aten::(to|_to_copy|copy_|clone|contiguous|cat|stack|view|reshape|permute|transpose|"
                 r"slice|select|pad|constant_pad_nd|empty|empty_strided|zeros|zero_|fill_|t|expand|"
                 r"as_strided|unsqueeze|squeeze|flatten|split|narrow|index|index_select|detach|"
                 r"resolve_conj|resolve_neg|_unsafe_view|alias)\b", n):
        return "casts & copies"
    if "pool" in n or "upsample" in n or "grid_sampler" in n or "interpolate" in n:
        return "pooling & resize"
    if re.search(r"aten::(sum|mean|max|min|amax|amin|prod|argmax|all|any|norm)\b", n):
        return "reductions"
    if n.startswith("aten::"):
        return "elementwise & activations"
    return "other"


def _summary(totals, runs, wall):
    """Per step: each category's op time (`categories`), their sum, the wall
    time, and each category charged its share of the wall time
    (`wall_shares`: TensorFlow runs up to two ops at once, so its op times
    add up to more than the wall time)."""
    per_step = {c: totals.get(c, 0.0) / runs for c in CATEGORIES}
    op_sum, wall = sum(per_step.values()), wall / runs
    shares = {c: v * wall / op_sum if op_sum else 0.0 for c, v in per_step.items()}
    return {"categories": per_step, "op_sum_s": op_sum, "wall_s": wall, "wall_shares": shares}


def profile_tensorflow(step, runs=2, top=15):
    """Seconds per step of each category of `step`'s TensorFlow ops, and
    the `top` op types by time."""
    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        begin = time.perf_counter()
        for _ in range(runs):
            step()
        wall = time.perf_counter() - begin
        tf.profiler.experimental.stop()
        (path,) = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)
        space = xplane_pb2.XSpace()
        with open(path, "rb") as f:
            space.ParseFromString(f.read())
    totals, by_type, by_category = collections.Counter(), collections.Counter(), collections.defaultdict(collections.Counter)
    for plane in space.planes:
        if plane.name != "/host:CPU":
            continue
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for event in line.events:
                label = plane.event_metadata[event.metadata_id].name
                if ":" not in label or label.startswith(("ThreadpoolListener", "ExecutorState")):
                    continue
                name, op_type = label.rsplit(":", 1)
                seconds = event.duration_ps * 1e-12
                category = tensorflow_category(name, op_type)
                totals[category] += seconds
                by_type[op_type] += seconds
                by_category[category][name] += seconds
    result = _summary(totals, runs, wall)
    result["top_ops"] = {k: v / runs for k, v in by_type.most_common(top)}
    result["top_names"] = {c: {k: v / runs for k, v in n.most_common(8)} for c, n in by_category.items()}
    return result


def _torch_ancestor_category(event):
    """'optimizer update' or 'loss' for an op run inside the optimizer's
    step / zero_grad or inside a loss function (its parents in the
    profile's call tree), else None."""
    parent = event.cpu_parent
    while parent is not None:
        if parent.name.startswith("Optimizer."):
            return "optimizer update"
        if re.search(r"cross_entropy|nll_loss", parent.name):
            return "loss"
        parent = parent.cpu_parent
    return None


def profile_torch(step, runs=2, top=15):
    """Seconds per step of each category of `step`'s PyTorch ops (self
    times; an op inside the optimizer's step or a loss counts there), and
    the `top` ops by self time."""
    import torch

    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        begin = time.perf_counter()
        for _ in range(runs):
            step()
        wall = time.perf_counter() - begin
    totals, by_op = collections.Counter(), collections.Counter()
    for event in prof.events():
        seconds = event.self_cpu_time_total * 1e-6
        totals[_torch_ancestor_category(event) or torch_category(event.name)] += seconds
        by_op[event.name] += seconds
    result = _summary(totals, runs, wall)
    result["top_ops"] = {k: v / runs for k, v in by_op.most_common(top)}
    return result
