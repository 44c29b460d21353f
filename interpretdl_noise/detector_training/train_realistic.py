"""The reproducible pipeline for the realistic corpus: record (in parts), train, evaluate on held-out sources.

``interpretdl-noise train-detector --preset realistic --seed S --corpus-dir D --out W.pdparams`` runs
:func:`build_realistic_detector`. Recording is resumable: every run is one npz in ``D/train`` or
``D/holdout`` and a finished run is reloaded; ``--part i/n`` records every n-th run only (several sittings
or processes share one folder) and ``--max-runs K`` stops after K new runs. Training starts only once
every run of the preset exists.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..common.atomic import PathLike
from .realistic import REALISTIC_PRESETS, build_realistic_corpus, realistic_plan

__all__ = ["REALISTIC_TRAINING", "record_realistic_part", "build_realistic_detector"]

REALISTIC_TRAINING: Dict[str, Any] = {"train_epochs": 8, "batch_size": 256, "lr": 3e-3, "max_per_run": 400,
                                      "grid": 32}
"""LSTM training settings used with every realistic preset."""


def _splits(seed: int, extra_train_seeds: Sequence[int]) -> List[Tuple[str, str, int]]:
    """(folder, plan split, plan seed) of every part of the corpus: ``train`` and ``holdout`` drawn with
    ``seed``, then one more training folder ``train-seed<t>`` per extra seed (same groups, other runs)."""
    extra = [int(t) for t in extra_train_seeds]
    if len(set(extra)) != len(extra) or int(seed) in extra or any(t < 0 for t in extra):
        raise ValueError(f"extra_train_seeds must be distinct non-negative seeds other than seed={seed}, got {extra}")
    return [("train", "train", int(seed)), ("holdout", "holdout", int(seed))] + \
        [(f"train-seed{t}", "train", t) for t in extra]


def _split_paths(preset: str, corpus: Path, folder: str, split: str, plan_seed: int) -> List[Path]:
    return [corpus / folder / f"{s.name(i)}.npz" for i, s in enumerate(realistic_plan(preset, split, seed=plan_seed))]


def record_realistic_part(preset: str, corpus_dir: PathLike, *, seed: int = 0, part: Tuple[int, int] = (1, 1),
                          max_runs: Optional[int] = None, device: str = "cpu", progress: bool = True,
                          extra_train_seeds: Sequence[int] = ()) -> Dict[str, Any]:
    """Record this part's missing runs of every split (see ``_splits``); return finished and planned runs."""
    corpus = Path(corpus_dir)
    status: Dict[str, Any] = {}
    budget = max_runs
    for folder, split, plan_seed in _splits(seed, extra_train_seeds):
        specs = realistic_plan(preset, split, seed=plan_seed)
        before = len(list((corpus / folder).glob("*.npz"))) if (corpus / folder).is_dir() else 0
        build_realistic_corpus(specs, corpus / folder, part=part, max_runs=budget, device=device,
                               progress=progress, log=corpus / f"{folder}.log")
        done = sum(p.is_file() for p in _split_paths(preset, corpus, folder, split, plan_seed))
        status[folder] = {"planned": len(specs), "finished": done}
        if budget is not None:
            budget = max(0, budget - (len(list((corpus / folder).glob("*.npz"))) - before))
    return status


