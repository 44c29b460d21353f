"""Reading and writing ``training_dynamics.npz`` recordings, never with pickle.

Format (compatible with InterpretDL 0.8 in both directions):

=============  ===========  =========  ====================================================
key            shape        dtype      meaning
=============  ===========  =========  ====================================================
``td``         (N, E, C)    float16    per-epoch softmax; channel 0 = assigned label
``labels``     (N, C)       int16      class id of each ``td`` channel
``label_flip`` (N,)         bool       optional; True = known mislabeled
``logits``     (N, E, C)    float32    optional extra: raw logits, model class order
``losses``     (N, E)       float32    optional extra: per-sample training loss
``sample_ids`` (N,)         int64      optional extra: dataset index of each row
``meta``       ()           str        optional extra: JSON metadata
=============  ===========  =========  ====================================================

InterpretDL writes ``label_flip=None`` as a pickled 0-d object array. We recognise that payload by
inspecting its opcodes (never executing them) and treat it as absent; any other object array is refused.
"""
from __future__ import annotations

import json
import os
import pickletools
import struct
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

import numpy as np

from ..common.atomic import PathLike, atomic_path
from ..common.safe_pickle import NUMPY_ARRAY_GLOBALS

REQUIRED_KEYS = ("td",)
# What numpy writes for ``np.array(None, dtype=object)`` only references the numpy-array globals (protocols 2-5).
_NONE_ARRAY_GLOBALS = {f"{module} {name}" for module, name in NUMPY_ARRAY_GLOBALS}
_NONE_ARRAY_STRINGS = {part for pair in NUMPY_ARRAY_GLOBALS for part in pair} | {"O8", "|", "b", "latin1"}
# Deflate cannot compress by more than about 1032:1; a member claiming more is lying about its size.
_MAX_RATIO = 1100
# Reading a member can fail in many ways inside zipfile / zlib / numpy; each becomes our ValueError.
_READ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError, ValueError,
                TypeError, KeyError, OverflowError, SyntaxError, struct.error, MemoryError, RecursionError,
                UnicodeDecodeError)
# Rows of td are softmax vectors. A row off by more than SUM_TOLERANCE gets a warning (InterpretDL's own
# per-channel interpolation of missing epochs gives sums from 0.3 to 1.9, and such files must load); a row
# with (almost) no probability mass at all is an error: it is not a softmax, and every score would tie.
SUM_TOLERANCE = 0.05
_MIN_ROW_SUM = 0.01
_CHUNK_ELEMENTS = 1 << 20  # validation works on slices of about this many values (bounded temporaries)
_MEMO_OPS = {"MEMOIZE", "BINPUT", "LONG_BINPUT", "PUT"}
_SAFE_OPS = _MEMO_OPS | {"PROTO", "FRAME", "GLOBAL", "STACK_GLOBAL", "SHORT_BINUNICODE", "BINUNICODE", "UNICODE",
                         "SHORT_BINBYTES", "BINBYTES", "BININT", "BININT1", "BININT2", "BINGET", "LONG_BINGET", "GET",
                         "MARK", "TUPLE", "TUPLE1", "TUPLE2", "TUPLE3", "EMPTY_TUPLE", "REDUCE", "BUILD", "NONE",
                         "NEWFALSE", "NEWTRUE", "EMPTY_LIST", "APPEND", "STOP"}


