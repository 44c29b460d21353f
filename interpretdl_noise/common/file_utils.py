"""Compatibility re-exports; the code lives in three modules.

- :mod:`interpretdl_noise.common.atomic`: ``atomic_path``, ``check_output_path``, ``PathLike``;
- :mod:`interpretdl_noise.common.download`: ``download``, ``cache_dir``, ``extract_archive`` and the errors;
- :mod:`interpretdl_noise.interpreter.bhdf_weights`: ``WeightsSpec``, ``WEIGHTS_REGISTRY``,
  ``register_weights``, ``resolve_weights`` (imported on first use, since that package imports paddle).
"""
from __future__ import annotations

from .atomic import PathLike, atomic_path, check_output_path
from .download import (CACHE_ENV, DEFAULT_MAX_BYTES, DEFAULT_TIMEOUT, ChecksumMismatchError, DownloadError,
                       UnsafeArchiveError, UnverifiedDownloadWarning, cache_dir, download, download_deadline,
                       extract_archive, sha256_file)

_WEIGHTS_NAMES = ("WEIGHTS_REGISTRY", "WeightsSpec", "register_weights", "resolve_weights")

__all__ = [
    "CACHE_ENV", "DEFAULT_MAX_BYTES", "DEFAULT_TIMEOUT", "ChecksumMismatchError", "DownloadError", "PathLike",
    "UnsafeArchiveError", "UnverifiedDownloadWarning", "atomic_path", "cache_dir", "check_output_path", "download",
    "download_deadline", "extract_archive", "sha256_file", *_WEIGHTS_NAMES,
]


def __getattr__(name: str):
    if name in _WEIGHTS_NAMES:
        from ..interpreter import bhdf_weights

        return getattr(bhdf_weights, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
