"""Small-loss baseline: samples whose assigned label stays improbable (or whose loss stays high)."""
from __future__ import annotations

from typing import Any, Dict

import numpy as np

from .abc_interpreter import DatasetLevelInterpreter

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
        ``'loss'``: score = mean recorded per-sample loss (needs the ``losses`` extra).

    Scores: higher = more likely mislabeled.
    """

    def __init__(self, source: str = "probability"):
        super().__init__(model=None, device="cpu")
        if source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
        self.source = source

    def _score(self, record: Dict[str, Any]) -> np.ndarray:
        if self.source == "loss":
            if "losses" not in record:
                raise ValueError("source='loss' needs a recording with per-sample 'losses' "
                                 "(record with keep_losses=True), or use source='probability'")
            return np.nanmean(np.asarray(record["losses"], dtype=np.float64), axis=1)
        return small_loss_scores(record["td"])
