"""AUM threshold samples: calibrate the AUM cut-off with deliberately mislabeled samples.

The procedure of Pleiss et al. (NeurIPS 2020) and its replication code
(``examples/paper_replication/runner.py`` of the ``aum`` repository):

1. pick ``N // (C + 1)`` random samples and relabel them to a fake extra class ``C`` (the model gets
   ``C + 1`` outputs). They are mislabeled by construction;
2. train and measure every sample's AUM (the replication code skips epoch 0);
3. cut-off = the 99th percentile of the threshold samples' AUMs; a normal sample below it is flagged;
4. repeat with a second, disjoint threshold set, so that every sample is a normal sample at least once;
   a sample is removed only if it is flagged in **every** run in which it was a normal sample.

Numpy parts (index sets, cut-off, combination) need no model; :func:`run_threshold_procedure` runs the
two trainings on a Paddle model. Shapes: ``N`` samples, ``C`` real classes, ``R`` runs.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from tqdm.auto import tqdm

from .._paddle import paddle
from ..common.device import device_scope, resolve_device
from ..data import ArrayDataset, DatasetWithIndex, SeededBatchSampler
from .aum import AUMCalculator

__all__ = [
    "ThresholdResult",
    "ThresholdSamplesDataset",
    "assign_threshold_labels",
    "aum_cutoff",
    "combine_threshold_runs",
    "flag_below_cutoff",
    "run_threshold_procedure",
    "threshold_sample_indices",
]


def _check_sizes(n_samples: int, n_classes: int, set_index: int) -> int:
    if not isinstance(n_classes, (int, np.integer)) or n_classes < 2:
        raise ValueError(f"n_classes must be an integer >= 2 (the real classes), got {n_classes!r}")
    if not isinstance(set_index, (int, np.integer)) or not 1 <= set_index <= n_classes + 1:
        raise ValueError(f"set_index must be an integer in [1, {n_classes + 1}], got {set_index!r}")
    n_threshold = int(n_samples) // (int(n_classes) + 1)
    if n_threshold == 0:
        raise ValueError(f"{n_samples} samples are too few for threshold samples with {n_classes} classes "
                         f"(N // (C + 1) = 0)")
    return n_threshold


def threshold_sample_indices(n_samples: int, n_classes: int, set_index: int = 1, *, seed: int = 0) -> np.ndarray:
    """Indices of the ``set_index``-th threshold set: ``N // (C + 1)`` samples, disjoint across sets.

    Parameters
    ----------
    n_samples : int
        ``N``.
    n_classes : int
        ``C``, the number of real classes (the fake class gets index ``C``).
    set_index : int, default=1
        1 for the first run, 2 for the second, ... Sets with the same ``seed`` never overlap (they are
        consecutive slices of one seeded permutation, as in the replication code).
    seed : int, default=0
        Seed of the permutation (``np.random.default_rng``; no global state is touched).

    Returns
    -------
    ndarray of shape (N // (C + 1),), int64, sorted
    """
    n = _check_sizes(n_samples, n_classes, set_index)
    perm = np.random.default_rng(seed).permutation(int(n_samples))
    return np.sort(perm[(set_index - 1) * n: set_index * n]).astype(np.int64)


def assign_threshold_labels(labels, n_classes: int, set_index: int = 1, *,
                            seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Relabel the threshold samples of one set to the fake class ``C``.

    Parameters
    ----------
    labels : array-like of shape (N,), int in [0, C)
    n_classes, set_index, seed
        As in :func:`threshold_sample_indices`.

    Returns
    -------
    new_labels : ndarray of shape (N,), int64
        ``labels`` with the threshold samples set to ``C``.
    is_threshold : ndarray of shape (N,), bool
    """
    y = np.asarray(labels).reshape(-1).astype(np.int64)
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"labels must lie in [0, {n_classes}), got values in [{y.min()}, {y.max()}]")
    is_threshold = np.zeros(y.size, dtype=bool)
    is_threshold[threshold_sample_indices(y.size, n_classes, set_index, seed=seed)] = True
    new = y.copy()
    new[is_threshold] = n_classes
    return new, is_threshold


