"""Reproducible synthetic label noise: uniform, flip (c -> c+1), class-pair and class-dependent."""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

NOISE_KINDS = ("uniform", "flip", "pair")
"""The kinds the detector-training corpus and the demo draw from (kept fixed so corpus plans stay reproducible)."""
LABEL_NOISE_KINDS = NOISE_KINDS + ("class_dependent",)
"""Every kind :func:`inject_label_noise` accepts."""


def inject_label_noise(labels, rate: float, *, kind: str = "uniform", n_classes: Optional[int] = None,
                       seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """Corrupt exactly ``round(rate * N)`` labels, chosen at random.

    Parameters
    ----------
    labels : array-like of shape (N,)
        Clean integer labels in ``[0, C)``.
    rate : float
        Fraction of samples whose label is changed, in ``[0, 1)``.
    kind : {'uniform', 'flip', 'pair', 'class_dependent'}, default='uniform'
        ``uniform``: a corrupted sample gets a different class drawn uniformly.
        ``flip``: class ``c`` becomes ``(c + 1) % C``.
        ``pair``: classes are paired by a seeded permutation (a <-> b) and swapped inside each pair; with
        odd ``C`` the last class of the permutation maps onto the first.
        ``class_dependent``: each class has its own noise rate (seeded, between about 0.2x and 1.8x ``rate``,
        capped at 0.9) and its own seeded distribution over the other classes (a Dirichlet(1) draw), so the
        transition matrix is neither uniform nor a permutation. The total is still ``round(rate * N)``
        (less only when the caps make it impossible).
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
    if kind not in LABEL_NOISE_KINDS:
        raise ValueError(f"kind must be one of {LABEL_NOISE_KINDS}, got {kind!r}")
    rng = np.random.default_rng(seed)
    if kind == "class_dependent":
        return _class_dependent(y.astype(np.int64), rate, c, rng)
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


def _class_dependent(y: np.ndarray, rate: float, c: int, rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    counts = np.bincount(y, minlength=c)
    total = int(round(rate * y.size))
    cap = np.floor(0.9 * counts).astype(np.int64)
    weight = rng.uniform(0.2, 1.8, size=c) * (counts > 0)
    quota = np.zeros(c, dtype=np.int64)
    # fill the per-class quotas in proportion to weight x class size, never above a class's cap
    while quota.sum() < min(total, cap.sum()):
        room = quota < cap
        share = weight * counts * room
        if share.sum() <= 0:
            share = counts * room.astype(np.float64)
        need = min(total, int(cap.sum())) - int(quota.sum())
        want = share / share.sum() * need
        add = np.minimum(np.floor(want).astype(np.int64), cap - quota)
        if add.sum() == 0:  # hand out the remainder one by one, largest fractional part first
            for k in np.argsort(-(want - np.floor(want)), kind="stable"):
                if room[k] and need > 0:
                    quota[k] += 1
                    need -= 1
            continue
        quota += add
    targets = np.zeros((c, c))
    for k in range(c):  # each class's own distribution over the other classes
        others = np.delete(np.arange(c), k)
        targets[k, others] = rng.dirichlet(np.ones(c - 1))
    noisy = y.copy()
    for k in np.flatnonzero(quota):
        rows = rng.choice(np.flatnonzero(y == k), size=int(quota[k]), replace=False)
        noisy[rows] = rng.choice(c, size=rows.size, p=targets[k])
    return noisy, noisy != y
