"""Held-out evaluation of BHDF detectors against every hand-crafted baseline (issue 18's yardstick).

For each recording with known flips, every detector scores the same recording; the table holds AUROC and
AP per detector, the best baseline, the *gain share* of each BHDF variant over it,

    gain = (AUROC_bhdf - AUROC_best) / max(1 - AUROC_best, 0.01),

(the share of the best baseline's remaining AUROC error that BHDF removes; negative = BHDF is worse) and
the calibration of its probabilities: mean P(mislabeled) and the share with P >= 0.5 against the run's
true noise rate, raw and after the prior-shift correction of
:func:`interpretdl_noise.decisions.noise.adapt_prior` (Saerens EM from the detector's training prior).

Baselines (all on the same recording): ``small_loss`` (mean recorded loss), ``mean_prob`` (1 - mean
assigned probability), ``aum_logits`` / ``aum_prob`` (AUM on logits / on probabilities),
``forgetting`` (forgetting events) and ``ema`` (EMA of the loss, Datumaro's default alpha).
"""
from __future__ import annotations

import warnings
from typing import Any, Callable, Dict, Mapping, Optional, Sequence

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from ..recording.recording import Recording

__all__ = ["BASELINES", "baseline_detectors", "gain_share", "evaluate_heldout", "summarize_heldout",
           "calibration_summary", "markdown_table"]

BASELINES = ("small_loss", "mean_prob", "aum_logits", "aum_prob", "forgetting", "ema")


def baseline_detectors() -> Dict[str, Callable[[Recording], np.ndarray]]:
    """The six baselines as ``name -> f(recording) -> scores (N,)`` (higher = more likely mislabeled)."""
    from ..interpreter.aum import AUMInterpreter
    from ..interpreter.forgetting_events import ForgettingEventsInterpreter
    from ..interpreter.loss_dynamics import LossDynamicsInterpreter
    from ..interpreter.small_loss import SmallLossInterpreter

    def run(make):
        return lambda rec: np.asarray(make().interpret(training_dynamics=rec)[1], dtype=np.float64)

    return {"small_loss": run(lambda: SmallLossInterpreter(source="loss")),
            "mean_prob": run(lambda: SmallLossInterpreter(source="probability")),
            "aum_logits": run(lambda: AUMInterpreter(source="logits")),
            "aum_prob": run(lambda: AUMInterpreter(source="probability")),
            "forgetting": run(ForgettingEventsInterpreter),
            "ema": run(LossDynamicsInterpreter)}


def gain_share(auroc: float, best: float) -> float:
    """``(auroc - best) / max(1 - best, 0.01)``: share of the best baseline's remaining error removed."""
    return float((auroc - best) / max(1.0 - best, 0.01))


def _metrics(flips: np.ndarray, scores: np.ndarray) -> Dict[str, float]:
    if not 0 < flips.sum() < flips.size:
        return {"auroc": float("nan"), "ap": float("nan")}
    return {"auroc": float(roc_auc_score(flips, scores)), "ap": float(average_precision_score(flips, scores))}


