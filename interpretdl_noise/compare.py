"""Run every applicable detector on one recording and compare them side by side.

:func:`compare_detectors` is the Python API behind ``interpretdl-noise compare``. With the recording's
``label_flip`` it measures each detector (AUROC, AP, precision / recall / F1 at the true noise count and
at the top ``k``); without it, it reports how much the detectors agree on their top ``k``. Detectors
that cannot run (a missing recording key such as ``labels``, a missing optional dependency or Paddle,
or ``confident_learning`` without raw data) are listed with the reason instead of failing the comparison.
A recording without ``losses`` (e.g. InterpretDL's) still runs the loss-based detectors on the
cross-entropy derived from ``td``; their status carries a note saying so.

``confident_learning`` is the only detector that needs the raw training data: pass ``x`` (and
optionally ``y``) from Python; the command line compares recording-only detectors.
"""
from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .common.atomic import PathLike, atomic_path, check_output_path
from .common.metrics import detection_metrics, top_k_mask
from .interpreter.registry import (
    DetectorNotApplicable,
    applicability,
    detector_class,
    detector_names,
    detector_note,
    run_detector,
)
from .recording.recording import Recording, as_path_or_none

__all__ = [
    "ComparisonResult",
    "compare_detectors",
    "default_k",
    "ranked_table",
    "topk_agreement",
    "write_ranked_csv",
]

RANKED_COLUMNS = ["sample_id", "given_label", "score", "rank"]
METRIC_COLUMNS = ["auroc", "ap", "n", "n_noisy", "precision_at_noise", "recall_at_noise", "f1_at_noise", "k",
                  "precision_at_k", "recall_at_k", "f1_at_k", "seconds"]


@dataclass
class ComparisonResult:
    """Outcome of :func:`compare_detectors`.

    Attributes
    ----------
    scores : dict of name -> ndarray of shape (N,)
        Scores of the detectors that ran (higher = more likely mislabeled).
    status : dict of name -> dict
        For every requested detector: ``status`` (``'ran'``, ``'not applicable'`` or ``'failed'``),
        ``reason`` / ``note`` when there is one, and ``seconds`` for those that ran.
    metrics : pandas.DataFrame or None
        One row per detector that ran (index = name), columns :data:`METRIC_COLUMNS`; None when the
        recording has no usable ``label_flip``.
    agreement : pandas.DataFrame
        Jaccard index of the top-``k`` sets between every pair of detectors that ran.
    rank_correlation : pandas.DataFrame
        Spearman correlation of the scores between detectors.
    k : int
        The top-k size used.
    files : dict of str -> pathlib.Path
        Files written (empty without ``out_dir``).
    """

    scores: dict[str, np.ndarray]
    status: dict[str, dict[str, Any]]
    metrics: pd.DataFrame | None
    agreement: pd.DataFrame
    rank_correlation: pd.DataFrame
    k: int
    record: Recording | None = field(repr=False, default=None)
    files: dict[str, Path] = field(default_factory=dict)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """``{name: {"auroc": ..., "ap": ..., ...}}`` (the content of ``metrics.json``).

        Without ``label_flip``: ``{name: {"k": ..., "mean_topk_jaccard": ..., "seconds": ...}}``.
        """
        if self.metrics is not None:
            return {name: {c: _json_value(v) for c, v in row.items()}
                    for name, row in self.metrics.to_dict(orient="index").items()}
        out = {}
        for name in self.scores:
            others = [self.agreement.loc[name, o] for o in self.scores if o != name]
            out[name] = {"k": self.k, "mean_topk_jaccard": _json_value(float(np.mean(others)) if others else None),
                         "seconds": _json_value(self.status[name].get("seconds"))}
        return out

    def ranked(self, name: str) -> pd.DataFrame:
        """Ranked table of detector ``name``: ``sample_id, given_label, score, rank`` (rank 1 = most suspicious)."""
        if name not in self.scores:
            raise ValueError(f"{name!r} did not run; detectors that ran: {list(self.scores)}")
        return ranked_table(self.scores[name], self.record)

    def summary(self) -> str:
        """A printable table (metrics or agreement) plus the detectors that did not run."""
        lines: list[str] = []
        if self.metrics is not None:
            shown = self.metrics.sort_values("auroc", ascending=False)
            cols = ["auroc", "ap", "precision_at_noise", "recall_at_noise", "f1_at_noise", "precision_at_k",
                    "recall_at_k", "f1_at_k", "seconds"]
            lines.append(f"detection against label_flip ({int(shown['n_noisy'].iloc[0])} of {int(shown['n'].iloc[0])} "
                         f"mislabeled; *_at_noise = top {int(shown['n_noisy'].iloc[0])}, *_at_k = top {self.k}):")
            lines.append(shown[cols].to_string(float_format=lambda v: f"{v:.3f}"))
        elif self.scores:
            lines.append(f"no label_flip in the recording: top-{self.k} agreement (Jaccard) between detectors:")
            lines.append(self.agreement.to_string(float_format=lambda v: f"{v:.2f}"))
        for name, info in self.status.items():
            if info["status"] != "ran":
                lines.append(f"{name}: {info['status']}: {info.get('reason', '')}")
            elif info.get("note"):
                lines.append(f"{name}: note: {info['note']}")
        return "\n".join(lines)


