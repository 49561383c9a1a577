"""Model hub handles: `hf://owner/name` and `kaggle://owner/model/keras/variant`.

A handle names a preset directory (`keras_ann.models.preset_directory`)
stored on a model hub, resolved as KerasHub resolves its presets
(`keras_hub.src.utils.preset_utils.get_file`), one file at a time:

- `hf://owner/name` through `huggingface_hub.hf_hub_download` (the
  Hugging Face Hub, or the server of `HF_ENDPOINT`), into its cache
  (`HF_HUB_CACHE`, default `~/.cache/huggingface/hub`);
- `kaggle://owner/model/keras/variant[/version]` through
  `kagglehub.model_download` (Kaggle Models; `KAGGLE_API_ENVIRONMENT` picks
  the server), into its cache (`KAGGLEHUB_CACHE`, default
  `~/.cache/kagglehub`).

Both libraries are optional (`pip install "keras-ann[hub]"`) and imported
only when a handle is used. A file downloaded once is read from the cache
when the hub cannot be reached (for Kaggle: with a versioned handle, whose
version needs no look-up). Every failure is one `HubError` line naming the
handle and what to do.

`upload(directory, handle)` pushes a preset directory to the Hugging Face
Hub (`huggingface_hub.create_repo` and `upload_folder`; `keras-ann push`).

Example:

>>> parse_handle("hf://keras-ann/ann_r50_cityscapes")
('hf', 'keras-ann/ann_r50_cityscapes')
>>> parse_handle("kaggle://owner/ann/keras/r50_cityscapes/2")
('kaggle', 'owner/ann/keras/r50_cityscapes/2')
>>> is_handle("runs/cells/preset")
False
"""

import contextlib
import logging
import re

__all__ = ["HubError", "SCHEMES", "get_file", "is_handle", "parse_handle", "upload"]

SCHEMES = ("hf", "kaggle")
_FORMS = {
    "hf": "hf://OWNER/NAME (e.g. hf://keras-ann/ann_r50_cityscapes)",
    "kaggle": "kaggle://OWNER/MODEL/keras/VARIANT[/VERSION] (e.g. kaggle://owner/ann/keras/r50_cityscapes)",
}
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_PACKAGES = {"hf": "huggingface_hub", "kaggle": "kagglehub"}


class HubError(OSError):
    """A handle that cannot be resolved or uploaded to; the message (one
    line) names the handle and says what to do."""


def is_handle(spec):
    """Whether `spec` is a string with a hub scheme (`hf://`, `kaggle://`)."""
    return isinstance(spec, str) and spec.split("://", 1)[0].lower() in SCHEMES and "://" in spec


def parse_handle(handle):
    """`(scheme, identifier)` of a handle, checked.

    Raises:
        ValueError: naming the handle and the form it must have.
    """
    scheme, _, identifier = str(handle).partition("://")
    scheme = scheme.lower()
    if scheme not in SCHEMES or not identifier:
        raise ValueError(f"{handle!r} is not a model hub handle; give {_FORMS['hf']} or {_FORMS['kaggle']}.")
    parts = identifier.split("/")
    counts = {"hf": (2,), "kaggle": (4, 5)}[scheme]
    if len(parts) not in counts or not all(_SEGMENT.match(part) for part in parts):
        raise ValueError(f"{handle!r} is not a valid {scheme} handle; give {_FORMS[scheme]}.")
    if scheme == "kaggle" and len(parts) == 5 and not parts[4].isdigit():
        raise ValueError(f"{handle!r}: the version of a kaggle handle is a number; give {_FORMS['kaggle']}.")
    return scheme, identifier


def _library(scheme, handle):
    import importlib

    name = _PACKAGES[scheme]
    try:
        return importlib.import_module(name)
    except ImportError as error:
        if getattr(error, "name", None) not in (name, None):
            raise  # installed, but one of its own imports failed: its message says which
        raise HubError(
            f"{handle} needs the {name} package: pip install \"keras-ann[hub]\" (or pip install {name})."
        ) from None


def get_file(handle, name, required=True):
    """The local path of the file `name` of the preset directory `handle`,
    downloaded into the hub library's cache if it is not there.

    Args:
        handle: an `hf://` or `kaggle://` handle.
        name: the file's name in the directory, e.g. `"config.json"`.
        required: when False, a file the hub does not have gives `None`
            (as KerasHub's `check_file_exists`).

    Returns:
        The path, or `None` (`required=False` and no such file).

    Raises:
        HubError: the package is missing, the hub cannot be reached and the
            file is not cached, the repository does not exist or may not be
            read, or (`required`) it has no such file.
    """
    scheme, identifier = parse_handle(handle)
    try:
        if scheme == "hf":
            return _hf_file(handle, identifier, name)
        return _kaggle_file(handle, identifier, name)
    except FileNotFoundError:
        if not required:
            return None
        raise HubError(
            f"{handle} has no {name}: it is not a keras-ann preset directory (write one with "
            "model.save_to_preset(DIR) or keras-ann convert MODEL DIR --preset, then keras-ann push DIR HANDLE)."
        ) from None


def _offline(handle, name, where, cache, detail, note=""):
    download = {
        "hf": f"hf download {handle[5:]} --local-dir DIR",
        "kaggle": f"kagglehub.model_download('{handle[9:]}', output_dir='DIR')",
    }[handle.split("://")[0].lower()]
    return HubError(
        f"{handle}: cannot reach {where} ({detail}) and its {name} is not in the local cache ({cache}){note}: check the "
        f"network connection (and the proxy or endpoint settings), or download the preset directory elsewhere "
        f"({download}), copy it here and pass its path DIR instead of the handle."
    )