def evaluate_heldout(records: Sequence[Any], detectors: Mapping[str, Callable[[Recording], np.ndarray]], *,
                     calibrated: Optional[Mapping[str, float]] = None, baselines: bool = True) -> "pandas.DataFrame":  # noqa: F821
    """One row per recording: settings, AUROC / AP per detector, best baseline, gains, calibration.

    Parameters
    ----------
    records : sequence
        Anything :meth:`Recording.coerce` takes (paths, mappings, recordings) with ``label_flip``; the
        baselines need ``logits`` and ``losses`` too (the realistic corpus records both).
    detectors : mapping of name -> callable
        The detectors under test (e.g. BHDF variants), each ``f(recording) -> scores (N,)``.
    calibrated : mapping of name -> float, optional
        For detectors whose scores are P(mislabeled): their training prior. Adds per run ``<name>_mean_p``,
        ``<name>_share05`` (share with P >= 0.5), ``<name>_prior`` and ``<name>_prior_share05`` (the
        Saerens-EM adapted prior and the share of adapted posteriors >= 0.5).
    baselines : bool, default=True
        Also run :data:`BASELINES` and add ``best_baseline``, ``best_auroc``, ``best_ap`` and
        ``<name>_gain`` per detector.

    Returns
    -------
    pandas.DataFrame
    """
    import pandas as pd

    from ..decisions.noise import adapt_prior

    methods = dict(detectors)
    base = baseline_detectors() if baselines else {}
    rows = []
    for item in records:
        rec = Recording.coerce(item)
        rec.require("label_flip", needed_by="evaluate_heldout")
        flips = np.asarray(rec.label_flip).astype(bool)
        meta = dict(rec.meta or {})
        row: Dict[str, Any] = {k: meta.get(k) for k in ("group", "source", "model", "noise", "rate", "epochs",
                                                        "record", "augment", "imbalance", "schedule")}
        if row["group"] is None and row["source"] is not None and row["model"] is not None:
            row["group"] = f"{row['source']}-{row['model']}"     # recordings from outside the realistic corpus
        row.update(n=int(flips.size), true_rate=float(flips.mean()), epochs=int(rec.n_epochs))
        for name, fn in {**methods, **base}.items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                scores = np.asarray(fn(rec), dtype=np.float64)
            for k, v in _metrics(flips, scores).items():
                row[f"{name}_{k}"] = v
            if calibrated and name in calibrated:
                row[f"{name}_mean_p"] = float(scores.mean())
                row[f"{name}_share05"] = float((scores >= 0.5).mean())
                post, prior = adapt_prior(scores, float(calibrated[name]))
                row[f"{name}_prior"] = float(prior)
                row[f"{name}_prior_share05"] = float((post >= 0.5).mean())
        if base:
            aurocs = {b: row[f"{b}_auroc"] for b in base}
            best = max(aurocs, key=lambda b: -np.inf if np.isnan(aurocs[b]) else aurocs[b])
            row.update(best_baseline=best, best_auroc=row[f"{best}_auroc"],
                       best_ap=max(row[f"{b}_ap"] for b in base))
            for name in methods:
                row[f"{name}_gain"] = gain_share(row[f"{name}_auroc"], row["best_auroc"])
        rows.append(row)
    return pd.DataFrame(rows)


def summarize_heldout(table: "pandas.DataFrame", detectors: Sequence[str], by: Sequence[str] = ("group",)  # noqa: F821
                      ) -> "pandas.DataFrame":  # noqa: F821
    """Means per ``by`` group of every AUROC / AP column, with the source-level gain share.

    Per group the best baseline is the one with the highest *mean* AUROC over the group's runs (and the
    best AP the highest mean AP); ``<det>_gain`` is :func:`gain_share` of the means, ``<det>_ap_gain`` the
    AP difference. An ``all`` row holds the means over groups of those figures (``runs`` = total).
    """
    import pandas as pd

    base = [b for b in BASELINES if f"{b}_auroc" in table.columns]
    cols = [f"{m}_{k}" for m in list(detectors) + base for k in ("auroc", "ap")]
    rows = []
    for key, grp in table.groupby(list(by), dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        means = grp[cols].mean()
        row = dict(zip(by, key))
        row["runs"] = len(grp)
        row.update(means.to_dict())
        best = max(base, key=lambda b: means[f"{b}_auroc"])
        row["best_baseline"] = best
        row["best_auroc"] = means[f"{best}_auroc"]
        row["best_ap"] = max(means[f"{b}_ap"] for b in base)
        for d in detectors:
            row[f"{d}_gain"] = gain_share(means[f"{d}_auroc"], row["best_auroc"])
            row[f"{d}_ap_gain"] = float(means[f"{d}_ap"] - row["best_ap"])
        rows.append(row)
    out = pd.DataFrame(rows)
    total = {k: "all" if i == 0 else "" for i, k in enumerate(by)}
    total["runs"] = int(out["runs"].sum())
    for c in cols + ["best_auroc", "best_ap"] + [f"{d}_{g}" for d in detectors for g in ("gain", "ap_gain")]:
        total[c] = float(out[c].mean())
    total["best_baseline"] = ""
    return pd.concat([out, pd.DataFrame([total])], ignore_index=True)


def calibration_summary(table: "pandas.DataFrame", detector: str) -> Dict[str, float]:  # noqa: F821
    """Mean absolute gap (percentage points) between the true rate and each calibration estimate."""
    gap = {}
    for col in ("mean_p", "share05", "prior", "prior_share05"):
        name = f"{detector}_{col}"
        if name in table.columns:
            gap[col] = float(100 * np.mean(np.abs(table[name] - table["true_rate"])))
            gap[col + "_bias"] = float(100 * np.mean(table[name] - table["true_rate"]))
    return gap


def markdown_table(frame: "pandas.DataFrame", columns: Sequence[str], digits: int = 3) -> str:  # noqa: F821
    """A plain markdown table of ``columns`` (floats rounded to ``digits``)."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for _, row in frame.iterrows():
        cells = []
        for c in columns:
            v = row[c]
            cells.append(f"{v:.{digits}f}" if isinstance(v, (float, np.floating)) else str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
