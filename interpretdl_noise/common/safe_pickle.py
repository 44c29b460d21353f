"""The one allowlist of pickle globals that a pickled numpy array needs (numpy 1 and 2 module names).

Both pickle readers use it: :mod:`interpretdl_noise.common.state_dict` (``.pdparams`` files, which also
need ``collections.OrderedDict``) and :mod:`interpretdl_noise.recording.npz` (InterpretDL's pickled
``label_flip=None``, checked from the opcodes without executing them). Nothing else may be referenced.
"""
from __future__ import annotations

__all__ = ["NUMPY_ARRAY_GLOBALS", "STATE_DICT_GLOBALS"]

NUMPY_ARRAY_GLOBALS = frozenset({
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
})
"""``(module, name)`` pairs that ``pickle.dumps(numpy_array)`` refers to, for protocols 2-5."""

STATE_DICT_GLOBALS = NUMPY_ARRAY_GLOBALS | {("collections", "OrderedDict")}
"""What ``paddle.save(layer.state_dict())`` of numpy arrays refers to."""
