"""Train the BHDF LSTM on a corpus of recordings and measure how well it transfers.

The detector reads ``td[:, :, 0]`` resampled onto a fixed grid (:func:`~interpretdl_noise.interpreter.bhdf.
resample_dynamics`) and is trained with cross-entropy against ``label_flip`` (class 1 = mislabeled).
Checkpoints are chosen on a by-sample validation split of the *training* runs; transfer is measured on
whole held-out sources (data set / model pairs) that take no part in training or selection.

:func:`build_detector` is the full reproducible pipeline behind ``interpretdl-noise train-detector``.
"""
from __future__ import annotations

import hashlib
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score
from tqdm.auto import tqdm

from .._paddle import paddle
from ..common.device import device_scope, resolve_device
from ..common.atomic import PathLike, atomic_path
from ..common.seeding import paddle_seed
from ..interpreter.bhdf import DEFAULT_GRID, BHDFInterpreter, LSTMDetector, prepare_curves
from ..interpreter.aum import AUMInterpreter
from ..interpreter.bhdf_margin import stacked_margin_features
from ..interpreter.small_loss import small_loss_scores
from .corpus import Group, RunSpec, build_corpus, plan_corpus
from .sources import available_sources

__all__ = [
    "PRESETS",
    "train_detector",
    "evaluate_detector",
    "summarize_evaluation",
    "build_detector",
    "save_detector",
    "evaluation_markdown",
]

PRESETS: Dict[str, Dict[str, Any]] = {
    # the shipped weights: about 33 minutes on two CPU cores. Many short runs rather than a few large ones:
    # the median-curve context must generalise across runs, so the number of distinct runs matters most.
    "default": {
        "train_groups": [("digits", "mlp", 96), ("digits", "cnn", 40), ("synthetic", "mlp", 120),
                         ("wine", "mlp", 32), ("iris", "mlp", 32)],
        "holdout_groups": [("breast_cancer", "mlp", 12), ("mnist1d", "mlp", 12), ("mnist1d", "cnn", 12)],
        "epochs": (10, 200), "rates": (0.1, 0.5), "train_epochs": 8, "batch_size": 256, "lr": 3e-3,
        "max_per_run": 500, "grid": DEFAULT_GRID, "context": True,
    },
    # a smoke test of the whole pipeline in well under a minute
    "quick": {
        "train_groups": [("digits", "mlp", 3), ("synthetic", "mlp", 3), ("wine", "mlp", 2)],
        "holdout_groups": [("breast_cancer", "mlp", 2)],
        "epochs": (6, 20), "rates": (0.1, 0.5), "train_epochs": 2, "batch_size": 256, "lr": 3e-3,
        "max_per_run": 400, "grid": DEFAULT_GRID, "context": True,
    },
}


MIN_RUNS_FOR_RUN_SPLIT = 10
"""With at least this many training recordings, validation holds out whole recordings."""


# --------------------------------------------------------------------------- data
def _curves_and_flips(item) -> Tuple[np.ndarray, np.ndarray]:
    if isinstance(item, Mapping):
        if "label_flip" not in item:
            raise ValueError("every training recording needs 'label_flip' (the known mislabeled samples)")
        td = np.asarray(item["td"])
        if td.ndim != 3:
            raise ValueError(f"'td' must have shape (N, E, C), got {td.shape}")
        return td[:, :, 0], np.asarray(item["label_flip"]).astype(bool)
    curves, flips = item
    curves, flips = np.asarray(curves), np.asarray(flips).astype(bool)
    if curves.ndim != 2 or flips.shape != (curves.shape[0],):
        raise ValueError(f"expected curves (N, E) and flips (N,), got {curves.shape} and {flips.shape}")
    return curves, flips


