"""Forgetting events (Toneva et al., ICLR 2019) scored on a saved recording.

A *forgetting event* is a transition from correctly classified at epoch ``e`` to misclassified at epoch
``e + 1``; a *learning event* is the reverse. Samples that are never classified correctly are
"never learned" and count as infinitely forgotten in the paper; like allenai/cartography we stand in a
large finite number (1000 by default), so every score stays finite for the metrics.

Per-epoch correctness is derived from the recording itself: the argmax of the epoch's softmax equals the
assigned label. With the ``labels`` key the probabilities are put back into the model's class order
first, so ties break exactly as ``argmax`` over the model outputs would; without it, channel 0 of ``td``
(the assigned label) is compared with the other channels.

InterpretDL's ``ForgettingEventsInterpreter.find_noisy_labels`` rule is available as
:func:`find_noisy_labels` / :meth:`ForgettingEventsInterpreter.find_noisy_labels`: for every sample that
was learned at least once, take the mean index of the epochs where it was correct, and flag samples whose
value exceeds ``mean + 5 * std`` of that value over the learned samples.

Shapes: ``N`` samples, ``E`` epochs, ``C`` classes.

References
----------
.. [1] M. Toneva, A. Sordoni, R. Tachet des Combes, A. Trischler, Y. Bengio, G. J. Gordon, "An Empirical
   Study of Example Forgetting during Deep Neural Network Learning", ICLR 2019, arXiv:1812.05159.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..common.atomic import PathLike
from ..recording.recording import Recording
from .abc_interpreter import DatasetLevelInterpreter, read_training_dynamics

__all__ = [
    "NEVER_LEARNED_SCORE",
    "ForgettingEventsInterpreter",
    "correctness_from_td",
    "find_noisy_labels",
    "forgetting_counts",
    "forgetting_scores",
    "mean_correct_epoch",
]

#: Score of a never-learned sample (cartography's stand-in for "infinitely forgotten").
NEVER_LEARNED_SCORE = 1000.0
_CHUNK = 4096


def correctness_from_td(td: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
    """Per-epoch correctness: is the argmax of the epoch's softmax the assigned label?

    Parameters
    ----------
    td : ndarray of shape (N, E, C)
        Per-epoch softmax, channel 0 = assigned label (the recording layout).
    labels : ndarray of shape (N, C), optional
        Class id of each ``td`` channel. When given, the argmax is taken in the model's class order
        (ties go to the lower class id, like ``argmax`` on the model output); otherwise over ``td``
        channels (ties go to channel 0, the assigned label).

    Returns
    -------
    ndarray of shape (N, E), bool
        True where the sample was classified as its assigned label.
    """
    td = np.asarray(td)
    if td.ndim != 3:
        raise ValueError(f"td must have shape (N, E, C), got {td.shape}")
    if labels is None:
        return np.argmax(td, axis=2) == 0
    labels = np.asarray(labels)
    if labels.shape != (td.shape[0], td.shape[2]):
        raise ValueError(f"labels must have shape {(td.shape[0], td.shape[2])}, got {labels.shape}")
    out = np.empty(td.shape[:2], dtype=bool)
    for start in range(0, td.shape[0], _CHUNK):
        block = td[start:start + _CHUNK]
        lab = labels[start:start + _CHUNK].astype(np.int64)
        model_order = np.empty_like(block)
        np.put_along_axis(model_order, np.broadcast_to(lab[:, None, :], block.shape), block, axis=2)
        out[start:start + _CHUNK] = np.argmax(model_order, axis=2) == lab[:, :1]
    return out


def _check_correct(correct) -> np.ndarray:
    correct = np.asarray(correct)
    if correct.ndim != 2:
        raise ValueError(f"correct must have shape (N, E), got {correct.shape}")
    if correct.dtype != bool:
        if not np.isin(correct, (0, 1)).all():
            raise ValueError("correct must hold only 0/1 or booleans")
        correct = correct.astype(bool)
    return correct


def forgetting_counts(correct) -> np.ndarray:
    """Number of forgetting events (correct at epoch ``e``, wrong at ``e + 1``) per sample.

    Parameters
    ----------
    correct : array-like of shape (N, E), bool or 0/1

    Returns
    -------
    ndarray of shape (N,), int64
        Raw counts; never-learned samples have 0 here (see :func:`forgetting_scores`).
    """
    correct = _check_correct(correct)
    return (correct[:, :-1] & ~correct[:, 1:]).sum(axis=1).astype(np.int64)


def mean_correct_epoch(correct) -> np.ndarray:
    """Mean (0-based) index of the epochs in which each sample was correct; NaN if never learned.

    Parameters
    ----------
    correct : array-like of shape (N, E), bool or 0/1

    Returns
    -------
    ndarray of shape (N,), float64
    """
    correct = _check_correct(correct)
    n_correct = correct.sum(axis=1)
    epochs = np.arange(correct.shape[1], dtype=np.float64)
    total = (correct * epochs).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_correct > 0, total / np.maximum(n_correct, 1), np.nan)


def forgetting_scores(correct, *, never_learned: float = NEVER_LEARNED_SCORE) -> np.ndarray:
    """Forgetting-event count per sample, never-learned samples set to ``never_learned``.

    Parameters
    ----------
    correct : array-like of shape (N, E), bool or 0/1
    never_learned : float, default=1000.0
        Score of samples that are never correct ("infinitely forgotten" in the paper; 1000 as in
        cartography's ``compute_forgetfulness``). Must be finite.

    Returns
    -------
    ndarray of shape (N,), float64
        Higher = more likely mislabeled.
    """
    if not np.isfinite(never_learned):
        raise ValueError(f"never_learned must be a finite number, got {never_learned!r}")
    correct = _check_correct(correct)
    counts = forgetting_counts(correct).astype(np.float64)
    return np.where(correct.any(axis=1), counts, float(never_learned))


def find_noisy_labels(correct, *, n_std: float = 5.0, sample_ids=None) -> np.ndarray:
    """InterpretDL's ``ForgettingEventsInterpreter.find_noisy_labels`` rule.

    Among samples that were correct in at least one epoch, flag those whose mean correct-epoch index
    (:func:`mean_correct_epoch`) exceeds ``mean + n_std * std`` of that value over the learned samples
    (population std). Never-learned samples are skipped, as in InterpretDL.

    Parameters
    ----------
    correct : array-like of shape (N, E), bool or 0/1
    n_std : float, default=5.0
    sample_ids : array-like of shape (N,), optional
        Ids to return instead of row indices.

    Returns
    -------
    ndarray of shape (K,)
        Flagged row indices (or ``sample_ids``), sorted by descending mean correct epoch.
    """
    value = mean_correct_epoch(correct)
    learned = np.flatnonzero(~np.isnan(value))
    ids = np.arange(value.size) if sample_ids is None else np.asarray(sample_ids).reshape(-1)
    if ids.shape[0] != value.size:
        raise ValueError(f"sample_ids has {ids.shape[0]} entries for {value.size} samples")
    if learned.size == 0:
        return ids[:0]
    v = value[learned]
    flagged = learned[v > v.mean() + n_std * v.std()]
    flagged = flagged[np.argsort(-value[flagged], kind="stable")]
    return ids[flagged]


class ForgettingEventsInterpreter(DatasetLevelInterpreter):
    """Score each sample of a recording by how often it is forgotten during training.

    Unlike InterpretDL's class of the same name, this one does not train: it reads a recording (from
    :class:`~interpretdl_noise.TrainingDynamics` or an InterpretDL ``training_dynamics.npz``), so the same
    run can be scored by every detector.

    Parameters
    ----------
    never_learned : float, default=1000.0
        Score given to samples never classified as their assigned label ("infinitely forgotten").

    Attributes
    ----------
    scores_ : ndarray of shape (N,)
        Forgetting count (``never_learned`` for never-learned samples); higher = more likely mislabeled.
    correct_ : ndarray of shape (N, E), bool
        Per-epoch correctness derived from the recording.
    forgetting_counts_ : ndarray of shape (N,), int64
        Raw forgetting-event counts.
    never_learned_ : ndarray of shape (N,), bool
    count_forgotten_ : dict
        ``{count: [row indices]}`` with never-learned samples under ``-1``, as InterpretDL's
        ``compute_and_order_forgetting_stats`` returns.

    Examples
    --------
    >>> fe = ForgettingEventsInterpreter()                                      # doctest: +SKIP
    >>> order, scores = fe.interpret(training_dynamics_path="run/training_dynamics.npz")
    >>> noisy = fe.find_noisy_labels(training_dynamics_path="run/training_dynamics.npz")
    """

    name = "forgetting"
    summary = "forgetting-event count (Toneva et al. 2019)"
    listing_order = 40

    def __init__(self, never_learned: float = NEVER_LEARNED_SCORE):
        super().__init__(model=None, device="cpu")
        if not isinstance(never_learned, (int, float, np.integer, np.floating)) or not np.isfinite(never_learned):
            raise ValueError(f"never_learned must be a finite number, got {never_learned!r}")
        self.never_learned = float(never_learned)

    def _score(self, record: Recording) -> np.ndarray:
        correct = correctness_from_td(record.td, record.labels)
        self.correct_ = correct
        self.forgetting_counts_ = forgetting_counts(correct)
        self.never_learned_ = ~correct.any(axis=1)
        groups: dict[int, list[int]] = {}
        keys = np.where(self.never_learned_, -1, self.forgetting_counts_)
        for count in np.unique(keys).tolist():
            groups[int(count)] = np.flatnonzero(keys == count).tolist()
        self.count_forgotten_ = groups
        return forgetting_scores(correct, never_learned=self.never_learned)

    def find_noisy_labels(self, training_dynamics: Mapping | None = None,
                          training_dynamics_path: PathLike | None = None, *,
                          n_std: float = 5.0) -> np.ndarray:
        """InterpretDL's rule: flag samples whose mean correct-epoch index > mean + ``n_std`` * std.

        Parameters
        ----------
        training_dynamics, training_dynamics_path
            Exactly one, as in :meth:`interpret`.
        n_std : float, default=5.0

        Returns
        -------
        ndarray of shape (K,)
            Flagged samples (the recording's ``sample_ids`` when present, else row indices), most
            suspicious (latest mean correct epoch) first.
        """
        record = read_training_dynamics(training_dynamics, training_dynamics_path)
        correct = correctness_from_td(record.td, record.labels)
        return find_noisy_labels(correct, n_std=n_std, sample_ids=record.sample_ids)