def _is_pickled_none_array(payload: bytes) -> bool:
    """Decide from the opcodes alone (nothing is executed) whether ``payload`` is a 0-d object array holding None.

    InterpretDL 0.8 saves ``label_flip=None``, which numpy pickles as such an array. We accept it only if
    every opcode is harmless, every referenced name belongs to numpy's array reconstruction, and the
    array's data list holds exactly one ``None``.
    """
    try:
        ops = [(op.name, arg) for op, arg, _ in pickletools.genops(payload)]
    except Exception:  # malformed opcode stream
        return False
    if any(name not in _SAFE_OPS for name, _ in ops):
        return False
    if any(name == "GLOBAL" and arg not in _NONE_ARRAY_GLOBALS for name, arg in ops):
        return False
    if any(name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE") and arg not in _NONE_ARRAY_STRINGS
           for name, arg in ops):
        return False
    lists = [i for i, (name, _) in enumerate(ops) if name == "EMPTY_LIST"]
    if len(lists) != 1:
        return False
    items = []
    for name, _ in ops[lists[0] + 1:]:
        if name == "APPEND":
            break
        if name not in _MEMO_OPS:
            items.append(name)
    return items == ["NONE"]


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path, archive_size: Optional[int]
                 ) -> Optional[np.ndarray]:
    """Read one ``.npy`` member; return None for a pickled ``None`` and refuse other object arrays.

    Before anything is allocated, the size the ``.npy`` header declares must equal the member's size in the
    zip directory, and that size must be possible for the compressed bytes actually in the file, so a
    tiny file cannot make us allocate a huge array.
    """
    key = info.filename[:-4]
    if archive_size is not None and info.compress_size > archive_size:
        raise ValueError(f"{path}: key {key!r} claims {info.compress_size} compressed bytes but the file has "
                         f"only {archive_size}; the file is truncated or corrupt")
    if info.file_size > _MAX_RATIO * max(info.compress_size, 1) + 1024:
        raise ValueError(f"{path}: key {key!r} claims to inflate {info.compress_size} bytes to {info.file_size} "
                         f"(more than {_MAX_RATIO}:1, impossible for numpy's compression); refusing a zip bomb")
    with zf.open(info) as fh:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
        else:
            raise ValueError(f"{path}: key {key!r} uses unsupported .npy format version {version}")
        header_size = fh.tell()
        if dtype.hasobject:
            if shape != () or info.file_size - header_size > 4096:
                raise ValueError(f"{path}: key {key!r} holds a pickled object array; refusing to unpickle it. "
                                 "Store plain numeric arrays instead.")
            payload = fh.read(4096)
            if _is_pickled_none_array(payload):
                return None
            raise ValueError(f"{path}: key {key!r} holds a pickled object array; refusing to unpickle it. "
                             "Store plain numeric arrays instead.")
        count = 1
        for dim in shape:
            count *= int(dim)
        declared = count * dtype.itemsize
        if declared != info.file_size - header_size:
            raise ValueError(f"{path}: key {key!r} declares shape {shape} {dtype} ({declared} bytes) but the file "
                             f"holds {info.file_size - header_size} bytes for it; the file is corrupt or forged")
    with zf.open(info) as fh:
        return np.lib.format.read_array(fh, allow_pickle=False)


def _read_zip(zf: zipfile.ZipFile, path, archive_size: Optional[int]) -> Dict[str, np.ndarray]:
    """Every ``.npy`` member of an open npz, read safely (see :func:`_read_member`)."""
    infos = [i for i in zf.infolist() if i.filename.endswith(".npy")]
    if not infos:
        raise ValueError(f"{path} is not an npz recording: it holds no .npy arrays")
    names = [i.filename for i in infos]
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"{path} holds the key(s) {[n[:-4] for n in twice]} more than once; the file is corrupt")
    out = {}
    for info in infos:
        try:
            arr = _read_member(zf, info, path, archive_size)
        except _READ_ERRORS as exc:
            if isinstance(exc, ValueError) and str(exc).startswith(str(path)):
                raise
            kind = type(exc).__name__ if type(exc).__module__ == "builtins" else \
                f"{type(exc).__module__}.{type(exc).__name__}"
            raise ValueError(f"{path} is not a readable npz file (truncated or corrupt): key "
                             f"{info.filename[:-4]!r}: {kind}: {exc}") from exc
        if arr is not None:
            out[info.filename[:-4]] = arr
    return out


def _read_npz(path: Path) -> Dict[str, np.ndarray]:
    if not path.is_file():
        raise FileNotFoundError(f"no training-dynamics file at {path}")
    try:
        with zipfile.ZipFile(path) as zf:
            return _read_zip(zf, path, path.stat().st_size)
    except _READ_ERRORS as exc:
        if isinstance(exc, ValueError) and str(exc).startswith(str(path)):
            raise
        raise ValueError(f"{path} is not a readable npz file (truncated or corrupt): {exc}") from exc