def _json_value(v):
    if v is None:
        return None
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return None if not math.isfinite(float(v)) else float(v)
    return v


def default_k(n: int) -> int:
    """Default top-k size: 10 % of the samples (at least 1)."""
    return max(1, round(0.1 * n))


def ranked_table(scores, record: Any) -> pd.DataFrame:
    """Samples sorted from most to least suspicious.

    Parameters
    ----------
    scores : array-like of shape (N,)
        Higher = more likely mislabeled.
    record : Recording or any form :meth:`Recording.coerce` accepts
        Gives ``sample_ids`` (default ``0..N-1``) and the assigned labels (-1 when the recording has no
        ``labels``).

    Returns
    -------
    pandas.DataFrame
        Columns ``sample_id, given_label, score, rank``; ``rank`` 1 = most suspicious (ties keep the lower
        row first).
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    rec = Recording.coerce(record)
    n = scores.shape[0]
    if n != rec.n_samples:
        raise ValueError(f"{n} scores for a recording of {rec.n_samples} samples")
    ids = rec.sample_ids
    given = rec.assigned_labels if rec.assigned_labels is not None else np.full(n, -1, dtype=np.int64)
    order = np.argsort(-scores, kind="stable")
    return pd.DataFrame({"sample_id": ids[order], "given_label": given[order], "score": scores[order],
                         "rank": np.arange(1, n + 1)})


def write_ranked_csv(scores, record: Any, path: PathLike) -> Path:
    """Write :func:`ranked_table` to ``path`` atomically; return the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        ranked_table(scores, record).to_csv(tmp, index=False, float_format="%.6g")
    return path


def topk_agreement(scores: Mapping[str, np.ndarray], k: int) -> pd.DataFrame:
    """Jaccard index ``|A ∩ B| / |A ∪ B|`` of the top-``k`` sets of every pair of detectors.

    Parameters
    ----------
    scores : mapping of name -> ndarray of shape (N,)
    k : int

    Returns
    -------
    pandas.DataFrame, square, indexed by name on both axes (diagonal 1).
    """
    names = list(scores)
    masks = {name: top_k_mask(np.asarray(scores[name]), k) for name in names}
    table = pd.DataFrame(np.eye(len(names)), index=names, columns=names)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            union = (masks[a] | masks[b]).sum()
            value = (masks[a] & masks[b]).sum() / union if union else 1.0
            table.loc[a, b] = table.loc[b, a] = value
    return table


