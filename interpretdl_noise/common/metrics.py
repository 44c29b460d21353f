"""Detection metrics of suspicion scores against known label flips (scikit-learn based).

All functions take ``scores`` of shape ``(N,)`` where a **higher score means more likely mislabeled**,
and ``label_flip`` of shape ``(N,)`` with 1/True for a known mislabeled sample.
"""
from __future__ import annotations

from typing import Dict, Optional

import numpy as np


def _check(scores, label_flip):
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    flips = np.asarray(label_flip).reshape(-1)
    if scores.shape != flips.shape:
        raise ValueError(f"scores has {scores.size} entries but label_flip has {flips.size}")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores contain NaN or inf")
    if not np.isin(flips, (0, 1)).all():
        raise ValueError("label_flip must contain only 0/1 or booleans")
    return scores, flips.astype(bool)


def _prf(flips: np.ndarray, flagged: np.ndarray, prefix: str) -> Dict[str, float]:
    from sklearn.metrics import precision_recall_fscore_support  # imported lazily: it costs ~1 s

    p, r, f, _ = precision_recall_fscore_support(flips, flagged, average="binary", zero_division=0)
    return {f"precision{prefix}": float(p), f"recall{prefix}": float(r), f"f1{prefix}": float(f)}


def top_k_mask(scores: np.ndarray, k: int) -> np.ndarray:
    """Boolean mask (N,) of the ``k`` highest scores (ties: the lower index first; no sample for k <= 0)."""
    scores = np.asarray(scores)
    mask = np.zeros(scores.shape[0], dtype=bool)
    if k > 0:
        mask[np.argsort(-scores, kind="stable")[:k]] = True
    return mask


def detection_metrics(scores, label_flip, *, k: Optional[int] = None,
                      threshold: Optional[float] = None) -> Dict[str, float]:
    """AUROC, AP and precision / recall / F1 of ``scores`` against ``label_flip``.

    Parameters
    ----------
    scores : array-like of shape (N,)
        Suspicion scores, higher = more likely mislabeled.
    label_flip : array-like of shape (N,)
        1/True where the label is known to be wrong.
    k : int, optional
        Also report precision / recall / F1 of the top-``k`` samples (``*_at_k``). Defaults to the
        true number of flips (``*_at_k`` then equals R-precision).
    threshold : float, optional
        Also report precision / recall / F1 of ``scores >= threshold`` (``*_at_threshold``), e.g. 0.5
        for probabilities.

    Returns
    -------
    dict
        ``auroc``, ``ap``, ``n``, ``n_noisy``, ``k`` and the P/R/F1 entries. AUROC and AP are NaN when
        ``label_flip`` has a single class.
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    scores, flips = _check(scores, label_flip)
    n_noisy = int(flips.sum())
    both = 0 < n_noisy < flips.size
    out: Dict[str, float] = {
        "n": int(flips.size),
        "n_noisy": n_noisy,
        "auroc": float(roc_auc_score(flips, scores)) if both else float("nan"),
        "ap": float(average_precision_score(flips, scores)) if both else float("nan"),
    }
    k = n_noisy if k is None else int(k)
    if not 0 <= k <= flips.size:
        raise ValueError(f"k must be between 0 and {flips.size}, got {k}")
    out["k"] = k
    out.update(_prf(flips, top_k_mask(scores, k), "_at_k"))
    if threshold is not None:
        out["threshold"] = float(threshold)
        out.update(_prf(flips, scores >= threshold, "_at_threshold"))
    return out