def _read_npzfile(data: "np.lib.npyio.NpzFile") -> tuple[Dict[str, np.ndarray], str]:
    """The arrays of an ``np.load`` result, re-read through our reader (never unpickled, whatever its
    ``allow_pickle``)."""
    fid = getattr(data, "fid", None)
    source = str(getattr(fid, "name", "npz file"))
    if data.zip is None:
        raise ValueError(f"{source}: the NpzFile is closed; use it inside its `with np.load(...)` block, or pass "
                         "the path")
    size = None
    try:
        size = os.fstat(fid.fileno()).st_size
    except (AttributeError, OSError, ValueError):
        pass
    try:
        return _read_zip(data.zip, source, size), source
    except _READ_ERRORS as exc:
        if isinstance(exc, ValueError) and str(exc).startswith(source):
            raise
        raise ValueError(f"{source} is not a readable npz file (truncated or corrupt): {exc}") from exc


def _rows(arr: np.ndarray):
    """Slices of ``arr`` along axis 0 with about ``_CHUNK_ELEMENTS`` values each (bounded temporaries)."""
    per_row = max(1, int(np.prod(arr.shape[1:], dtype=np.int64)))
    step = max(1, _CHUNK_ELEMENTS // per_row)
    for start in range(0, arr.shape[0], step):
        yield start, arr[start:start + step]


def _check_td_values(td: np.ndarray, source: str) -> None:
    """NaN, range and row sums of td, in slices (no temporary as large as td)."""
    nan_rows, lo, hi = [], np.inf, -np.inf
    off_count, off_at, empty_count, empty_at = 0, None, 0, None
    for start, part in _rows(td):
        nan = np.isnan(part).any(axis=(1, 2))
        if nan.any():
            nan_rows.extend((start + np.flatnonzero(nan)).tolist())
            continue
        lo, hi = min(lo, float(part.min())), max(hi, float(part.max()))
        if np.isinf(part).any():
            continue
        sums = part.sum(axis=2, dtype=np.float32)
        for mask, kind in ((sums < _MIN_ROW_SUM, "empty"), (np.abs(sums - 1.0) > SUM_TOLERANCE, "off")):
            if mask.any():
                i, e = np.unravel_index(int(mask.argmax()), mask.shape)  # the first one, without listing all
                where = (start + int(i), int(e), float(sums[i, e]))
                if kind == "empty":
                    empty_count, empty_at = empty_count + int(mask.sum()), empty_at or where
                else:
                    off_count, off_at = off_count + int(mask.sum()), off_at or where
    if nan_rows:
        raise ValueError(f"{source}: 'td' contains NaN for {len(nan_rows)} sample(s), e.g. rows {nan_rows[:10]}")
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo < -1e-3 or hi > 1 + 1e-2:
        raise ValueError(f"{source}: 'td' holds probabilities, so values must lie in [0, 1]; "
                         f"found range [{lo}, {hi}]")
    if empty_count:
        i, e, total = empty_at
        raise ValueError(f"{source}: 'td' holds per-epoch softmax vectors, but {empty_count} (sample, epoch) row(s) "
                         f"sum to (almost) 0, e.g. sample row {i}, epoch {e} sums to {total:.3g}; every such sample "
                         "would get the same score. Store all C class probabilities of every epoch")
    if off_count:
        i, e, total = off_at
        warnings.warn(f"{source}: {off_count} (sample, epoch) row(s) of 'td' do not sum to 1 (within "
                      f"{SUM_TOLERANCE}), e.g. sample row {i}, epoch {e} sums to {total:.3g}. InterpretDL's "
                      "interpolation of missing epochs does this; scores use the values as given", UserWarning,
                      stacklevel=4)


def _check_sample_ids(ids: np.ndarray, source: str) -> np.ndarray:
    """sample_ids must be distinct non-negative integers; integral floats are accepted as int64."""
    if ids.dtype.kind == "f":
        if not np.isfinite(ids).all() or not np.array_equal(ids, np.round(ids)):
            bad = np.flatnonzero(~np.isfinite(ids) | (ids != np.round(ids)))
            raise ValueError(f"{source}: 'sample_ids' must be integers (dataset indices); row {int(bad[0])} holds "
                             f"{ids[bad[0]]!r}")
        if ids.size and np.abs(ids).max() >= 2**53:
            raise ValueError(f"{source}: 'sample_ids' are floats too large to be exact integers")
        ids = ids.astype(np.int64)
    if ids.dtype.kind == "u" and ids.size and int(ids.max()) > np.iinfo(np.int64).max:
        raise ValueError(f"{source}: 'sample_ids' holds {int(ids.max())}, larger than the int64 range")
    if ids.size and int(ids.min()) < 0:
        row = int(np.argmin(ids))
        raise ValueError(f"{source}: 'sample_ids' must be >= 0 (dataset indices); row {row} holds {int(ids[row])}")
    uniq, counts = np.unique(ids, return_counts=True)
    if uniq.size != ids.size:
        dup = uniq[counts > 1]
        raise ValueError(f"{source}: 'sample_ids' must be distinct; {dup.size} id(s) appear more than once, e.g. "
                         f"{dup[:5].tolist()}")
    return ids


def validate_training_dynamics(data: Mapping[str, Any], *, source: str = "training_dynamics") -> Dict[str, Any]:
    """Check a recording's keys, shapes, dtypes and values; return a plain dict of arrays.

    Parameters
    ----------
    data : mapping
        Must hold ``td`` of shape (N, E, C), C >= 2, rows summing to 1. ``labels``, ``label_flip`` and the
        extras are checked when present. Dicts and ``np.load`` results are accepted; an ``NpzFile`` is
        re-read through this module's reader, so it works (and nothing is unpickled) whether it was opened
        with ``allow_pickle`` or not, including InterpretDL's ``label_flip=None``.
    source : str
        Name used in error messages (usually the file path).

    Returns
    -------
    dict
        ``td`` as float16 plus every other key, with ``meta`` parsed from JSON into a dict.
    """
    if isinstance(data, np.lib.npyio.NpzFile):
        data, source = _read_npzfile(data)
    if not hasattr(data, "keys") or "td" not in data.keys():
        keys = sorted(data.keys()) if hasattr(data, "keys") else type(data).__name__
        raise ValueError(f"{source}: missing required key 'td' (found {keys})")
    out: Dict[str, Any] = {}
    td = np.asarray(data["td"])
    if td.dtype.hasobject or td.dtype.kind != "f":
        raise ValueError(f"{source}: 'td' must be a float array, got dtype {td.dtype}")
    if td.ndim != 3 or min(td.shape) == 0:
        raise ValueError(f"{source}: 'td' must have shape (N, E, C) with N, E, C >= 1, got {td.shape}")
    n, e, c = td.shape
    if c < 2:
        raise ValueError(f"{source}: 'td' has C = {c} class; a recording needs C >= 2 classes (every detector "
                         "compares the assigned label's probability with the other classes)")
    _check_td_values(td, source)
    out["td"] = td.astype(np.float16, copy=False)

    if "labels" in data.keys():
        labels = np.asarray(data["labels"])
        if labels.shape != (n, c) or labels.dtype.kind not in "iu":
            raise ValueError(f"{source}: 'labels' must be an integer array of shape {(n, c)}, "
                             f"got {labels.dtype} {labels.shape}")
        if np.any(np.sort(labels, axis=1) != np.arange(c)):
            raise ValueError(f"{source}: every row of 'labels' must be a permutation of the class ids 0..{c - 1}")
        out["labels"] = labels.astype(np.int16, copy=False)

    if "label_flip" in data.keys() and data["label_flip"] is not None:
        flip = np.asarray(data["label_flip"])
        if flip.dtype.hasobject and flip.shape == () and flip.item() is None:
            pass  # InterpretDL's label_flip=None, given as an already-loaded mapping
        elif flip.shape != (n,) or flip.dtype.kind not in "biuf" or not np.isin(flip, (0, 1)).all():
            raise ValueError(f"{source}: 'label_flip' must be 0/1 or bool of shape ({n},), "
                             f"got {flip.dtype} {flip.shape}")
        else:
            out["label_flip"] = flip.astype(bool)

    extras = {"logits": (n, e, c), "losses": (n, e), "sample_ids": (n,)}
    for key, shape in extras.items():
        if key in data.keys():
            arr = np.asarray(data[key])
            if arr.shape != shape or arr.dtype.kind not in "fiu":
                raise ValueError(f"{source}: {key!r} must be numeric of shape {shape}, got {arr.dtype} {arr.shape}")
            out[key] = _check_sample_ids(arr, source) if key == "sample_ids" else arr
    if "meta" in data.keys():
        meta = data["meta"]
        if isinstance(meta, np.ndarray):
            meta = meta.item() if meta.shape == () else meta
        if isinstance(meta, (bytes, str)):
            try:
                meta = json.loads(meta)
            except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
                raise ValueError(f"{source}: 'meta' is not valid JSON: {exc}") from exc
        if not isinstance(meta, dict):
            raise ValueError(f"{source}: 'meta' must be a JSON object")
        out["meta"] = meta
    for key in data.keys():
        if key not in out and key not in ("label_flip", "meta"):
            arr = np.asarray(data[key])
            if arr.dtype.hasobject:
                raise ValueError(f"{source}: key {key!r} is an object array; "
                                 "only numeric and string arrays are allowed")
            out[key] = arr
    return out


def load_training_dynamics(path: PathLike) -> Dict[str, Any]:
    """Read and validate a ``training_dynamics.npz`` written by this library or by InterpretDL 0.8.

    Parameters
    ----------
    path : path
        The npz file.

    Returns
    -------
    dict
        ``td`` (N, E, C) float16, and ``labels`` (N, C) int16, ``label_flip`` (N,) bool and the extras
        when present. ``meta`` is a dict.

    Raises
    ------
    FileNotFoundError
        If there is no file.
    ValueError
        If the file is truncated or corrupt, lacks ``td``, holds pickled objects, or has inconsistent
        shapes, NaN or out-of-range values. The message names the problem.
    """
    path = Path(path)
    return validate_training_dynamics(_read_npz(path), source=str(path))


def save_training_dynamics(path: PathLike, td: np.ndarray, labels: np.ndarray, *, label_flip=None,
                           meta: Optional[dict] = None, **extras: np.ndarray) -> Path:
    """Atomically write a recording (validated first; nothing is pickled).

    Parameters
    ----------
    path : path
        Target file, conventionally ``.../training_dynamics.npz``. Written through a temporary file and
        a rename, so an existing file is never left half-written.
    td : ndarray of shape (N, E, C)
    labels : ndarray of shape (N, C)
    label_flip : array-like of shape (N,), optional
        Omitted from the file when None (InterpretDL's pickled None is not reproduced).
    meta : dict, optional
        Stored as a JSON string.
    **extras : ndarray
        ``logits``, ``losses``, ``sample_ids`` or other numeric arrays.

    Returns
    -------
    pathlib.Path
        The written path.
    """
    arrays: Dict[str, Any] = {"td": np.asarray(td, dtype=np.float16), "labels": np.asarray(labels, dtype=np.int16)}
    if label_flip is not None:
        arrays["label_flip"] = np.asarray(label_flip).astype(bool)
    arrays.update({k: np.asarray(v) for k, v in extras.items() if v is not None})
    if meta is not None:
        arrays["meta"] = json.dumps(meta)
    checked = validate_training_dynamics(arrays, source="recording to save")
    if meta is not None:
        checked["meta"] = np.array(arrays["meta"])  # store the JSON string, not the parsed dict
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **checked)
    return path
