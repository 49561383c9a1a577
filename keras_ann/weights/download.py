"""Downloading checkpoints into a cache, with a progress bar and a hash check."""

import hashlib
import os
import re
import tempfile
import urllib.error
import urllib.request

import keras

__all__ = ["cache_dir", "cached_download", "download", "file_sha256", "sha256_prefix_of", "DownloadError", "HashMismatchError"]

_CHUNK = 1 << 20


class HashMismatchError(ValueError):
    """A downloaded file does not have the published hash (it was deleted)."""


class DownloadError(OSError):
    """A file could not be downloaded (no network, a refused or missing
    address); the message names the address, the file and where a copy
    downloaded by hand goes."""


def cache_dir():
    """Where presets are cached: `$KERAS_ANN_HOME`, else `~/.cache/keras_ann`."""
    default = os.path.join(os.path.expanduser("~"), ".cache", "keras_ann")
    return os.environ.get("KERAS_ANN_HOME", default)


def sha256_prefix_of(url):
    """The hex digits the reference puts at the end of a published file
    name (`resnet50_v1c-2cccc1ad.pth` -> `"2cccc1ad"`), or `None`."""
    match = re.search(r"-([0-9a-f]{8,64})\.pth$", url.rsplit("/", 1)[-1])
    return match.group(1) if match else None



def file_sha256(path):
    """The SHA-256 of a file, hex (read in 1 MiB blocks).

    Example:

    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile(delete=False) as f:
    ...     _ = f.write(b"abc")
    >>> file_sha256(f.name)[:16]
    'ba7816bf8f01cfea'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()

def cached_download(url, subdir, cache=None, verbose=True):
    """The local copy of `url` in `<cache>/<subdir>/`, downloaded once.

    The file keeps its published name, so the hash of a published name
    (`sha256_prefix_of`) is checked on download; once cached, no network is
    needed.

    Args:
        url: the address.
        subdir: the cache's sub-directory, e.g. `"imagenet"`.
        cache: the cache directory (default: `cache_dir()`).
        verbose: show a progress bar.

    Returns:
        The local path.
    """
    path = os.path.join(cache or cache_dir(), subdir, url.rsplit("/", 1)[-1])
    if not os.path.exists(path):
        download(url, path, sha256_prefix_of(url), verbose=verbose)
    return path


def download(url, path, sha256_prefix=None, verbose=True, timeout=60):
    """Download `url` to `path`, checking the SHA-256 against a prefix.

    The file is written under a temporary name in the same directory and
    renamed only once complete and verified, so an interrupted download or a
    corrupt file never sits in the cache under the final name.

    Args:
        url: the address (`http(s)://` or `file://`).
        path: the destination file.
        sha256_prefix: hex digits the SHA-256 of the file must start with
            (the reference publishes the first 8 in its file names), or
            `None` to skip the check.
        verbose: show a Keras progress bar.
        timeout: socket timeout in seconds.

    Returns:
        `path`.

    Raises:
        HashMismatchError: the hash does not match; nothing is kept.
        DownloadError: the address could not be read (no network, a
            refused connection, an HTTP error); nothing is kept.
        OSError: the file could not be written; nothing is kept.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    digest = hashlib.sha256()
    try:
        response = urllib.request.urlopen(url, timeout=timeout)
    except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
        reason = getattr(error, "reason", error)
        raise DownloadError(
            f"could not download {os.path.basename(path)} from {url} ({reason}). Without a network, download "
            f"it elsewhere and put it at {path}."
        ) from None
    fd, partial = tempfile.mkstemp(prefix=".download-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as out, response:
            total = response.headers.get("Content-Length")
            total = int(total) if total and total.isdigit() else None
            if verbose:
                print(f"Downloading {url}")
            bar = keras.utils.Progbar(total, unit_name="B") if verbose else None
            done = 0
            while True:
                chunk = response.read(_CHUNK)
                if not chunk:
                    break
                out.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                if bar is not None:
                    bar.update(done)
            if bar is not None and total is None:
                bar.update(done, finalize=True)
        actual = digest.hexdigest()
        if sha256_prefix and not actual.startswith(sha256_prefix.lower()):
            raise HashMismatchError(
                f"The file downloaded from {url} has SHA-256 {actual}, which does "
                f"not start with the published {sha256_prefix}; it was deleted. "
                "The download may be corrupt or the file replaced."
            )
        os.replace(partial, path)
        return path
    finally:
        if os.path.exists(partial):
            os.remove(partial)
