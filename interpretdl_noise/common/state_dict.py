"""Read Paddle ``.pdparams`` state dicts without running arbitrary pickle code.

``paddle.save(layer.state_dict(), path)`` writes a pickle of ``{name: numpy.ndarray}``; the format is
required for InterpretDL compatibility, but ``paddle.load`` would unpickle anything a file contains.
:func:`load_state_dict` uses an unpickler that may only rebuild numpy arrays (and plain containers), so
a file that references any other Python object is refused before that object is created.
"""
from __future__ import annotations

import io
import pickle
import pickletools
from pathlib import Path
from typing import Dict

import numpy as np

from .atomic import PathLike
from .safe_pickle import STATE_DICT_GLOBALS

# paddle.save adds this bookkeeping entry (structured name -> parameter name); it holds no weights
_PADDLE_NAME_TABLE = "StructuredToParameterName@@"


class _ArraysOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in STATE_DICT_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refers to {module}.{name}; a state dict may only contain numpy arrays")


def load_state_dict(path: PathLike) -> Dict[str, np.ndarray]:
    """Read a ``.pdparams`` file written by ``paddle.save(layer.state_dict(), path)``.

    Parameters
    ----------
    path : path

    Returns
    -------
    dict of str -> ndarray
        Parameter name to value, ready for ``layer.set_state_dict``.

    Raises
    ------
    FileNotFoundError
        If there is no file.
    ValueError
        If the file is not such a state dict, or refers to anything but numpy arrays (nothing is
        executed in that case).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no state dict at {path}")
    try:
        data = path.read_bytes()
        # walk the opcodes first (nothing is built): a length field claiming more bytes than the file holds
        # is then a clear error instead of an allocation of that size
        for _ in pickletools.genops(data):
            pass
        obj = _ArraysOnlyUnpickler(io.BytesIO(data)).load()
    except (pickle.UnpicklingError, EOFError, AttributeError, ValueError, TypeError, IndexError, KeyError,
            OverflowError, MemoryError, RecursionError, UnicodeDecodeError) as exc:
        reason = str(exc) or type(exc).__name__
        raise ValueError(f"{path} is not a Paddle state dict of arrays (.pdparams): {reason}") from exc
    if not isinstance(obj, dict):
        raise ValueError(f"{path} holds a {type(obj).__name__}, not a state dict")
    state = {k: v for k, v in obj.items() if k != _PADDLE_NAME_TABLE}
    bad = [k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, np.ndarray)]
    if bad:
        raise ValueError(f"{path}: entries {bad[:5]} are not (name, numpy array) pairs")
    return state
