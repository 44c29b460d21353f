"""File helpers: atomic writes (temporary file in the same folder, then ``os.replace``) and safe downloads.

Downloads (:func:`download`, :func:`resolve_weights`) go to a user cache (:func:`cache_dir`), are verified by
sha256, written atomically, retried with timeouts and backoff, and extracted without path traversal
(:func:`extract_archive`). Named weights live in :data:`WEIGHTS_REGISTRY`.
"""
from __future__ import annotations

import contextlib
import hashlib
import http.client
import logging
import os
import re
import shutil
import stat
import tarfile
import tempfile
import time
import urllib.parse
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Union

import requests
import urllib3
from tqdm.auto import tqdm

__all__ = [
    "CACHE_ENV",
    "DEFAULT_TIMEOUT",
    "WEIGHTS_REGISTRY",
    "ChecksumMismatchError",
    "DownloadError",
    "PathLike",
    "UnsafeArchiveError",
    "UnverifiedDownloadWarning",
    "WeightsSpec",
    "atomic_path",
    "cache_dir",
    "download",
    "extract_archive",
    "register_weights",
    "resolve_weights",
    "sha256_file",
]

PathLike = Union[str, "os.PathLike[str]"]


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    The parent folder is created if needed. On any error the temporary file is removed and an
    existing file at ``path`` is left untouched. The file gets the permissions of a normally created
    file (``0o666`` less the umask), not ``mkstemp``'s private ``0o600``.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


# ---------------------------------------------------------------------------------------------------------------
# Safe downloads: a registry of named weights, a user cache, verified atomic downloads and safe extraction.
# Only requests, tqdm and the standard library are used here (no paddle), so this module stays cheap to import.
# ---------------------------------------------------------------------------------------------------------------

CACHE_ENV = "INTERPRETDL_NOISE_CACHE"
"""Environment variable that overrides the cache directory (see :func:`cache_dir`)."""

DEFAULT_TIMEOUT: tuple[float, float] = (10.0, 60.0)
"""Default ``(connect, read)`` timeouts in seconds for :func:`download`."""

_ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1 << 16
_MAX_BACKOFF = 30.0
_MAX_LINK_HOPS = 40
_OFFLINE_HINT = (
    "Without network access: for the BHDF detector, use the weights shipped with the package "
    "(BHDFInterpreter() with no weights argument), or download the file on another machine and pass its "
    "local path instead of the URL or registry name."
)

logger = logging.getLogger(__name__)


def _is_absolute(name: str) -> bool:
    norm = name.replace("\\", "/")
    return norm.startswith("/") or re.match(r"^[A-Za-z]:", norm) is not None


def _check_url(url: object) -> str:
    if not isinstance(url, str) or urllib.parse.urlsplit(url).scheme.lower() not in ("http", "https"):
        raise ValueError(f"url must be an http:// or https:// URL, got {url!r}")
    if not urllib.parse.urlsplit(url).netloc:
        raise ValueError(f"url has no host: {url!r}")
    return url


def _check_sha256(sha256: object) -> str:
    value = sha256.strip().lower() if isinstance(sha256, str) else None
    if value is None or not _SHA256_RE.match(value):
        raise ValueError(f"sha256 must be 64 hexadecimal digits, got {sha256!r}")
    return value


def _check_filename(name: object) -> str:
    if (
        not isinstance(name, str) or not name or name in (".", "..") or "/" in name or "\\" in name
        or "\x00" in name
    ):
        raise ValueError(f"filename must be a plain file name (no directories), got {name!r}")
    return name


