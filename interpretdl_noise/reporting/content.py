"""What the report shows, as numbers: detector scores and ranks, the top-K suspects, flags, suggested
labels, the noise estimate and, with ``label_flip``, each detector's AUROC / AP and ROC / PR curves.

Numpy only; :mod:`interpretdl_noise.reporting.html` turns a :class:`ReportContent` into the page.
Shapes: ``N`` samples, ``E`` epochs, ``C`` classes, ``K`` cards. Higher score = more likely mislabeled.
"""
from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from ..recording import Recording

__all__ = ["ReportContent", "build_content", "check_class_names", "check_top", "rank_of"]


@dataclass
class ReportContent:
    """The report's data (all arrays indexed by recording row).

    Attributes
    ----------
    recording : Recording
    method : str
        The detector that ranks the gallery (its top ``K`` are the cards).
    scores : dict of name -> ndarray (N,)
        Every detector that ran; higher = more likely mislabeled.
    ranks : dict of name -> ndarray (N,) int
        1 = most suspicious for that detector.
    not_run : dict of name -> str
        Detectors that did not run, with the reason.
    rows : ndarray (K,) int
        Recording rows of the cards, most suspicious (by ``method``) first.
    given, suggested : ndarray (N,) int
        Given label and suggested label per sample.
    confidence : ndarray (N,) float
        Confidence of the suggestion, in [0, 1].
    flagged : ndarray (N,) bool
        ``find_label_issues(recording, method, cutoff)``.
    estimate : NoiseEstimate
        ``estimate_noise(recording)``.
    class_names : list of str (C,)
    median_curve : ndarray (E,)
        Per-epoch median over all samples of the assigned-label probability.
    metrics : dict of name -> dict, or None
        With a usable ``label_flip``: ``auroc``, ``ap``, ``roc`` (fpr, tpr) and ``pr`` (recall, precision).
    """

    recording: Recording
    method: str
    scores: dict[str, np.ndarray]
    ranks: dict[str, np.ndarray]
    not_run: dict[str, str]
    rows: np.ndarray
    given: np.ndarray
    suggested: np.ndarray
    confidence: np.ndarray
    flagged: np.ndarray
    estimate: Any
    class_names: list[str]
    median_curve: np.ndarray
    metrics: Optional[dict[str, dict[str, Any]]] = None
    cutoff: Any = "auto"
    notes: list[str] = field(default_factory=list)

    @property
    def sample_ids(self) -> np.ndarray:
        return self.recording.sample_ids

    @property
    def known_flips(self) -> Optional[np.ndarray]:
        flips = self.recording.label_flip
        return None if flips is None else np.asarray(flips).astype(bool)

    def given_vs_suggested(self) -> np.ndarray:
        """(C, C) counts over all N samples: rows = given label, columns = suggested label."""
        c = self.recording.n_classes
        counts = np.zeros((c, c), dtype=np.int64)
        np.add.at(counts, (self.given, self.suggested), 1)
        return counts


def check_top(top: Any) -> int:
    """``top`` as an int >= 1 (ValueError otherwise)."""
    if isinstance(top, bool) or not isinstance(top, numbers.Integral):
        raise ValueError(f"top (K, the number of cards) must be an integer >= 1, got {top!r}")
    if int(top) < 1:
        raise ValueError(f"top (K, the number of cards) must be >= 1, got {int(top)}")
    return int(top)


def check_class_names(class_names: Optional[Sequence[str]], n_classes: int) -> list[str]:
    """The C display names: ``class_names`` checked against C, or ``'0'..'C-1'``."""
    if class_names is None:
        return [str(c) for c in range(n_classes)]
    if isinstance(class_names, (str, bytes)):
        raise ValueError("class_names must be a sequence of C names, not one string (read a names file with "
                         "Path(...).read_text().splitlines(), or use the command line's --class-names)")
    names = [str(name) for name in class_names]
    if len(names) != n_classes:
        raise ValueError(f"class_names has {len(names)} names but the recording has C={n_classes} classes")
    return names


def rank_of(scores: np.ndarray) -> np.ndarray:
    """Rank of each sample, 1 = highest score (ties: lower row first, as in ``ranked_table``)."""
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    ranks = np.empty(order.shape[0], dtype=np.int64)
    ranks[order] = np.arange(1, order.shape[0] + 1)
    return ranks