def _metrics_row(scores: np.ndarray, flips: np.ndarray, k: int) -> dict[str, float]:
    at_noise = detection_metrics(scores, flips)
    at_k = detection_metrics(scores, flips, k=k)
    row = {"auroc": at_noise["auroc"], "ap": at_noise["ap"], "n": at_noise["n"], "n_noisy": at_noise["n_noisy"]}
    for m in ("precision", "recall", "f1"):
        row[f"{m}_at_noise"] = at_noise[f"{m}_at_k"]
    row["k"] = k
    for m in ("precision", "recall", "f1"):
        row[f"{m}_at_k"] = at_k[f"{m}_at_k"]
    return row


def compare_detectors(recording: Any, methods: Sequence[str] | None = None,
                      out_dir: PathLike | None = None, *, k: int | None = None, x=None, y=None,
                      detector_kwargs: Mapping[str, Mapping[str, Any]] | None = None, plots: bool = True,
                      progress: bool = True) -> ComparisonResult:
    """Run detectors on one recording, measure them against ``label_flip`` and write a report.

    Parameters
    ----------
    recording : Recording, path, mapping or DynamicsRecorder
        Any form :meth:`Recording.coerce` accepts (``td`` of shape (N, E, C), ...); validated once.
    methods : sequence of str, optional
        Registry names (see :func:`~interpretdl_noise.interpreter.registry.detector_names`); default all.
        Requested detectors that cannot run are reported in ``status`` with the reason.
    out_dir : path, optional
        Folder for the report. Nothing is written when None. Files: ``metrics.json``
        (``{name: {"auroc", "ap", ...}}``), ``metrics.csv`` (with ``label_flip``), ``detectors.json``
        (status of every requested detector), ``ranked_<name>.csv`` (``sample_id, given_label, score,
        rank``), ``agreement_topk.csv``, ``rank_correlation.csv``, and with ``plots``: ``roc_pr.png``,
        ``score_histograms.png`` (with ``label_flip``) and ``data_map.png``.
    k : int, optional
        Top-k size for precision / recall / F1 at k and the agreement; default 10 % of N.
    x : array-like of shape (M, ...), optional
        Raw training inputs, needed only by ``confident_learning``. Row ``i`` of the recording is
        ``x[sample_ids[i]]`` (or ``x[i]`` without ``sample_ids``).
    y : array-like, optional
        Given labels for ``confident_learning``; default the recording's assigned labels.
    detector_kwargs : mapping of name -> dict, optional
        Constructor arguments per detector, e.g. ``{"confident_learning": {"epochs": 20}}``.
    plots : bool, default=True
        Write the PNGs (only with ``out_dir``).
    progress : bool, default=True
        tqdm bar over detectors.

    Returns
    -------
    ComparisonResult
        ``.metrics`` (DataFrame), ``.to_dict()`` (the metrics.json content), ``.scores``, ``.status``,
        ``.agreement``; ``.summary()`` is the printed table.
    """
    if out_dir is not None:  # before any work: the report folder must not be the recording (or another file)
        check_output_path(out_dir, inputs=[as_path_or_none(recording)], directory=True)
    record = Recording.coerce(recording)
    n = record.n_samples
    names = detector_names() if methods is None else list(methods)
    for name in names:
        detector_class(name)  # ValueError listing the valid names
    if len(set(names)) != len(names):
        raise ValueError(f"methods lists a detector twice: {names}")
    unknown = set(detector_kwargs or {}) - set(detector_names())
    if unknown:
        raise ValueError(f"detector_kwargs has unknown detector names {sorted(unknown)}; "
                         f"choose from {detector_names()}")
    k = default_k(n) if k is None else int(k)
    if not 1 <= k <= n:
        raise ValueError(f"k must be between 1 and N={n}, got {k}")

    scores: dict[str, np.ndarray] = {}
    status: dict[str, dict[str, Any]] = {}
    for name in tqdm(names, desc="detectors", disable=not progress):
        reason = applicability(name, record, has_data=x is not None)
        if reason is not None:
            status[name] = {"status": "not applicable", "reason": reason}
            continue
        start = time.perf_counter()
        params = dict((detector_kwargs or {}).get(name, {}))
        try:
            s = run_detector(name, record, x=x, y=y, **params)
        except DetectorNotApplicable as exc:
            status[name] = {"status": "not applicable", "reason": exc.reason}
            continue
        except Exception as exc:  # noqa: BLE001  (one broken detector must not sink the comparison; reported)
            warnings.warn(f"detector {name!r} failed: {type(exc).__name__}: {exc}", RuntimeWarning, stacklevel=2)
            status[name] = {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"}
            continue
        if not np.all(np.isfinite(s)):
            status[name] = {"status": "failed", "reason": "returned NaN or inf scores"}
            continue
        scores[name] = s
        status[name] = {"status": "ran", "seconds": time.perf_counter() - start}
        note = detector_note(name, record, **params)
        if note:
            status[name]["note"] = note

    flips = record.label_flip
    metrics = None
    if record.has_usable_flips and scores:
        rows = {name: {**_metrics_row(s, flips, k), "seconds": status[name]["seconds"]} for name, s in scores.items()}
        metrics = pd.DataFrame.from_dict(rows, orient="index")[METRIC_COLUMNS]
        metrics.index.name = "detector"
    agreement = topk_agreement(scores, k)
    correlation = pd.DataFrame(scores).corr(method="spearman") if scores else pd.DataFrame()

    result = ComparisonResult(scores=scores, status=status, metrics=metrics, agreement=agreement,
                              rank_correlation=correlation, k=k, record=record)
    if out_dir is not None:
        result.files = _write_report(result, Path(out_dir), plots=plots)
    return result


def _write_json(path: Path, payload) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, allow_nan=False))
    return path


