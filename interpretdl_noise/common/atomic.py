"""Atomic file writes and output-path checks (standard library only, cheap to import).

:func:`atomic_path` writes through a temporary file in the target's folder and ``os.replace``: readers see
the old file or the new one, never half of one, and a failure leaves the old file untouched.
:func:`check_output_path` refuses an output path that would destroy an input or another existing file.
"""
from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Optional, Union

__all__ = ["PathLike", "atomic_group", "atomic_path", "check_output_path", "complete_atomic_group"]

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
        _keep_mode(tmp, target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def _keep_mode(tmp: Path, target: Path) -> None:
    try:
        old = os.stat(target)
        mode = stat.S_IMODE(old.st_mode) if stat.S_ISREG(old.st_mode) else _new_file_mode()
    except FileNotFoundError:
        mode = _new_file_mode()
    os.chmod(tmp, mode)


def _fsync(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def complete_atomic_group(journal: PathLike) -> bool:
    """Finish a group write of :func:`atomic_group` that was interrupted after its commit point.

    Returns True if a pending group was found (and its remaining renames done), False if there was none.
    Safe to call at any time and more than once.
    """
    journal = Path(journal)
    if not journal.is_file():
        return False
    try:
        pairs = json.loads(journal.read_text(encoding="utf-8"))["renames"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"the write journal {journal} is unreadable ({exc}); the files beside it may be from two "
                         "different writes: remove the journal and write them again") from exc
    folder = journal.parent
    for tmp_name, final_name in pairs:
        tmp = folder / tmp_name
        if tmp.exists():
            os.replace(tmp, folder / final_name)
    journal.unlink()
    return True


@contextlib.contextmanager
def atomic_group(paths: Iterable[PathLike], *, journal: Optional[PathLike] = None) -> Iterator[list]:
    """Like :func:`atomic_path` for several files of one folder that must change together.

    Yields one temporary path per target. When the block succeeds the temporaries are flushed to disk, a
    journal listing the renames is written atomically (the commit point), the renames are done and the
    journal is removed. A crash before the commit leaves every old file untouched; a crash after it is
    completed by :func:`complete_atomic_group` (called on the next ``atomic_group`` with the same journal),
    so the files end up all old or all new, never mixed.

    Parameters
    ----------
    paths : iterable of path
        Target files, all in one folder.
    journal : path, optional
        The journal file; default ``.<first name>.group.json`` in that folder.
    """
    targets = [Path(p) for p in paths]
    folder = targets[0].parent
    if any(t.parent != folder for t in targets):
        raise ValueError(f"atomic_group needs files of one folder, got {[str(t) for t in targets]}")
    journal = Path(journal) if journal is not None else folder / f".{targets[0].name}.group.json"
    folder.mkdir(parents=True, exist_ok=True)
    complete_atomic_group(journal)
    tmps: list = []
    committed = False
    try:
        for t in targets:
            fd, name = tempfile.mkstemp(prefix=f".{t.name}.", suffix=".tmp", dir=folder)
            os.close(fd)
            tmps.append(Path(name))
        yield list(tmps)
        for tmp, t in zip(tmps, targets):
            _keep_mode(tmp, t)
            _fsync(tmp)
        with atomic_path(journal) as tmp_journal:
            tmp_journal.write_text(json.dumps({"renames": [[tmp.name, t.name] for tmp, t in zip(tmps, targets)]}),
                                   encoding="utf-8")
            _fsync(tmp_journal)
        committed = True
        complete_atomic_group(journal)
    finally:
        if not committed:
            for tmp in tmps:
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
