"""Datasets that carry their sample index, and the offline default data set (scikit-learn digits)."""
from __future__ import annotations

from typing import Tuple

import numpy as np

from .._paddle import paddle


class ArrayDataset(paddle.io.Dataset):
    """A ``paddle.io.Dataset`` over arrays: item ``i`` is ``(x[i], y[i])``.

    Parameters
    ----------
    x : ndarray of shape (N, ...), cast to float32
    y : ndarray of shape (N,), cast to int64
    """

    def __init__(self, x, y):
        super().__init__()
        self.x = np.asarray(x, dtype=np.float32)
        self.y = np.asarray(y, dtype=np.int64).reshape(-1)
        if len(self.x) != len(self.y):
            raise ValueError(f"x has {len(self.x)} rows but y has {len(self.y)}")

    def __getitem__(self, i):
        return self.x[i], self.y[i]

    def __len__(self):
        return len(self.y)


class DatasetWithIndex(paddle.io.Dataset):
    """Wrap a dataset so each item also carries its index (as ``aum.DatasetWithIndex`` does).

    Parameters
    ----------
    dataset : paddle.io.Dataset
        Items are tuples (or single values).
    index_first : bool, default=False
        False: ``(*item, i)``, the index last, which ``paddle.Model`` needs (it becomes an extra label).
        True: ``(i, *item)``, the ``(indices, x, y)`` order of InterpretDL's ``TrainingDynamics.generator``.
    """

    def __init__(self, dataset, *, index_first: bool = False):
        super().__init__()
        self.dataset = dataset
        self.index_first = index_first

    def __getitem__(self, i):
        item = self.dataset[i]
        item = tuple(item) if isinstance(item, (tuple, list)) else (item,)
        index = np.int64(i)
        return (index, *item) if self.index_first else (*item, index)

    def __len__(self):
        return len(self.dataset)


def load_digits_arrays() -> Tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled digits (no network): ``x`` (1797, 64) float32 in [0, 1], ``y`` (1797,) int64."""
    from sklearn.datasets import load_digits

    data = load_digits()
    return (data.data / 16.0).astype(np.float32), data.target.astype(np.int64)


class SeededBatchSampler(paddle.io.BatchSampler):
    """Shuffled mini-batches from a private ``numpy.random.Generator``, reproducible by ``seed``.

    ``paddle.io.DataLoader(shuffle=True)`` draws its permutation from the global ``np.random`` state;
    this sampler leaves that state alone. Pass it as ``DataLoader(dataset, batch_sampler=...)``.

    Parameters
    ----------
    n_samples : int
    batch_size : int
    seed : int, default=0
    drop_last : bool, default=False
        False keeps the incomplete last batch, so every sample is seen every epoch.
    """

    def __init__(self, n_samples: int, batch_size: int, *, seed: int = 0, drop_last: bool = False):
        if n_samples < 1 or batch_size < 1:
            raise ValueError(f"n_samples and batch_size must be >= 1, got {n_samples} and {batch_size}")
        self.n_samples, self.batch_size, self.drop_last = int(n_samples), int(batch_size), drop_last
        self.rng = np.random.default_rng(seed)

    def __iter__(self):
        order = self.rng.permutation(self.n_samples)
        stop = len(self) * self.batch_size if self.drop_last else self.n_samples
        for start in range(0, stop, self.batch_size):
            yield order[start:start + self.batch_size].tolist()

    def __len__(self) -> int:
        full, rest = divmod(self.n_samples, self.batch_size)
        return full + (0 if self.drop_last or rest == 0 else 1)
