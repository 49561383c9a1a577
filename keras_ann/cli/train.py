"""`keras-ann train`: train a recipe, a recipe file or own data
(`keras_ann.recipes.train_recipe`, `keras_ann.training.train`)."""

import os
import sys

from keras_ann.cli.arguments import Pair, duration, non_negative_int, output_dir, positive_int, remat_parts
from keras_ann.cli.options import add_dataset_args, dataset_keys


def add_parser(subparsers):
    from keras_ann.precision import CHOICES as PRECISION_CHOICES

    train = subparsers.add_parser(
        "train",
        help="train a recipe, a recipe file, or your own data (--dataset folder); resumes from --work-dir",
    )
    train.add_argument(
        "recipe", nargs="?",
        help="a recipe name (e.g. ann_r50_d8_cityscapes_512x1024_40k) or a recipe file (.json, as "
        "--print-config prints); default with --dataset: ann_r18_d8_camvid_cpu",
    )
    train.add_argument("--data-root", help="the dataset root (required unless --print-config)")
    train.add_argument(
        "--work-dir", type=output_dir, help="checkpoints, logs and the resume state (required unless --print-config)"
    )
    train.add_argument(
        "--print-config", action="store_true",
        help="print the fully resolved recipe (after the other flags) as JSON and exit; reads no data",
    )
    train.add_argument(
        "--precision", default="auto", choices=PRECISION_CHOICES,
        help="auto (default): bfloat16 where the CPU or GPU runs it natively, else float32",
    )
    train.add_argument(
        "--remat", nargs="?", const=True, default=False, type=remat_parts, metavar="PARTS",
        help="recompute the backbone's activations in the backward pass (mmseg's with_cp): much less memory, "
        "a slower step; PARTS (comma-separated, from stem, stage1..stage4; default all) picks where, e.g. "
        "--remat=stem,stage1 for the large, cheap high-resolution ones",
    )
    train.add_argument("--iterations", type=positive_int)
    train.add_argument(
        "--time-budget", type=duration, metavar="DURATION",
        help="instead of --iterations: the whole run's time, e.g. 15m or 1h; the iteration count is planned "
        "from a timed step, evaluation and save, and the poly schedule runs to its end",
    )
    train.add_argument("--batch-size", type=positive_int, help="total batch over all devices")
    train.add_argument("--eval-interval", type=positive_int)
    train.add_argument(
        "--eval-steps", type=positive_int,
        help="evaluate on the first N validation images only (default: all; as evaluate --steps)",
    )
    train.add_argument("--crop-size", type=positive_int, nargs=2, action=Pair, metavar=("H", "W"))
    train.add_argument(
        "--scale", type=positive_int, nargs=2, action=Pair, metavar=("LONG", "SHORT"),
        help="RandomResize and test Resize scale",
    )
    train.add_argument(
        "--checkpoint-interval", type=positive_int,
        help="save the resume state every N iterations (divides --eval-interval); a killed run loses at most N",
    )
    train.add_argument(
        "--keep-snapshots", type=positive_int, metavar="N",
        help="save iter_<N>.keras at every evaluation, keeping the newest N (default: none)",
    )
    train.add_argument(
        "--imagenet", metavar="PATH|URL|none",
        help="ImageNet ResNet-V1c checkpoint for the backbone (default: the recipe's, downloaded once; "
        "'none': from scratch)",
    )
    train.add_argument(
        "--from-preset", metavar="NAME|PATH|HANDLE",
        help="fine-tune a released model (see `keras-ann presets`), a .keras/.pth file, a preset directory or a "
        "hub handle (hf://OWNER/NAME); "
        "the classifiers are new when --num-classes differs (recipe key load_from)",
    )
    train.add_argument(
        "--loss", metavar="NAME[:WEIGHT],...",
        help="the heads' losses, summed (recipe key loss), e.g. --loss CrossEntropy:1,Dice:3; names: "
        "CrossEntropy, Dice, Focal, Lovasz, Tversky, OHEM (their defaults; other arguments with "
        "--set loss=[{...}]); default: the recipe's (cross-entropy)",
    )
    train.add_argument(
        "--set", action="append", metavar="KEY=VALUE",
        help="override a recipe key (the keys of --print-config), value as JSON where possible, "
        "e.g. --set lr=0.005 --set crop_size=[256,256]; applied last",
    )
    train.add_argument("--seed", type=non_negative_int, default=0)
    train.add_argument(
        "--allow-changes", action="store_true", help="resume although the settings differ from the run's recipe.json"
    )
    train.add_argument(
        "--restart", action="store_true",
        help="start over from iteration 0, replacing the work dir's state, history, models and snapshots: once the "
        "data is checked they move to WORK_DIR/.previous-<time>/, removed at the new run's first checkpoint",
    )
    add_dataset_args(train, training=True)
    train.set_defaults(func=run)


def _recipe(args):
    from keras_ann.data.errors import DatasetError
    from keras_ann.recipes import DEFAULT_RECIPE, train_recipe

    if args.recipe is None and args.dataset is None:
        raise SystemExit(
            "keras-ann train: error: name a recipe or a recipe file (see `keras-ann train --help`), "
            f"or give --dataset (e.g. --dataset folder: your own data on the default recipe {DEFAULT_RECIPE})"
        )
    schedule = dict(
        iterations=args.iterations, total_batch=args.batch_size, val_interval=args.eval_interval,
        crop_size=args.crop_size, scale=args.scale, load_from=args.from_preset, time_budget=args.time_budget,
    )  # fmt: skip
    say = (lambda line: print(line, file=sys.stderr)) if args.print_config else print  # JSON on stdout
    try:
        return train_recipe(
            args.recipe, data_keys=dataset_keys(args), changes=schedule, loss=args.loss, imagenet=args.imagenet,
            settings=args.set, data_root=args.data_root, say=say,
        )  # fmt: skip
    except DatasetError:  # the data's own problem: an error of the run
        raise
    except (ValueError, OSError) as error:
        raise SystemExit(f"keras-ann train: error: {error}")


def run(args):
    import json

    if args.time_budget and (args.iterations or args.eval_interval):
        raise SystemExit("keras-ann train: error: --time-budget plans the iterations and evaluations: "
                         "give it or --iterations/--eval-interval, not both")  # fmt: skip
    recipe = _recipe(args)
    if args.print_config:
        print(json.dumps(recipe.to_config(), indent=2))
        return
    missing = [flag for flag, value in (("--data-root", args.data_root), ("--work-dir", args.work_dir)) if not value]
    if missing:
        raise SystemExit(
            f"keras-ann train: error: the following arguments are required: {', '.join(missing)} "
            "(only --print-config runs without them)"
        )
    from keras_ann.budget import process_start
    from keras_ann.training import ResumeError, WorkDirError, train

    try:
        train(
            recipe, args.data_root, args.work_dir, precision=args.precision, remat=args.remat,
            checkpoint_interval=args.checkpoint_interval, keep_snapshots=args.keep_snapshots,
            # The recipe holds the choice; "none" only to say so in the log.
            imagenet_checkpoint="none" if (args.imagenet or "").lower() == "none" else None,
            seed=args.seed, eval_steps=args.eval_steps, allow_changes=args.allow_changes, restart=args.restart,
            budget_start=process_start(),  # the budget counts the command's start-up too
        )  # fmt: skip
    except (ResumeError, WorkDirError) as error:
        raise SystemExit(f"keras-ann train: error: {error}")
    print(f"finished; checkpoint: {os.path.join(args.work_dir, 'latest.keras')}")
