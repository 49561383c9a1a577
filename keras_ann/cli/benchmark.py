"""`keras-ann benchmark`: inference fps, training step time and peak memory
(`keras_ann.benchmark`)."""

import argparse

from keras_ann.cli.arguments import Pair, non_negative_int, output_file, positive_int, remat_parts


def add_parser(subparsers):
    from keras_ann.precision import CHOICES as PRECISION_CHOICES

    benchmark = subparsers.add_parser(
        "benchmark", help="inference fps, training step time and peak memory of a preset or backbone"
    )
    benchmark.add_argument("model", help="a preset name (see `keras-ann presets`) or a backbone name, e.g. resnet50_d8")
    benchmark.add_argument("--num-classes", type=positive_int, help="classes (required with a backbone name)")
    benchmark.add_argument(
        "--input-size", type=positive_int, nargs=2, action=Pair, metavar=("H", "W"),
        help="inference image size (default: the preset's test window or crop)",
    )
    benchmark.add_argument("--batch-size", type=positive_int, default=1, help="inference batch")
    benchmark.add_argument(
        "--precision", default="auto", choices=PRECISION_CHOICES,
        help="auto (default): bfloat16 where the CPU or GPU runs it natively, else float32",
    )
    benchmark.add_argument("--runs", type=positive_int, default=5, help="timed runs per phase (median reported)")
    benchmark.add_argument("--warmup", type=non_negative_int, default=1, help="untimed runs first")
    benchmark.add_argument(
        "--train", action=argparse.BooleanOptionalAction, default=True,
        help="also time training steps with the recipe's loss and optimiser",
    )
    benchmark.add_argument(
        "--train-size", type=positive_int, nargs=2, action=Pair, metavar=("H", "W"),
        help="training crop (default: the preset's)",
    )
    benchmark.add_argument(
        "--train-batch-size", type=positive_int, help="images per training step (default: the recipe's images per GPU)"
    )
    benchmark.add_argument(
        "--jit-compile", action=argparse.BooleanOptionalAction, default=None,
        help="XLA compilation (default: Keras's choice; JAX always compiles)",
    )
    benchmark.add_argument(
        "--fold-batch-norm", action=argparse.BooleanOptionalAction, default=True,
        help="time inference with the batch norm folded into the convolutions, as predict/evaluate/export run it "
        "(default: on)",
    )
    benchmark.add_argument(
        "--remat", nargs="?", const=True, default=False, type=remat_parts, metavar="PARTS",
        help="time training with recomputation, as `train --remat [PARTS]` (less memory, a slower step)",
    )
    benchmark.add_argument("--json", type=output_file, help="also write the full results to this JSON file")
    benchmark.add_argument("--dry-run", action="store_true", help="check the arguments and print the plan only")
    benchmark.set_defaults(func=run)


def run(args):
    import json

    from keras_ann.benchmark import check_benchmark_memory, format_results, resolve_spec, run_benchmark

    try:
        spec = resolve_spec(
            args.model, num_classes=args.num_classes, input_size=args.input_size, batch_size=args.batch_size,
            precision=args.precision, runs=args.runs, warmup=args.warmup, train=args.train,
            train_size=args.train_size, train_batch_size=args.train_batch_size, jit_compile=args.jit_compile,
            fold_batch_norm=args.fold_batch_norm, remat=args.remat,
        )  # fmt: skip
        check_benchmark_memory(spec)
    except ValueError as error:
        raise SystemExit(f"keras-ann benchmark: error: {error}")
    if args.dry_run:
        h, w = spec.input_size
        line = f"{spec.model}: {spec.model_config}, inference {spec.batch_size}x{h}x{w} {spec.precision}"
        if spec.train:
            th, tw = spec.train_size
            line += f", training {spec.train_batch_size}x{th}x{tw}"
            if spec.remat:
                line += " with remat" + ("" if spec.remat is True else " of " + ",".join(spec.remat))
        print(line)
        return
    result = run_benchmark(spec, verbose=True)
    print(format_results([result]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
