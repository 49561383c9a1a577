"""Input files from the command line, and the names of what is written
for them.

- `glob_files`: a glob pattern's files; `**` is expanded by walking the
  tree once, each directory visited once by its real path, so a link
  back up the tree (`sub/up -> ..`) ends the walk instead of repeating
  it (`glob.glob` follows such links until the path is too long: with two
  of them, for ever).
- `image_paths`: the image files of files, directories and glob patterns
  (`predict`, `export --calibration`).
- `output_names`: distinct, collision-free output stems for distinct
  inputs (`predict`); `refuse_overwriting_inputs` checks them.
- `cityscapes_result_paths`: the files of `predict --format cityscapes`,
  named as the Cityscapes test server matches them.
"""

import fnmatch
import glob
import os
import re

__all__ = ["cityscapes_result_paths", "glob_files", "image_paths", "output_names", "refuse_overwriting_inputs"]


def _match(parts, names):
    """Whether the path components `names` match the pattern components
    `parts` (`**`: any number of components), with glob's rule that a
    name starting with '.' matches only a component that starts with '.'."""
    if not parts:
        return not names
    if parts[0] == "**":
        if _match(parts[1:], names):
            return True
        return bool(names) and not names[0].startswith(".") and _match(parts, names[1:])
    if not names:
        return False
    if names[0].startswith(".") and not parts[0].startswith("."):
        return False
    return fnmatch.fnmatchcase(names[0], parts[0]) and _match(parts[1:], names[1:])


def glob_files(pattern):
    """The files a glob pattern matches, sorted, as `glob.glob(pattern,
    recursive=True)` names them, but each directory walked once.

    Args:
        pattern: a glob pattern; `**` matches any number of directories.

    Returns:
        list of file paths (links to files included; directories not).

    Example:

    >>> import os, tempfile
    >>> root = tempfile.mkdtemp()
    >>> os.makedirs(os.path.join(root, "sub"))
    >>> for name in ("a.jpg", "sub/b.jpg", "sub/c.png"):
    ...     open(os.path.join(root, name), "w").close()
    >>> os.symlink("..", os.path.join(root, "sub", "up"))  # a loop
    >>> [os.path.relpath(p, root) for p in glob_files(os.path.join(root, "**", "*.jpg"))]
    ['a.jpg', 'sub/b.jpg']
    """
    if "**" not in pattern:
        return sorted(p for p in glob.glob(pattern) if os.path.isfile(p))
    parts = pattern.split(os.sep)
    fixed = 0
    while fixed < len(parts) and not glob.has_magic(parts[fixed]):
        fixed += 1
    root = os.sep.join(parts[:fixed]) if fixed else ""
    if fixed == 1 and parts[0] == "":  # "/**/..."
        root = os.sep
    rest = [p for p in parts[fixed:] if p]
    found, seen = [], set()
    for directory, dirs, files in os.walk(root or os.curdir, followlinks=True):
        real = os.path.realpath(directory)
        if real in seen:  # a loop, or a second way to the same folder
            dirs[:] = []
            continue
        seen.add(real)
        dirs.sort()
        relative = os.path.relpath(directory, root or os.curdir)
        names = [] if relative == os.curdir else relative.split(os.sep)
        for name in files:
            if _match(rest, names + [name]):
                path = os.path.join(root, *names, name) if root else os.path.join(*names, name)
                if os.path.isfile(path):
                    found.append(path)
    return sorted(found)


def output_names(paths):
    """Distinct output stems for distinct input files, collision-free by
    construction.

    Each stem is the image's path relative to the images' common folder,
    without its extension (`a/x.jpg` -> `a/x`); images that share a stem
    (`x.jpg`, `x.png`) keep their extension (`x_jpg`, `x_png`), and a stem
    that another image already has (`x_jpg.bmp` is `x_jpg` too) gets a
    number (`x_jpg_2`), until every stem is unique (case-insensitively,
    for file systems that ignore case).

    Args:
        paths: the input files, each once.

    Returns:
        list of stems, in the order of `paths`.

    Example:

    >>> output_names(["p/x.jpg", "p/x.png", "p/x_jpg.bmp", "p/a/y.png"])
    ['x_jpg', 'x_png', 'x_jpg_2', 'a/y']
    """
    if not paths:
        return []
    absolute = [os.path.abspath(p) for p in paths]
    root = os.path.commonpath([os.path.dirname(p) for p in absolute])
    relative = [os.path.relpath(p, root) for p in absolute]
    stems = [os.path.splitext(r)[0] for r in relative]
    counts = {}
    for stem in stems:
        counts[stem.lower()] = counts.get(stem.lower(), 0) + 1
    wanted = [stem if counts[stem.lower()] == 1 else r.replace(".", "_") for stem, r in zip(stems, relative)]
    taken, names = set(), []
    for name in wanted:
        candidate, n = name, 1
        while candidate.lower() in taken:
            n += 1
            candidate = f"{name}_{n}"
        taken.add(candidate.lower())
        names.append(candidate)
    return names


