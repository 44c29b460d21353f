"""Small-loss baseline: samples whose assigned label stays improbable (or whose loss stays high)."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..recording.recording import Recording
from .abc_interpreter import LOSSES_DERIVED_NOTE, DatasetLevelInterpreter

SOURCES = ("probability", "loss")


def small_loss_scores(td: np.ndarray) -> np.ndarray:
    """``1 - mean_e td[:, e, 0]``: one minus the mean probability of the assigned label.

    Parameters
    ----------
    td : ndarray of shape (N, E, C)

    Returns
    -------
    ndarray of shape (N,), in [0, 1]; higher = more likely mislabeled.
    """
    return 1.0 - np.asarray(td[:, :, 0], dtype=np.float64).mean(axis=1)


class SmallLossInterpreter(DatasetLevelInterpreter):
    """Rank samples by how little the model believes their label over training (no model needed).

    Parameters
    ----------
    source : {'probability', 'loss'}, default='probability'
        ``'probability'``: score = 1 - mean assigned-label probability (works on any recording).
        ``'loss'``: score = mean per-sample loss; the recorded ``losses`` when present, else the
        cross-entropy ``-log td[:, :, 0]`` derived from the recording (see :meth:`Recording.loss_curves`).

    Scores: higher = more likely mislabeled.
    """

    name = "small_loss"
    summary = "1 - mean assigned-label probability (or mean loss with source='loss')"
    listing_order = 60

    def __init__(self, source: str = "probability"):
        super().__init__(model=None, device="cpu")
        if source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
        self.source = source

    @classmethod
    def note(cls, recording: Recording, **params: Any):
        if params.get("source", "probability") == "loss" and recording.losses_derived:
            return LOSSES_DERIVED_NOTE
        return super().note(recording, **params)

    def _score(self, record: Recording) -> np.ndarray:
        if self.source == "loss":
            self.losses_derived_ = record.losses_derived
            return np.nanmean(record.loss_curves(), axis=1)
        return small_loss_scores(record.td)
