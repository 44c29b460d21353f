"""A reproducible crowd of simulated annotators over a labelled data set.

Three kinds of annotator (worker):

- **expert**: correct with an individual accuracy drawn in ``expert_accuracy``; otherwise a uniformly
  random other class;
- **confuser**: all confusers share **one common confusion** matrix (by default class pairs swapped with
  probability ``confusion_rate``), the situation CoNAL is built for;
- **spammer**: a uniformly random class, whatever the truth.

Assignment is sparse: each task is labelled by ``labels_per_task`` distinct workers drawn uniformly among
the ``J`` workers. Shapes: ``N`` tasks, ``J`` workers, ``C`` classes.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .peerannot_io import matrix_to_answers

WORKER_TYPES = ("expert", "confuser", "spammer")

__all__ = ["WORKER_TYPES", "CrowdSimulation", "common_confusion_matrix", "simulate_crowd"]


def common_confusion_matrix(n_classes: int, *, rate: float = 0.6, seed: int = 0) -> np.ndarray:
    """A class-pair confusion: classes are paired by a seeded permutation and swapped with probability ``rate``.

    With an odd ``C`` the last class of the permutation is confused with the first one (one-way).

    Parameters
    ----------
    n_classes : int
        ``C`` >= 2.
    rate : float, default=0.6
        Probability that a confuser answers the partner class, in [0, 1].
    seed : int, default=0

    Returns
    -------
    ndarray of shape (C, C), float64
        Row-stochastic: ``T[k, l]`` = P(answer ``l`` | true class ``k``).
    """
    if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)) or n_classes < 2:
        raise ValueError(f"n_classes must be an integer >= 2, got {n_classes!r}")
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate must be in [0, 1], got {rate}")
    c = int(n_classes)
    perm = np.random.default_rng(seed).permutation(c)
    partner = np.roll(perm, -1)
    partner[1::2] = perm[0:c - c % 2:2]
    mapping = np.empty(c, dtype=np.int64)
    mapping[perm] = partner
    t = (1.0 - rate) * np.eye(c)
    t[np.arange(c), mapping] += rate
    return t


@dataclass
class CrowdSimulation:
    """The output of :func:`simulate_crowd`.

    Attributes
    ----------
    labels : ndarray of shape (N, J), int64
        Worker answers, ``-1`` where a worker did not label the task.
    true_labels : ndarray of shape (N,), int64
    worker_types : ndarray of shape (J,), str
        ``'expert'``, ``'confuser'`` or ``'spammer'``.
    confusions : ndarray of shape (J, C, C), float64
        True row-stochastic confusion of each worker (P(answer l | true k)).
    common_confusion : ndarray of shape (C, C), float64
        The confusion all confusers share.
    seed : int
    """

    labels: np.ndarray
    true_labels: np.ndarray
    worker_types: np.ndarray
    confusions: np.ndarray
    common_confusion: np.ndarray
    seed: int

    @property
    def answers(self) -> dict[str, dict[str, int]]:
        """peerannot answers ``{"task": {"worker": label}}`` (task id = row index), JSON-ready."""
        return matrix_to_answers(self.labels)

    @property
    def n_workers(self) -> int:
        return int(self.labels.shape[1])

    def label_accuracy(self) -> float:
        """Fraction of the given answers that equal the true label."""
        given = self.labels >= 0
        return float((self.labels == self.true_labels[:, None])[given].mean())

    def worker_accuracy(self) -> np.ndarray:
        """(J,) accuracy of each worker on the tasks it labelled (NaN when it labelled none)."""
        given = self.labels >= 0
        correct = (self.labels == self.true_labels[:, None]) & given
        with np.errstate(invalid="ignore", divide="ignore"):
            return correct.sum(0) / given.sum(0)


def _worker_counts(n_workers: int, frac_confusers: float, frac_spammers: float) -> tuple[int, int, int]:
    n_conf = round(frac_confusers * n_workers)
    n_spam = round(frac_spammers * n_workers)
    return n_workers - n_conf - n_spam, n_conf, n_spam


def simulate_crowd(true_labels, n_classes: int | None = None, *, n_workers: int = 30,
                   labels_per_task: int = 3, frac_confusers: float = 0.4, frac_spammers: float = 0.1,
                   expert_accuracy: tuple[float, float] = (0.7, 0.95), common_confusion=None,
                   confusion_rate: float = 0.6, seed: int = 0) -> CrowdSimulation:
    """Simulate sparse crowd answers for tasks with known true labels.

    Parameters
    ----------
    true_labels : array-like of shape (N,), int
        Classes in ``[0, C)``.
    n_classes : int, optional
        ``C``; default ``max(true_labels) + 1``.
    n_workers : int, default=30
        ``J``.
    labels_per_task : int, default=3
        Distinct workers per task (``1 <= k <= J``).
    frac_confusers : float, default=0.4
        Fraction of workers that share the common confusion (rounded to a count).
    frac_spammers : float, default=0.1
        Fraction of workers answering uniformly at random. The rest are experts.
    expert_accuracy : (float, float), default=(0.7, 0.95)
        Each expert's accuracy is drawn uniformly in this range.
    common_confusion : array-like of shape (C, C), optional
        Row-stochastic confusion of the confusers; default
        ``common_confusion_matrix(C, rate=confusion_rate, seed=seed)``.
    confusion_rate : float, default=0.6
        Swap probability of the default common confusion.
    seed : int, default=0
        Seeds everything (worker kinds, accuracies, assignment, answers); no global state is touched.

    Returns
    -------
    CrowdSimulation
    """
    y = np.asarray(true_labels).reshape(-1)
    if y.size == 0 or y.dtype.kind not in "iu":
        raise ValueError(f"true_labels must be a non-empty integer array, got dtype {y.dtype} size {y.size}")
    c = int(y.max()) + 1 if n_classes is None else int(n_classes)
    if c < 2 or y.min() < 0 or y.max() >= c:
        raise ValueError(f"true_labels must lie in [0, n_classes={c}) with n_classes >= 2")
    if isinstance(n_workers, bool) or not isinstance(n_workers, (int, np.integer)) or n_workers < 1:
        raise ValueError(f"n_workers must be a positive integer, got {n_workers!r}")
    if not 1 <= labels_per_task <= n_workers:
        raise ValueError(f"labels_per_task must be in [1, n_workers={n_workers}], got {labels_per_task}")
    if not (0 <= frac_confusers <= 1 and 0 <= frac_spammers <= 1 and frac_confusers + frac_spammers <= 1):
        raise ValueError(f"frac_confusers ({frac_confusers}) and frac_spammers ({frac_spammers}) must be in [0, 1] "
                         "and sum to at most 1")
    lo, hi = expert_accuracy
    if not 0 <= lo <= hi <= 1:
        raise ValueError(f"expert_accuracy must be (low, high) with 0 <= low <= high <= 1, got {expert_accuracy}")
    if common_confusion is None:
        common = common_confusion_matrix(c, rate=confusion_rate, seed=seed)
    else:
        common = np.asarray(common_confusion, dtype=np.float64)
        if common.shape != (c, c) or (common < 0).any() or not np.allclose(common.sum(1), 1.0):
            raise ValueError(f"common_confusion must be a row-stochastic ({c}, {c}) matrix")
    rng = np.random.default_rng(seed)
    n_exp, n_conf, n_spam = _worker_counts(int(n_workers), frac_confusers, frac_spammers)
    kinds = np.array(["expert"] * n_exp + ["confuser"] * n_conf + ["spammer"] * n_spam)
    kinds = kinds[rng.permutation(n_workers)]

    confusions = np.empty((n_workers, c, c))
    acc = rng.uniform(lo, hi, size=n_workers)
    off = (1.0 - acc) / (c - 1)
    expert = off[:, None, None] * (1.0 - np.eye(c)) + acc[:, None, None] * np.eye(c)
    confusions[:] = expert
    confusions[kinds == "confuser"] = common
    confusions[kinds == "spammer"] = 1.0 / c

    n = y.size
    # k distinct workers per task: the k smallest of J uniform keys
    chosen = np.argsort(rng.random((n, n_workers)), axis=1)[:, :labels_per_task]
    tasks = np.repeat(np.arange(n), labels_per_task)
    workers = chosen.reshape(-1)
    rows = confusions[workers, y[tasks]]  # (M, C) answer distributions
    u = rng.random(tasks.size)
    answers = np.minimum((u[:, None] > np.cumsum(rows, axis=1)).sum(1), c - 1)
    labels = np.full((n, n_workers), -1, dtype=np.int64)
    labels[tasks, workers] = answers
    return CrowdSimulation(labels=labels, true_labels=y.astype(np.int64), worker_types=kinds,
                           confusions=confusions, common_confusion=common, seed=int(seed))
