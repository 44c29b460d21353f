"""A cleaned data set: flag, suggest, decide keep / drop / relabel, apply a reviewer's decisions, write it out.

:func:`clean` returns a :class:`CleanResult` ready for ``paddle.io.Subset(dataset, result.keep_indices)`` and
relabelled targets ``result.labels``; :func:`write_clean` writes ``issues.csv``, ``summary.json`` and
``keep_indices.csv`` atomically (it is what ``interpretdl-noise clean`` runs).

A decisions CSV (for example exported from the HTML report) has columns ``sample_id, action, new_label``;
``action`` is ``keep``, ``drop`` or ``relabel`` and ``new_label`` is empty unless the action is ``relabel``.
Its rows override the automatic actions of the samples they name; other samples keep theirs.

Shapes: ``N`` samples, ``C`` classes. Rows are in dataset order (ascending ``sample_id``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Union

import numpy as np
import pandas as pd

from ..common.atomic import PathLike, atomic_path, check_output_path
from ..recording import Recording
from .issues import detector_scores, find_label_issues, parse_cutoff
from .noise import estimate_noise
from .suggest import DEFAULT_EPOCHS, DEFAULT_MIN_CONFIDENCE, relabel_policy, suggest_labels

__all__ = ["ACTIONS", "CleanResult", "clean", "read_decisions", "write_clean", "check_clean_outputs", "OUTPUT_FILES"]

ACTIONS = ("keep", "drop", "relabel")
OUTPUT_FILES = ("issues.csv", "summary.json", "keep_indices.csv")
ISSUE_COLUMNS = ["sample_id", "given_label", "suggested_label", "score", "action", "new_label", "confidence"]


@dataclass
class CleanResult:
    """What :func:`clean` decided.

    Attributes
    ----------
    issues : pandas.DataFrame
        One row per sample in dataset order: ``sample_id, given_label, suggested_label, score, action``
        (``keep`` / ``drop`` / ``relabel``), ``new_label`` (the label after this decision: the given label
        unless relabelled, where it is the suggested label or the reviewer's ``new_label`` from a decisions
        CSV) and ``confidence`` (of the suggestion).
    keep_indices : ndarray of int64
        Sample ids to keep (kept as is or relabelled), ascending; for ``paddle.io.Subset``.
    labels : ndarray of shape (N,), int64
        Labels after relabelling, row ``k`` = ``issues`` row ``k`` (the given label unless relabelled).
    summary : dict
        Estimated noise rate and interval, per-class rates, counts per action, method, cut-off, policy.
    """

    issues: pd.DataFrame
    keep_indices: np.ndarray
    labels: np.ndarray
    summary: Dict[str, Any]


def read_decisions(decisions: Union[PathLike, pd.DataFrame], sample_ids: np.ndarray, n_classes: int) -> pd.DataFrame:
    """Read and validate a decisions table.

    Parameters
    ----------
    decisions : path or DataFrame
        Columns ``sample_id, action, new_label``.
    sample_ids : ndarray of shape (N,)
        The recording's sample ids.
    n_classes : int
        ``C``; ``new_label`` must lie in ``[0, C)``.

    Returns
    -------
    DataFrame
        Columns ``sample_id`` (int64), ``action`` (str), ``new_label`` (Int64, missing unless relabel).

    Raises
    ------
    ValueError
        Missing columns, unknown or repeated sample ids, unknown actions, a relabel without a valid
        ``new_label``, a label out of range, or a ``new_label`` given for keep / drop.
    """
    where = "decisions"
    if isinstance(decisions, pd.DataFrame):
        table = decisions.copy()
    else:
        where = f"decisions file {decisions}"
        path = Path(decisions)
        if not path.is_file():
            raise FileNotFoundError(f"{where} does not exist")
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in ("sample_id", "action", "new_label") if c not in table.columns]
    if missing:
        raise ValueError(f"{where} lacks column(s) {missing}; expected sample_id, action, new_label")
    raw_ids = table["sample_id"].astype(str).str.strip()
    bad = raw_ids[~raw_ids.str.fullmatch(r"[+-]?\d+")]
    if len(bad):
        raise ValueError(f"{where}: sample_id must be an integer; got {bad.iloc[0]!r} (row {bad.index[0] + 1})")
    ids = raw_ids.astype(np.int64).to_numpy()
    unknown = np.setdiff1d(ids, np.asarray(sample_ids))
    if unknown.size:
        raise ValueError(f"{where} names {unknown.size} sample id(s) not in the recording, e.g. "
                         f"{unknown[:5].tolist()}")
    values, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        raise ValueError(f"{where} repeats sample id(s) {values[counts > 1][:5].tolist()}")
    actions = table["action"].astype(str).str.strip().str.lower()
    wrong = actions[~actions.isin(ACTIONS)]
    if len(wrong):
        raise ValueError(f"{where}: unknown action {wrong.iloc[0]!r} for sample {ids[wrong.index[0]]}; use one "
                         f"of {list(ACTIONS)}")
    text = table["new_label"].astype(str).str.strip().replace({"nan": "", "None": "", "<NA>": ""})
    new_label = pd.array([pd.NA] * len(table), dtype="Int64")
    for row, (act, value) in enumerate(zip(actions, text)):
        if act != "relabel":
            if value:
                raise ValueError(f"{where}: sample {ids[row]} has action {act!r} but new_label {value!r}; "
                                 "new_label must be empty unless the action is relabel")
            continue
        try:
            number = float(value)
        except ValueError:
            number = float("nan")
        if not value or not np.isfinite(number) or number != int(number):
            raise ValueError(f"{where}: sample {ids[row]} is relabelled but new_label {value!r} is not an integer "
                             "class id")
        if not 0 <= int(number) < n_classes:
            raise ValueError(f"{where}: sample {ids[row]} new_label {int(number)} is out of range [0, {n_classes})")
        new_label[row] = int(number)
    return pd.DataFrame({"sample_id": ids, "action": actions.to_numpy(dtype=object), "new_label": new_label})


def clean(recording: Any, method: str = "bhdf", cutoff: Any = "auto", decisions=None, *, estimator: str = "auto",
          min_confidence: float = DEFAULT_MIN_CONFIDENCE, relabel: bool = True, per_class: bool = False,
          epochs: Any = DEFAULT_EPOCHS, scores: Optional[np.ndarray] = None, n_bootstrap: int = 100,
          **detector_kw: Any) -> CleanResult:
    """Flag label issues with ``method``, suggest labels, and decide keep / drop / relabel per sample.

    Parameters
    ----------
    recording : path, mapping, DynamicsRecorder or Recording
        Needs ``td`` and ``labels``.
    method : str, default='bhdf'
        Registered detector that ranks the samples.
    cutoff : 'auto', int, float or 'P%', default='auto'
        See :func:`~interpretdl_noise.find_label_issues`.
    decisions : path or DataFrame, optional
        ``sample_id, action, new_label`` rows that override the automatic actions.
    estimator : str, default='auto'
        Noise estimator (:func:`~interpretdl_noise.estimate_noise`) for the summary and ``'auto'``.
    min_confidence : float, default=DEFAULT_MIN_CONFIDENCE
        Relabel policy: a flagged sample is relabelled when its suggestion is at least this probable,
        dropped otherwise.
    relabel : bool, default=True
        False: drop every flagged sample.
    per_class : bool, default=False
        See :func:`~interpretdl_noise.find_label_issues`.
    epochs : optional
        Epochs whose probabilities the suggestions average.
    scores : ndarray of shape (N,), optional
        Precomputed scores of ``method``.
    n_bootstrap : int, default=100
        Resamples for the noise-rate interval.
    **detector_kw
        Constructor arguments for the detector.

    Returns
    -------
    CleanResult
    """
    rec = Recording.coerce(recording).require("labels", needed_by="clean")
    kind, _ = parse_cutoff(cutoff, rec.n_samples, method)
    if not 0.0 <= float(min_confidence) <= 1.0:
        raise ValueError(f"min_confidence must lie in [0, 1], got {min_confidence}")
    ids = rec.sample_ids
    given = rec.assigned_labels
    table = read_decisions(decisions, ids, rec.n_classes) if decisions is not None else None
    s = detector_scores(rec, method, scores, **detector_kw)
    extra = {"scores": s} if estimator == "bhdf_prior" and method == "bhdf" else {}
    estimate = estimate_noise(rec, estimator, n_bootstrap=n_bootstrap, **extra)
    flagged = find_label_issues(rec, method, cutoff, estimate=estimate, per_class=per_class, scores=s)
    suggested = suggest_labels(rec, flagged, epochs=epochs)
    actions = relabel_policy(flagged, suggested, min_confidence=min_confidence, relabel=relabel)
    new_labels = np.where(actions == "relabel", suggested.label, given)
    n_overridden = 0
    if table is not None and len(table):
        row_of = {int(v): k for k, v in enumerate(ids)}
        rows = np.array([row_of[int(v)] for v in table["sample_id"]], dtype=np.int64)
        actions[rows] = table["action"].to_numpy(dtype=object)
        relabelled = table["action"].to_numpy() == "relabel"
        new_labels[rows] = given[rows]
        new_labels[rows[relabelled]] = table["new_label"].to_numpy()[relabelled].astype(np.int64)
        n_overridden = int(len(table))
    order = np.argsort(ids, kind="stable")
    issues = pd.DataFrame({"sample_id": ids[order], "given_label": given[order],
                           "suggested_label": suggested.label[order], "score": s[order],
                           "action": pd.Series(actions[order], dtype=object),
                           "new_label": new_labels[order].astype(np.int64),
                           "confidence": suggested.confidence[order]})
    keep = np.sort(ids[actions != "drop"]).astype(np.int64)
    counts = {a: int((actions == a).sum()) for a in ACTIONS}
    summary = {
        "n_samples": rec.n_samples,
        "n_classes": rec.n_classes,
        "method": method,
        "cutoff": cutoff if isinstance(cutoff, str) else (int(cutoff) if kind == "count" else float(cutoff)),
        "cutoff_kind": kind,
        "n_flagged": int(flagged.sum()),
        "estimated_noise_rate": estimate.rate,
        "noise_rate_interval": [float(v) for v in estimate.interval],
        "per_class_noise_rate": [float(v) for v in estimate.per_class],
        "estimated_issues": estimate.n_issues,
        "estimator": estimate.method,
        "counts": counts,
        "policy": {"relabel": bool(relabel), "min_confidence": float(min_confidence), "per_class": bool(per_class)},
        "decisions_overridden": n_overridden,
        "estimate": estimate.to_dict(),
        "in_sample_probabilities": True,
    }
    if rec.has_usable_flips:
        flips = np.asarray(rec.label_flip, dtype=bool)
        summary["true_noise_rate"] = float(flips.mean())
    return CleanResult(issues=issues, keep_indices=keep, labels=new_labels[order].astype(np.int64), summary=summary)


def check_clean_outputs(out_dir: PathLike, *, protect: tuple = ()) -> Dict[str, Path]:
    """The output paths of :func:`write_clean` in ``out_dir``, refused when one would replace an input.

    Call it before the (slow) detectors run. ``protect`` lists the inputs (the recording, the decisions
    file); ``None`` entries are skipped. Raises ``ValueError`` naming the path.
    """
    inputs = [p for p in protect if p is not None]
    out = check_output_path(out_dir, inputs=inputs, directory=True)
    return {name: check_output_path(out / name, inputs=inputs, allowed_suffixes=(Path(name).suffix,))
            for name in OUTPUT_FILES}


def write_clean(result: CleanResult, out_dir: PathLike, *, protect: tuple = ()) -> Dict[str, Path]:
    """Write ``issues.csv``, ``summary.json`` and ``keep_indices.csv`` into ``out_dir``, each atomically.

    Parameters
    ----------
    result : CleanResult
    out_dir : path
        Created when missing.
    protect : tuple of paths
        Files that must not be overwritten (the input recording, the decisions file).

    Returns
    -------
    dict
        ``{file name: path}``.

    Raises
    ------
    ValueError
        When ``out_dir`` is a file, or an output would replace one of ``protect``.
    """
    targets = check_clean_outputs(out_dir, protect=protect)
    with atomic_path(targets["issues.csv"]) as tmp:
        result.issues.to_csv(tmp, index=False, float_format="%.6g")
    with atomic_path(targets["keep_indices.csv"]) as tmp:
        pd.DataFrame({"sample_id": result.keep_indices}).to_csv(tmp, index=False)
    with atomic_path(targets["summary.json"]) as tmp:
        tmp.write_text(json.dumps(result.summary, indent=2, sort_keys=False) + "\n")
    return targets