def _one_line(error):
    return " ".join(str(error).split())[:300]


@contextlib.contextmanager
def _quiet_retries():
    """huggingface_hub logs a warning per retry of a failed request (for
    about 20 s without a network); its last error, made one line here,
    says it all."""
    logger = logging.getLogger("huggingface_hub.utils._http")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _hf_file(handle, repo_id, name):
    huggingface_hub = _library("hf", handle)
    from huggingface_hub import constants, errors

    import keras_ann

    try:
        with _quiet_retries():
            return huggingface_hub.hf_hub_download(
                repo_id=repo_id, filename=name, library_name="keras-ann", library_version=keras_ann.__version__
            )
    except errors.RemoteEntryNotFoundError:
        raise FileNotFoundError(name) from None
    except errors.LocalEntryNotFoundError as error:
        cause = error.__cause__ or error.__context__
        detail = "HF_HUB_OFFLINE is set" if constants.is_offline_mode() else type(cause).__name__ if cause else "no answer"
        raise _offline(handle, name, constants.ENDPOINT, constants.HF_HUB_CACHE, detail) from None
    except errors.RepositoryNotFoundError:
        raise HubError(
            f"{handle}: no such model repository on {constants.ENDPOINT}, or it is private or gated: check the "
            "name, or log in (hf auth login, or set HF_TOKEN) with an account that may read it."
        ) from None
    except errors.RevisionNotFoundError as error:
        raise HubError(f"{handle}: {_one_line(error)}") from None
    except errors.HfHubHTTPError as error:
        raise HubError(f"{handle}: the hub at {constants.ENDPOINT} refused {name}: {_one_line(error)}") from None


def _kaggle_file(handle, identifier, name):
    kagglehub = _library("kaggle", handle)
    import requests
    from kagglehub.config import get_cache_folder
    from kagglehub.exceptions import KaggleApiHTTPError
    from kagglesdk.kaggle_env import get_endpoint, get_env

    try:
        return kagglehub.model_download(identifier, name)
    except KaggleApiHTTPError as error:
        status = getattr(error.response, "status_code", None)
        if status == 404 and "ownloadModelInstanceVersion" in str(getattr(error.response, "url", "")):
            raise FileNotFoundError(name) from None
        if status == 404:
            raise HubError(f"{handle}: no such model on Kaggle ({get_endpoint(get_env())}): check the handle.") from None
        if status in (401, 403):
            raise HubError(
                f"{handle}: Kaggle refused access ({status}): log in (kagglehub.login(), or set KAGGLE_USERNAME "
                "and KAGGLE_KEY) with an account that may read it, and accept the model's terms on kaggle.com."
            ) from None
        raise HubError(f"{handle}: Kaggle refused {name}: {_one_line(error)}") from None
    except requests.exceptions.ConnectionError as error:
        note = "" if len(identifier.split("/")) == 5 else " (an unversioned handle asks Kaggle for its latest version: add /VERSION to read the cache offline)"
        raise _offline(handle, name, get_endpoint(get_env()), get_cache_folder(), type(error).__name__, note) from None


def upload(directory, handle, commit_message=None):
    """Upload the preset directory `directory` to the Hugging Face Hub
    repository of `handle` (`hf://owner/name`), creating the repository
    if it does not exist.

    Args:
        directory: a preset directory (checked by the caller).
        handle: `hf://owner/name`.
        commit_message: defaults to `"Upload keras-ann preset"`.

    Returns:
        The URL of the commit.

    Raises:
        HubError: a `kaggle://` handle, no token, or the hub refused.
    """
    scheme, repo_id = parse_handle(handle)
    if scheme != "hf":
        raise HubError(
            f"{handle}: keras-ann push uploads to the Hugging Face Hub only (hf://OWNER/NAME); upload to Kaggle with "
            f"kagglehub.model_upload('{repo_id}', DIR) or keras_hub.upload_preset('{handle}', DIR)."
        )
    huggingface_hub = _library("hf", handle)
    from huggingface_hub import constants, errors

    import keras_ann

    # A client of its own: huggingface_hub's module-level one keeps the
    # endpoint it saw when first imported.
    api = huggingface_hub.HfApi(library_name="keras-ann", library_version=keras_ann.__version__)
    try:
        api.create_repo(repo_id, repo_type="model", exist_ok=True)
        info = api.upload_folder(
            repo_id=repo_id, folder_path=directory, commit_message=commit_message or "Upload keras-ann preset"
        )
    except errors.LocalTokenNotFoundError:
        raise HubError(
            f"{handle}: uploading needs a Hugging Face token with write access: log in (hf auth login) or set HF_TOKEN."
        ) from None
    except errors.HfHubHTTPError as error:
        status = getattr(error.response, "status_code", None)
        advice = " Check that your token (HF_TOKEN or hf auth login) may write to it." if status in (401, 403) else ""
        raise HubError(f"{handle}: the hub at {constants.ENDPOINT} refused the upload: {_one_line(error)}{advice}") from None
    except (OSError, ConnectionError) as error:  # httpx's errors are not OSErrors: see below
        raise HubError(f"{handle}: cannot upload to {constants.ENDPOINT} ({type(error).__name__}): {_one_line(error)}") from None
    except Exception as error:
        if type(error).__module__.startswith(("httpx", "httpcore")):
            raise HubError(
                f"{handle}: cannot reach {constants.ENDPOINT} to upload ({type(error).__name__}): check the network "
                "connection (and the proxy or HF_ENDPOINT settings)."
            ) from None
        raise
    return getattr(info, "commit_url", str(info))