class DownloadError(RuntimeError):
    """A download failed (network, HTTP status, truncated body or checksum).

    Attributes
    ----------
    url : str or None
        The URL that failed.
    status : int or None
        The HTTP status code when the server answered with an error, else None.
    """

    def __init__(self, message: str, *, url: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.status = status


class ChecksumMismatchError(DownloadError):
    """The sha256 of a file differs from the expected one; the file was not put into the cache."""


class UnsafeArchiveError(ValueError):
    """An archive member would be written outside the destination (``..``, absolute path, escaping link)."""


class UnverifiedDownloadWarning(UserWarning):
    """A file is used without a known sha256 (explicit opt-in with ``allow_unverified=True``)."""


@dataclass(frozen=True)
class WeightsSpec:
    """Where a named set of weights lives and how to check it.

    Parameters
    ----------
    url : str
        http(s) URL of the file (or of the archive holding it).
    sha256 : str or None
        Lower-case hex sha256 of the downloaded file (the archive when ``member`` is set). None when unknown:
        such weights are only fetched with ``allow_unverified=True`` and a warning.
    filename : str
        Name of the downloaded file in the cache.
    member : str or None
        Path of the weights file inside the archive, when ``url`` points to a zip / tar archive.
    description : str
        One line saying what the weights are and where they come from.
    needs_opt_in : bool
        True when the weights are only used with ``allow_unverified=True`` or a caller-supplied ``sha256``
        (always the case when ``sha256`` is None).
    """

    url: str
    sha256: str | None
    filename: str
    member: str | None = None
    description: str = ""
    needs_opt_in: bool = False

    def __post_init__(self) -> None:
        _check_url(self.url)
        if self.sha256 is not None:
            object.__setattr__(self, "sha256", _check_sha256(self.sha256))
        _check_filename(self.filename)
        if self.member is not None:
            norm = self.member.replace("\\", "/")
            if not norm.strip("/") or _is_absolute(norm) or ".." in norm.split("/"):
                raise ValueError(f"member must be a relative path inside the archive, got {self.member!r}")
        if self.sha256 is None and not self.needs_opt_in:
            object.__setattr__(self, "needs_opt_in", True)


WEIGHTS_REGISTRY: dict[str, WeightsSpec] = {
    "interpretdl-0.8": WeightsSpec(
        url="https://github.com/PaddlePaddle/InterpretDL/files/9120427/noise_detector_trained.pdparams.zip",
        sha256=None,
        filename="noise_detector_trained.pdparams.zip",
        member="noise_detector_trained.pdparams",
        description=(
            "InterpretDL 0.8's original BHDF LSTM weights, attached to InterpretDL issue #26 (2022-07-15). "
            "No checksum was ever published, so they need allow_unverified=True."
        ),
        needs_opt_in=True,
    ),
}
"""Named weights that :func:`resolve_weights` accepts. Add entries with :func:`register_weights`."""


def register_weights(name: str, spec: WeightsSpec, *, overwrite: bool = False) -> None:
    """Add ``spec`` to :data:`WEIGHTS_REGISTRY` under ``name``.

    Raises ``ValueError`` if ``name`` is already registered and ``overwrite`` is False.
    """
    if not isinstance(spec, WeightsSpec):
        raise TypeError(f"spec must be a WeightsSpec, got {type(spec).__name__}")
    if not name or not isinstance(name, str):
        raise ValueError(f"weights name must be a non-empty string, got {name!r}")
    if name in WEIGHTS_REGISTRY and not overwrite:
        raise ValueError(f"weights name {name!r} is already registered; pass overwrite=True to replace it")
    WEIGHTS_REGISTRY[name] = spec


def cache_dir() -> Path:
    """Return the user cache directory for downloads (not created here).

    ``$INTERPRETDL_NOISE_CACHE`` if set (made absolute), else ``$XDG_CACHE_HOME/interpretdl_noise`` if
    ``XDG_CACHE_HOME`` is an absolute path, else ``~/.cache/interpretdl_noise``. Never the working directory
    unless the environment variable says so.
    """
    env = os.environ.get(CACHE_ENV, "").strip()
    if env:
        return Path(env).expanduser().absolute()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    base = Path(xdg).expanduser() if xdg and Path(xdg).expanduser().is_absolute() else Path.home() / ".cache"
    return base / "interpretdl_noise"


def sha256_file(path: PathLike) -> str:
    """Return the lower-case hex sha256 of the file at ``path`` (read in chunks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def download(
    url: str,
    *,
    sha256: str | None = None,
    filename: str | None = None,
    cache: PathLike | None = None,
    timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
    retries: int = 3,
    backoff: float = 0.5,
    progress: bool = True,
    allow_unverified: bool = False,
) -> Path:
    """Download ``url`` into the cache, verified and atomically, and return the cached file's path.

    The file goes to ``<cache>/downloads/<first 16 hex digits of sha256(url)>/<filename>``. If that file
    already exists with the expected sha256, no request is made. The body is streamed (tqdm bar) into a
    temporary file beside the target, hashed on the way, checked against ``Content-Length`` and ``sha256``,
    then renamed onto the target; on any failure the temporary file is removed and the cache is untouched.

    Parameters
    ----------
    url : str
        http or https URL.
    sha256 : str, optional
        Expected hex sha256 of the file. Required unless ``allow_unverified`` is True.
    filename : str, optional
        File name in the cache; default: the last component of the URL path.
    cache : path-like, optional
        Cache directory; default :func:`cache_dir`.
    timeout : float or (float, float)
        ``(connect, read)`` timeouts in seconds (a single number is used for both). The read timeout bounds
        each wait for data, so a stalled server fails after it.
    retries : int
        Further attempts after the first one on connection errors, timeouts, truncated bodies and HTTP 5xx.
        HTTP 4xx and checksum mismatches are never retried.
    backoff : float
        Sleep ``backoff * 2**k`` seconds before retry ``k`` (k = 0, 1, ...; capped at 30 s).
    progress : bool
        Show a tqdm progress bar.
    allow_unverified : bool
        Allow ``sha256=None``: the file is used with an :class:`UnverifiedDownloadWarning` that reports its
        actual sha256 (pass it as ``sha256`` to pin it).

    Returns
    -------
    pathlib.Path
        The cached file.

    Raises
    ------
    ValueError
        Bad arguments, or ``sha256`` missing without ``allow_unverified``.
    DownloadError
        The download failed; the message says what to do offline. :class:`ChecksumMismatchError` (a
        subclass) when the content does not match ``sha256``.
    """
    _check_url(url)
    sha = _check_sha256(sha256) if sha256 is not None else None
    if sha is None and not allow_unverified:
        raise ValueError(
            f"refusing to download {url} without a sha256 checksum: pass sha256='<64 hex digits>' to verify it, "
            "or allow_unverified=True to accept an unverified file (a warning is issued)"
        )
    name = _check_filename(filename if filename is not None else _url_basename(url))
    connect_timeout, read_timeout = _check_timeout(timeout)
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ValueError(f"retries must be an int >= 0, got {retries!r}")
    if not isinstance(backoff, (int, float)) or backoff < 0:
        raise ValueError(f"backoff must be a number >= 0, got {backoff!r}")

    root = Path(cache) if cache is not None else cache_dir()
    target = root / "downloads" / hashlib.sha256(url.encode("utf-8")).hexdigest()[:16] / name

    if target.is_file():
        digest = sha256_file(target)
        if sha is None:
            _warn_unverified(url, target, digest)
            return target
        if digest == sha:
            logger.debug("cache hit for %s: %s", url, target)
            return target
        logger.warning("cached %s has sha256 %s, expected %s; downloading it again", target, digest, sha)

    attempts = retries + 1
    last: BaseException | None = None
    with requests.Session() as session:
        for attempt in range(attempts):
            if attempt:
                delay = min(backoff * 2 ** (attempt - 1), _MAX_BACKOFF)
                logger.info("retrying %s in %.2f s (attempt %d of %d): %s", url, delay, attempt + 1, attempts, last)
                time.sleep(delay)
            try:
                digest = _fetch_once(session, url, target, sha, (connect_timeout, read_timeout), progress)
            except _HTTPStatusError as err:
                if err.status >= 500:
                    last = err
                    continue
                raise DownloadError(
                    f"downloading {url} failed with HTTP {err.status} {err.reason} (client errors are not retried). "
                    f"Check the URL or weights name. {_OFFLINE_HINT}",
                    url=url,
                    status=err.status,
                ) from None
            except ChecksumMismatchError:
                raise
            except requests.exceptions.Timeout as err:
                last = _Failure(f"timed out (connect {connect_timeout:g} s, read {read_timeout:g} s): {err}")
                continue
            except (
                requests.exceptions.ConnectionError,
                requests.exceptions.ChunkedEncodingError,
                requests.exceptions.ContentDecodingError,
                urllib3.exceptions.HTTPError,
                http.client.HTTPException,
                _TruncatedError,
            ) as err:
                last = err
                continue
            except requests.exceptions.RequestException as err:  # invalid URL, too many redirects, ...
                raise DownloadError(f"downloading {url} failed: {err}. {_OFFLINE_HINT}", url=url) from err
            if sha is None:
                _warn_unverified(url, target, digest)
            return target

    status = last.status if isinstance(last, _HTTPStatusError) else None
    raise DownloadError(
        f"could not download {url} after {attempts} attempt(s); last error: {str(last).rstrip('.')}. "
        f"Check your network connection or proxy settings. {_OFFLINE_HINT}",
        url=url,
        status=status,
    ) from last


def extract_archive(path: PathLike, dest: PathLike) -> list[Path]:
    """Extract a zip or tar archive into ``dest`` and return the paths of the extracted files.

    Every member is checked before anything is written: absolute names, ``..`` components, links whose
    target leaves ``dest`` (following the archive's own symlinks and existing symlinks in ``dest``), device
    files and symlinks stored in zip files are refused with :class:`UnsafeArchiveError`, and then nothing
    is written. Tar archives are additionally extracted with Python's ``"data"`` filter when available.

    Parameters
    ----------
    path : path-like
        A ``.zip`` or ``.tar`` (optionally gz / bz2 / xz compressed) file.
    dest : path-like
        Destination directory (created if needed).

    Returns
    -------
    list of pathlib.Path
        The extracted non-directory members, in archive order.
    """
    src = Path(path)
    if not src.is_file():
        raise FileNotFoundError(f"archive not found: {src}")
    out = Path(dest)
    if zipfile.is_zipfile(src):
        return _extract_zip(src, out)
    if tarfile.is_tarfile(src):
        return _extract_tar(src, out)
    raise ValueError(f"{src} is not a supported archive (supported: zip, tar, tar.gz/tgz, tar.bz2, tar.xz)")


def resolve_weights(
    spec: str | os.PathLike[str] | WeightsSpec,
    *,
    allow_unverified: bool = False,
    sha256: str | None = None,
    cache: PathLike | None = None,
    progress: bool = True,
) -> Path:
    """Turn a weights specification into a local file path, downloading and extracting as needed.

    Parameters
    ----------
    spec : str, path-like or WeightsSpec
        One of (checked in this order): a :class:`WeightsSpec`; a name in :data:`WEIGHTS_REGISTRY`; an
        ``http://`` / ``https://`` URL; an existing local file. Zip / tar archives (by file suffix, or a
        registry ``member``) are extracted into the cache and the weights file inside is returned.
    allow_unverified : bool
        Required for weights without a known sha256 (URLs without ``sha256``, registry entries with
        ``needs_opt_in``); they are then used with an :class:`UnverifiedDownloadWarning`.
    sha256 : str, optional
        Expected sha256 of the downloaded (or local) file. Pins a URL or an unverified registry entry, and
        verifies a local file. For archives it is the archive's checksum.
    cache : path-like, optional
        Cache directory; default :func:`cache_dir`.
    progress : bool
        Show a tqdm progress bar while downloading.

    Returns
    -------
    pathlib.Path
        Path of the weights file.

    Raises
    ------
    ValueError
        Unknown name / missing file / bad URL, or an unverified source without ``allow_unverified``.
    DownloadError
        The download failed or the checksum did not match.
    """
    sha = _check_sha256(sha256) if sha256 is not None else None
    root = Path(cache) if cache is not None else cache_dir()

    if isinstance(spec, WeightsSpec) or (isinstance(spec, str) and spec in WEIGHTS_REGISTRY):
        entry = spec if isinstance(spec, WeightsSpec) else WEIGHTS_REGISTRY[spec]
        label = f"weights {spec!r}" if isinstance(spec, str) else f"weights at {entry.url}"
        if sha is not None and entry.sha256 is not None and sha != entry.sha256:
            raise ValueError(f"sha256={sha!r} contradicts the registered sha256 {entry.sha256!r} of {label}")
        pinned = sha or entry.sha256
        if entry.needs_opt_in and sha is None and not allow_unverified:
            raise ValueError(
                f"{label} have no published sha256 checksum, so they are not downloaded by default. Pass "
                "allow_unverified=True to use them anyway (a warning is issued), or sha256=... to pin a known "
                "checksum. The weights shipped with the package (BHDFInterpreter() with no weights argument) "
                "need neither network nor opt-in."
            )
        path = download(
            entry.url, sha256=pinned, filename=entry.filename, cache=root, progress=progress,
            allow_unverified=pinned is None,
        )
        if entry.member is not None or _is_archive_name(path.name):
            return _extract_member(path, entry.member)
        return path

    text = os.fspath(spec) if isinstance(spec, (str, os.PathLike)) else None
    if text is None:
        raise ValueError(f"weights must be a registry name, a local path, a URL or a WeightsSpec, got {spec!r}")
    if text.lower().startswith(("http://", "https://")):
        path = download(text, sha256=sha, cache=root, progress=progress, allow_unverified=allow_unverified)
        return _extract_member(path, None) if _is_archive_name(path.name) else path

    local = Path(text).expanduser()
    if local.is_file():
        if sha is not None:
            digest = sha256_file(local)
            if digest != sha:
                raise ChecksumMismatchError(f"{local} has sha256 {digest}, expected {sha}")
        if _is_archive_name(local.name):
            digest = sha256_file(local)
            return _extract_member(local, None, dest=root / "extracted" / digest[:16])
        return local
    if local.exists():
        raise ValueError(f"weights path {str(local)!r} exists but is not a file")
    raise ValueError(
        f"unknown weights {text!r}: not a registered name (available: {sorted(WEIGHTS_REGISTRY)}), "
        "not an existing file and not an http(s) URL"
    )


# --------------------------------------------------------------------------------------------------- internals


class _HTTPStatusError(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"HTTP {status} {reason}".strip())
        self.status = status
        self.reason = reason


class _TruncatedError(Exception):
    """The body ended before Content-Length bytes arrived."""


class _Failure(Exception):
    """A retryable failure with a readable message."""


def _fetch_once(
    session: requests.Session,
    url: str,
    target: Path,
    sha: str | None,
    timeout: tuple[float, float],
    progress: bool,
) -> str:
    """One GET attempt: stream into a temporary file beside ``target``, verify, rename. Return the sha256."""
    # identity encoding, so that Content-Length counts the bytes we receive
    with session.get(url, stream=True, timeout=timeout, headers={"Accept-Encoding": "identity"}) as resp:
        if resp.status_code >= 400:
            raise _HTTPStatusError(resp.status_code, resp.reason or "")
        expected: int | None = None
        length = resp.headers.get("Content-Length")
        if length is not None and length.strip().isdigit() and not resp.headers.get("Content-Encoding"):
            expected = int(length)
        h = hashlib.sha256()
        received = 0
        with atomic_path(target) as tmp:
            with open(tmp, "wb") as f, tqdm(
                total=expected, unit="B", unit_scale=True, unit_divisor=1024, desc=target.name,
                disable=not progress, leave=False,
            ) as bar:
                for chunk in resp.iter_content(chunk_size=_CHUNK):
                    f.write(chunk)
                    h.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
            if expected is not None and received != expected:
                raise _TruncatedError(f"truncated body: received {received} of {expected} bytes (Content-Length)")
            digest = h.hexdigest()
            if sha is not None and digest != sha:
                raise ChecksumMismatchError(
                    f"checksum mismatch for {url}: expected sha256 {sha}, got {digest}; the download was discarded "
                    "and the cache left unchanged. The file on the server differs from the expected one: check the "
                    f"URL and checksum. {_OFFLINE_HINT}",
                    url=url,
                )
    return digest


def _warn_unverified(url: str, path: Path, digest: str) -> None:
    warnings.warn(
        f"using {path} downloaded from {url} without checksum verification (allow_unverified=True); its sha256 "
        f"is {digest}. Pass sha256={digest!r} to pin it.",
        UnverifiedDownloadWarning,
        stacklevel=3,
    )


def _check_timeout(timeout: object) -> tuple[float, float]:
    pair = (timeout, timeout) if isinstance(timeout, (int, float)) and not isinstance(timeout, bool) else timeout
    if (
        not isinstance(pair, (tuple, list)) or len(pair) != 2
        or not all(isinstance(t, (int, float)) and not isinstance(t, bool) and t > 0 for t in pair)
    ):
        raise ValueError(f"timeout must be a positive number or a (connect, read) pair of them, got {timeout!r}")
    return float(pair[0]), float(pair[1])


def _url_basename(url: str) -> str:
    name = urllib.parse.unquote(urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1])
    if not name or name in (".", "..") or "\\" in name or "\x00" in name:
        raise ValueError(f"cannot derive a file name from {url!r}; pass filename=...")
    return name


def _is_archive_name(name: str) -> bool:
    return name.lower().endswith(_ARCHIVE_SUFFIXES)


def _extract_member(archive: Path, member: str | None, dest: Path | None = None) -> Path:
    """Extract ``archive`` (into a staging folder, then move) and return the weights file inside it.

    ``member`` names the file; if None the archive must hold exactly one ``.pdparams`` file, or exactly one
    file. The file lands in ``dest`` (default: ``<archive>.extracted`` beside the archive).
    """
    final_root = dest if dest is not None else archive.with_name(archive.name + ".extracted")
    if member is not None:
        parts = _safe_parts(member, archive)
        final = final_root.joinpath(*parts)
        if final.is_file() and final.stat().st_mtime >= archive.stat().st_mtime:
            return final
    final_root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=final_root))
    try:
        files = [p for p in extract_archive(archive, staging) if p.is_file() and not p.is_symlink()]
        rel = [p.relative_to(staging) for p in files]
        if member is not None:
            wanted = PurePosixPath(*_safe_parts(member, archive))
            chosen = [r for r in rel if PurePosixPath(r.as_posix()) == wanted]
            if not chosen:
                raise ValueError(f"{archive} has no member {member!r}; members: {[r.as_posix() for r in rel]}")
        else:
            chosen = [r for r in rel if r.suffix == ".pdparams"] or rel
            if len(chosen) != 1:
                raise ValueError(
                    f"cannot tell which file of {archive} holds the weights (members: {[r.as_posix() for r in rel]}); "
                    "extract it yourself and pass its path"
                )
        final = final_root / chosen[0]
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging / chosen[0], final)
        os.utime(final)  # tar keeps the member's old mtime; "now" marks it as newer than the archive
        return final
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _safe_parts(name: str, archive: Path) -> list[str]:
    """Split an archive member name into path parts; refuse absolute names and ``..``."""
    if "\x00" in name:
        raise UnsafeArchiveError(f"refusing to extract {archive}: member name {name!r} contains a NUL byte")
    if _is_absolute(name):
        raise UnsafeArchiveError(f"refusing to extract {archive}: member {name!r} has an absolute path")
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchiveError(f"refusing to extract {archive}: member {name!r} contains '..' (path traversal)")
    return parts


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _check_on_disk(dest: Path, parts: list[str], name: str, archive: Path) -> None:
    """Refuse a member whose location resolves outside ``dest`` through symlinks already on disk."""
    root = os.path.realpath(dest)
    if not _within(os.path.realpath(dest.joinpath(*parts)), root):
        raise UnsafeArchiveError(
            f"refusing to extract {archive}: member {name!r} would be written outside {dest} through an existing "
            "symbolic link"
        )


def _virtual_resolve(parts: list[str], links: dict[tuple[str, ...], str]) -> tuple[str, ...] | None:
    """Resolve ``parts`` (relative to the destination) through the archive's own symlinks, lexically.

    Returns the resolved parts, or None if the path leaves the destination, is absolute, or loops.
    """
    todo = list(parts)
    cur: list[str] = []
    hops = 0
    while todo:
        part = todo.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            if not cur:
                return None
            cur.pop()
            continue
        cur.append(part)
        target = links.get(tuple(cur))
        if target is not None:
            hops += 1
            if hops > _MAX_LINK_HOPS or _is_absolute(target):
                return None
            cur.pop()
            todo = target.replace("\\", "/").split("/") + todo
    return tuple(cur)


def _extract_zip(src: Path, dest: Path) -> list[Path]:
    with zipfile.ZipFile(src) as zf:
        plan = []
        for info in zf.infolist():
            parts = _safe_parts(info.filename, src)
            if stat.S_ISLNK(info.external_attr >> 16):
                raise UnsafeArchiveError(f"refusing to extract {src}: member {info.filename!r} is a symbolic link")
            if parts:
                _check_on_disk(dest, parts, info.filename, src)
                plan.append((info, parts))
        out: list[Path] = []
        dest.mkdir(parents=True, exist_ok=True)
        for info, parts in plan:
            target = dest.joinpath(*parts)
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as fin, open(target, "wb") as fout:
                shutil.copyfileobj(fin, fout)
            out.append(target)
    return out


def _extract_tar(src: Path, dest: Path) -> list[Path]:
    with tarfile.open(src) as tf:
        members = tf.getmembers()
        parsed = [(m, _safe_parts(m.name, src)) for m in members]
        links = {tuple(parts): m.linkname for m, parts in parsed if m.issym() and parts}
        plan = []
        for m, parts in parsed:
            if not parts:
                continue
            if not (m.isfile() or m.isdir() or m.issym() or m.islnk()):
                raise UnsafeArchiveError(f"refusing to extract {src}: member {m.name!r} is a device or FIFO")
            # the folder the member goes into, seen through the archive's symlinks
            if _virtual_resolve(parts[:-1], links) is None:
                raise UnsafeArchiveError(f"refusing to extract {src}: member {m.name!r} leaves the destination")
            if m.issym() and (
                _is_absolute(m.linkname)
                or _virtual_resolve(parts[:-1] + m.linkname.replace("\\", "/").split("/"), links) is None
            ):
                raise UnsafeArchiveError(
                    f"refusing to extract {src}: symbolic link {m.name!r} -> {m.linkname!r} points outside the "
                    "destination"
                )
            if m.islnk():
                link_parts = _safe_parts(m.linkname, src)
                if _virtual_resolve(link_parts, links) is None:
                    raise UnsafeArchiveError(
                        f"refusing to extract {src}: hard link {m.name!r} -> {m.linkname!r} points outside the "
                        "destination"
                    )
            _check_on_disk(dest, parts, m.name, src)
            plan.append((m, parts))
        dest.mkdir(parents=True, exist_ok=True)
        kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        tf.extractall(dest, members=[m for m, _ in plan], **kwargs)
    return [dest.joinpath(*parts) for m, parts in plan if not m.isdir()]
