"""`keras-ann demo`: train a small ANN on generated scenes, score it, write
a figure (`keras_ann.demo.train_demo`)."""

import os

from keras_ann.cli.arguments import non_negative_int, output_file, positive_float, positive_int


def add_parser(subparsers):
    demo = subparsers.add_parser(
        "demo",
        help="train a small ANN on generated scenes (under a minute and a half on 2 CPU cores), score it, write a PNG",
    )
    demo.add_argument(
        "--seconds", type=positive_float, default=90.0,
        help="training time budget: training stops there, done or not",
    )
    demo.add_argument("--iterations", type=positive_int, default=400, help="iterations of the poly schedule")
    demo.add_argument("--batch-size", type=positive_int, default=8)
    demo.add_argument("--lr", type=positive_float, default=0.1, help="initial learning rate (SGD, momentum 0.9)")
    demo.add_argument("--size", type=positive_int, default=64, help="scene height and width in pixels")
    demo.add_argument("--train-images", type=positive_int, default=512, help="training scenes")
    demo.add_argument("--val-images", type=positive_int, default=48, help="validation scenes (a fixed set)")
    demo.add_argument("--seed", type=non_negative_int, default=0, help="seed of the training scenes and the weights")
    demo.add_argument(
        "--output", type=output_file, default="outputs/demo.png", help="the figure: image, ground truth, prediction"
    )
    demo.set_defaults(func=run)


def run(args):
    from keras_ann.data.synthetic import SYNTHETIC_CLASSES
    from keras_ann.demo import train_demo
    from keras_ann.metrics import format_table

    result = train_demo(
        seconds=args.seconds, iterations=args.iterations, batch_size=args.batch_size, lr=args.lr, size=args.size,
        train_images=args.train_images, val_images=args.val_images, seed=args.seed,
    )  # fmt: skip
    print(f"trained {result.iterations} of {args.iterations} iterations in {result.seconds:.0f} s")
    print(f"validation: {result.validation_images} scenes")
    print(format_table(result.results, SYNTHETIC_CLASSES))
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    result.figure.save(args.output)
    print(f"wrote {args.output}")