def build_realistic_detector(out: PathLike, *, preset: str = "realistic", seed: int = 0,
                             corpus_dir: PathLike, features: str = "curve", part: Tuple[int, int] = (1, 1),
                             max_runs: Optional[int] = None, device: str = "cpu", progress: bool = True,
                             command: Optional[str] = None, extra_train_seeds: Sequence[int] = (),
                             **overrides: Any) -> Dict[str, Any]:
    """Record the preset's corpus (resumably), then train and evaluate once it is complete.

    Parameters
    ----------
    out : path
        The ``.pdparams`` to write (with ``.sha256`` and ``.json``).
    preset : str, default='realistic'
        A key of :data:`~interpretdl_noise.detector_training.realistic.REALISTIC_PRESETS`.
    seed : int, default=0
        Seeds the plan (and so every run) and the LSTM training.
    corpus_dir : path
        Where the runs are kept (required: the build is meant to be resumed).
    features : {'curve', 'margin'}, default='curve'
        Train the single-channel detector or the three-channel margin detector.
    part, max_runs
        See :func:`record_realistic_part`.
    extra_train_seeds : sequence of int, default=()
        More training runs: the preset's training plan drawn with each of these seeds, recorded into
        ``corpus_dir/train-seed<t>`` (the held-out runs stay those of ``seed``). The shipped ``bhdf_margin``
        weights use ``seed=0, extra_train_seeds=(1,)``: 620 training runs.
    **overrides
        Replace entries of :data:`REALISTIC_TRAINING` (e.g. ``train_epochs``).

    Returns
    -------
    dict
        ``status`` (finished / planned runs) and, once trained, the report written to the JSON.
    """
    from .heldout import evaluate_heldout, summarize_heldout
    from .train import save_detector, train_detector

    if preset not in REALISTIC_PRESETS:
        raise ValueError(f"preset must be one of {tuple(REALISTIC_PRESETS)}, got {preset!r}")
    settings = dict(REALISTIC_TRAINING)
    unknown = set(overrides) - set(settings)
    if unknown:
        raise ValueError(f"unknown settings {sorted(unknown)}; allowed: {sorted(settings)}")
    settings.update({k: v for k, v in overrides.items() if v is not None})
    out = Path(out)
    if out.suffix != ".pdparams":
        raise ValueError(f"--out must name a .pdparams file, got {out}")
    corpus = Path(corpus_dir)
    started = time.perf_counter()
    splits = _splits(seed, extra_train_seeds)
    status = record_realistic_part(preset, corpus, seed=seed, part=part, max_runs=max_runs, device=device,
                                   progress=progress, extra_train_seeds=extra_train_seeds)
    report: Dict[str, Any] = {"preset": preset, "seed": seed, "status": status,
                              "record_seconds": round(time.perf_counter() - started, 1)}
    if extra_train_seeds:
        report["extra_train_seeds"] = [int(t) for t in extra_train_seeds]
    if any(s["finished"] < s["planned"] for s in status.values()):
        report["complete"] = False
        return report
    train_paths = [p for folder, split, plan_seed in splits if split == "train"
                   for p in _split_paths(preset, corpus, folder, split, plan_seed)]
    holdout_paths = _split_paths(preset, corpus, "holdout", "holdout", seed)
    detector, history = train_detector(train_paths, grid=settings["grid"], epochs=settings["train_epochs"],
                                       batch_size=settings["batch_size"], lr=settings["lr"], seed=seed,
                                       max_per_run=settings["max_per_run"], device=device, features=features,
                                       progress=progress)
    train_prior = float(history["noise_fraction"])
    if features == "margin":
        from ..interpreter.bhdf_margin import BHDFMarginInterpreter

        interp = BHDFMarginInterpreter(detector=detector, device=device, grid=settings["grid"])
    else:
        from ..interpreter.bhdf import BHDFInterpreter

        interp = BHDFInterpreter(detector=detector, device=device)

    def scorer(rec):
        return interp.predict_td(rec.td) if features == "margin" else interp.predict_curves(rec.td[:, :, 0])
    name = "bhdf_margin" if features == "margin" else "bhdf"
    table = evaluate_heldout(holdout_paths, {name: scorer}, calibrated={name: train_prior})
    summary = summarize_heldout(table, [name], by=("group",))
    report.update(complete=True, command=command or " ".join(sys.argv), kind=features if features == "margin"
                  else "curve", settings=settings, history=history, train_prior=train_prior,
                  n_train_runs=len(train_paths), n_holdout_runs=len(holdout_paths),
                  holdout_runs=table.to_dict(orient="records"),
                  holdout_mean_gain=float(summary.iloc[-1][f"{name}_gain"]),
                  holdout_min_source_gain=float(np.min(summary.iloc[:-1][f"{name}_gain"])),
                  total_seconds=round(time.perf_counter() - started, 1))
    report["kind"] = "margin" if features == "margin" else "curve"
    save_detector(detector, out, info={k: v for k, v in report.items() if k != "status"})
    return report