def _stack(records: Iterable, grid: Optional[int], center: bool, context: bool, max_per_run: Optional[int],
           rng: np.random.Generator, features: str = "curve") -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    xs, ys, runs = [], [], []
    for item in records:
        if features == "margin":
            item = _as_mapping(item)
            curves = stacked_margin_features(item["td"], grid)      # (N, 2 G, 3), relative to the recording
            flips = _curves_and_flips(item)[1]
            xs_item = curves
        else:
            curves, flips = _curves_and_flips(_as_mapping(item))
            xs_item = prepare_curves(curves, grid, center, context)[:, :, None]  # relative to the whole recording
            if grid is None and xs and xs_item.shape[1] != xs[0].shape[1]:
                raise ValueError("grid=None needs recordings of one length; use a grid to mix lengths")
        curves = xs_item
        if max_per_run is not None and curves.shape[0] > max_per_run:
            keep = np.sort(rng.choice(curves.shape[0], size=int(max_per_run), replace=False))
            curves, flips = curves[keep], flips[keep]
        xs.append(curves)
        ys.append(flips.astype(np.int64))
        runs.append(np.full(flips.size, len(runs), dtype=np.int64))
    if not xs:
        raise ValueError("no training recordings given")
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(runs)


def _as_mapping(item):
    """Paths and recordings become mappings with ``td`` and ``label_flip`` (pairs stay pairs)."""
    if isinstance(item, (str, Path)):
        from ..recording import load_training_dynamics

        return load_training_dynamics(item)
    return item


def _metrics(y: np.ndarray, p: np.ndarray) -> Dict[str, float]:
    both = 0 < y.sum() < y.size
    return {"auroc": float(roc_auc_score(y, p)) if both else float("nan"),
            "ap": float(average_precision_score(y, p)) if both else float("nan")}


