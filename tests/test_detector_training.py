"""Detector training: corpus planning and recording, LSTM training, saving, the CLI, the tutorial."""
import hashlib
import importlib.util
import json
import random
from pathlib import Path

import numpy as np
import pytest

from interpretdl_noise import BHDFInterpreter
from interpretdl_noise.cli import main
from interpretdl_noise.detector_training import (RunSpec, build_corpus, build_model,
                                                 evaluate_detector, load_source, plan_corpus, record_run,
                                                 save_detector, summarize_evaluation, train_detector)
from interpretdl_noise.interpreter.bhdf import DEFAULT_GRID

from conftest import REPO, run_notebook


@pytest.fixture(scope="module")
def tiny_corpus():
    """Six short runs on tiny tabular sources (a few seconds): four to train on, two held out."""
    train = plan_corpus([("wine", "mlp", 2), ("iris", "mlp", 2)], seed=5, epochs=(8, 16), rates=(0.2, 0.4))
    test = plan_corpus([("wine", "mlp", 2)], seed=99, epochs=(8, 16), rates=(0.2, 0.4), split="holdout")
    return build_corpus(train, progress=False), build_corpus(test, progress=False)


def test_plan_is_seeded_balanced_and_bounded():
    groups = [("digits", "mlp", 6), ("breast_cancer", "mlp", 6)]
    a = plan_corpus(groups, seed=1, epochs=(10, 200), rates=(0.1, 0.5))
    assert a == plan_corpus(groups, seed=1, epochs=(10, 200), rates=(0.1, 0.5))
    assert a != plan_corpus(groups, seed=2, epochs=(10, 200), rates=(0.1, 0.5))
    # adding a group leaves the others' draws unchanged
    assert plan_corpus(groups[:1], seed=1) == plan_corpus(groups, seed=1)[:6]
    assert [s.noise for s in a[:6]] == ["uniform", "flip", "pair"] * 2
    assert all(10 <= s.epochs <= 200 and 0.1 <= s.rate <= 0.5 for s in a)
    assert all(s.rate <= 0.4 for s in a if s.noise != "uniform" or s.source == "breast_cancer")
    with pytest.raises(ValueError, match="unknown group"):
        plan_corpus([("cifar", "mlp", 1)])
    with pytest.raises(ValueError, match="noise_kinds"):
        plan_corpus(groups, noise_kinds=["gaussian"])
    with pytest.raises(ValueError, match="noise must be one of"):
        RunSpec("digits", "mlp", "gaussian", 0.1, 10, 0)


def test_record_run_is_a_reproducible_recording():
    spec = RunSpec("wine", "mlp", "flip", 0.3, 7, seed=4, optimizer="sgd", schedule="step", lr=0.1)
    rec = record_run(spec)
    assert rec["td"].shape == (178, 7, 3) and rec["td"].dtype == np.float16
    assert rec["labels"].shape == (178, 3) and rec["label_flip"].sum() == round(0.3 * 178)
    np.testing.assert_allclose(rec["td"].astype(np.float32).sum(axis=2), 1.0, atol=3e-3)
    assert rec["meta"]["group"] == "wine-mlp" and rec["meta"]["epochs"] == 7
    np.testing.assert_array_equal(record_run(spec)["td"], rec["td"])


def test_build_corpus_resumes_from_saved_runs(tmp_path, monkeypatch):
    """Saved runs are loaded, not re-recorded, also when the spec leaves a field open (synthetic size)."""
    from interpretdl_noise.detector_training import corpus

    specs = plan_corpus([("synthetic", "mlp", 1), ("iris", "mlp", 1)], seed=3, epochs=(4, 6))
    assert specs[0].n_samples is None
    first = build_corpus(specs, out_dir=tmp_path, progress=False)

    def must_not_record(*args, **kwargs):
        raise AssertionError("a saved run was recorded again")

    monkeypatch.setattr(corpus, "record_run", must_not_record)
    again = build_corpus(specs, out_dir=tmp_path, progress=False)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a["td"], b["td"])
        np.testing.assert_array_equal(a["label_flip"], b["label_flip"])


def test_sources_and_models():
    digits = load_source("digits")
    assert digits.x.shape == (1797, 64) and digits.image_shape == (1, 8, 8)
    a, b = load_source("synthetic", seed=3), load_source("synthetic", seed=3)
    np.testing.assert_array_equal(a.x, b.x)
    assert 3 <= a.n_classes <= 10 and 600 <= a.x.shape[0] <= 2000
    net = build_model("cnn", digits, width=16)
    import paddle

    assert net(paddle.to_tensor(digits.x[:4])).shape == [4, 10]
    with pytest.raises(ValueError, match="tabular"):
        build_model("cnn", load_source("wine"))
    with pytest.raises(ValueError, match="unknown source"):
        load_source("cifar10")


@pytest.mark.skipif(importlib.util.find_spec("mnist1d") is None, reason="optional mnist1d not installed")
def test_mnist1d_source_keeps_global_random_state():
    np_state, py_state = np.random.get_state()[1].copy(), random.getstate()
    src = load_source("mnist1d")
    assert src.x.shape == (4000, 40) and src.image_shape == (1, 40) and src.n_classes == 10
    np.testing.assert_array_equal(np.random.get_state()[1], np_state)
    assert random.getstate() == py_state


