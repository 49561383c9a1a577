"""`keras-ann predict`: segment images and write label maps and overlays,
or Cityscapes test server results (`keras_ann.inference.segment`, the file
names of `keras_ann.file_lists`)."""

import os
import sys

from keras_ann.cli.arguments import output_dir
from keras_ann.cli.options import MODEL_HELP, add_dataset_args, add_test_args, test_protocol


def add_parser(subparsers):
    predict = subparsers.add_parser("predict", help="segment images and write label maps and overlays")
    predict.add_argument("model", help=MODEL_HELP)
    predict.add_argument(
        "images", nargs="+",
        help="image files, directories (their images, recursively) or glob patterns such as 'photos/*.jpg'",
    )
    predict.add_argument(
        "--output-dir", type=output_dir, default="outputs/predictions",
        help="where <name>_labels.png and <name>_overlay.png go; inputs keep their directories "
        "relative to the inputs' common folder, so a/x.jpg and b/x.jpg do not overwrite each other, and "
        "every input gets its own name (x.jpg, x.png: x_jpg, x_png). A run whose output would replace one "
        "of its inputs (e.g. an earlier x_labels.png among the images) is refused before the model loads: "
        "give another --output-dir; outputs written by this run are never read as inputs",
    )
    predict.add_argument(
        "--format", choices=("overlay", "cityscapes"), default="overlay",
        help="overlay (default): <name>_labels.png and <name>_overlay.png as above; cityscapes: the test server's "
        "submission, for each <city>_<seq>_<frame>_leftImg8bit.png a PNG of that name directly in --output-dir "
        "holding Cityscapes label ids (7, 8, 11, ..., 33), nothing else (a 19-class model)",
    )
    add_dataset_args(predict, training=False)
    add_test_args(predict)
    predict.set_defaults(func=run)


def run(args):
    from keras_ann.data.errors import DatasetError
    from keras_ann.data.io import read_image
    from keras_ann.file_lists import image_paths, output_names, refuse_overwriting_inputs
    from keras_ann.inference import segment
    from keras_ann.tiled_inference import label_dtype
    from keras_ann.presets import load_model
    from keras_ann.visualization import overlay_figure, palette_for_classes, save_label_map

    paths = image_paths(args.images)  # before loading the model
    if args.format == "cityscapes":
        return _cityscapes(args, paths)
    names = output_names(paths)
    refuse_overwriting_inputs(paths, names, args.output_dir)  # before loading the model
    model = load_model(args.model, inference=True)
    protocol = test_protocol(model, args)
    os.makedirs(args.output_dir, exist_ok=True)
    palette = protocol.palette if protocol.palette is not None else palette_for_classes(model.num_classes)
    if len(palette) < model.num_classes:
        raise SystemExit(
            f"keras-ann predict: error: --palette has {len(palette)} colours but the model predicts "
            f"{model.num_classes} classes."
        )
    unreadable = []
    for path, name in zip(paths, names):
        # As training reads images; a bad file is named and skipped.
        try:
            image = read_image(path)
        except (DatasetError, OSError, ValueError) as error:
            print(f"keras-ann predict: error: {error}", file=sys.stderr)
            unreadable.append(path)
            continue
        # Huge images: sliding windows run in tiles; uint8 labels (81 MB for 9000x9000).
        labels = segment(model, image[None], protocol, dtype=label_dtype(model.num_classes))[0]
        out = os.path.join(args.output_dir, name)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        save_label_map(labels, f"{out}_labels.png", palette)
        overlay_figure(image, labels, palette, protocol.class_names).save(f"{out}_overlay.png")
        print(f"{path}: wrote {out}_labels.png and {out}_overlay.png")
    if unreadable:
        raise SystemExit(
            f"keras-ann predict: error: {len(unreadable)} of {len(paths)} images could not be read (named above); "
            f"the other {len(paths) - len(unreadable)} were written to {args.output_dir}"
        )


def _cityscapes(args, paths):
    """`--format cityscapes`: Cityscapes label ids, one PNG per image named as it."""
    from PIL import Image

    from keras_ann.data.cityscapes import train_ids_to_label_ids
    from keras_ann.data.io import read_image
    from keras_ann.file_lists import cityscapes_result_paths
    from keras_ann.inference import segment
    from keras_ann.presets import load_model

    command = "keras-ann predict --format cityscapes"
    try:
        outputs = cityscapes_result_paths(paths, args.output_dir)  # before loading the model
    except ValueError as error:
        raise SystemExit(f"{command}: error: {error}")
    model = load_model(args.model, inference=True)
    if model.num_classes != 19:
        raise SystemExit(
            f"{command}: error: {args.model} predicts {model.num_classes} classes, not the 19 Cityscapes train ids; "
            "give a model trained on Cityscapes"
        )
    protocol = test_protocol(model, args)
    os.makedirs(args.output_dir, exist_ok=True)
    for path, out in zip(paths, outputs):
        labels = segment(model, read_image(path)[None], protocol)[0]
        Image.fromarray(train_ids_to_label_ids(labels)).save(out)
        print(f"{path}: wrote {out} (Cityscapes label ids)")