def _scores_from(recording: Recording, scores: Any, methods: Optional[Sequence[str]]):
    """(scores, not_run) from precomputed scores (mapping or ComparisonResult) or by running the detectors."""
    n = recording.n_samples
    if scores is None:
        from ..compare import compare_detectors

        result = compare_detectors(recording, methods=methods, plots=False, progress=False)
        given, status = result.scores, result.status
    elif hasattr(scores, "scores") and hasattr(scores, "status"):  # a ComparisonResult
        given, status = scores.scores, scores.status
    elif isinstance(scores, Mapping):
        given, status = scores, {}
    else:
        raise ValueError(f"scores must be a mapping of detector name -> (N,) array or a ComparisonResult, got "
                         f"{type(scores).__name__}")
    out: dict[str, np.ndarray] = {}
    for name, values in given.items():
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        if values.shape[0] != n:
            raise ValueError(f"scores[{name!r}] has {values.shape[0]} values but the recording has N={n} samples")
        if not np.all(np.isfinite(values)):
            raise ValueError(f"scores[{name!r}] contains NaN or inf")
        out[str(name)] = values
    not_run = {name: str(info.get("reason", info.get("status", ""))) for name, info in status.items()
               if info.get("status") != "ran"}
    return out, not_run


def _flip_metrics(scores: Mapping[str, np.ndarray], flips: np.ndarray) -> dict[str, dict[str, Any]]:
    from sklearn.metrics import precision_recall_curve, roc_curve

    from ..common.metrics import detection_metrics

    out = {}
    for name, s in scores.items():
        fpr, tpr, _ = roc_curve(flips, s)
        precision, recall, _ = precision_recall_curve(flips, s)
        summary = detection_metrics(s, flips)  # the AUROC / AP that compare and evaluate() report
        out[name] = {"auroc": summary["auroc"], "ap": summary["ap"], "roc": (fpr, tpr),
                     "pr": (recall[::-1], precision[::-1])}
    return out


def build_content(recording: Any, *, top: int = 100, method: str = "bhdf", class_names=None, scores=None,
                  methods: Optional[Sequence[str]] = None, cutoff: Any = "auto",
                  noise_method: str = "auto") -> ReportContent:
    """Compute everything the report shows (see :func:`interpretdl_noise.report`)."""
    rec = Recording.coerce(recording).require("labels", needed_by="the report")
    k = check_top(top)
    names = check_class_names(class_names, rec.n_classes)
    all_scores, not_run = _scores_from(rec, scores, methods)
    if method not in all_scores:
        why = f" ({not_run[method]})" if method in not_run else ""
        raise ValueError(f"the ranking method {method!r} has no scores{why}; detectors with scores: "
                         f"{sorted(all_scores)}")
    from ..decisions import estimate_noise, find_label_issues, suggest_labels

    estimate = estimate_noise(rec, method=noise_method)
    # the scores and the estimate are passed on so the detector does not run twice
    flagged = np.asarray(find_label_issues(rec, method=method, cutoff=cutoff, estimate=estimate,
                                           scores=all_scores[method]), dtype=bool).reshape(-1)
    suggestion = suggest_labels(rec, flagged=flagged)
    ranks = {name: rank_of(s) for name, s in all_scores.items()}
    rows = np.argsort(-all_scores[method], kind="stable")[: min(k, rec.n_samples)]
    p0 = np.asarray(rec.td[:, :, 0], dtype=np.float32)
    metrics = _flip_metrics(all_scores, rec.label_flip.astype(bool)) if rec.has_usable_flips else None
    notes = []
    if k > rec.n_samples:
        notes.append(f"top={k} is more than the N={rec.n_samples} samples: every sample is shown")
    return ReportContent(recording=rec, method=method, scores=all_scores, ranks=ranks, not_run=not_run, rows=rows,
                         given=rec.assigned_labels, suggested=np.asarray(suggestion.label, dtype=np.int64),
                         confidence=np.asarray(suggestion.confidence, dtype=np.float64), flagged=flagged,
                         estimate=estimate, class_names=names, median_curve=np.median(p0, axis=0),
                         metrics=metrics, cutoff=cutoff, notes=notes)
