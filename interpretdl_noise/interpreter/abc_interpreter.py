"""Base classes, mirroring InterpretDL's ``interpretdl/interpreter/abc_interpreter.py``.

``Interpreter`` holds a model and a validated device. ``DatasetLevelInterpreter`` is the base of every
mislabel detector: ``interpret()`` reads one recording and returns ``(order, scores)`` where a
**higher score means more likely mislabeled** and ``order = argsort(scores)`` ascending, so the most
suspicious sample is last (InterpretDL's convention).

A detector declares on its class what the registry lists (``name``, ``summary``, ``requires``,
``prefers``, ``needs_data``, ``needs_paddle``, ``listing_order``); subclassing with a ``name`` registers
it in :mod:`~interpretdl_noise.interpreter.registry`. Special cases override the classmethods
:meth:`DatasetLevelInterpreter.applicability` and :meth:`DatasetLevelInterpreter.note`.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Dict, Optional, Tuple

import numpy as np

from ..common.device import device_scope, resolve_device
from ..common.atomic import PathLike
from ..common.metrics import detection_metrics
from .._paddle import PADDLE_HINT, paddle_available
from ..recording.recording import MissingRecordingKey, Recording
from . import registry


#: What loss-based detectors report when the recording has no ``losses`` (see ``Recording.loss_curves``).
LOSSES_DERIVED_NOTE = "no 'losses' in the recording: the cross-entropy -log p(assigned label) derived from td is used"


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

    Subclasses implement :meth:`_score` on a validated :class:`Recording`. After :meth:`interpret`,
    ``scores_`` holds the scores and :meth:`evaluate` compares them with known flips.

    A subclass that sets ``name`` registers itself (``class Mine(DatasetLevelInterpreter, register=False)``
    opts out); its subclasses that do not set their own ``name`` are not registered again.

    Class attributes
    ----------------
    name : str or None
        Registry and command-line name (``detect --method NAME``).
    summary : str
        One line for listings.
    requires : tuple of str
        Recording keys it cannot run without (checked by :meth:`applicability`).
    prefers : tuple of str
        Keys it uses when present; their absence is reported by :meth:`note`.
    needs_data : bool
        True when it needs the raw data ``(x, y)`` rather than only a recording.
    needs_paddle : bool
        True when it runs a Paddle model (reported as not applicable without Paddle).
    listing_order : float
        Position in :func:`~interpretdl_noise.interpreter.registry.detector_names` (ties: registration order).
    """

    name: ClassVar[Optional[str]] = None
    summary: ClassVar[str] = ""
    requires: ClassVar[Tuple[str, ...]] = ()
    prefers: ClassVar[Tuple[str, ...]] = ()
    needs_data: ClassVar[bool] = False
    needs_paddle: ClassVar[bool] = False
    listing_order: ClassVar[float] = 100.0

    scores_: Optional[np.ndarray] = None

    def __init_subclass__(cls, register: bool = True, **kwargs):
        super().__init_subclass__(**kwargs)
        if register and cls.__dict__.get("name") is not None:
            registry.register(cls)

    @classmethod
    def applicability(cls, recording: Optional[Recording] = None, *, has_data: bool = False) -> Optional[str]:
        """Why this detector cannot run on ``recording``, or None when it can.

        The default checks Paddle (``needs_paddle``), the raw data (``needs_data``) and every key of
        ``requires``; override it for other conditions and call ``super()`` first.
        """
        if cls.needs_paddle and not paddle_available():
            return PADDLE_HINT
        if cls.needs_data and not has_data:
            return ("needs the raw training data (x, y), not only a recording: call "
                    "interpretdl_noise.compare_detectors(recording, x=x) from Python")
        if recording is not None:
            for key in cls.requires:
                if key not in recording:
                    return MissingRecordingKey(key, needed_by=cls.name or cls.__name__).reason
        return None

    @classmethod
    def note(cls, recording: Recording, **params: Any) -> Optional[str]:
        """A remark on how the detector (built with ``params``) runs on ``recording``, or None.

        The default names the ``prefers`` keys the recording lacks.
        """
        missing = [k for k in cls.prefers if k not in recording]
        if not missing:
            return None
        return f"recording has no {', '.join(repr(k) for k in missing)}; the detector falls back to what it has"

    def interpret(self, training_dynamics: Optional[Any] = None,
                  training_dynamics_path: Optional[PathLike] = None) -> Tuple[np.ndarray, np.ndarray]:
        """Score every sample of one recording.

        Parameters
        ----------
        training_dynamics : Recording, mapping or DynamicsRecorder, optional
            A recording with key ``'td'`` of shape (N, E, C), e.g. ``np.load(path)``,
            :func:`load_training_dynamics` output or a :class:`Recording`.
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
        if scores.shape[0] != record.n_samples:
            raise RuntimeError(f"{type(self).__name__} returned {scores.shape[0]} scores for "
                               f"{record.n_samples} samples")
        self.scores_ = scores
        self.label_flip_ = record.label_flip
        return np.argsort(scores, kind="stable"), scores

    @abstractmethod
    def _score(self, record: Recording) -> np.ndarray:
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
