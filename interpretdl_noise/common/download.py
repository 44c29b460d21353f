"""Safe downloads: a user cache, verified atomic downloads with time and size limits, safe extraction.

Downloads (:func:`download`) go to a user cache (:func:`cache_dir`), are verified by sha256, written
atomically, retried with timeouts and backoff, bounded by an overall deadline and a maximum size, and
archives are extracted without path traversal (:func:`extract_archive`). Named BHDF weights and
``resolve_weights`` live beside the detector, in :mod:`interpretdl_noise.interpreter.bhdf_weights`.
Only requests, tqdm and the standard library are used here (no paddle), so this module stays cheap to import.
"""
from __future__ import annotations

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
from pathlib import Path, PurePosixPath

import requests
import urllib3
from tqdm.auto import tqdm

from .atomic import PathLike, atomic_path

__all__ = [
    "CACHE_ENV",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_TIMEOUT",
    "MIN_RATE",
    "ChecksumMismatchError",
    "DownloadError",
    "UnsafeArchiveError",
    "UnverifiedDownloadWarning",
    "cache_dir",
    "download",
    "download_deadline",
    "extract_archive",
    "sha256_file",
]


CACHE_ENV = "INTERPRETDL_NOISE_CACHE"
"""Environment variable that overrides the cache directory (see :func:`cache_dir`)."""

DEFAULT_TIMEOUT: tuple[float, float] = (10.0, 60.0)
"""Default ``(connect, read)`` timeouts in seconds for :func:`download`."""

DEFAULT_MAX_BYTES = 1 << 30
"""Largest body :func:`download` accepts when neither ``max_bytes`` nor an expected size is given (1 GiB)."""

MIN_RATE = 32 * 1024
"""Slowest average transfer rate (bytes per second) the automatic deadline allows (see :func:`download_deadline`)."""

_ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1 << 16
_MAX_BACKOFF = 30.0
_MAX_LINK_HOPS = 40
_MAX_EXTRACT_BYTES = 4 << 30  # an archive that inflates beyond this (a zip bomb) is refused before extracting
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


def _cache_root(cache: PathLike | None) -> Path:
    """The cache folder to use; refuse one that exists but is not a folder (naming where it came from)."""
    root = Path(cache) if cache is not None else cache_dir()
    if root.exists() and not root.is_dir():
        origin = (f"cache={os.fspath(cache)!r}" if cache is not None
                  else f"${CACHE_ENV}" if os.environ.get(CACHE_ENV, "").strip() else "the default cache location")
        raise ValueError(f"the download cache {root} ({origin}) is an existing file, not a folder; point it at a "
                         "folder (it is created if missing)")
    return root


def download_deadline(expected_bytes: int | None, timeout: float | tuple[float, float] = DEFAULT_TIMEOUT) -> float:
    """The automatic overall deadline of one :func:`download` call, in seconds.

    ``connect + 2 * read`` timeouts (time to start, and to wait out one stall) plus the time the body
    takes at :data:`MIN_RATE` bytes per second; ``expected_bytes`` is the registry entry's size, the
    server's ``Content-Length`` or the maximum size.
    """
    connect, read = _check_timeout(timeout)
    return connect + 2 * read + (expected_bytes or 0) / MIN_RATE


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
    max_bytes: int | None = None,
    deadline: float | None = None,
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
    max_bytes : int, optional
        Largest body accepted (default :data:`DEFAULT_MAX_BYTES`; ``resolve_weights`` passes the registry
        entry's size). A larger ``Content-Length`` is refused before reading, a longer body is cut off as
        soon as it passes the limit; neither is retried and nothing is kept.
    deadline : float, optional
        Seconds the whole call (all attempts) may take. Default :func:`download_deadline` of the expected
        size (``Content-Length``, else ``max_bytes``). A server that trickles data inside the read timeout
        fails here instead of holding the caller indefinitely.

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
    limit = DEFAULT_MAX_BYTES if max_bytes is None else max_bytes
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"max_bytes must be a positive int, got {max_bytes!r}")
    if deadline is not None and (isinstance(deadline, bool) or not isinstance(deadline, (int, float))
                                 or not deadline > 0):
        raise ValueError(f"deadline must be a positive number of seconds, got {deadline!r}")
    limits = _Limits(start=time.monotonic(), max_bytes=limit, deadline=deadline,
                     timeout=(connect_timeout, read_timeout))

    root = _cache_root(cache)
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
                if limits.remaining(None) <= delay:
                    break
                logger.info("retrying %s in %.2f s (attempt %d of %d): %s", url, delay, attempt + 1, attempts, last)
                time.sleep(delay)
            try:
                digest = _fetch_once(session, url, target, sha, limits, progress)
            except _LimitError as err:
                raise DownloadError(f"downloading {url} stopped: {err}. {_OFFLINE_HINT}", url=url) from None
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
            except (requests.exceptions.Timeout, urllib3.exceptions.TimeoutError) as err:
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