def refuse_overwriting_inputs(paths, names, output_dir, suffixes=("_labels.png", "_overlay.png")):
    """`ValueError` when an output (`<output_dir>/<name><suffix>`) would
    be one of the input files `paths` (compared by real path), before
    anything is written.

    Example:

    >>> refuse_overwriting_inputs(["p/x.jpg", "p/x_labels.png"], ["x", "x_labels"], "p")
    Traceback (most recent call last):
    ...
    ValueError: the output p/x_labels.png would overwrite the input p/x_labels.png: give another --output-dir.
    """
    inputs = {os.path.realpath(p): p for p in paths}
    for name in names:
        for suffix in suffixes:
            out = os.path.join(output_dir, name + suffix)
            if os.path.realpath(out) in inputs:
                raise ValueError(
                    f"the output {out} would overwrite the input {inputs[os.path.realpath(out)]}: "
                    "give another --output-dir."
                )


def image_paths(specs):
    """Image files from files, directories (their images, recursively) and
    glob patterns, in order, each file once.

    Args:
        specs: file paths, directories or glob patterns (`**` matches any
            number of directories, `glob_files`).

    Returns:
        list of file paths.

    Raises:
        ValueError: for a spec that names nothing.

    Example:

    >>> import os, tempfile
    >>> root = tempfile.mkdtemp()
    >>> os.makedirs(os.path.join(root, "sub"))
    >>> for name in ("a.jpg", "sub/b.png", "notes.txt"):
    ...     open(os.path.join(root, name), "w").close()
    >>> [os.path.relpath(p, root) for p in image_paths([root, os.path.join(root, "*.jpg")])]
    ['a.jpg', 'sub/b.png']
    """
    from keras_ann.data.io import IMAGE_EXTENSIONS

    paths, seen = [], set()
    for spec in specs:
        if os.path.isdir(spec):
            found = sorted(
                os.path.join(root, name)
                for root, _, names in os.walk(spec)
                for name in names
                if name.lower().endswith(IMAGE_EXTENSIONS)
            )
            what = f"directory {spec} holds no image ({', '.join(IMAGE_EXTENSIONS)})"
        elif os.path.exists(spec):
            found, what = [spec], None
        elif glob.has_magic(spec):
            found = glob_files(spec)  # `**` without walking link loops
            what = f"no file matches {spec}"
        else:
            raise ValueError(f"no such file, directory or pattern: {spec}")
        if not found:
            raise ValueError(what)
        for path in found:
            key = os.path.realpath(path)
            if key not in seen:
                seen.add(key)
                paths.append(path)
    return paths


_CITYSCAPES_NAME = re.compile(r"^\w+_\d{6}_\d{6}_leftImg8bit\.png$")


def cityscapes_result_paths(paths, output_dir):
    """The result files of Cityscapes test images for the test server: for
    each `<city>_<seq>_<frame>_leftImg8bit.png` a file of the same name
    directly in `output_dir` (cityscapesScripts' and mmseg's `format_only`
    convention), checked before anything is written.

    Args:
        paths: the `leftImg8bit` images.
        output_dir: where the results go.

    Returns:
        list of output paths, in the order of `paths`.

    Raises:
        ValueError: for an image not named as the server matches results,
            two images of the same name, or a result that would replace its
            image.

    Example:

    >>> cityscapes_result_paths(["test/bonn/bonn_000004_000019_leftImg8bit.png"], "results")
    ['results/bonn_000004_000019_leftImg8bit.png']
    """
    outputs, seen = [], {}
    for path in paths:
        name = os.path.basename(path)
        if not _CITYSCAPES_NAME.match(name):
            raise ValueError(
                f"{path} is not named <city>_<seq>_<frame>_leftImg8bit.png, the name the test "
                "server matches results by; give the leftImg8bit images of the Cityscapes layout"
            )
        if name in seen:
            raise ValueError(f"{seen[name]} and {path} have the same name; give each image once")
        seen[name] = path
        out = os.path.join(output_dir, name)
        if os.path.exists(out) and os.path.samefile(out, path):
            raise ValueError(f"the result for {path} would replace it; give another --output-dir")
        outputs.append(out)
    return outputs
