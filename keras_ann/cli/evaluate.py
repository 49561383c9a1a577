"""`keras-ann evaluate`: the mIoU of a model on a dataset split
(`keras_ann.evaluation`)."""

from keras_ann.cli.arguments import output_dir, positive_int
from keras_ann.cli.options import MODEL_HELP, add_dataset_args, add_test_args, evaluation_data, test_protocol


def add_parser(subparsers):
    evaluate = subparsers.add_parser("evaluate", help="mIoU of a model on a dataset split")
    evaluate.add_argument("model", help=MODEL_HELP)
    add_dataset_args(evaluate, training=False)
    evaluate.add_argument("--data-root", required=True)
    evaluate.add_argument("--split", default="val", help="the split to score (default val); several by commas, "
                          "e.g. val,test, each with its table")  # fmt: skip
    evaluate.add_argument("--ms-flip", action="store_true", help="multi-scale + flip test")
    evaluate.add_argument(
        "--steps", type=positive_int, help="evaluate on the first N images only (default: all; as train --eval-steps)"
    )
    evaluate.add_argument(
        "--save-preset", type=output_dir, metavar="DIR",
        help="also write the model as a preset directory with this protocol and these scores (for keras-ann push)",
    )
    add_test_args(evaluate)
    evaluate.set_defaults(func=run)


def run(args):
    import argparse

    from keras_ann.evaluation import evaluate_dataset
    from keras_ann.presets import load_model

    splits = [split.strip() for split in args.split.split(",") if split.strip()]
    if args.save_preset and len(splits) > 1:
        raise SystemExit("keras-ann evaluate: error: --save-preset records the scores of one split: give one --split")
    model = load_model(args.model, inference=True)
    asked = test_protocol(model, args)
    for split in splits:  # one table each
        dataset, protocol, config = evaluation_data(argparse.Namespace(**dict(vars(args), split=split)), model, asked)
        window = f" {protocol.crop} / {protocol.stride}" if protocol.mode == "slide" else ""
        scales = f"ms+flip {list(protocol.ratios)}" if protocol.multiscale else f"at scale {protocol.scale or dataset.test_scale}"
        print(f"testing {protocol.mode}{window} {scales} on {config.name} {split}")
        steps = min(args.steps or len(dataset), len(dataset))
        results = evaluate_dataset(model, dataset.raw_dataset().batch(1), protocol, steps=steps, verbose=2)
    if args.save_preset:
        _save_preset(args, protocol, results, steps)


def _save_preset(args, protocol, results, images):
    """`--save-preset DIR`: the model (not batch-norm folded) with the
    protocol it was scored with, and its scores."""
    import keras_ann
    from keras_ann.models.preset_directory import save_preset

    model = keras_ann.ANNSegmenter.from_preset(args.model, test_protocol=protocol)
    save_preset(model, args.save_preset, evaluation=dict(results, data=protocol.data, split=args.split, images=images))
    print(f"wrote the preset directory {args.save_preset} (mIoU {results['mIoU']:.2f} on {protocol.data} {args.split})")
