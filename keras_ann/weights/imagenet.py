"""The ImageNet initialisation of a recipe's backbone.

The reference initialises every ANN backbone from ImageNet
(`pretrained='open-mmlab://resnet50_v1c'`); a recipe's `backbone_init`
holds the address (`keras_ann.recipes.IMAGENET_CHECKPOINTS`). It is
downloaded as presets are (`keras_ann.weights.download`: cache in
`$KERAS_ANN_HOME/imagenet/`, SHA-256 prefix of the published file name,
progress bar, atomic write, offline once cached) and loaded with
`load_imagenet_backbone`.
"""

import os

__all__ = ["NONE", "fetch_backbone_init", "requested_backbone_init", "resolve_backbone_init"]

# What `--imagenet none` / `imagenet_checkpoint="none"` say: from scratch.
NONE = "none"


def resolve_backbone_init(recipe, imagenet=None, *, cache=None, verbose=True):
    """The recipe's ImageNet initialisation, resolved and fetched.

    Args:
        recipe: a `Recipe`.
        imagenet: `None` for the recipe's `backbone_init`; `"none"` (or
            `False`) to train from scratch; else a local `.pth` path or an
            `http(s)://` / `file://` address replacing it.
        cache: the download cache (default: `download.cache_dir()`).
        verbose: print what is loaded (or that nothing is) and the
            download's progress bar.

    Returns:
        `(recipe, path)`: the recipe with `backbone_init` set to what is
        loaded (`None` for from scratch), and the local file to load into
        the backbone (`None` for from scratch).

    Raises:
        FileNotFoundError: a path that does not exist.
        keras_ann.weights.download.HashMismatchError: a download whose hash
            is not the published one (nothing is kept).

    Example:

    >>> from keras_ann.recipes import get_recipe
    >>> recipe, path = resolve_backbone_init(get_recipe("ann_r18_d8_camvid_cpu"), verbose=False)
    >>> recipe.backbone_init, path
    (None, None)
    """
    recipe = requested_backbone_init(recipe, imagenet)
    source = recipe.backbone_init
    if source is None:
        if verbose:
            why = (
                f"recipe {recipe.name!r} has no ImageNet checkpoint for {recipe.backbone}"
                if imagenet is None
                else "ImageNet initialisation turned off (--imagenet none)"
            )
            print(f"backbone {recipe.backbone}: random initialisation, training from scratch ({why})")
        return recipe, None
    path = fetch_backbone_init(source, cache=cache, verbose=verbose)
    if verbose:
        print(f"backbone {recipe.backbone}: ImageNet weights from {source}")
    return recipe, path


def requested_backbone_init(recipe, imagenet=None):
    """The recipe with `backbone_init` as `imagenet` asks (see
    `resolve_backbone_init`; nothing is read or downloaded)."""
    if imagenet is None:
        return recipe
    if imagenet is False or str(imagenet).lower() == NONE:
        return recipe.replace(backbone_init=None)
    return recipe.replace(backbone_init=os.fspath(imagenet))


def fetch_backbone_init(source, *, cache=None, verbose=True):
    """The local file of an ImageNet checkpoint: `source` itself if it is a
    path, else its download (cached in `<cache>/imagenet/`)."""
    from keras_ann.weights import download

    if "://" in source:
        return download.cached_download(source, "imagenet", cache=cache, verbose=verbose)
    if not os.path.isfile(source):
        raise FileNotFoundError(
            f"No ImageNet checkpoint at {source!r}: give an existing .pth file, an http(s):// address, "
            f"or {NONE!r} to train from scratch."
        )
    return source
