"""Issue 18: the realistic corpus, the held-out harness and the three-channel margin detector."""
import numpy as np
import pytest

from interpretdl_noise import load_training_dynamics
from interpretdl_noise.cli import main
from interpretdl_noise.detector_training.heldout import (BASELINES, calibration_summary, evaluate_heldout,
                                                         gain_share, summarize_heldout)
from interpretdl_noise.detector_training.realistic import (RealisticRunSpec, build_realistic_corpus,
                                                           build_realistic_model, load_realistic_source,
                                                           plan_realistic, realistic_noise, realistic_plan,
                                                           record_realistic_run)
from interpretdl_noise.detector_training.train import train_detector
from interpretdl_noise.interpreter.bhdf_margin import BHDFMarginInterpreter, margin_features, stacked_margin_features


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    """Four short recorded runs (a few seconds): BN/residual MLP, augmentation, imbalance, eval mode."""
    out = tmp_path_factory.mktemp("realistic")
    specs = [RealisticRunSpec("wine", "resmlp", "confusable", 0.2, 6, seed=1, augment=True, record="eval"),
             RealisticRunSpec("iris", "mlp", "instance", 0.15, 8, seed=2, schedule="warmup_cosine"),
             RealisticRunSpec("wine", "mlp", "uniform", 0.3, 7, seed=3, imbalance=3.0, schedule="step"),
             RealisticRunSpec("iris", "resmlp", "pair", 0.1, 6, seed=4, optimizer="adam", lr=3e-3,
                              schedule="cosine", record="eval")]
    return specs, build_realistic_corpus(specs, out, progress=False)


def test_plan_covers_the_axes_and_is_seeded():
    groups = [("digits", "resmlp", 24), ("hastie", "mlp", 6)]
    a = plan_realistic(groups, seed=3)
    assert a == plan_realistic(groups, seed=3) and a != plan_realistic(groups, seed=4)
    digits = a[:24]
    assert {s.noise for s in digits} == {"uniform", "flip", "pair", "class_dependent", "confusable", "instance"}
    assert {s.noise for s in a[24:]} <= {"uniform", "instance"}          # two classes
    assert all(0.02 <= s.rate <= 0.5 and 5 <= s.epochs <= 200 for s in a)
    assert {s.record for s in a} == {"train", "eval"} and any(s.augment for s in a)
    assert any(s.imbalance > 1 for s in a) and min(s.epochs for s in a) <= 10
    with pytest.raises(ValueError, match="image or signal"):
        plan_realistic([("wine", "rescnn", 1)])
    train, hold = realistic_plan("realistic", "train"), realistic_plan("realistic", "holdout")
    # the held-out data sets and the rescnn family never appear in training
    assert not {s.source for s in train} & {s.source for s in hold}
    assert "rescnn" not in {s.model for s in train} and "rescnn" in {s.model for s in hold}


def test_confusable_and_instance_noise():
    src = load_realistic_source("digits")
    noisy, flips = realistic_noise(src, 0.2, "confusable", seed=0)
    assert abs(flips.mean() - 0.2) < 0.01 and np.all((noisy != src.y) == flips)
    # confusions concentrate on a few classes per source class (not uniform): top target takes > 1/9
    top = [np.bincount(noisy[(src.y == k) & flips], minlength=10).max() / max(((src.y == k) & flips).sum(), 1)
           for k in range(10)]
    assert np.mean(top) > 0.3
    noisy, flips = realistic_noise(src, 0.1, "instance", seed=0)
    assert flips.sum() == round(0.1 * src.y.size)
    np.testing.assert_array_equal(realistic_noise(src, 0.1, "instance", seed=0)[0], noisy)


def test_models_map_inputs_to_logits():
    from interpretdl_noise._paddle import paddle

    for name, kind in (("digits", "rescnn"), ("mnist1d", "rescnn"), ("wine", "resmlp")):
        if name == "mnist1d" and not _has_mnist1d():
            continue
        src = load_realistic_source(name)
        net = build_realistic_model(kind, src, width=32, depth=2)
        out = net(paddle.to_tensor(src.x[:5]))
        assert tuple(out.shape) == (5, src.n_classes)


def _has_mnist1d():
    import importlib.util

    return importlib.util.find_spec("mnist1d") is not None


