"""Base classes, mirroring InterpretDL's ``interpretdl/interpreter/abc_interpreter.py``.

``Interpreter`` holds a model and a validated device. ``DatasetLevelInterpreter`` is the base of every
mislabel detector: ``interpret()`` reads one recording and returns ``(order, scores)`` where a
**higher score means more likely mislabeled** and ``order = argsort(scores)`` ascending, so the most
suspicious sample is last (InterpretDL's convention).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Dict, Optional, Tuple

import numpy as np

from ..common.device import device_scope, resolve_device
from ..common.file_utils import PathLike
from ..common.metrics import detection_metrics
from ..recording.recording import Recording


class Interpreter(ABC):
    """Base of all interpreters.

    Parameters
    ----------
    model : paddle.nn.Layer or callable or None
        The model the interpreter runs, if any.
    device : str, default='cpu'
        ``'cpu'`` or ``'gpu:N'``. A GPU request without CUDA falls back to CPU with a warning. The device
        is only set inside :meth:`device_scope` and restored afterwards, never changed globally.
    """

    def __init__(self, model: Any = None, device: str = "cpu"):
        self.model = model
        self.device = resolve_device(device)

    def device_scope(self):
        """Context manager that runs Paddle code on ``self.device`` and restores the caller's device."""
        return device_scope(self.device)

    @abstractmethod
    def interpret(self, *args, **kwargs):
        """Run the interpretation algorithm."""


def read_training_dynamics(training_dynamics: Optional[Any] = None,
                           training_dynamics_path: Optional[PathLike] = None) -> Recording:
    """Resolve exactly one of a recording (mapping, recorder or :class:`Recording`) or a path into a
    validated :class:`~interpretdl_noise.recording.Recording` (a ``Recording`` is not checked again)."""
    given = (training_dynamics is not None) + (training_dynamics_path is not None)
    if given != 1:
        raise ValueError("give exactly one of training_dynamics (a mapping with key 'td', e.g. a loaded npz) "
                         f"or training_dynamics_path (an npz file); got {'both' if given == 2 else 'neither'}")
    if training_dynamics_path is not None:
        return Recording.load(training_dynamics_path)
    return Recording.coerce(training_dynamics)


class DatasetLevelInterpreter(Interpreter):
    """Base of mislabel detectors that score every sample of a recording.

    Subclasses implement :meth:`_score` on a validated recording dict. After :meth:`interpret`,
    ``scores_`` holds the scores and :meth:`evaluate` compares them with known flips.
    """

    scores_: Optional[np.ndarray] = None

    def interpret(self, training_dynamics: Optional[Any] = None,
                  training_dynamics_path: Optional[PathLike] = None) -> Tuple[np.ndarray, np.ndarray]:
        """Score every sample of one recording.

        Parameters
        ----------
        training_dynamics : mapping, optional
            A recording with key ``'td'`` of shape (N, E, C), e.g. ``np.load(path)`` or
            :func:`load_training_dynamics` output.
        training_dynamics_path : path, optional
            An npz recording. Exactly one of the two inputs must be given.

        Returns
        -------
        order : ndarray of shape (N,), int64
            ``argsort(scores)`` ascending (stable): the most suspicious sample is last.
        scores : ndarray of shape (N,), float
            Higher = more likely mislabeled.
        """
        return self.score_record(read_training_dynamics(training_dynamics, training_dynamics_path))

    def score_record(self, record: Any) -> Tuple[np.ndarray, np.ndarray]:
        """:meth:`interpret` on one recording in any accepted form; a :class:`Recording` is not checked again.

        :func:`interpretdl_noise.compare_detectors` builds one ``Recording`` and passes it to every
        detector (validating a large recording costs about as much as scoring it). Returns ``(order, scores)``.
        """
        record = Recording.coerce(record)
        scores = np.asarray(self._score(record), dtype=np.float64).reshape(-1)
        if scores.shape[0] != record["td"].shape[0]:
            raise RuntimeError(f"{type(self).__name__} returned {scores.shape[0]} scores for "
                               f"{record['td'].shape[0]} samples")
        self.scores_ = scores
        self.label_flip_ = record.get("label_flip")
        return np.argsort(scores, kind="stable"), scores

    @abstractmethod
    def _score(self, record: Dict[str, Any]) -> np.ndarray:
        """Return scores of shape (N,), higher = more likely mislabeled. ``record`` is already validated."""

    def evaluate(self, label_flip=None, *, k: Optional[int] = None,
                 threshold: Optional[float] = None) -> Dict[str, float]:
        """Detection metrics of the last :meth:`interpret` call (see :func:`detection_metrics`).

        ``label_flip`` defaults to the recording's own ``label_flip`` key.
        """
        if self.scores_ is None:
            raise RuntimeError("call interpret() before evaluate()")
        if label_flip is None:
            label_flip = getattr(self, "label_flip_", None)
            if label_flip is None:
                raise ValueError("no label_flip given and the recording has none")
        return detection_metrics(self.scores_, label_flip, k=k, threshold=threshold)