class _LimitError(Exception):
    """The deadline or the size limit was exceeded (never retried)."""


class _Limits:
    """The overall deadline and the size limit of one :func:`download` call."""

    def __init__(self, *, start: float, max_bytes: int, deadline: float | None, timeout: tuple[float, float]):
        self.start, self.max_bytes, self.deadline, self.timeout = start, max_bytes, deadline, timeout

    def seconds(self, expected: int | None) -> float:
        if self.deadline is not None:
            return float(self.deadline)
        return download_deadline(expected if expected is not None else self.max_bytes, self.timeout)

    def remaining(self, expected: int | None) -> float:
        return self.seconds(expected) - (time.monotonic() - self.start)

    def check_time(self, expected: int | None, received: int) -> None:
        if self.remaining(expected) < 0:
            raise _LimitError(f"the download took longer than its deadline of {self.seconds(expected):.1f} s "
                              f"({received} bytes received); pass deadline=... to allow more time")


def _fetch_once(
    session: requests.Session,
    url: str,
    target: Path,
    sha: str | None,
    limits: _Limits,
    progress: bool,
) -> str:
    """One GET attempt: stream into a temporary file beside ``target``, verify, rename. Return the sha256."""
    limits.check_time(None, 0)
    # identity encoding, so that Content-Length counts the bytes we receive
    with session.get(url, stream=True, timeout=limits.timeout, headers={"Accept-Encoding": "identity"}) as resp:
        if resp.status_code >= 400:
            raise _HTTPStatusError(resp.status_code, resp.reason or "")
        expected: int | None = None
        length = resp.headers.get("Content-Length")
        if length is not None and re.fullmatch(r"[0-9]{1,19}", length.strip()) and not resp.headers.get(
                "Content-Encoding"):
            expected = int(length)
        if expected is not None and expected > limits.max_bytes:
            raise _LimitError(f"the server announces {expected} bytes, more than the limit of {limits.max_bytes} "
                              "bytes; pass max_bytes=... if the file really is that large")
        h = hashlib.sha256()
        received = 0
        with atomic_path(target) as tmp:
            with open(tmp, "wb") as f, tqdm(
                total=expected, unit="B", unit_scale=True, unit_divisor=1024, desc=target.name,
                disable=not progress, leave=False,
            ) as bar:
                for chunk in _body_chunks(resp):
                    received += len(chunk)
                    if received > limits.max_bytes:
                        raise _LimitError(f"the body exceeds the limit of {limits.max_bytes} bytes; the partial "
                                          "file was discarded. Pass max_bytes=... if the file really is that large")
                    f.write(chunk)
                    h.update(chunk)
                    bar.update(len(chunk))
                    limits.check_time(expected, received)
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


def _body_chunks(resp: requests.Response):
    """The body as it arrives: with urllib3 2, each piece is what one socket read returns (so the deadline is
    checked while a server trickles data); older urllib3 falls back to fixed-size chunks."""
    read1 = getattr(resp.raw, "read1", None)
    if read1 is None:
        yield from resp.iter_content(chunk_size=_CHUNK)
        return
    while True:
        chunk = read1(_CHUNK, decode_content=True)
        if not chunk:
            return
        yield chunk


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


def _check_total(src: Path, total: int) -> None:
    if total > _MAX_EXTRACT_BYTES:
        raise UnsafeArchiveError(f"refusing to extract {src}: its members add up to {total} bytes, more than the "
                                 f"limit of {_MAX_EXTRACT_BYTES} bytes (a zip bomb?)")


def _extract_zip(src: Path, dest: Path) -> list[Path]:
    with zipfile.ZipFile(src) as zf:
        _check_total(src, sum(info.file_size for info in zf.infolist()))
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
        _check_total(src, sum(m.size for m in members if m.isfile()))
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
