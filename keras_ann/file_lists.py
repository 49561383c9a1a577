"""Input files from the command line, and the names of what is written
for them.

- `glob_files`: a glob pattern's files; `**` is expanded by walking the
  tree once, each directory visited once by its real path, so a link
  back up the tree (`sub/up -> ..`) ends the walk instead of repeating
  it (`glob.glob` follows such links until the path is too long: with two
  of them, for ever).
- `output_names`: distinct, collision-free output stems for distinct
  inputs (`predict`).
"""

import fnmatch
import glob
import os

__all__ = ["glob_files", "output_names", "refuse_overwriting_inputs"]


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
