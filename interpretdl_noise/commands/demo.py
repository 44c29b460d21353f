"""``interpretdl-noise demo``: noisy digits -> recorded training dynamics -> ranked suspects.

Runs offline on scikit-learn's bundled digits (1,797 8x8 images, 10 classes) in well under a minute on
two CPU cores. Everything is written to ``--out`` (default: a new temporary folder).
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np

from .._paddle import paddle
from ..common.plotting import save_figure
from ..common.seeding import paddle_seed
from ..data import ArrayDataset, DatasetWithIndex, SeededBatchSampler, inject_label_noise, load_digits_arrays
from ..data.noise import NOISE_KINDS
from ..interpreter.training_dynamics import TrainingDynamics


def _mlp(n_in: int, n_classes: int) -> "paddle.nn.Layer":
    return paddle.nn.Sequential(paddle.nn.Linear(n_in, 128), paddle.nn.ReLU(), paddle.nn.Linear(128, n_classes))


def record_noisy_digits(out_dir: Path, *, noise_rate: float = 0.2, noise_type: str = "uniform", epochs: int = 30,
                        seed: int = 0, batch_size: int = 64, progress: bool = True) -> Tuple[Path, Dict]:
    """Train a small MLP on noisy digits with the recorder on and save ``training_dynamics.npz``.

    Returns
    -------
    path : Path
        The recording, with ``label_flip`` (injected ground truth), ``logits``, ``losses`` and ``meta``.
    info : dict
        ``clean_labels`` (N,), ``noisy_labels`` (N,), ``label_flip`` (N,) and ``images`` (N, 8, 8).
    """
    x, y = load_digits_arrays()
    noisy, flips = inject_label_noise(y, noise_rate, kind=noise_type, seed=seed)
    with paddle_seed(seed):
        net = _mlp(x.shape[1], 10)
        loader = paddle.io.DataLoader(DatasetWithIndex(ArrayDataset(x, noisy), index_first=True),
                                      batch_sampler=SeededBatchSampler(len(y), batch_size, seed=seed))
        optimizer = paddle.optimizer.Adam(learning_rate=1e-3, parameters=net.parameters())
        td = TrainingDynamics(net)
        recorder = td.generator(loader, optimizer, epochs, keep_logits=True, keep_losses=True,
                                progress=progress)
    meta = {"dataset": "sklearn digits", "model": "MLP 64-128-10", "noise_rate": noise_rate,
            "noise_type": noise_type, "seed": seed, "epochs": epochs, "batch_size": batch_size}
    td.save(recorder, label_flip=flips, save_path=out_dir / "training_dynamics.npz", meta=meta)
    return td.save_path_, {"clean_labels": y, "noisy_labels": noisy, "label_flip": flips,
                           "images": x.reshape(-1, 8, 8)}


def plot_clean_vs_noisy(td: np.ndarray, label_flip: np.ndarray, path: Path) -> Path:
    """Mean (+- std) assigned-label probability per epoch for clean vs noisy samples, saved as PNG (atomically)."""
    from matplotlib.figure import Figure

    p = td[:, :, 0].astype(np.float32)
    epochs = np.arange(1, p.shape[1] + 1)
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    for mask, name, colour in ((~label_flip, "clean", "tab:blue"), (label_flip, "noisy", "tab:red")):
        mean, std = p[mask].mean(axis=0), p[mask].std(axis=0)
        ax.plot(epochs, mean, color=colour, label=f"{name} (n={int(mask.sum())})")
        ax.fill_between(epochs, mean - std, mean + std, color=colour, alpha=0.2)
    ax.set(xlabel="epoch", ylabel="probability of the assigned label", ylim=(0, 1),
           title="Training dynamics: clean vs mislabeled samples")
    ax.legend(loc="center right")
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
    return path


def run_demo(out_dir: Optional[Path] = None, *, noise_rate: float = 0.2, noise_type: str = "uniform",
             epochs: int = 30, seed: int = 0, top: int = 10, progress: bool = True) -> Dict[str, Dict[str, float]]:
    """The main job: record noisy digits, run every applicable detector, print and save a report.

    Returns ``{detector: metrics}`` (AUROC, AP, precision / recall / F1 at the noise count and at k).
    Writes into ``out_dir``: the recording, ``clean_vs_noisy.png`` and the comparison report of
    :func:`interpretdl_noise.compare_detectors` (``metrics.json``, ``ranked_<name>.csv``, ROC/PR plots) and
    ``report.html`` (:func:`interpretdl_noise.report`, with the digits as thumbnails).
    """
    from ..compare import compare_detectors
    from ..decisions import clean, write_clean

    out_dir = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="interpretdl_noise_demo_"))
    out_dir.mkdir(parents=True, exist_ok=True)
    path, info = record_noisy_digits(out_dir, noise_rate=noise_rate, noise_type=noise_type, epochs=epochs,
                                     seed=seed, progress=progress)
    x = info["images"].reshape(len(info["images"]), -1)  # lets confident learning (K-fold training) run too
    result = compare_detectors(path, out_dir=out_dir, x=x, progress=progress,
                               detector_kwargs={"confident_learning": {"progress": progress}})
    record = result.record
    print(f"\nDigits: {info['label_flip'].size} samples, {int(info['label_flip'].sum())} labels corrupted "
          f"({noise_type}, rate {noise_rate}). Recording: {path}\n")
    print(result.summary())
    lead = "bhdf" if "bhdf" in result.scores else str(result.metrics["auroc"].idxmax())
    scores = result.scores[lead]
    predicted = np.asarray(record.logits[:, -1].argmax(axis=1))
    cleaned = clean(record, lead, scores=scores)  # estimate the noise, flag, suggest labels, keep/drop/relabel
    suggested = cleaned.issues.set_index("sample_id")
    print(f"\nTop {top} suspects by {lead} (higher score = more likely mislabeled):")
    print(f"  {'index':>6} {'given':>6} {'predicted':>9} {'suggested':>9} {'true':>5} {'score':>7} {'action':>8}")
    for i in np.argsort(-scores, kind="stable")[:top]:
        row = suggested.loc[int(record.sample_ids[i])]
        print(f"  {i:>6} {info['noisy_labels'][i]:>6} {predicted[i]:>9} {row['suggested_label']:>9} "
              f"{info['clean_labels'][i]:>5} {scores[i]:>7.3f} {row['action']:>8}")
    summary = cleaned.summary
    low, high = summary["noise_rate_interval"]
    write_clean(cleaned, out_dir / "clean", protect=(path,))
    print(f"\nEstimated noise rate {100 * summary['estimated_noise_rate']:.1f} % (95 % interval {100 * low:.1f}-"
          f"{100 * high:.1f} %; true {100 * info['label_flip'].mean():.1f} %). clean(): keep "
          f"{summary['counts']['keep']}, relabel {summary['counts']['relabel']}, drop {summary['counts']['drop']} "
          f"-> {out_dir / 'clean'} (issues.csv, summary.json, keep_indices.csv)")
    png = plot_clean_vs_noisy(record.td, record.label_flip, out_dir / "clean_vs_noisy.png")
    print(f"\nReport, ranked CSVs and plots in {out_dir} (curves of clean vs noisy samples: {png.name})")
    from ..reporting import report

    page = report(path, images=info["images"], scores=result, method=lead).save(out_dir / "report.html")
    print(f"HTML report of the suspects, to review in a browser: {page}")
    return result.to_dict()


def _main(args: argparse.Namespace) -> int:
    run_demo(args.out, noise_rate=args.noise_rate, noise_type=args.noise_type, epochs=args.epochs, seed=args.seed,
             top=args.top, progress=not args.quiet)
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="record noisy digits and rank the mislabeled samples (offline, < 1 min)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--noise-rate", type=float, default=0.2, help="fraction of labels corrupted (default 0.2)")
    p.add_argument("--noise-type", choices=NOISE_KINDS, default="uniform",
                   help="uniform (random other class), flip (c -> c+1) or pair (default uniform)")
    p.add_argument("--epochs", type=int, default=30, help="training epochs (default 30)")
    p.add_argument("--seed", type=int, default=0, help="seed for noise and training (default 0)")
    p.add_argument("--top", type=int, default=10, help="how many suspects to print (default 10)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: a new temporary folder)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_main)
