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
import pickletools
import zipfile
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

import numpy as np

from ..common.file_utils import PathLike, atomic_path

REQUIRED_KEYS = ("td",)
# What numpy writes for ``np.array(None, dtype=object)`` only references these names (protocols 2-5).
_NONE_ARRAY_GLOBALS = {"numpy._core.multiarray _reconstruct", "numpy.core.multiarray _reconstruct",
                       "numpy ndarray", "numpy dtype", "_codecs encode"}
_NONE_ARRAY_STRINGS = {"numpy._core.multiarray", "numpy.core.multiarray", "_reconstruct", "numpy", "ndarray",
                       "dtype", "O8", "|", "b", "latin1"}
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


def _read_member(zf: zipfile.ZipFile, name: str, path) -> Optional[np.ndarray]:
    """Read one ``.npy`` member; return None for a pickled ``None`` and refuse other object arrays."""
    with zf.open(name) as fh:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
        else:
            raise ValueError(f"{path}: key {name[:-4]!r} uses unsupported .npy format version {version}")
        if dtype.hasobject:
            payload = fh.read()
            if shape == () and _is_pickled_none_array(payload):
                return None
            raise ValueError(f"{path}: key {name[:-4]!r} holds a pickled object array; refusing to unpickle it. "
                             "Store plain numeric arrays instead.")
    with zf.open(name) as fh:
        return np.lib.format.read_array(fh, allow_pickle=False)


def _read_npz(path: Path) -> Dict[str, np.ndarray]:
    if not path.is_file():
        raise FileNotFoundError(f"no training-dynamics file at {path}")
    try:
        with zipfile.ZipFile(path) as zf:
            names = [n for n in zf.namelist() if n.endswith(".npy")]
            if not names:
                raise ValueError(f"{path} is not an npz recording: it holds no .npy arrays")
            out = {}
            for name in names:
                arr = _read_member(zf, name, path)
                if arr is not None:
                    out[name[:-4]] = arr
            return out
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise ValueError(f"{path} is not a readable npz file (truncated or corrupt): {exc}") from exc


def validate_training_dynamics(data: Mapping[str, Any], *, source: str = "training_dynamics") -> Dict[str, Any]:
    """Check a recording's keys, shapes, dtypes and values; return a plain dict of arrays.

    Parameters
    ----------
    data : mapping
        Must hold ``td`` of shape (N, E, C). ``labels``, ``label_flip`` and the extras are checked when
        present. ``np.load`` results and dicts are both accepted.
    source : str
        Name used in error messages (usually the file path).

    Returns
    -------
    dict
        ``td`` as float16 plus every other key, with ``meta`` parsed from JSON into a dict.
    """
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
    if np.isnan(td).any():
        rows = np.flatnonzero(np.isnan(td).any(axis=(1, 2)))
        raise ValueError(f"{source}: 'td' contains NaN for {rows.size} sample(s), e.g. rows {rows[:10].tolist()}")
    if np.isinf(td).any() or td.min() < -1e-3 or td.max() > 1 + 1e-2:
        raise ValueError(f"{source}: 'td' holds probabilities, so values must lie in [0, 1]; "
                         f"found range [{float(td.min())}, {float(td.max())}]")
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
        elif flip.shape != (n,) or not np.isin(flip, (0, 1)).all():
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
            out[key] = arr
    if "meta" in data.keys():
        meta = data["meta"]
        if isinstance(meta, np.ndarray):
            meta = meta.item() if meta.shape == () else meta
        if isinstance(meta, (bytes, str)):
            try:
                meta = json.loads(meta)
            except json.JSONDecodeError as exc:
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
