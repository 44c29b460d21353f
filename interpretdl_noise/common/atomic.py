"""Atomic file writes and output-path checks (standard library only, cheap to import).

:func:`atomic_path` writes through a temporary file in the target's folder and ``os.replace``: readers see
the old file or the new one, never half of one, and a failure leaves the old file untouched.
:func:`check_output_path` refuses an output path that would destroy an input or another existing file.
"""
from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Optional, Union

__all__ = ["PathLike", "atomic_path", "check_output_path"]

PathLike = Union[str, "os.PathLike[str]"]


def _new_file_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    The parent folder is created if needed. On any error the temporary file is removed and an
    existing file at ``path`` is left untouched. The new file keeps the permission bits of the file it
    replaces; a new file gets those of a normally created file (``0o666`` less the umask), not
    ``mkstemp``'s private ``0o600``.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        try:
            old = os.stat(target)
            mode = stat.S_IMODE(old.st_mode) if stat.S_ISREG(old.st_mode) else _new_file_mode()
        except FileNotFoundError:
            mode = _new_file_mode()
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def check_output_path(out: PathLike, *, inputs: Iterable[Optional[PathLike]] = (),
                      allowed_suffixes: Optional[Iterable[str]] = None, directory: bool = False) -> Path:
    """Refuse an output path that is an input, or an existing file that is not one of our outputs.

    Call it before any work is done, so that a typo such as ``--out run.npz`` fails at once and loses
    nothing.

    Parameters
    ----------
    out : path
        Where the output will be written.
    inputs : iterable of path or None
        The files the command reads (``None`` entries are skipped, for in-memory inputs).
    allowed_suffixes : iterable of str, optional
        File outputs only: an existing file at ``out`` may be replaced only if its suffix is one of these
        (case-insensitive, e.g. ``(".csv",)``); an existing file with any other suffix is refused. Default:
        any existing file that is not an input may be replaced.
    directory : bool, default=False
        ``out`` is a folder to write several files into: it must not be an existing non-folder (nor an
        input); an existing folder is fine.

    Returns
    -------
    pathlib.Path
        ``out`` as a Path.

    Raises
    ------
    ValueError
        ``out`` is an input, a folder where a file is expected, a file where a folder is expected, or an
        existing file with a suffix outside ``allowed_suffixes``. The message names the path.
    """
    path = Path(out)
    for given in inputs:
        if given is not None and path.exists() and _same_file(path, Path(given)):
            raise ValueError(f"refusing to write the output to {path}: it is the input {given}; choose another "
                             "output path")
    if directory:
        if path.exists() and not path.is_dir():
            raise ValueError(f"refusing to write into {path}: it is an existing file, not a folder; give a folder "
                             "path for the output")
        return path
    if path.is_dir():
        raise ValueError(f"refusing to write the output to {path}: it is a folder; give a file path")
    if path.exists() and allowed_suffixes is not None:
        allowed = tuple(s.lower() for s in allowed_suffixes)
        if path.suffix.lower() not in allowed:
            raise ValueError(f"refusing to overwrite the existing file {path}: an output here must end in "
                             f"{' or '.join(allowed)}; remove the file or choose another path")
    return path
