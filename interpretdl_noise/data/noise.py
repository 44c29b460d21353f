"""Reproducible synthetic label noise: uniform, flip (c -> c+1) and class-pair."""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

NOISE_KINDS = ("uniform", "flip", "pair")


def inject_label_noise(labels, rate: float, *, kind: str = "uniform", n_classes: Optional[int] = None,
                       seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """Corrupt exactly ``round(rate * N)`` labels, chosen at random.

    Parameters
    ----------
    labels : array-like of shape (N,)
        Clean integer labels in ``[0, C)``.
    rate : float
        Fraction of samples whose label is changed, in ``[0, 1)``.
    kind : {'uniform', 'flip', 'pair'}, default='uniform'
        ``uniform``: a corrupted sample gets a different class drawn uniformly.
        ``flip``: class ``c`` becomes ``(c + 1) % C``.
        ``pair``: classes are paired by a seeded permutation (a <-> b) and swapped inside each pair; with
        odd ``C`` the last class of the permutation maps onto the first.
    n_classes : int, optional
        ``C``; defaults to ``max(labels) + 1``.
    seed : int, default=0

    Returns
    -------
    noisy : ndarray of shape (N,), int64
    flipped : ndarray of shape (N,), bool
        True where ``noisy != labels``.
    """
    y = np.asarray(labels).reshape(-1)
    if y.dtype.kind not in "iu":
        raise ValueError(f"labels must be integers, got dtype {y.dtype}")
    c = int(n_classes if n_classes is not None else y.max() + 1)
    if c < 2 or y.min() < 0 or y.max() >= c:
        raise ValueError(f"labels must lie in [0, {c}) with at least 2 classes")
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"rate must be in [0, 1), got {rate}")
    if kind not in NOISE_KINDS:
        raise ValueError(f"kind must be one of {NOISE_KINDS}, got {kind!r}")
    rng = np.random.default_rng(seed)
    chosen = rng.choice(y.size, size=int(round(rate * y.size)), replace=False)
    noisy = y.astype(np.int64).copy()
    if kind == "uniform":
        # add an offset in [1, C) so the new class always differs from the old one
        noisy[chosen] = (noisy[chosen] + rng.integers(1, c, size=chosen.size)) % c
    elif kind == "flip":
        noisy[chosen] = (noisy[chosen] + 1) % c
    else:
        perm = rng.permutation(c)
        # perm[0] <-> perm[1], perm[2] <-> perm[3], ...; with odd C the last class maps onto perm[0]
        partner = np.roll(perm, -1)
        partner[1::2] = perm[0:c - c % 2:2]
        mapping = np.empty(c, dtype=np.int64)
        mapping[perm] = partner
        noisy[chosen] = mapping[noisy[chosen]]
    return noisy, noisy != y