def _write_csv(path: Path, frame: pd.DataFrame, **kwargs) -> Path:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, **kwargs)
    return path


def _write_report(result: ComparisonResult, out: Path, *, plots: bool) -> dict[str, Path]:
    from .common.plotting import plot_data_map, plot_roc_pr, plot_score_histograms
    from .interpreter.data_maps import data_map_statistics

    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    record = result.record
    status = {name: {k: _json_value(v) for k, v in info.items()} for name, info in result.status.items()}
    files["detectors.json"] = _write_json(out / "detectors.json", status)
    files["metrics.json"] = _write_json(out / "metrics.json", result.to_dict())
    if result.metrics is not None:
        files["metrics.csv"] = _write_csv(out / "metrics.csv", result.metrics, float_format="%.6g")
    for name, s in result.scores.items():
        files[f"ranked_{name}.csv"] = write_ranked_csv(s, record, out / f"ranked_{name}.csv")
    if result.scores:
        files["agreement_topk.csv"] = _write_csv(out / "agreement_topk.csv", result.agreement, float_format="%.6g")
        files["rank_correlation.csv"] = _write_csv(out / "rank_correlation.csv", result.rank_correlation,
                                                   float_format="%.6g")
    if not plots:
        return files
    flips = record.label_flip
    if result.metrics is not None:
        files["roc_pr.png"] = out / "roc_pr.png"
        plot_roc_pr(result.scores, flips, save_path=files["roc_pr.png"])
        files["score_histograms.png"] = out / "score_histograms.png"
        plot_score_histograms(result.scores, flips, save_path=files["score_histograms.png"])
    stats = data_map_statistics(record.td, record.labels)
    if result.metrics is not None:
        flagged, label = np.asarray(flips, dtype=bool), "known mislabeled"
    elif result.scores:
        first = next(iter(result.scores))
        flagged, label = top_k_mask(result.scores[first], result.k), f"top-{result.k} by {first}"
    else:
        flagged, label = None, "flagged"
    files["data_map.png"] = out / "data_map.png"
    plot_data_map(stats["confidence"], stats["variability"], stats["correctness"], flagged=flagged,
                  flagged_label=label, save_path=files["data_map.png"])
    return files
