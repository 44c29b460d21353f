"""Label aggregation baselines: majority vote and Dawid-Skene EM, vectorised numpy.

crowd-kit has both, but it pulls in transformers, nltk and pyarrow as hard dependencies, so these two are
written here on flat ``(task, worker, label)`` arrays with ``np.bincount`` (no Python loop over answers).

Inputs are a dense label matrix of shape (N, J), int, ``-1`` where a worker gave no label, or peerannot
answers ``{task: {worker: label}}``. For answers, row ``t`` is task id ``t`` (and worker ``j`` is worker id
``j``) by default; ids so sparse that most rows would be empty are refused, and ``compact=True`` gives one
row per answered task instead, with the user's ids returned alongside (``task_ids``, ``worker_ids``).
Memory is proportional to the number of answers plus the outputs. Shapes: ``N`` tasks, ``J`` workers,
``C`` classes.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .peerannot_io import answers_to_arrays

_EPS = 1e-12
# largest output table (cells) built from answers: beyond it the ids or labels are forged or need n_classes
_MAX_CELLS = 1 << 28
_SPARSE_FACTOR = 4  # an inferred C beyond 4x the distinct labels (+1024) asks for n_classes

__all__ = ["DawidSkeneResult", "dawid_skene", "majority_vote", "vote_counts"]


@dataclass(frozen=True)
class _Flat:
    t: np.ndarray
    w: np.ndarray
    lab: np.ndarray
    n: int
    j: int
    c: int
    task_ids: np.ndarray
    worker_ids: np.ndarray


def _flat_answers(labels, n_classes: int | None, compact: bool = False) -> _Flat:
    """Validate; return the given answers as flat (task, worker, label) arrays, with N, J, C and the ids."""
    if isinstance(labels, Mapping):
        arrays = answers_to_arrays(labels, compact=compact)
        t, w, lab = arrays.task, arrays.worker, arrays.label
        n, j, task_ids, worker_ids = arrays.n_tasks, arrays.n_workers, arrays.task_ids, arrays.worker_ids
    else:
        labels = np.asarray(labels)
        if labels.ndim != 2 or labels.dtype.kind not in "iu":
            raise ValueError(f"labels must be an integer matrix of shape (N, J) with -1 for missing answers, or "
                             f"peerannot answers {{task: {{worker: label}}}}; got shape {labels.shape} "
                             f"dtype {labels.dtype}")
        if (labels < -1).any():
            raise ValueError(f"labels must be >= 0, or -1 for a missing answer; found {int(labels.min())}")
        t, w = np.nonzero(labels >= 0)
        lab = labels[t, w].astype(np.int64)
        n, j = labels.shape
        task_ids, worker_ids = np.arange(n, dtype=np.int64), np.arange(j, dtype=np.int64)
    if lab.size == 0:
        raise ValueError("labels hold no answer at all (every entry is -1)")
    top = int(lab.max())
    if n_classes is None:
        c = top + 1
        distinct = np.unique(lab).size
        if c > _SPARSE_FACTOR * distinct + 1024:
            raise ValueError(f"labels reach {top} but only {distinct} distinct label(s) are used; pass n_classes "
                             "explicitly if there really are that many classes")
    else:
        c = int(n_classes)
    if c < 2:
        raise ValueError(f"n_classes must be >= 2, got {c}")
    if top >= c:
        raise ValueError(f"label {top} is outside [0, n_classes={c})")
    if n * c > _MAX_CELLS or j * c * c > _MAX_CELLS:
        raise ValueError(f"{n} tasks x {j} workers x {c} classes need tables of {max(n * c, j * c * c)} cells, more "
                         f"than the limit of {_MAX_CELLS}; check n_classes and the ids (compact=True for sparse ids)")
    return _Flat(t.astype(np.int64), w.astype(np.int64), lab, n, j, c, task_ids, worker_ids)


def vote_counts(labels: np.ndarray | Mapping, n_classes: int | None = None, *, compact: bool = False):
    """Number of votes per task and class.

    Parameters
    ----------
    labels : ndarray of shape (N, J), int, or peerannot answers
    n_classes : int, optional
        ``C``; default the largest label + 1.
    compact : bool, default=False
        For answers: one row per answered task and return ``(counts, task_ids)`` (see the module docstring).

    Returns
    -------
    ndarray of shape (N, C), int64
        With ``compact=True``: ``(counts, task_ids)``, ``task_ids`` of shape (N,) int64.
    """
    f = _flat_answers(labels, n_classes, compact)
    counts = np.bincount(f.t * f.c + f.lab, minlength=f.n * f.c).reshape(f.n, f.c)
    return (counts, f.task_ids) if compact else counts


def majority_vote(labels: np.ndarray | Mapping, n_classes: int | None = None, *, ties: str = "random",
                  seed: int = 0, compact: bool = False):
    """Majority vote per task.

    Parameters
    ----------
    labels : ndarray of shape (N, J), int, or peerannot answers
        ``-1`` = no answer.
    n_classes : int, optional
    ties : {'random', 'first'}, default='random'
        ``'random'`` breaks ties uniformly among the tied classes (seeded); ``'first'`` takes the lowest
        class id.
    seed : int, default=0
    compact : bool, default=False
        For answers with sparse ids: one row per answered task, returned with the task ids.

    Returns
    -------
    ndarray of shape (N,), int64
        The voted class; ``-1`` for a task without any answer. With ``compact=True``: ``(votes, task_ids)``,
        where ``votes[i]`` is the vote for task ``task_ids[i]``.
    """
    if ties not in ("random", "first"):
        raise ValueError(f"ties must be 'random' or 'first', got {ties!r}")
    counts, task_ids = vote_counts(labels, n_classes, compact=True) if compact else (
        vote_counts(labels, n_classes), None)
    counts = counts.astype(np.float64)
    if ties == "random":
        # integer counts + noise in [0, 0.5) only reorders classes with equal counts
        counts += 0.5 * np.random.default_rng(seed).random(counts.shape)
    out = counts.argmax(1)
    out[counts.max(1) < 1] = -1
    return (out.astype(np.int64), task_ids) if compact else out.astype(np.int64)


@dataclass
class DawidSkeneResult:
    """Output of :func:`dawid_skene`.

    Attributes
    ----------
    labels : ndarray of shape (N,), int64
        Most probable class (lowest id on ties); ``-1`` for tasks without answers.
    posteriors : ndarray of shape (N, C)
        P(true class | answers); the class prior for tasks without answers.
    confusions : ndarray of shape (J, C, C)
        ``confusions[j, k, l]`` = P(worker j answers l | true class k).
    priors : ndarray of shape (C,)
    n_iter : int
    converged : bool
    log_likelihood : float
        Marginal log-likelihood of the answers per answer, at the end.
    task_ids : ndarray of shape (N,), int64
        The user's task id of each row (``0..N-1`` unless ``compact=True``).
    worker_ids : ndarray of shape (J,), int64
        The user's worker id of each ``confusions`` entry.
    """

    labels: np.ndarray
    posteriors: np.ndarray
    confusions: np.ndarray
    priors: np.ndarray
    n_iter: int
    converged: bool
    log_likelihood: float
    task_ids: np.ndarray
    worker_ids: np.ndarray


def dawid_skene(labels: np.ndarray | Mapping, n_classes: int | None = None, *, max_iter: int = 100,
                tol: float = 1e-5, smoothing: float = 0.0, compact: bool = False) -> DawidSkeneResult:
    """Dawid-Skene EM: one full confusion matrix per worker, initialised from the soft majority vote.

    Parameters
    ----------
    labels : ndarray of shape (N, J), int, or peerannot answers
        ``-1`` = no answer.
    n_classes : int, optional
    max_iter : int, default=100
    tol : float, default=1e-5
        Stop when the marginal log-likelihood per answer improves by less than ``tol``.
    smoothing : float, default=0.0
        Pseudo-count added to every confusion entry before normalising (0 = plain maximum likelihood,
        entries clipped at 1e-12 as crowd-kit does).
    compact : bool, default=False
        For answers with sparse ids: rows are the answered tasks and ``confusions`` the answering workers,
        in ascending id order (``task_ids``, ``worker_ids`` in the result map them back).

    Returns
    -------
    DawidSkeneResult

    References
    ----------
    A. P. Dawid, A. M. Skene. Maximum likelihood estimation of observer error-rates using the EM algorithm.
    Applied Statistics 28(1), 1979.
    """
    if max_iter < 1:
        raise ValueError(f"max_iter must be >= 1, got {max_iter}")
    if smoothing < 0:
        raise ValueError(f"smoothing must be >= 0, got {smoothing}")
    f = _flat_answers(labels, n_classes, compact)
    t, w, lab, n, j, c = f.t, f.w, f.lab, f.n, f.j, f.c
    has = np.bincount(t, minlength=n) > 0
    counts = np.bincount(t * c + lab, minlength=n * c).reshape(n, c).astype(np.float64)
    post = np.full((n, c), 1.0 / c)
    post[has] = counts[has] / counts[has].sum(1, keepdims=True)
    cell = w * c + lab  # index of (worker, answered label)

    def m_step(post):
        priors = np.clip(post[has].mean(0), _EPS, None)
        priors /= priors.sum()
        # conf[j, l, k] = sum of post[t, k] over answers (t, j, l)
        conf = np.stack([np.bincount(cell, weights=post[t, k], minlength=j * c) for k in range(c)], axis=1)
        conf = conf.reshape(j, c, c).transpose(0, 2, 1) + smoothing  # -> (J, k, l)
        conf = np.clip(conf, _EPS, None)
        conf /= conf.sum(-1, keepdims=True)
        return priors, conf

    priors, conf = m_step(post)
    ll_old, converged, it = -np.inf, False, 0
    log_lik = -np.inf
    for it in range(1, max_iter + 1):
        contrib = np.log(conf[w, :, lab])  # (M, C): log P(answer | class)
        log_post = np.stack([np.bincount(t, weights=contrib[:, k], minlength=n) for k in range(c)], axis=1)
        log_post += np.log(priors)
        top = log_post.max(1, keepdims=True)
        norm = top + np.log(np.exp(log_post - top).sum(1, keepdims=True))
        post = np.exp(log_post - norm)
        log_lik = float(norm[has].sum() / t.size)
        priors, conf = m_step(post)
        if log_lik - ll_old < tol:
            converged = True
            break
        ll_old = log_lik
    out = post.argmax(1).astype(np.int64)
    out[~has] = -1
    return DawidSkeneResult(labels=out, posteriors=post, confusions=conf, priors=priors, n_iter=it,
                            converged=converged, log_likelihood=log_lik, task_ids=f.task_ids, worker_ids=f.worker_ids)
