"""What the A/B scripts share: one model (or op) in two variants, timed in
one process with the variants alternating run by run
(`batch_norm_folding.py`, `pooling_products.py`, `conv_as_matmul.py`)."""

import argparse
import time


def alternate(functions, runs):
    """`{name: [seconds, ...]}` of `runs` rounds, each calling every one of
    `functions` (a dict of callables, already warm) once, in order."""
    times = {name: [] for name in functions}
    for _ in range(runs):
        for name, f in functions.items():
            begin = time.perf_counter()
            f()
            times[name].append(time.perf_counter() - begin)
    return times


def folded_model_parser(doc):
    """The arguments of a script that times one folded model traced two
    ways (`pooling_products.py`, `conv_as_matmul.py`); `doc` is the
    script's docstring."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--backbone", default="resnet50_d8")
    parser.add_argument("--size", type=int, nargs=2, default=(512, 1024), metavar=("H", "W"))
    parser.add_argument("--precision", default="float32", choices=("float32", "mixed_bfloat16"))
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    return parser
