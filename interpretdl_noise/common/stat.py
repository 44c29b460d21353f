"""Streaming statistics grouped by a key (as captum's ``_utils/stat.py``), numpy only.

:class:`GroupedStats` keeps, per group, the running count, mean, sample variance, min and max of a stream
of values, one batch at a time, in bounded memory (one slot per distinct key).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["GroupedStats"]


class GroupedStats:
    """Running count, mean, sample variance, min and max of values grouped by label (one epoch's worth).

    Each :meth:`add` is vectorised over the batch (``np.unique`` + ``np.bincount`` + ``np.minimum.at``);
    only the distinct labels of a batch are looked up in Python. Means and variances are merged with
    Chan et al.'s parallel update, which stays accurate where a sum of squares would not.
    """

    def __init__(self) -> None:
        self.keys: list[Any] = []
        self._slot: dict[Any, int] = {}
        self.count = np.zeros(0, dtype=np.int64)
        self.mean = np.zeros(0)
        self.m2 = np.zeros(0)
        self.min = np.zeros(0)
        self.max = np.zeros(0)

    def _slots(self, keys: Sequence[Any]) -> np.ndarray:
        new = [k for k in keys if k not in self._slot]
        if new:
            for k in new:
                self._slot[k] = len(self.keys)
                self.keys.append(k)
            grow = len(new)
            self.count = np.concatenate([self.count, np.zeros(grow, dtype=np.int64)])
            self.mean = np.concatenate([self.mean, np.zeros(grow)])
            self.m2 = np.concatenate([self.m2, np.zeros(grow)])
            self.min = np.concatenate([self.min, np.full(grow, np.inf)])
            self.max = np.concatenate([self.max, np.full(grow, -np.inf)])
        return np.fromiter((self._slot[k] for k in keys), dtype=np.int64, count=len(keys))

    def add(self, labels: np.ndarray, values: np.ndarray) -> None:
        """Add one batch: ``labels`` (B,) hashable values, ``values`` (B,) float64."""
        if labels.size == 0:
            return
        if labels.dtype.kind in "iub" and 0 <= labels.min() and labels.max() < 4096:
            # small non-negative integers (class ids, flags): bin directly, no sort
            inv = labels.astype(np.intp, copy=False)
            cnt = np.bincount(inv)
            present = np.flatnonzero(cnt)
            if present.size < cnt.size:
                remap = np.zeros(cnt.size, dtype=np.intp)
                remap[present] = np.arange(present.size)
                inv, cnt = remap[inv], cnt[present]
            uniq = present if labels.dtype.kind != "b" else present.astype(bool)
        else:
            uniq, inv = np.unique(labels, return_inverse=True)
            inv = inv.reshape(-1)
            cnt = np.bincount(inv, minlength=uniq.size)
        k = uniq.size
        mean_b = np.bincount(inv, weights=values, minlength=k) / cnt
        m2_b = np.bincount(inv, weights=(values - mean_b[inv]) ** 2, minlength=k)
        mn_b = np.full(k, np.inf)
        mx_b = np.full(k, -np.inf)
        np.minimum.at(mn_b, inv, values)
        np.maximum.at(mx_b, inv, values)
        s = self._slots(uniq.tolist())
        n_a = self.count[s]
        n = n_a + cnt
        delta = mean_b - self.mean[s]
        self.mean[s] += delta * (cnt / n)
        self.m2[s] += m2_b + delta ** 2 * (n_a * cnt / n)
        self.count[s] = n
        self.min[s] = np.minimum(self.min[s], mn_b)
        self.max[s] = np.maximum(self.max[s], mx_b)

    def std(self) -> np.ndarray:
        """Sample standard deviation (n - 1), 0.0 for a label seen once, as ``statistics.stdev``."""
        out = np.zeros(len(self.keys))
        many = self.count > 1
        out[many] = np.sqrt(self.m2[many] / (self.count[many] - 1))
        return out

    def snapshot(self) -> dict[Any, tuple[int, float, float, float, float]]:
        """``{label: (count, mean, std, min, max)}`` of the labels seen."""
        std = self.std()
        return {k: (int(self.count[i]), float(self.mean[i]), float(std[i]), float(self.min[i]), float(self.max[i]))
                for i, k in enumerate(self.keys)}