def test_runs_are_recorded_with_logits_losses_and_resume(tiny_runs, monkeypatch, tmp_path):
    specs, paths = tiny_runs
    rec = load_training_dynamics(paths[0])
    assert {"td", "labels", "label_flip", "logits", "losses", "sample_ids"} <= set(rec)
    assert rec["td"].shape[1:] == (6, 3) and rec["logits"].shape == rec["td"].shape
    assert rec["meta"]["record"] == "eval" and rec["meta"]["augment"] is True
    assert abs(rec["meta"]["true_rate"] - rec["label_flip"].mean()) < 1e-4
    imbalanced = load_training_dynamics(paths[2])
    counts = np.bincount(imbalanced["labels"][~imbalanced["label_flip"].astype(bool), 0])
    assert counts.max() / counts.min() > 2                                 # imbalance 3 was applied
    # a rerun reloads every finished run instead of recording it again
    from interpretdl_noise.detector_training import realistic

    monkeypatch.setattr(realistic, "record_realistic_run", lambda *a, **k: pytest.fail("re-recorded"))
    assert build_realistic_corpus(specs, paths[0].parent, progress=False) == paths
    # parts split the plan; max_runs bounds one sitting
    calls = []
    monkeypatch.setattr(realistic, "record_realistic_run", lambda spec, path, **k: calls.append(spec))
    build_realistic_corpus(specs, tmp_path, part=(2, 2), progress=False)
    assert calls == [specs[1], specs[3]]
    calls.clear()
    build_realistic_corpus(specs, tmp_path, max_runs=1, progress=False)
    assert len(calls) == 1


def test_recording_is_reproducible(tmp_path):
    spec = RealisticRunSpec("iris", "resmlp", "instance", 0.2, 5, seed=9, augment=True)
    a = load_training_dynamics(record_realistic_run(spec, tmp_path / "a.npz"))
    b = load_training_dynamics(record_realistic_run(spec, tmp_path / "b.npz"))
    np.testing.assert_array_equal(a["td"], b["td"])
    np.testing.assert_array_equal(a["label_flip"], b["label_flip"])


def test_harness_scores_every_baseline_and_the_gain(tiny_runs):
    _, paths = tiny_runs

    def oracle(rec):
        return rec.label_flip.astype(float) * 0.9 + 0.05

    table = evaluate_heldout(paths, {"oracle": oracle}, calibrated={"oracle": 0.2})
    assert all(f"{b}_auroc" in table for b in BASELINES)
    assert np.allclose(table["oracle_auroc"], 1.0)
    assert np.all(table["oracle_gain"] > 0)
    assert np.allclose(table["oracle_mean_p"], 0.05 + 0.9 * table["true_rate"])
    assert np.allclose(table["oracle_share05"], table["true_rate"])
    summary = summarize_heldout(table, ["oracle"], by=("group",))
    assert summary.iloc[-1]["group"] == "all" and summary.iloc[-1]["runs"] == len(paths)
    assert calibration_summary(table, "oracle")["share05"] < 1e-9
    assert gain_share(0.95, 0.9) == pytest.approx(0.5) and gain_share(0.99, 0.995) == pytest.approx(-0.5)


def test_margin_features_and_prefix_state_match_the_full_sequence(tiny_runs):
    from interpretdl_noise._paddle import paddle
    from interpretdl_noise.interpreter.bhdf_network import LSTMDetector

    _, paths = tiny_runs
    td = load_training_dynamics(paths[0])["td"]
    prefix, body = margin_features(td, 16)
    assert prefix.shape == (16, 3) and body.shape == (td.shape[0], 16, 3)
    assert np.all((body[:, :, 2] >= -0.5) & (body[:, :, 2] <= 0.5))
    assert np.all((prefix[:, 2] >= 0) & (prefix[:, 2] <= 1))
    paddle.seed(0)
    net = LSTMDetector(input_size=3, grid=16)
    interp = BHDFMarginInterpreter(detector=net, grid=16)
    p = interp.predict_td(td)
    logits = net(paddle.to_tensor(stacked_margin_features(td, 16))).numpy().astype(np.float64)
    np.testing.assert_allclose(p, 1 / (1 + np.exp(logits[:, 0] - logits[:, 1])), atol=1e-5)


def test_margin_detector_trains_saves_and_loads(tiny_runs, tmp_path):
    from interpretdl_noise.detector_training.train import save_detector

    _, paths = tiny_runs
    det, history = train_detector(paths, features="margin", grid=16, epochs=2, seed=0, progress=False)
    assert history["features"] == "margin" and det.lstm.weight_ih_l0.shape == [256, 3]
    out = save_detector(det, tmp_path / "m.pdparams", info={"kind": "margin", "train_prior": 0.2})
    interp = BHDFMarginInterpreter(weights=out, prior_shift=True)
    _, p = interp.interpret(training_dynamics_path=paths[1])
    assert p.shape == (load_training_dynamics(paths[1])["td"].shape[0],) and np.all((p >= 0) & (p <= 1))
    assert 0 < interp.estimated_rate_ < 1
    with pytest.raises(FileNotFoundError, match="margin detector weights"):
        BHDFMarginInterpreter(weights=tmp_path / "missing.pdparams")
    with pytest.raises(ValueError, match="features"):
        train_detector(paths, features="loss", progress=False)