class ThresholdSamplesDataset(paddle.io.Dataset):
    """Wrap a dataset so that one threshold set carries the fake label ``C``.

    Parameters
    ----------
    dataset : paddle.io.Dataset
        Items are tuples whose element ``label_position`` is the class label.
    n_classes : int
        ``C`` real classes; threshold samples get label ``C``, so the model needs ``C + 1`` outputs.
    set_index : int, default=1
        Which threshold set (1 or 2 for the two runs); see :func:`threshold_sample_indices`.
    seed : int, default=0
    label_position : int, default=1
        Position of the label in each item (``(x, y)`` -> 1).

    Attributes
    ----------
    threshold_indices : ndarray of shape (N // (C + 1),)
    is_threshold : ndarray of shape (N,), bool
    fake_class : int
        ``C``.
    """

    def __init__(self, dataset, n_classes: int, set_index: int = 1, *, seed: int = 0, label_position: int = 1):
        super().__init__()
        self.dataset = dataset
        self.n_classes = int(n_classes)
        self.fake_class = int(n_classes)
        self.label_position = int(label_position)
        self.threshold_indices = threshold_sample_indices(len(dataset), n_classes, set_index, seed=seed)
        self.is_threshold = np.zeros(len(dataset), dtype=bool)
        self.is_threshold[self.threshold_indices] = True

    def __getitem__(self, i):
        item = self.dataset[i]
        if not self.is_threshold[i]:
            return item
        item = list(item)
        label = item[self.label_position]
        if isinstance(label, np.ndarray):
            item[self.label_position] = np.full_like(label, self.fake_class)
        else:
            item[self.label_position] = np.int64(self.fake_class)
        return tuple(item)

    def __len__(self):
        return len(self.dataset)


def aum_cutoff(threshold_aums, percentile: float = 99.0) -> float:
    """The ``percentile``-th percentile of the threshold samples' AUMs.

    Parameters
    ----------
    threshold_aums : array-like of shape (T,)
    percentile : float, default=99.0
        In (0, 100].

    Returns
    -------
    float
        Uses ``method='inverted_cdf'`` (an observed AUM), so that :func:`flag_below_cutoff` flags
        exactly the samples the replication code marks ``AUM_WTR``: those for which more than
        ``1 - percentile / 100`` of the threshold samples have a strictly larger AUM.
    """
    t = np.asarray(threshold_aums, dtype=np.float64).reshape(-1)
    if t.size == 0:
        raise ValueError("no threshold-sample AUMs given")
    if not 0.0 < percentile <= 100.0:
        raise ValueError(f"percentile must be in (0, 100], got {percentile}")
    if not np.isfinite(t).all():
        raise ValueError("threshold-sample AUMs contain NaN or inf")
    return float(np.percentile(t, percentile, method="inverted_cdf"))


def flag_below_cutoff(aums, is_threshold, percentile: float = 99.0) -> tuple[np.ndarray, float]:
    """Flag normal samples whose AUM is below the threshold samples' cut-off (one run).

    Parameters
    ----------
    aums : array-like of shape (N,)
        AUM of every sample in this run (threshold samples measured against the fake class).
    is_threshold : array-like of shape (N,), bool
    percentile : float, default=99.0

    Returns
    -------
    flagged : ndarray of shape (N,), bool
        ``aum < cutoff`` for normal samples; always False for threshold samples.
    cutoff : float
    """
    a = np.asarray(aums, dtype=np.float64).reshape(-1)
    thr = np.asarray(is_threshold, dtype=bool).reshape(-1)
    if a.shape != thr.shape:
        raise ValueError(f"aums has {a.size} entries but is_threshold has {thr.size}")
    cutoff = aum_cutoff(a[thr], percentile)
    return (a < cutoff) & ~thr, cutoff


def combine_threshold_runs(flagged, is_threshold) -> np.ndarray:
    """Remove a sample only if it is flagged in every run where it was a normal sample.

    Parameters
    ----------
    flagged : array-like of shape (R, N), bool
    is_threshold : array-like of shape (R, N), bool

    Returns
    -------
    ndarray of shape (N,), bool
        True = remove (likely mislabeled). A sample that was a threshold sample in every run has no
        measurement and is kept (False).
    """
    f = np.asarray(flagged, dtype=bool)
    thr = np.asarray(is_threshold, dtype=bool)
    if f.ndim != 2 or f.shape != thr.shape:
        raise ValueError(f"flagged and is_threshold must both have shape (R, N); got {f.shape} and {thr.shape}")
    normal = ~thr
    return (normal.sum(axis=0) > 0) & ((f & normal).sum(axis=0) == normal.sum(axis=0))


@dataclass
class ThresholdResult:
    """Outcome of :func:`run_threshold_procedure` (``R`` runs, ``N`` samples).

    Attributes
    ----------
    remove : ndarray of shape (N,), bool
        Flagged in every run where the sample was normal: the likely mislabeled samples.
    aum : ndarray of shape (R, N), float64
        AUM per run; threshold samples' AUM is measured against the fake class.
    is_threshold : ndarray of shape (R, N), bool
    flagged : ndarray of shape (R, N), bool
    cutoffs : ndarray of shape (R,)
    """

    remove: np.ndarray
    aum: np.ndarray
    is_threshold: np.ndarray
    flagged: np.ndarray
    cutoffs: np.ndarray

    def mean_normal_aum(self) -> np.ndarray:
        """Each sample's AUM averaged over the runs where it was normal, shape (N,) (a ranking score)."""
        normal = ~self.is_threshold
        return np.where(normal, self.aum, 0.0).sum(axis=0) / np.maximum(normal.sum(axis=0), 1)