def test_trained_detector_beats_chance_and_baseline_scores(tiny_corpus):
    train, test = tiny_corpus
    det, history = train_detector(train, epochs=2, seed=0, progress=False)
    assert det.grid == DEFAULT_GRID and history["best_epoch"] in (1, 2) and history["n_val"] > 0
    table = evaluate_detector(BHDFInterpreter(detector=det), test)
    assert list(table["group"]) == ["wine-mlp", "wine-mlp"]
    assert (table["bhdf_auroc"] > 0.6).all()
    # the baselines are sensible on the same recordings
    assert (table["aum_auroc"] > 0.6).all() and (table["mean_prob_auroc"] > 0.6).all()
    summary = summarize_evaluation(table, by=("group",))
    assert summary.loc["all", "runs"] == 2
    # reproducible: same seed, same weights
    det2, _ = train_detector(train, epochs=2, seed=0, progress=False)
    np.testing.assert_array_equal(det.classifier.weight.numpy(), det2.classifier.weight.numpy())


def test_fine_tune_shipped_detector_and_save(tmp_path, tiny_corpus):
    train, test = tiny_corpus
    shipped = BHDFInterpreter()
    before = shipped.detector.classifier.weight.numpy().copy()
    det, _ = train_detector(train, detector=shipped.detector, epochs=1, lr=1e-3, val_fraction=0.0, progress=False)
    assert det is shipped.detector and not np.allclose(before, det.classifier.weight.numpy())
    path = save_detector(det, tmp_path / "mine.pdparams", info={"note": "fine-tuned"})
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert (tmp_path / "mine.pdparams.sha256").read_text().split()[0] == digest
    assert json.loads((tmp_path / "mine.json").read_text())["note"] == "fine-tuned"
    again = BHDFInterpreter(weights=path)
    assert again.grid == DEFAULT_GRID
    curves = test[0]["td"][:, :, 0]
    np.testing.assert_allclose(again.predict_curves(curves), BHDFInterpreter(detector=det).predict_curves(curves))
    with pytest.raises(ValueError, match=".pdparams"):
        save_detector(det, tmp_path / "mine.bin")


def test_validation_holds_out_whole_recordings_when_there_are_enough():
    rng = np.random.default_rng(0)
    runs = []
    for r in range(12):
        flips = rng.random(60) < 0.3
        curves = np.clip(rng.normal(0.7 - 0.4 * flips[:, None], 0.15, size=(60, 10)), 0, 1)
        runs.append((curves, flips))
    _, hist = train_detector(runs, epochs=1, seed=0, progress=False)
    assert hist["val_split"] == "run" and hist["n_val"] == 60 and hist["n_train"] == 11 * 60
    assert 0.5 < hist["epochs"][0]["val_auroc"] <= 1.0
    _, hist = train_detector(runs[:9], epochs=1, seed=0, progress=False)
    assert hist["val_split"] == "sample" and hist["n_val"] == 54


def test_train_detector_rejects_bad_input():
    with pytest.raises(ValueError, match="label_flip"):
        train_detector([{"td": np.zeros((3, 5, 2), dtype=np.float16)}], progress=False)
    with pytest.raises(ValueError, match="no training recordings"):
        train_detector([], progress=False)
    with pytest.raises(ValueError, match="val_fraction"):
        train_detector([(np.zeros((4, 5)), np.zeros(4))], val_fraction=1.0, progress=False)


def test_cli_train_detector_quick(tmp_path, capsys):
    out = tmp_path / "det.pdparams"
    corpus = tmp_path / "corpus"
    assert main(["train-detector", "--out", str(out), "--preset", "quick", "--train-epochs", "1",
                 "--corpus-dir", str(corpus), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "held-out sources" in text and "breast_cancer-mlp" in text
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["grid"] == DEFAULT_GRID and report["seed"] == 0
    assert report["command"].startswith("interpretdl-noise train-detector --out")
    assert len(list((corpus / "train").glob("*.npz"))) == report["n_train_runs"] == 8
    auroc = [r["bhdf_auroc"] for r in report["holdout_runs"]]
    assert len(auroc) == 2 and min(auroc) > 0.6
    BHDFInterpreter(weights=out)
    # bad settings are named
    assert main(["train-detector", "--out", str(tmp_path / "x.bin"), "--preset", "quick", "--quiet"]) == 2
    assert "pdparams" in capsys.readouterr().err


def test_tutorial_notebook_runs_quick():
    nb = run_notebook(REPO / "tutorials" / "train_your_own_detector.ipynb", timeout=300, INTERPRETDL_NOISE_QUICK=1)
    # run_notebook raises on a failing cell; check what the tutorial shows
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "ten most suspicious samples" in text and "reloaded: AUROC on a fresh run" in text
    assert Path.cwd().exists() and not any(Path.cwd().iterdir())