def test_shipped_margin_weights_load_verified_and_rank_flips(tiny_runs, tmp_path, monkeypatch):
    import json
    import shutil

    from interpretdl_noise.interpreter import bhdf_margin, registry

    shipped = bhdf_margin.default_margin_weights_path()
    info = json.loads(shipped.with_suffix(".json").read_text())
    assert info["kind"] == "margin" and info["grid"] == 32 and 0 < info["train_prior"] < 1
    assert "--extra-train-seeds 1" in info["command"] and info["n_train_runs"] == 620
    interp = registry.create_detector("bhdf_margin")
    assert isinstance(interp, BHDFMarginInterpreter) and interp.weights_path == shipped
    _, paths = tiny_runs
    rec = load_training_dynamics(paths[0])
    _, p = interp.interpret(training_dynamics=rec)
    flips = np.asarray(rec["label_flip"]).astype(bool)
    assert p.shape == flips.shape and np.all((p >= 0) & (p <= 1))
    assert p[flips].mean() > p[~flips].mean()
    # a corrupted install fails loudly instead of scoring with damaged weights
    broken = tmp_path / shipped.name
    for src in (shipped, shipped.with_suffix(".json"), shipped.with_name(shipped.name + ".sha256")):
        shutil.copy(src, tmp_path / src.name)
    data = bytearray(broken.read_bytes())
    data[-1] ^= 0xFF
    broken.write_bytes(bytes(data))
    monkeypatch.setattr(bhdf_margin, "default_margin_weights_path", lambda: broken)
    with pytest.raises(ValueError, match="checksum"):
        BHDFMarginInterpreter()


def test_cli_realistic_preset_in_parts(tmp_path, capsys):
    args = ["train-detector", "--preset", "realistic_quick", "--seed", "0", "--corpus-dir", str(tmp_path / "c"),
            "--out", str(tmp_path / "w.pdparams"), "--quiet", "--max-runs", "2"]
    assert main(args) == 0
    assert "corpus incomplete" in capsys.readouterr().out
    assert len(list((tmp_path / "c" / "train").glob("*.npz"))) == 2
    with pytest.raises(SystemExit):
        main(["train-detector", "--preset", "realistic_quick", "--out", str(tmp_path / "w.pdparams")])
    with pytest.raises(SystemExit):
        main(["train-detector", "--preset", "quick", "--part", "1/2", "--out", str(tmp_path / "w.pdparams")])


def test_extra_training_seeds_add_a_training_folder(tmp_path, capsys):
    from interpretdl_noise.detector_training.train_realistic import record_realistic_part

    status = record_realistic_part("realistic_quick", tmp_path / "c", seed=0, max_runs=0, extra_train_seeds=(1,),
                                   progress=False)
    assert list(status) == ["train", "holdout", "train-seed1"]
    assert status["train-seed1"] == {"planned": 12, "finished": 0} and status["holdout"]["planned"] == 4
    assert realistic_plan("realistic_quick", "train", seed=1) != realistic_plan("realistic_quick", "train", seed=0)
    with pytest.raises(ValueError, match="extra_train_seeds"):
        record_realistic_part("realistic_quick", tmp_path / "c", seed=0, max_runs=0, extra_train_seeds=(0,))
    # one new run goes to the first split that misses runs; the extra folder fills after train and holdout
    out = str(tmp_path / "w.pdparams")
    assert main(["train-detector", "--preset", "realistic_quick", "--corpus-dir", str(tmp_path / "c"), "--out", out,
                 "--quiet", "--max-runs", "1", "--extra-train-seeds", "1"]) == 0
    assert "train-seed1 0/12" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["train-detector", "--preset", "realistic_quick", "--out", out, "--extra-train-seeds", "1,1"])
    with pytest.raises(SystemExit, match="realistic presets only"):
        main(["train-detector", "--preset", "quick", "--out", out, "--extra-train-seeds", "1"])


def test_a_subsampled_imbalanced_run_counts_as_finished(tmp_path):
    from interpretdl_noise.detector_training.realistic import _finished

    spec = RealisticRunSpec("iris", "mlp", "uniform", 0.1, 5, seed=1, n_samples=120, imbalance=3.0)
    path = record_realistic_run(spec, tmp_path / "run.npz")
    meta = load_training_dynamics(path)["meta"]
    assert meta["subset"] == 120 and meta["n_samples"] < 120        # the imbalance dropped samples
    assert _finished(path, spec)
    assert not _finished(path, RealisticRunSpec("iris", "mlp", "uniform", 0.1, 5, seed=1, n_samples=110,
                                                imbalance=3.0))
