"""Shared matplotlib plots: ROC / PR curves, clean-vs-noisy score histograms, the data map, grouped curves.

Every function builds a standalone :class:`matplotlib.figure.Figure` (not through ``pyplot``), so no
global figure state is touched and nothing accumulates in long sessions; Jupyter still displays the
returned figure. ``save_path`` writes a PNG atomically. Scores follow the library convention: higher =
more likely mislabeled.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import precision_recall_curve, roc_curve

from .atomic import PathLike, atomic_path

__all__ = ["plot_data_map", "plot_grouped_curves", "plot_roc_pr", "plot_score_histograms", "save_figure"]

_LINESTYLES = {"train": "-", "eval": "--", "test": ":"}
_BOUND_LABEL = {None: "mean", "std": "mean \u00b1 std", "range": "mean, [min, max]"}


def save_figure(fig: Figure, path: PathLike, *, dpi: int = 110) -> None:
    """Write ``fig`` as a PNG to ``path`` atomically (temporary file, then rename)."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")


def _check_scores_and_flips(scores: Mapping[str, np.ndarray], label_flip) -> np.ndarray:
    """Validate a non-empty ``{name: scores}`` mapping against ``label_flip``; return the flips as bool."""
    if not scores:
        raise ValueError("scores is empty: give at least one detector's scores")
    n = len(next(iter(scores.values())))
    flips = np.asarray(label_flip).reshape(-1)
    if flips.shape[0] != n or not np.isin(flips, (0, 1)).all():
        raise ValueError(f"label_flip must be 0/1 or bool of shape ({n},), got {flips.dtype} {flips.shape}")
    flips = flips.astype(bool)
    if flips.all() or not flips.any():
        raise ValueError("label_flip must contain both clean and mislabeled samples to draw ROC/PR curves")
    return flips