def _as_dataset(data) -> Any:
    if isinstance(data, (tuple, list)) and len(data) == 2 and not isinstance(data[0], paddle.io.Dataset):
        return ArrayDataset(*data)
    return data


def run_threshold_procedure(model_fn: Callable[[int], Any], data, n_classes: int, *, epochs: int,
                            batch_size: int = 64,
                            optimizer_fn: Callable[[Sequence[Any]], Any] | None = None,
                            n_runs: int = 2, percentile: float = 99.0, skip_first_epoch: bool = True,
                            seed: int = 0, device: str = "cpu", progress: bool = True) -> ThresholdResult:
    """Train ``n_runs`` models with disjoint threshold sets and return the samples to remove.

    Parameters
    ----------
    model_fn : callable
        ``model_fn(num_classes) -> paddle.nn.Layer`` returning a fresh model with ``num_classes`` outputs;
        it is called with ``C + 1``. Seed Paddle inside it if you need identical initialisations
        (this function never calls ``paddle.seed``).
    data : paddle.io.Dataset or (x, y) arrays
        Items ``(x, y)`` with ``y`` in ``[0, C)``.
    n_classes : int
        ``C`` real classes.
    epochs : int
        Training epochs per run (the paper trains until the first learning-rate drop).
    batch_size : int, default=64
    optimizer_fn : callable, optional
        ``optimizer_fn(parameters) -> paddle.optimizer.Optimizer``; default Adam, learning rate 1e-3.
    n_runs : int, default=2
        Number of runs, each with its own disjoint threshold set (at most ``C + 1``).
    percentile : float, default=99.0
        Cut-off percentile of the threshold samples' AUMs.
    skip_first_epoch : bool, default=True
        Do not measure margins in epoch 0 (as the replication code).
    seed : int, default=0
        Seeds the threshold sets and the batch shuffling (``np.random.default_rng``).
    device : str, default='cpu'
    progress : bool, default=True

    Returns
    -------
    ThresholdResult
        ``remove`` (N,) bool is True for likely mislabeled samples.
    """
    if not isinstance(epochs, (int, np.integer)) or epochs < (2 if skip_first_epoch else 1):
        raise ValueError(f"epochs must be an integer >= {2 if skip_first_epoch else 1}, got {epochs!r}")
    if not isinstance(n_runs, (int, np.integer)) or not 1 <= n_runs <= n_classes + 1:
        raise ValueError(f"n_runs must be an integer in [1, {n_classes + 1}], got {n_runs!r}")
    dataset = _as_dataset(data)
    n = len(dataset)
    device = resolve_device(device)
    if optimizer_fn is None:
        def optimizer_fn(params):
            return paddle.optimizer.Adam(learning_rate=1e-3, parameters=params)
    aums = np.full((n_runs, n), np.nan)
    thresholds = np.zeros((n_runs, n), dtype=bool)
    flagged = np.zeros((n_runs, n), dtype=bool)
    cutoffs = np.zeros(n_runs)
    bar = tqdm(total=n_runs * epochs, desc="AUM threshold runs", unit="epoch", disable=not progress)
    with device_scope(device):
        for run in range(n_runs):
            wrapped = ThresholdSamplesDataset(dataset, n_classes, run + 1, seed=seed)
            thresholds[run] = wrapped.is_threshold
            sampler = SeededBatchSampler(n, batch_size, seed=seed + 1000 * (run + 1))
            loader = paddle.io.DataLoader(DatasetWithIndex(wrapped), batch_sampler=sampler, num_workers=0)
            model = model_fn(n_classes + 1)
            optimizer = optimizer_fn(model.parameters())
            calc = AUMCalculator(None, compressed=True)
            model.train()
            for epoch in range(epochs):
                for x, y, idx in loader:
                    y = y.reshape([-1]).astype("int64")
                    logits = model(x)
                    loss = paddle.nn.functional.cross_entropy(logits, y)
                    loss.backward()
                    optimizer.step()
                    optimizer.clear_grad()
                    if epoch > 0 or not skip_first_epoch:
                        calc.update(logits.detach(), y, idx.reshape([-1]))
                bar.update(1)
            ids, values, _ = calc.aum_array()
            if len(ids) != n:
                raise RuntimeError(f"run {run + 1}: only {len(ids)} of {n} samples received a margin")
            aums[run, np.asarray(ids)] = values
            flagged[run], cutoffs[run] = flag_below_cutoff(aums[run], thresholds[run], percentile)
    bar.close()
    return ThresholdResult(remove=combine_threshold_runs(flagged, thresholds), aum=aums,
                           is_threshold=thresholds, flagged=flagged, cutoffs=cutoffs)
