"""BHDF benchmark: detection quality on held-out sources, any-length behaviour, inference speed vs
InterpretDL 0.8, and weight compatibility with InterpretDL's ``LSTM`` / ``BHDFInterpreter``.

Run in the benchmark environment (InterpretDL 0.8 installed with --no-deps; mnist1d for the MNIST-1D
held-out source)::

    /work/venv-bench/bin/python benchmarks/bench_bhdf.py            # full (about 10 min on 2 cores)
    /work/venv-bench/bin/python benchmarks/bench_bhdf.py --quick    # smaller corpus and speed input

1. Quality: fresh runs (seed 1, never used for the shipped weights, whose corpus used seed 0) on the
   sources held out from training: breast_cancer-mlp, mnist1d-mlp, mnist1d-cnn, with uniform, flip and
   pair noise. BHDF (shipped weights) vs AUM on probabilities (``AUMInterpreter(source='probability')``)
   and the mean assigned probability (``SmallLossInterpreter``), on the same recordings.
2. Lengths: one 300-epoch held-out run seen at 5 to 300 epochs (every k-th epoch).
3. Speed: ``interpret`` on 50,000 recordings x 200 epochs x 10 classes, ours vs InterpretDL 0.8's
   ``BHDFInterpreter.interpret`` (same input, same process; InterpretDL prints, so its stdout is muted).
4. Compatibility: our weights load into InterpretDL's ``LSTM`` (``paddle.Model.load``, as InterpretDL
   does) and give our predictions through InterpretDL's own ``BHDFInterpreter``; its state dict loads
   into ours; InterpretDL's ``BHDFInterpreter`` runs on an npz written by our recorder.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import load_interpretdl_training_dynamics, machine_info, timeit_median  # noqa: E402

warnings.filterwarnings("ignore", message="No ccache found")

import paddle  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from interpretdl_noise import AUMInterpreter, BHDFInterpreter, SmallLossInterpreter, save_training_dynamics  # noqa: E402
from interpretdl_noise.detector_training import (RunSpec, available_sources,  # noqa: E402
                                                 build_corpus, evaluate_detector, evaluation_markdown,
                                                 plan_corpus, record_run, summarize_evaluation)
from interpretdl_noise.interpreter.bhdf import DEFAULT_GRID, default_weights_path, prepare_curves  # noqa: E402

HOLDOUT = [("breast_cancer", "mlp", 12), ("mnist1d", "mlp", 12), ("mnist1d", "cnn", 12)]


def quality(quick: bool) -> None:
    groups = [(s, m, 3 if quick else n) for s, m, n in HOLDOUT if s in available_sources()]
    missing = sorted({s for s, _, _ in HOLDOUT} - {s for s, _, _ in groups})
    specs = plan_corpus(groups, seed=1, epochs=(10, 60) if quick else (10, 200), split="holdout")
    t0 = time.perf_counter()
    records = build_corpus(specs, progress=True)
    print(f"\n## 1. Held-out quality ({len(specs)} fresh runs, seed 1, recorded in {time.perf_counter() - t0:.0f} s)")
    if missing:
        print(f"(sources unavailable here, skipped: {missing})")
    table = evaluate_detector(BHDFInterpreter(), records)
    # sanity: the baseline columns are the library's interpreters
    _, sl = SmallLossInterpreter().interpret(training_dynamics={"td": records[0]["td"]})
    assert np.allclose(roc_auc_score(records[0]["label_flip"], sl), table.loc[0, "mean_prob_auroc"])
    print("\nPer held-out source and noise type (mean over runs):\n")
    print(evaluation_markdown(summarize_evaluation(table, by=("group", "noise"))))
    print("\nPer held-out source:\n")
    print(evaluation_markdown(summarize_evaluation(table, by=("group",))))
    wins = {m: int(((table["bhdf_auroc"] >= table[f"{m}_auroc"] - 1e-12) &
                    (table["bhdf_ap"] >= table[f"{m}_ap"] - 1e-12)).sum()) for m in ("aum", "mean_prob")}
    print(f"\nRuns where BHDF >= baseline on both AUROC and AP: vs AUM {wins['aum']}/{len(table)}, "
          f"vs mean prob {wins['mean_prob']}/{len(table)}")


def lengths(quick: bool) -> None:
    source = "mnist1d" if "mnist1d" in available_sources() else "breast_cancer"
    epochs = 100 if quick else 300
    spec = RunSpec(source, "mlp", "uniform", 0.3, epochs, seed=7, optimizer="sgd", lr=0.03, schedule="step",
                   width=128)
    rec = record_run(spec)
    interp = BHDFInterpreter()
    print(f"\n## 2. One run ({source}-mlp, 30 % uniform noise, {epochs} epochs) seen at fewer epochs\n")
    print("| epochs seen | BHDF AUROC | mean-prob AUROC | AUM AUROC |\n|---|---|---|---|")
    for n in (5, 10, 20, 50, 100, 150, 200, 300):
        if n > epochs:
            continue
        idx = np.unique(np.round(np.linspace(0, epochs - 1, n)).astype(int))
        td = rec["td"][:, idx]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            p = interp.predict_curves(td[:, :, 0])
        f = rec["label_flip"]
        mean_prob = SmallLossInterpreter().interpret(training_dynamics={"td": td})[1]
        aum = AUMInterpreter(source="probability").interpret(training_dynamics={"td": td})[1]
        print(f"| {len(idx)} | {roc_auc_score(f, p):.4f} | {roc_auc_score(f, mean_prob):.4f} | "
              f"{roc_auc_score(f, aum):.4f} |")


def speed_and_compat(quick: bool) -> None:
    idl = load_interpretdl_training_dynamics()
    n, e, c = (10_000 if quick else 50_000), 200, 10
    # realistic curves: a recorded 200-epoch digits run, tiled to n samples
    rec = record_run(RunSpec("digits", "mlp", "uniform", 0.2, e, seed=11, optimizer="adam", lr=1e-3))
    reps = int(np.ceil(n / rec["td"].shape[0]))
    td = np.concatenate([rec["td"]] * reps)[:n]
    flips = np.concatenate([rec["label_flip"]] * reps)[:n]
    data = {"td": td}
    ours = BHDFInterpreter()

    theirs_lstm = idl.LSTM()
    with contextlib.redirect_stdout(io.StringIO()):
        paddle.Model(theirs_lstm).load(str(default_weights_path()))   # exactly how InterpretDL loads weights
        theirs = idl.BHDFInterpreter(detector=theirs_lstm, device="cpu")

    def run_theirs(inp):
        with contextlib.redirect_stdout(io.StringIO()):
            return theirs.interpret(training_dynamics=inp, training_dynamics_path=None)

    print(f"\n## 3. Inference speed: {n:,} recordings x {e} epochs x {c} classes ({machine_info()})\n")
    t_ours = timeit_median(lambda: ours.interpret(training_dynamics=data), repeat=3)["median"]
    raw = BHDFInterpreter(grid=None, center=False, context=False)
    t_raw = timeit_median(lambda: raw.interpret(training_dynamics=data), repeat=1)["median"]
    t_idl = timeit_median(lambda: run_theirs(data), repeat=1 if not quick else 2)["median"]
    print("| implementation | seconds | speed-up vs InterpretDL |\n|---|---|---|")
    print(f"| InterpretDL 0.8 BHDFInterpreter.interpret (raw {e}-step curves, batch 128) | {t_idl:.1f} | 1.0x |")
    bs = ours.batch_size
    print(f"| ours, grid=None, center=False, context=False (raw {e}-step curves, batch {bs}) | {t_raw:.1f} | "
          f"{t_idl / t_raw:.1f}x |")
    print(f"| ours, default (resampled to {DEFAULT_GRID} points, centred, median prefix read once; batch {bs}; "
          "includes input validation) | "
          f"{t_ours:.1f} | **{t_idl / t_ours:.1f}x** |")

    print(f"\n(AUROC on the tiled input: ours {roc_auc_score(flips, ours.scores_):.4f})")
    print("\n## 4. Compatibility with InterpretDL 0.8\n")
    sub = {"td": td[:4000]}
    _, p_ours = ours.interpret(training_dynamics=sub)
    # InterpretDL's interpreter reads td[:, :, 0]; hand it our prepared sequences (median prefix + centred curve)
    resampled = {"td": prepare_curves(sub["td"][:, :, 0], ours.grid, ours.center, ours.context)[:, :, None]}
    _, p_idl = run_theirs(resampled)
    diff = float(np.abs(np.asarray(p_idl) - p_ours).max())
    print(f"- our weights in InterpretDL's LSTM via paddle.Model.load, run by InterpretDL's BHDFInterpreter on our "
          f"prepared curves (`prepare_curves`): max |P diff| vs ours = {diff:.2e}")
    assert diff < 1e-4
    back = BHDFInterpreter(detector=None)
    from interpretdl_noise.interpreter.bhdf import LSTMDetector, check_state_dict

    check_state_dict(LSTMDetector(), theirs_lstm.state_dict(), source="InterpretDL LSTM state dict")
    mine = LSTMDetector()
    mine.set_state_dict(theirs_lstm.state_dict())
    same = np.allclose(BHDFInterpreter(detector=mine).predict_curves(sub["td"][:, :, 0]), back.predict_curves(
        sub["td"][:, :, 0]), atol=1e-6)
    print(f"- InterpretDL LSTM state dict -> our LSTMDetector: names/shapes match, predictions identical: {same}")
    with tempfile.TemporaryDirectory() as tmp:
        path = save_training_dynamics(Path(tmp) / "training_dynamics.npz", rec["td"], rec["labels"],
                                      label_flip=rec["label_flip"])
        with contextlib.redirect_stdout(io.StringIO()):
            _, p_file = theirs.interpret(training_dynamics_path=str(path))
    auc_file = roc_auc_score(rec["label_flip"], p_file)
    auc_ours = roc_auc_score(rec["label_flip"], ours.predict_curves(rec["td"][:, :, 0]))
    print(f"- InterpretDL's BHDFInterpreter on an npz written by our recorder ({rec['td'].shape[1]} raw epochs, not "
          f"resampled or centred, as InterpretDL feeds them): runs, AUROC {auc_file:.4f} (ours: {auc_ours:.4f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller corpus and speed input")
    parser.add_argument("--only", choices=("quality", "lengths", "speed"), default=None)
    args = parser.parse_args()
    print(f"# bench_bhdf ({'quick' if args.quick else 'full'})")
    if args.only in (None, "quality"):
        quality(args.quick)
    if args.only in (None, "lengths"):
        lengths(args.quick)
    if args.only in (None, "speed"):
        speed_and_compat(args.quick)


if __name__ == "__main__":
    main()