def plot_roc_pr(scores: Mapping[str, np.ndarray], label_flip, *, title: str | None = None,
                save_path: PathLike | None = None) -> Figure:
    """ROC (left) and precision-recall (right) curves of several detectors on one figure.

    Parameters
    ----------
    scores : mapping of name -> ndarray of shape (N,)
        Suspicion scores, higher = more likely mislabeled.
    label_flip : array-like of shape (N,)
        1/True for known mislabeled samples; both classes must occur.
    title : str, optional
    save_path : path, optional
        Also write the figure as PNG.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    flips = _check_scores_and_flips(scores, label_flip)
    fig = Figure(figsize=(11, 4.5))
    ax_roc, ax_pr = fig.subplots(1, 2)
    for name, s in scores.items():
        s = np.asarray(s, dtype=np.float64)
        fpr, tpr, _ = roc_curve(flips, s)
        ax_roc.plot(fpr, tpr, label=f"{name} ({roc_auc_score(flips, s):.3f})")
        precision, recall, _ = precision_recall_curve(flips, s)
        ax_pr.plot(recall, precision, label=f"{name} ({average_precision_score(flips, s):.3f})")
    ax_roc.plot([0, 1], [0, 1], ls=":", c="grey", lw=1)
    ax_roc.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (AUROC)",
               xlim=(0, 1), ylim=(0, 1.01))
    base = flips.mean()
    ax_pr.axhline(base, ls=":", c="grey", lw=1, label=f"chance ({base:.3f})")
    ax_pr.set(xlabel="recall", ylabel="precision", title="precision-recall (AP)", xlim=(0, 1), ylim=(0, 1.01))
    ax_roc.legend(fontsize=8, loc="lower right")
    ax_pr.legend(fontsize=8, loc="lower left")
    if title:
        fig.suptitle(title)
    if save_path is not None:
        save_figure(fig, save_path)
    return fig


def plot_score_histograms(scores: Mapping[str, np.ndarray], label_flip, *, bins: int = 30,
                          title: str | None = None, save_path: PathLike | None = None) -> Figure:
    """One panel per detector: histograms of the scores of clean vs mislabeled samples.

    Parameters
    ----------
    scores : mapping of name -> ndarray of shape (N,)
        Higher = more likely mislabeled.
    label_flip : array-like of shape (N,)
        1/True for known mislabeled samples.
    bins : int, default=30
    title : str, optional
    save_path : path, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    flips = _check_scores_and_flips(scores, label_flip)
    cols = min(3, len(scores))
    rows = math.ceil(len(scores) / cols)
    fig = Figure(figsize=(4.2 * cols, 3.2 * rows))
    axes = np.atleast_1d(fig.subplots(rows, cols)).reshape(-1)
    for ax, (name, s) in zip(axes, scores.items()):
        s = np.asarray(s, dtype=np.float64)
        values = np.unique(s)
        if values.size <= 25:
            # few distinct values (e.g. forgetting counts with a 1000 stand-in): one bar pair per value,
            # on evenly spaced positions so that an outlying value does not squash the others
            pos = np.arange(values.size)
            share = [np.array([(s[m] == v).mean() if m.any() else 0.0 for v in values]) for m in (~flips, flips)]
            ax.bar(pos - 0.2, share[0], width=0.4, alpha=0.8, label=f"clean ({(~flips).sum()})")
            ax.bar(pos + 0.2, share[1], width=0.4, alpha=0.8, label=f"mislabeled ({flips.sum()})")
            step = max(1, values.size // 10)
            ax.set_xticks(pos[::step], [f"{v:g}" for v in values[::step]])
            ax.set(title=name, xlabel="score (higher = more suspicious)", ylabel="fraction")
            ax.legend(fontsize=8)
            continue
        lo, hi = float(s.min()), float(s.max())
        edges = np.linspace(lo, hi if hi > lo else lo + 1.0, bins + 1)
        ax.hist(s[~flips], bins=edges, alpha=0.6, density=True, label=f"clean ({(~flips).sum()})")
        ax.hist(s[flips], bins=edges, alpha=0.6, density=True, label=f"mislabeled ({flips.sum()})")
        ax.set(title=name, xlabel="score (higher = more suspicious)", ylabel="density")
        ax.legend(fontsize=8)
    for ax in axes[len(scores):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if save_path is not None:
        save_figure(fig, save_path)
    return fig


def plot_data_map(confidence, variability, correctness, *, flagged=None, flagged_label: str = "flagged",
                  title: str | None = None, ax=None, save_path: PathLike | None = None) -> Figure:
    """Dataset-cartography data map: variability (x) vs confidence (y), coloured by correctness.

    Parameters
    ----------
    confidence, variability, correctness : array-like of shape (N,)
        Mean and std of the assigned label's probability, and the fraction of epochs classified
        correctly (see :func:`interpretdl_noise.interpreter.data_maps.data_map_statistics`).
    flagged : array-like of shape (N,) bool, or sequence of row indices, optional
        Samples to highlight (red rings), e.g. known flips or a detector's top-k.
    flagged_label : str, default='flagged'
        Legend text of the highlighted samples.
    title : str, optional
    ax : matplotlib Axes, optional
        Draw into this axes instead of a new figure.
    save_path : path, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    conf = np.asarray(confidence, dtype=np.float64).reshape(-1)
    var = np.asarray(variability, dtype=np.float64).reshape(-1)
    corr = np.asarray(correctness, dtype=np.float64).reshape(-1)
    if not conf.shape == var.shape == corr.shape:
        raise ValueError(f"confidence, variability and correctness must have the same shape, got "
                         f"{conf.shape}, {var.shape}, {corr.shape}")
    if ax is None:
        fig = Figure(figsize=(6.5, 5.5))
        ax = fig.subplots()
    else:
        fig = ax.figure
    points = ax.scatter(var, conf, c=corr, cmap="viridis", vmin=0.0, vmax=1.0, s=10, alpha=0.75, linewidths=0)
    fig.colorbar(points, ax=ax, label="correctness (fraction of epochs)")
    if flagged is not None:
        mask = _as_mask(flagged, conf.size)
        ax.scatter(var[mask], conf[mask], s=40, facecolors="none", edgecolors="red", linewidths=1.0,
                   label=f"{flagged_label} ({int(mask.sum())})")
        ax.legend(loc="upper right", fontsize=8)
    ax.set(xlabel="variability (std of assigned-label probability)",
           ylabel="confidence (mean assigned-label probability)", ylim=(-0.02, 1.02),
           title=title or "data map")
    ax.text(0.01, 0.98, "easy to learn", transform=ax.transAxes, va="top", fontsize=8, color="grey")
    ax.text(0.01, 0.02, "hard to learn (mislabeled?)", transform=ax.transAxes, va="bottom", fontsize=8,
            color="grey")
    ax.text(0.99, 0.5, "ambiguous", transform=ax.transAxes, ha="right", fontsize=8, color="grey")
    if save_path is not None:
        save_figure(fig, save_path)
    return fig


def _as_mask(flagged, n: int) -> np.ndarray:
    arr = np.asarray(flagged)
    if arr.dtype == bool:
        if arr.shape != (n,):
            raise ValueError(f"a boolean flagged mask must have shape ({n},), got {arr.shape}")
        return arr
    idx = arr.astype(np.int64).reshape(-1)
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise ValueError(f"flagged indices must lie in [0, {n}), got range [{idx.min()}, {idx.max()}]")
    mask = np.zeros(n, dtype=bool)
    mask[idx] = True
    return mask


def plot_grouped_curves(summaries: Mapping[str, Mapping[str, Mapping[str, list]]], bounds, *, metric: str,
                        group: str) -> list[Figure]:
    """One figure per bound: x = epoch, y = metric, one line per group (and phase), with a shaded band.

    Parameters
    ----------
    summaries : mapping of phase -> {group name: {"epoch", "mean", "std", "min", "max", ...}}
        Per-epoch statistics of each group, e.g. :meth:`~interpretdl_noise.LabelTracker.summary` for the
        phases ``'train'`` / ``'eval'`` / ``'test'`` (drawn solid / dashed / dotted).
    bounds : sequence of {None, 'std', 'range'}
        One figure each: no band, mean +- std, or [min, max].
    metric, group : str
        Axis label and title parts ("<metric> by <group>").

    Returns
    -------
    list of matplotlib.figure.Figure
    """
    from matplotlib import colormaps

    names: list[str] = []
    for s in summaries.values():
        names.extend(n for n in s if n not in names)
    cmap = colormaps["tab10" if len(names) <= 10 else "tab20"]
    colours = {n: cmap(i % cmap.N) for i, n in enumerate(names)}
    n_lines = sum(len(s) for s in summaries.values())
    alpha = 0.2 if n_lines <= 4 else 0.1  # overlapping bands stay readable
    figures = []
    for bound in bounds:
        fig = Figure(figsize=(7.5, 4.5), constrained_layout=True)
        ax = fig.add_subplot()
        for m, s in summaries.items():
            for name, d in s.items():
                x, mean = np.asarray(d["epoch"]), np.asarray(d["mean"])
                legend = name if len(summaries) == 1 else f"{name} ({m})"
                ax.plot(x, mean, _LINESTYLES.get(m, "-"), color=colours[name], label=legend,
                        marker="o" if len(x) <= 15 else None, markersize=3)
                if bound == "std":
                    std = np.asarray(d["std"])
                    ax.fill_between(x, mean - std, mean + std, color=colours[name], alpha=alpha, linewidth=0)
                elif bound == "range":
                    ax.fill_between(x, d["min"], d["max"], color=colours[name], alpha=alpha, linewidth=0)
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"{metric} ({_BOUND_LABEL[bound]})")
        ax.set_title(f"{metric} by {group}" + (f" [{', '.join(summaries)}]"))
        ax.legend(fontsize="small", ncol=2 if len(ax.lines) > 8 else 1, loc="best")
        ax.grid(alpha=0.3)
        figures.append(fig)
    return figures