# --------------------------------------------------------------------------- training
def train_detector(records: Sequence, *, grid: Optional[int] = DEFAULT_GRID, center: bool = True,
                   context: bool = True, epochs: int = 10,
                   batch_size: int = 256, lr: float = 3e-3, seed: int = 0, val_fraction: float = 0.1,
                   max_per_run: Optional[int] = None, detector: Optional[LSTMDetector] = None,
                   device: str = "cpu", features: str = "curve",
                   progress: bool = True) -> Tuple[LSTMDetector, Dict[str, Any]]:
    """Train (or fine-tune) an :class:`LSTMDetector` with cross-entropy on ``td[:, :, 0]`` curves.

    Parameters
    ----------
    records : sequence
        Recordings (mappings with ``td`` (N, E, C) and ``label_flip`` (N,)), e.g. from
        :func:`build_corpus` or :func:`interpretdl_noise.load_training_dynamics`, or ``(curves (N, E),
        flips (N,))`` pairs. Lengths may differ: every curve is resampled to ``grid`` points.
    grid : int or None, default=DEFAULT_GRID
        Resampling grid; stored on the returned detector (``detector.grid``).
    center : bool, default=True
        Centre every recording's curves on its per-epoch median before training (see
        :func:`~interpretdl_noise.interpreter.bhdf.center_dynamics`); stored as ``detector.center``.
    context : bool, default=True
        Prefix every curve with its recording's median curve (see
        :func:`~interpretdl_noise.interpreter.bhdf.prepare_curves`); stored as ``detector.context``.
    epochs : int, default=10
        Passes over the training curves.
    batch_size : int, default=256
    lr : float, default=3e-3
        Adam learning rate, cosine-decayed to 0; gradients are clipped to global norm 1.
    seed : int, default=0
        Seeds the weight initialisation (Paddle's RNG inside a scope that restores it), the
        subsampling, the validation split and the batch order.
    val_fraction : float, default=0.1
        Fraction kept out to pick the best epoch by validation AUROC: of whole recordings when there
        are at least 10 (the chosen checkpoint is then the one that transfers to unseen runs, not the one
        that best memorises the training runs), else of curves. ``0`` keeps the last epoch.
    max_per_run : int, optional
        Use at most this many (random) curves of each recording, so large runs do not dominate.
    detector : LSTMDetector, optional
        Start from this detector (fine-tuning), e.g. ``BHDFInterpreter().detector``; it is trained in
        place. Default: a fresh one.
    device : str, default='cpu'
    features : {'curve', 'margin'}, default='curve'
        ``'curve'``: the single channel ``td[:, :, 0]`` (InterpretDL's input, the shipped detector).
        ``'margin'``: the three channels of :func:`~interpretdl_noise.interpreter.bhdf_margin.margin_features`
        (needs whole recordings with ``td``; ``center`` / ``context`` are implied), for
        :class:`~interpretdl_noise.interpreter.bhdf_margin.BHDFMarginInterpreter`.
    progress : bool, default=True

    Returns
    -------
    detector : LSTMDetector
        In eval mode, holding the best checkpoint.
    history : dict
        ``epochs`` (per-epoch ``train_loss``, ``val_loss``, ``val_auroc``, ``val_ap``; with a split by
        recording the metrics are means over the validation recordings), ``best_epoch``, ``val_split``
        (``'run'`` or ``'sample'``), ``n_train``, ``n_val``, ``noise_fraction`` and ``seconds``.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if int(epochs) < 1 or int(batch_size) < 1:
        raise ValueError(f"epochs and batch_size must be positive, got {epochs} and {batch_size}")
    if features not in ("curve", "margin"):
        raise ValueError(f"features must be 'curve' or 'margin', got {features!r}")
    if features == "margin" and grid is None:
        raise ValueError("features='margin' needs a grid")
    rng = np.random.default_rng(seed)
    x, y, runs = _stack(records, grid, center, context, max_per_run, rng, features)
    n_runs = int(runs.max()) + 1
    by_run = n_runs >= MIN_RUNS_FOR_RUN_SPLIT
    if by_run:
        n_val_runs = max(1, int(round(val_fraction * n_runs))) if val_fraction > 0 else 0
        is_val = np.isin(runs, rng.permutation(n_runs)[:n_val_runs])
        val_idx, train_idx = np.flatnonzero(is_val), np.flatnonzero(~is_val)
    else:
        perm = rng.permutation(x.shape[0])
        n_val = int(round(val_fraction * x.shape[0])) if val_fraction > 0 else 0
        val_idx, train_idx = perm[:n_val], perm[n_val:]
    n_val = int(val_idx.size)
    if train_idx.size == 0:
        raise ValueError("no curves left for training after the validation split")
    started = time.perf_counter()
    history: Dict[str, Any] = {"epochs": [], "best_epoch": None, "n_train": int(train_idx.size), "n_val": int(n_val),
                               "noise_fraction": float(y.mean()), "grid": grid, "center": center,
                               "context": context, "val_split": "run" if by_run else "sample",
                               "features": features}
    steps = int(np.ceil(train_idx.size / batch_size)) * int(epochs)
    best_score, best_state = -np.inf, None
    with device_scope(resolve_device(device)):
        with paddle_seed(seed):
            net = detector if detector is not None else LSTMDetector(input_size=int(x.shape[2]), grid=grid,
                                                                     center=center, context=context)
        net.grid, net.center, net.context = grid, center, context
        schedule = paddle.optimizer.lr.CosineAnnealingDecay(lr, T_max=max(steps, 1))
        opt = paddle.optimizer.Adam(learning_rate=schedule, parameters=net.parameters(),
                                    grad_clip=paddle.nn.ClipGradByGlobalNorm(1.0))
        bar = tqdm(range(int(epochs)), desc="training detector", unit="epoch", disable=not progress)
        for epoch in bar:
            net.train()
            order = rng.permutation(train_idx)
            total = 0.0
            batches = [order[i:i + batch_size] for i in range(0, order.size, batch_size)]
            for ids in batches:
                logits = net(paddle.to_tensor(x[ids]))
                loss = paddle.nn.functional.cross_entropy(logits, paddle.to_tensor(y[ids, None]))
                loss.backward()
                opt.step()
                opt.clear_grad()
                schedule.step()
                total += float(loss) * ids.size
            row = {"epoch": epoch + 1, "train_loss": total / order.size}
            if n_val:
                p_val = _predict(net, x[val_idx])
                eps = 1e-7
                yv = y[val_idx]
                row["val_loss"] = float(-np.mean(yv * np.log(p_val + eps) + (1 - yv) * np.log(1 - p_val + eps)))
                if by_run:      # detectors rank within a recording: average the per-recording metrics
                    rv = runs[val_idx]
                    per_run = [_metrics(yv[rv == r], p_val[rv == r]) for r in np.unique(rv)]
                    row.update({f"val_{k}": float(np.nanmean([m[k] for m in per_run])) for k in ("auroc", "ap")})
                else:
                    row.update({f"val_{k}": v for k, v in _metrics(yv, p_val).items()})
                score = row["val_auroc"] if np.isfinite(row["val_auroc"]) else -row["val_loss"]
            else:
                score = epoch
            history["epochs"].append(row)
            if score > best_score:
                best_score, history["best_epoch"] = score, epoch + 1
                best_state = {k: v.numpy().copy() for k, v in net.state_dict().items()}
            bar.set_postfix({k: f"{v:.4f}" for k, v in row.items() if k != "epoch"})
        net.set_state_dict(best_state)
        net.eval()
    history["seconds"] = round(time.perf_counter() - started, 1)
    return net, history


def _predict(net: LSTMDetector, x: np.ndarray, batch_size: int = 2048) -> np.ndarray:
    net.eval()
    out = []
    with paddle.no_grad():
        for start in range(0, x.shape[0], batch_size):
            logits = net(paddle.to_tensor(x[start:start + batch_size])).numpy()
            out.append(0.5 * (1.0 + np.tanh(0.5 * (logits[:, 1] - logits[:, 0]).astype(np.float64))))
    net.train()
    return np.concatenate(out)


# --------------------------------------------------------------------------- evaluation
def evaluate_detector(detector: Union[BHDFInterpreter, LSTMDetector, None], records: Sequence[Mapping], *,
                      baselines: bool = True) -> "pandas.DataFrame":  # noqa: F821
    """AUROC and AP of BHDF (and of the AUM and mean-probability baselines) on every recording.

    Parameters
    ----------
    detector : BHDFInterpreter or LSTMDetector or None
        ``None`` uses the shipped weights.
    records : sequence of mapping
        Recordings with ``td`` and ``label_flip``; their ``meta`` (e.g. from :func:`record_run`) fills the
        descriptive columns.
    baselines : bool, default=True
        Also score ``aum`` (:class:`~interpretdl_noise.AUMInterpreter` on probabilities: minus the mean of
        ``p(assigned) - max p(other)``) and ``mean_prob`` (:class:`~interpretdl_noise.SmallLossInterpreter`:
        1 - mean assigned probability).

    Returns
    -------
    pandas.DataFrame
        One row per recording: ``group``, ``source``, ``model``, ``noise``, ``rate``, ``epochs``, ``n``,
        ``n_noisy`` and ``<method>_auroc`` / ``<method>_ap`` for ``bhdf`` (and the baselines).
    """
    import pandas as pd

    interp = detector if isinstance(detector, BHDFInterpreter) else BHDFInterpreter(detector=detector)
    aum = AUMInterpreter(source="probability")
    rows = []
    for rec in records:
        curves, flips = _curves_and_flips(rec)
        meta = rec.get("meta", {}) or {}
        row = {k: meta.get(k) for k in ("group", "source", "model", "noise", "rate", "epochs")}
        row.update(n=int(flips.size), n_noisy=int(flips.sum()), epochs=int(curves.shape[1]))
        scores = {"bhdf": interp.predict_curves(curves)}
        if baselines:
            scores["aum"] = aum.interpret(training_dynamics={"td": rec["td"]})[1]
            scores["mean_prob"] = small_loss_scores(rec["td"])
        for name, s in scores.items():
            for k, v in _metrics(flips.astype(int), s).items():
                row[f"{name}_{k}"] = v
        rows.append(row)
    return pd.DataFrame(rows)


def summarize_evaluation(table: "pandas.DataFrame", by: Sequence[str] = ("group", "noise")  # noqa: F821
                         ) -> "pandas.DataFrame":  # noqa: F821
    """Mean of every ``*_auroc`` / ``*_ap`` column per ``by`` (plus an ``all`` row and the run count)."""
    import pandas as pd

    cols = [c for c in table.columns if c.endswith("_auroc") or c.endswith("_ap")]
    by = list(by)
    grouped = table.groupby(by, dropna=False)[cols].mean()
    grouped.insert(0, "runs", table.groupby(by, dropna=False).size())
    total = table[cols].mean().to_frame().T
    total.insert(0, "runs", len(table))
    total.index = pd.MultiIndex.from_tuples([tuple(["all"] + [""] * (len(by) - 1))], names=by) if len(by) > 1 \
        else pd.Index(["all"], name=by[0])
    return pd.concat([grouped, total])


def evaluation_markdown(summary: "pandas.DataFrame", digits: int = 3) -> str:  # noqa: F821
    """A markdown table of :func:`summarize_evaluation` (methods side by side, best AUROC in bold)."""
    methods = [c[:-6] for c in summary.columns if c.endswith("_auroc")]
    head = list(summary.index.names) + ["runs"] + [f"{m} AUROC" for m in methods] + [f"{m} AP" for m in methods]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for idx, row in summary.iterrows():
        idx = idx if isinstance(idx, tuple) else (idx,)
        cells = [str(i) for i in idx] + [str(int(row["runs"]))]
        for metric in ("auroc", "ap"):
            vals = [row[f"{m}_{metric}"] for m in methods]
            best = np.nanmax(vals) if np.isfinite(vals).any() else np.nan
            cells += [f"**{v:.{digits}f}**" if v == best else f"{v:.{digits}f}" for v in vals]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- saving and the pipeline
def save_detector(detector: LSTMDetector, path: PathLike, *, info: Optional[Dict[str, Any]] = None) -> Path:
    """Write ``path`` (a ``.pdparams`` state dict), ``<path>.sha256`` and ``<stem>.json`` atomically.

    The JSON holds ``grid``, ``center`` and ``context`` (read back by :class:`BHDFInterpreter` with ``'auto'``) and
    ``info``.
    """
    path = Path(path)
    if path.suffix != ".pdparams":
        raise ValueError(f"detector weights must be saved as a .pdparams file, got {path}")
    with atomic_path(path) as tmp:
        paddle.save(detector.state_dict(), str(tmp))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    with atomic_path(path.with_name(path.name + ".sha256")) as tmp:
        tmp.write_text(f"{digest}  {path.name}\n")
    meta = {"grid": detector.grid, "center": bool(getattr(detector, "center", False)),
            "context": bool(getattr(detector, "context", False)), "sha256": digest}
    meta.update(info or {})
    with atomic_path(path.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(meta, indent=2, sort_keys=True, default=str) + "\n")
    return path


def build_detector(out: PathLike, *, preset: str = "default", seed: int = 0, corpus_dir: Optional[PathLike] = None,
                   device: str = "cpu", progress: bool = True, command: Optional[str] = None,
                   **overrides: Any) -> Dict[str, Any]:
    """The reproducible pipeline: record a corpus, train the LSTM, evaluate on held-out sources, save.

    Parameters
    ----------
    out : path
        The ``.pdparams`` file to write (plus ``.sha256`` and ``.json`` beside it).
    preset : {'default', 'quick'}, default='default'
        Corpus and training settings (see :data:`PRESETS`); ``default`` built the shipped weights.
    seed : int, default=0
        Seeds the corpus plan (and thereby every run) and the LSTM training.
    corpus_dir : path, optional
        Keep the recorded runs here (``train/`` and ``holdout/``) and reuse them on a rerun.
    device : str, default='cpu'
    progress : bool, default=True
    command : str, optional
        The command line, stored in the JSON report.
    **overrides
        Replace preset entries, e.g. ``train_epochs=4`` or ``holdout_groups=[]``.

    Returns
    -------
    dict
        The report also written to ``<stem>.json``: settings, training history, per-run held-out
        table (``holdout_runs``) and its per-source summary (``holdout_summary_markdown``).
    """
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {tuple(PRESETS)}, got {preset!r}")
    settings = dict(PRESETS[preset])
    unknown = set(overrides) - set(settings)
    if unknown:
        raise ValueError(f"unknown settings {sorted(unknown)}; allowed: {sorted(settings)}")
    settings.update(overrides)
    out = Path(out)
    if out.suffix != ".pdparams":
        raise ValueError(f"--out must name a .pdparams file, got {out}")
    available = set(available_sources())
    skipped = sorted({g[0] for g in settings["holdout_groups"] + settings["train_groups"]} - available)
    if any(g[0] not in available for g in settings["train_groups"]):
        raise ValueError(f"training sources {skipped} are unavailable here; install 'interpretdl-noise[corpus]'")
    if skipped:
        warnings.warn(f"held-out sources {skipped} are unavailable (pip install 'interpretdl-noise[corpus]'); "
                      "they are skipped", UserWarning, stacklevel=2)
    holdout_groups: List[Group] = [g for g in settings["holdout_groups"] if g[0] in available]
    common = dict(seed=seed, epochs=tuple(settings["epochs"]), rates=tuple(settings["rates"]))
    train_specs: List[RunSpec] = plan_corpus(settings["train_groups"], split="train", **common)
    holdout_specs: List[RunSpec] = plan_corpus(holdout_groups, split="holdout", **common)
    started = time.perf_counter()
    cdir = Path(corpus_dir) if corpus_dir is not None else None
    train_records = build_corpus(train_specs, out_dir=cdir / "train" if cdir else None, device=device,
                                 progress=progress)
    holdout_records = build_corpus(holdout_specs, out_dir=cdir / "holdout" if cdir else None, device=device,
                                   progress=progress)
    corpus_seconds = time.perf_counter() - started
    detector, history = train_detector(train_records, grid=settings["grid"], context=settings["context"],
                                       epochs=settings["train_epochs"],
                                       batch_size=settings["batch_size"], lr=settings["lr"], seed=seed,
                                       max_per_run=settings["max_per_run"], device=device, progress=progress)
    report: Dict[str, Any] = {
        "preset": preset, "seed": seed, "command": command or " ".join(sys.argv), "settings": settings,
        "skipped_sources": skipped, "corpus_seconds": round(corpus_seconds, 1), "history": history,
        "n_train_runs": len(train_specs), "n_holdout_runs": len(holdout_specs),
        "train_runs": [s.to_dict() for s in train_specs],
    }
    if holdout_records:
        interp = BHDFInterpreter(detector=detector, device=device)
        table = evaluate_detector(interp, holdout_records)
        summary = summarize_evaluation(table, by=("group", "noise"))
        report["holdout_runs"] = table.to_dict(orient="records")
        report["holdout_summary_markdown"] = evaluation_markdown(summary)
        report["holdout_by_source_markdown"] = evaluation_markdown(summarize_evaluation(table, by=("group",)))
    report["total_seconds"] = round(time.perf_counter() - started, 1)
    save_detector(detector, out, info={k: v for k, v in report.items() if k != "train_runs"})
    return report
