"""``Recording``: the one typed, validated object passed between the layers.

Every entry point that takes "a recording" (detectors, ``compare``, ``detect``, the decisions, the
report, ``LabelTracker.from_recording``, the EMA sources) accepts any of

- a path to a ``training_dynamics.npz`` (ours or InterpretDL 0.8's), or to a recorder's folder
  (``directory=``; its completed epochs);
- a mapping: InterpretDL's arrays (``td``, ``labels``, ``label_flip``) or ``np.load``'s result;
- a :class:`~interpretdl_noise.recording.DynamicsRecorder` straight from recording;
- a ``Recording`` (returned as it is, never validated twice),

and turns it into a ``Recording`` with :meth:`Recording.coerce`. Validation happens once, there.
A ``Recording`` is also a read-only mapping of its arrays (``rec["td"]``, ``"losses" in rec``), so code
written against InterpretDL's dicts keeps working.

Shapes: ``N`` samples, ``E`` epochs, ``C`` classes.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np

from .npz import load_training_dynamics, validate_training_dynamics

__all__ = ["MissingRecordingKey", "Recording", "MISSING_KEY_HINTS"]

# What to do when a key is missing; quoted in every "recording has no ..." error.
MISSING_KEY_HINTS = {
    "losses": "record with keep_losses=True",
    "logits": "record with keep_logits=True",
    "labels": "save the recording with its labels",
    "label_flip": "save the recording with label_flip=... (the known flips), or evaluate against your own mask",
    "sample_ids": "save the recording with its sample_ids",
}

# Cross-entropy derived from td: -log(max(p, eps)); float16 rounds probabilities below ~6e-8 to 0.
_LOSS_EPS = 1e-7


class MissingRecordingKey(ValueError):
    """A recording lacks a key that the caller needs; ``key`` names it and the message says how to add it."""

    def __init__(self, key: str, *, needed_by: Optional[str] = None):
        notes = [f"{needed_by} needs it"] if needed_by else []
        if key in MISSING_KEY_HINTS:
            notes.append(MISSING_KEY_HINTS[key])
        message = f"recording has no {key!r}" + (f" ({'; '.join(notes)})" if notes else "")
        super().__init__(message)
        self.key = key
        self.reason = message


class Recording(Mapping):
    """A validated training-dynamics recording.

    Build one with :meth:`coerce` (any accepted form), :meth:`load` (a path), :meth:`from_mapping`
    or :meth:`from_recorder`. The constructor itself trusts its input and is for those factories.

    Attributes
    ----------
    td : ndarray of shape (N, E, C), float16
        Per-epoch softmax; channel 0 = assigned label, then the other classes by descending mean
        probability (InterpretDL's layout).
    labels : ndarray of shape (N, C), int16, or None
        Class id of each ``td`` channel.
    label_flip : ndarray of shape (N,), bool, or None
        True = known mislabeled.
    logits : ndarray of shape (N, E, C), or None
        Raw logits in the model's class order.
    losses : ndarray of shape (N, E), or None
        Recorded per-sample losses.
    meta : dict
        JSON metadata (empty when none).
    source : str
        Where the recording came from (a path or a description), used in messages.
    """

    def __init__(self, arrays: Mapping[str, Any], *, source: str = "recording"):
        self._arrays = dict(arrays)
        self.source = source

    # ------------------------------------------------------------------ construction
    @classmethod
    def coerce(cls, recording: Any, *, source: Optional[str] = None) -> "Recording":
        """Any accepted form (path, mapping, ``DynamicsRecorder``, ``Recording``) as a validated ``Recording``.

        Raises
        ------
        FileNotFoundError
            A path that does not exist.
        ValueError
            Invalid content (the message names the problem) or an unsupported type.
        """
        if isinstance(recording, Recording):
            return recording
        if isinstance(recording, (str, os.PathLike)):
            if Path(recording).is_dir() and (Path(recording) / "recording.json").is_file():
                from .recorder import DynamicsRecorder  # a recorder's folder: its completed epochs

                return cls.from_recorder(DynamicsRecorder.open(recording))
            return cls.load(recording)
        if _is_recorder(recording):
            return cls.from_recorder(recording)
        if isinstance(recording, np.lib.npyio.NpzFile):  # re-read safely, named after its file
            return cls.from_mapping(recording, source=source or str(getattr(recording.fid, "name", "npz file")))
        if isinstance(recording, Mapping) or hasattr(recording, "keys"):
            return cls.from_mapping(recording, source=source or "training_dynamics")
        raise ValueError(f"a recording must be an npz path, a mapping with key 'td' (e.g. a loaded npz), a "
                         f"DynamicsRecorder or a Recording; got {type(recording).__name__}")

    @classmethod
    def load(cls, path) -> "Recording":
        """Read and validate an npz recording (ours or InterpretDL 0.8's, never unpickled)."""
        return cls(load_training_dynamics(path), source=str(path))

    @classmethod
    def from_mapping(cls, data: Any, *, source: str = "training_dynamics") -> "Recording":
        """Validate a mapping of arrays (InterpretDL's dict, ``np.load`` output, our own dict)."""
        return cls(validate_training_dynamics(data, source=source), source=source)

    @classmethod
    def from_recorder(cls, recorder, *, label_flip=None, meta: Optional[dict] = None) -> "Recording":
        """Transform a :class:`DynamicsRecorder` into InterpretDL's layout and validate it.

        Missing cells are filled per class (see :func:`~interpretdl_noise.recording.transform_dynamics`).
        """
        from .transform import transform_recorder

        td, labels, ids, extras = transform_recorder(recorder)  # completed epochs; ranks from its running sums
        arrays: dict[str, Any] = {"td": td, "labels": labels, "sample_ids": np.asarray(ids, dtype=np.int64)}
        arrays.update(extras)
        if label_flip is not None:
            arrays["label_flip"] = label_flip
        if meta is not None:
            arrays["meta"] = dict(meta)
        return cls(validate_training_dynamics(arrays, source="recorder"), source="recorder")

    # ------------------------------------------------------------------ mapping interface
    def __getitem__(self, key: str) -> Any:
        return self._arrays[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._arrays)

    def __len__(self) -> int:
        return len(self._arrays)

    def to_dict(self) -> dict[str, Any]:
        """A shallow copy of the arrays as a plain dict."""
        return dict(self._arrays)

    # ------------------------------------------------------------------ properties
    @property
    def td(self) -> np.ndarray:
        return self._arrays["td"]

    @property
    def labels(self) -> Optional[np.ndarray]:
        return self._arrays.get("labels")

    @property
    def label_flip(self) -> Optional[np.ndarray]:
        return self._arrays.get("label_flip")

    @property
    def logits(self) -> Optional[np.ndarray]:
        return self._arrays.get("logits")

    @property
    def losses(self) -> Optional[np.ndarray]:
        return self._arrays.get("losses")

    @property
    def meta(self) -> dict:
        return self._arrays.get("meta") or {}

    @property
    def n_samples(self) -> int:
        return int(self.td.shape[0])

    @property
    def n_epochs(self) -> int:
        return int(self.td.shape[1])

    @property
    def n_classes(self) -> int:
        return int(self.td.shape[2])

    @property
    def sample_ids(self) -> np.ndarray:
        """Dataset index of each row, shape (N,) int64; ``0..N-1`` when the recording stores none."""
        ids = self._arrays.get("sample_ids")
        return np.arange(self.n_samples, dtype=np.int64) if ids is None else np.asarray(ids).astype(np.int64)

    @property
    def assigned_labels(self) -> Optional[np.ndarray]:
        """The given (possibly noisy) label of each row, ``labels[:, 0]``, shape (N,) int64; None without labels."""
        labels = self.labels
        return None if labels is None else labels[:, 0].astype(np.int64)

    @property
    def has_usable_flips(self) -> bool:
        """True when ``label_flip`` exists and marks some, but not all, samples."""
        flips = self.label_flip
        return flips is not None and 0 < int(flips.sum()) < flips.shape[0]

    @property
    def losses_derived(self) -> bool:
        """True when :meth:`loss_curves` has to derive the losses from ``td`` (no recorded ``losses``)."""
        return self.losses is None

    def loss_curves(self) -> np.ndarray:
        """Per-sample loss per epoch, shape (N, E) float64.

        The recorded ``losses`` when present; otherwise the cross-entropy of the assigned label,
        ``-log td[:, :, 0]`` (with probabilities clipped at 1e-7), which is what a model trained with
        cross-entropy minimised. Check :attr:`losses_derived` to tell which.
        """
        if self.losses is not None:
            return np.asarray(self.losses, dtype=np.float64)
        p = np.asarray(self.td[:, :, 0], dtype=np.float64)
        return -np.log(np.maximum(p, _LOSS_EPS))

    # ------------------------------------------------------------------ checks
    def has(self, *keys: str) -> bool:
        """True when every one of ``keys`` is present."""
        return all(k in self._arrays for k in keys)

    def require(self, *keys: str, needed_by: Optional[str] = None) -> "Recording":
        """Raise :class:`MissingRecordingKey` (a ValueError with a hint) for the first missing key; return self."""
        for key in keys:
            if key not in self._arrays:
                raise MissingRecordingKey(key, needed_by=needed_by)
        return self

    def __repr__(self) -> str:
        extras = [k for k in ("labels", "label_flip", "logits", "losses", "sample_ids") if k in self._arrays]
        return (f"Recording(N={self.n_samples}, E={self.n_epochs}, C={self.n_classes}, "
                f"keys={['td', *extras]}, source={self.source!r})")


def _is_recorder(obj: Any) -> bool:
    from .recorder import DynamicsRecorder

    return isinstance(obj, DynamicsRecorder)


def as_path_or_none(recording: Any) -> Optional[Path]:
    """The path of a path-like recording argument, else None (used to refuse writing over the input)."""
    return Path(recording) if isinstance(recording, (str, os.PathLike)) else None
