"""Named BHDF detector weights: :class:`WeightsSpec`, :data:`WEIGHTS_REGISTRY` and :func:`resolve_weights`.

The shipped weights need none of this (``BHDFInterpreter()`` reads them from the package). Other weights
are named here, downloaded through :func:`interpretdl_noise.common.download.download` (sha256-verified,
atomic, bounded in time and size) and extracted safely. No paddle is needed by this module.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..common.atomic import PathLike
from ..common.download import (ChecksumMismatchError, _cache_root, _check_filename, _check_sha256, _check_url,
                               _extract_member, _is_absolute, _is_archive_name, download, sha256_file)

__all__ = ["WEIGHTS_REGISTRY", "WeightsSpec", "register_weights", "resolve_weights"]


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
    size : int, optional
        Expected size in bytes of the downloaded file: the download's maximum size and the basis of its
        deadline. Default: :data:`~interpretdl_noise.common.download.DEFAULT_MAX_BYTES`.
    """

    url: str
    sha256: str | None
    filename: str
    member: str | None = None
    description: str = ""
    needs_opt_in: bool = False
    size: int | None = None

    def __post_init__(self) -> None:
        if self.size is not None and (isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 1):
            raise ValueError(f"size must be a positive number of bytes, got {self.size!r}")
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
    root = _cache_root(cache)

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
            allow_unverified=pinned is None, max_bytes=entry.size,
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


