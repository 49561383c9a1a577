"""The argument types of `keras-ann`: each checks one flag's value as the
parser reads it (`type=`, `action=`), before anything is loaded, and
raises `argparse.ArgumentTypeError`, which `Parser` prints as
`keras-ann <cmd>: error: --flag must be ..., got ...` (exit 2).
"""

import argparse
import os
import re

def _int(text):
    try:
        return int(text)
    except ValueError:
        return text  # a str: refused as "not an integer" by the caller's check


def _checked(check, text):
    try:
        return check(text)
    except ValueError as error:
        # "`name` must be ..." -> "must be ..."; `Parser` prefixes the flag.
        raise argparse.ArgumentTypeError(re.sub(r"^`[^`]*` ", "", str(error)).rstrip("."))


def positive_int(text):
    """`type=` for counts: an integer >= 1 (`keras_ann.checks.check_positive_int`)."""
    from keras_ann.checks import check_positive_int

    return _checked(lambda t: check_positive_int(_int(t), "value"), text)


def remat_parts(text):
    """`type=` for `--remat PARTS`: the backbone's parts to recompute,
    comma-separated (`keras_ann.backbones.resnet.remat_setting`)."""
    from keras_ann.backbones.resnet import SEGMENTS, remat_setting

    try:
        return remat_setting(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"takes the parts of the backbone to recompute, comma-separated, from {', '.join(SEGMENTS)}; "
            f"got {text!r}. Write --remat alone (all of them) or --remat=stem,stage1"
        ) from None


def non_negative_int(text):
    """`type=` for an integer >= 0 (seeds, warm-up runs)."""
    from keras_ann.checks import check_positive_int

    return _checked(lambda t: check_positive_int(_int(t), "value", allow_zero=True), text)


def class_count(text):
    """`type=` for a dataset's `--num-classes`: 1..256 (labels are 8-bit
    images: class ids 0..255)."""
    value = positive_int(text)
    if value > 256:
        raise argparse.ArgumentTypeError(f"must be at most 256 (labels are 8-bit images: class ids 0..255), got {value}")
    return value


def label_value(text):
    """`type=` for `--ignore-index`: a label value 0..255 (labels are 8-bit
    images)."""
    value = non_negative_int(text)
    if value > 255:
        raise argparse.ArgumentTypeError(f"must be a label value 0..255 (labels are 8-bit images), got {value}")
    return value


def positive_float(text):
    """`type=` for a finite number > 0 (seconds, learning rates)."""
    import math

    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


class Pair(argparse.Action):
    """`nargs=2` of `positive_int` values -> an `(h, w)` tuple
    (`keras_ann.checks.check_pair`)."""

    def __call__(self, parser, namespace, values, option_string=None):
        from keras_ann.checks import check_pair

        try:
            setattr(namespace, self.dest, check_pair(values, self.dest))
        except ValueError as error:
            parser.error(f"{option_string or self.dest} {re.sub(r'^`[^`]*` ', '', str(error)).rstrip('.')}")


def _nearest_existing(path):
    path = os.path.abspath(path)
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def _check_creatable(path):
    """The nearest existing ancestor of `path` must be a writable directory."""
    parent = _nearest_existing(os.path.dirname(os.path.abspath(path)))
    if not os.path.isdir(parent):
        raise argparse.ArgumentTypeError(f"cannot be created: {parent} is a file, not a directory (got {path})")
    if not os.access(parent, os.W_OK):
        raise argparse.ArgumentTypeError(f"cannot be created: {parent} is not writable (got {path})")


def duration(text):
    """`type=` for a time budget: `90s`, `15m`, `1h30m` (`keras_ann.budget.parse_duration`), in seconds."""
    from keras_ann.budget import parse_duration

    return _checked(parse_duration, text)


def output_dir(path):
    """`type=` for a directory to write into: an existing writable directory,
    or one that can be created."""
    if os.path.exists(path):
        if not os.path.isdir(path):
            raise argparse.ArgumentTypeError(f"must be a directory, but {path} is a file")
        if not os.access(path, os.W_OK):
            raise argparse.ArgumentTypeError(f"must be writable, but {path} is not")
        return path
    _check_creatable(path)
    return path


def output_file(path):
    """`type=` for a file to write: not a directory, in a writable directory
    (existing or creatable)."""
    if os.path.isdir(path):
        raise argparse.ArgumentTypeError(f"must be a file name, but {path} is a directory")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise argparse.ArgumentTypeError(f"must be writable, but {path} is not")
    _check_creatable(path)
    return path


def output_path(path):
    """`type=` for a file or directory to write: its folder must be writable
    (existing or creatable)."""
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise argparse.ArgumentTypeError(f"must be writable, but {path} is not")
    _check_creatable(path)
    return path


class Parser(argparse.ArgumentParser):
    """argparse, with the messages of our `type=` functions as
    `--flag must be ..., got ...` (argparse says `argument --flag: ...`)."""

    def error(self, message):
        message = re.sub(r"^argument ([^\s:]+)(?:/[^\s:]+)?: (must|cannot|takes) ", r"\1 \2 ", message)
        super().error(message)


def rgb(text):
    """`type=` for one colour `R,G,B` (0..255 each)."""
    try:
        colour = tuple(int(v) for v in text.split(","))
    except ValueError:
        colour = ()
    if len(colour) != 3 or not all(0 <= v <= 255 for v in colour):
        raise argparse.ArgumentTypeError(f"must be colours R,G,B with values 0..255, got {text}")
    return colour


def colour_or_dataset(text):
    """`type=` for `--palette`: a colour `R,G,B`, or the name of a dataset
    whose palette to use (`camvid`, `cityscapes`, ...)."""
    from keras_ann.data.metainfo import METAINFO

    if text in METAINFO:
        return text
    try:
        return rgb(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"must be colours R,G,B (one per class) or a dataset name ({', '.join(sorted(METAINFO))}), got {text}"
        ) from None


def label_pairs(text):
    """`type=` for `RAW:NEW` label values (0..255), several comma-separated."""
    pairs = []
    for item in text.split(","):
        old, sep, new = item.partition(":")
        try:
            pair = (int(old), int(new))
        except ValueError:
            pair = None
        if not sep or pair is None or not all(0 <= v <= 255 for v in pair):
            raise argparse.ArgumentTypeError(f"must be RAW:NEW label values in 0..255 (e.g. 255:1), got {text}")
        pairs.append(pair)
    return pairs


def class_names(text):
    names = [n.strip() for n in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(f"must be comma-separated class names (e.g. sky,road,car), got {text!r}")
    if len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"must name each class once (the scores are keyed by name), got {text!r}")
    return names


def split_pattern(text):
    """`type=` for `--split-file`: `{split}` its only field."""
    from keras_ann.data.configs import split_file_path

    try:
        split_file_path(text, "train")
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must hold {{split}} and no other {{...}} field, e.g. 'splits/{{split}}.txt', got {text!r}"
        ) from None
    return text
