"""From scores to decisions: estimate_noise, find_label_issues, suggest_labels, clean and `interpretdl-noise clean`."""
import json

import numpy as np
import pandas as pd
import pytest

import interpretdl_noise as inl
from interpretdl_noise.cli import main
from interpretdl_noise.decisions import class_probabilities
from interpretdl_noise.decisions.issues import parse_cutoff
from interpretdl_noise.decisions.noise import adapt_prior
from interpretdl_noise.interpreter.registry import detector_names


@pytest.fixture(scope="module")
def noisy_run(tmp_path_factory):
    """A real recording: 600 digits, 20 % uniform noise, MLP, 15 epochs, with losses; saved as npz."""
    import paddle

    from interpretdl_noise import (ArrayDataset, DatasetWithIndex, SeededBatchSampler, TrainingDynamics,
                                   inject_label_noise, load_digits_arrays)
    from interpretdl_noise.common.seeding import paddle_seed

    x, y = load_digits_arrays()
    x, y = x[:600], y[:600]
    noisy, flips = inject_label_noise(y, 0.2, seed=3)
    with paddle_seed(0):
        net = paddle.nn.Sequential(paddle.nn.Linear(64, 64), paddle.nn.ReLU(), paddle.nn.Linear(64, 10))
        loader = paddle.io.DataLoader(DatasetWithIndex(ArrayDataset(x, noisy), index_first=True),
                                      batch_sampler=SeededBatchSampler(len(y), 32, seed=0))
        opt = paddle.optimizer.Adam(learning_rate=3e-3, parameters=net.parameters())
        td = TrainingDynamics(net)
        recorder = td.generator(loader, opt, 15, keep_losses=True, progress=False)
    path = tmp_path_factory.mktemp("rec") / "training_dynamics.npz"
    td.save(recorder, label_flip=flips, save_path=path)
    return {"path": path, "rec": inl.Recording.coerce(path), "clean": y, "noisy": noisy, "flips": flips}


def test_class_probabilities_scatters_td_to_class_order(noisy_run):
    rec = noisy_run["rec"]
    p = class_probabilities(rec)
    assert p.shape == (600, 10)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=5e-3)
    # column of the assigned label equals td channel 0, for every sample
    np.testing.assert_allclose(p[np.arange(600), rec.assigned_labels], rec.td[:, :, 0].astype(np.float64).mean(1))
    full = class_probabilities(rec, epochs=3, average=False)
    assert full.shape == (600, 3, 10)
    np.testing.assert_allclose(full.mean(axis=1), class_probabilities(rec, epochs=3))
    # the model recovers most clean labels despite 20 % noise
    assert (p.argmax(1) == noisy_run["clean"]).mean() > 0.85
    with pytest.raises(ValueError, match="epochs"):
        class_probabilities(rec, epochs=99)


def test_class_probabilities_needs_labels(noisy_run):
    with pytest.raises(ValueError, match="recording has no 'labels'"):
        class_probabilities({"td": noisy_run["rec"].td})


@pytest.mark.parametrize("method", ["confident_joint", "mixture", "bhdf_prior"])
def test_estimate_noise_close_to_truth(noisy_run, method):
    est = inl.estimate_noise(noisy_run["path"], method, n_bootstrap=20)
    true = noisy_run["flips"].mean()
    assert est.method == method and est.n_samples == 600
    assert abs(est.rate - true) < 0.08, (method, est.rate, true)
    assert est.interval[0] <= est.rate <= est.interval[1]
    assert est.matrix.shape == (10, 10) and est.per_class.shape == (10,)
    np.testing.assert_allclose(est.matrix.sum(), 1.0, atol=1e-6)
    assert est.n_issues == round(est.rate * 600)
    np.testing.assert_allclose(1 - np.trace(est.matrix), est.rate, atol=2e-3)
    json.dumps(est.to_dict())  # JSON-ready


def test_estimate_noise_auto_and_errors(noisy_run):
    est = inl.estimate_noise(noisy_run["rec"], n_bootstrap=0)
    assert est.method != "auto" and est.interval == (est.rate, est.rate)
    with pytest.raises(ValueError, match="unknown noise estimator"):
        inl.estimate_noise(noisy_run["rec"], "magic")
    with pytest.raises(ValueError, match="threshold="):
        inl.estimate_noise(noisy_run["rec"], "aum_threshold")
    with pytest.raises(ValueError, match="unexpected keyword"):
        inl.estimate_noise(noisy_run["rec"], "confident_joint", detector="aum")
    removed = noisy_run["flips"].copy()
    est = inl.estimate_noise(noisy_run["rec"], "aum_threshold", threshold=removed, n_bootstrap=0)
    assert est.rate == pytest.approx(removed.mean())


def test_adapt_prior_recovers_a_shifted_prior():
    rng = np.random.default_rng(0)
    # calibrated posteriors of a model trained at prior 0.3, applied where the true prior is 0.05
    y = rng.random(20000) < 0.05
    # likelihood ratio p(x|1)/p(x|0) of two unit Gaussians at +-1.5 is exp(3x)
    like = np.exp(3.0 * np.where(y, rng.normal(1.5, 1, y.size), rng.normal(-1.5, 1, y.size)))
    p = 0.3 * like / (0.3 * like + 0.7)
    post, prior = adapt_prior(p, 0.3)
    assert abs(prior - y.mean()) < 0.01
    assert post.mean() == pytest.approx(prior)


def test_parse_cutoff():
    assert parse_cutoff("auto", 10) == ("auto", None)
    assert parse_cutoff(3, 10) == ("count", 3)
    assert parse_cutoff("3", 10) == ("count", 3)
    assert parse_cutoff(0.7, 10) == ("threshold", 0.7)
    assert parse_cutoff("0.7", 10) == ("threshold", 0.7)
    assert parse_cutoff("25%", 10) == ("fraction", 0.25)
    for bad, match in ((11, "out of range"), (-1, "out of range"), ("120%", "out of range"), ("abc", "cutoff must"),
                       (float("nan"), "finite"), (True, "cutoff must"), ([1], "cutoff must")):
        with pytest.raises(ValueError, match=match):
            parse_cutoff(bad, 10)


def test_find_label_issues_cutoffs(noisy_run):
    rec, flips = noisy_run["rec"], noisy_run["flips"]
    scores = inl.interpreter.registry.run_detector("bhdf", rec)
    auto = inl.find_label_issues(rec, "bhdf", scores=scores, per_class=True)
    assert auto.dtype == bool and auto.shape == (600,)
    est = inl.estimate_noise(rec, n_bootstrap=0)
    assert abs(int(auto.sum()) - est.n_issues) <= 10  # per-class rounding
    given = rec.assigned_labels
    for c in range(10):  # each class gets its own estimated count
        assert abs(int(auto[given == c].sum()) - est.per_class_issues[c]) <= 1
    precision = (auto & flips).sum() / auto.sum()
    recall = (auto & flips).sum() / flips.sum()
    assert precision > 0.7 and recall > 0.7
    glob = inl.find_label_issues(rec, "bhdf", scores=scores, estimate=est)
    assert int(glob.sum()) == est.n_issues
    top = inl.find_label_issues(rec, "bhdf", 50, scores=scores)
    assert top.sum() == 50 and scores[top].min() >= scores[~top].max()
    assert inl.find_label_issues(rec, "bhdf", "10%", scores=scores).sum() == 60
    thr = inl.find_label_issues(rec, "bhdf", 0.5, scores=scores)
    np.testing.assert_array_equal(thr, scores >= 0.5)
    with pytest.raises(ValueError, match="out of range"):
        inl.find_label_issues(rec, "bhdf", 1.5)
    with pytest.raises(ValueError, match="out of range"):
        inl.find_label_issues(rec, "bhdf", 601, scores=scores)


@pytest.mark.parametrize("name", [n for n in detector_names() if n != "confident_learning"])
def test_find_label_issues_every_recording_detector(noisy_run, name):
    mask = inl.find_label_issues(noisy_run["rec"], name, cutoff=60)
    assert mask.sum() == 60
    assert (mask & noisy_run["flips"]).sum() > 30  # far better than chance (12 of 60)


def test_find_label_issues_confident_learning_with_raw_data(noisy_run):
    x, _ = inl.load_digits_arrays()
    mask = inl.find_label_issues(noisy_run["rec"], "confident_learning", cutoff=60, x=x[:600])
    assert mask.sum() == 60 and (mask & noisy_run["flips"]).sum() > 30


def test_find_label_issues_detector_that_does_not_apply(noisy_run):
    with pytest.raises(ValueError, match="raw training data"):
        inl.find_label_issues(noisy_run["rec"], "confident_learning")
    rec = noisy_run["rec"].to_dict()
    rec.pop("labels")  # EMA derives missing losses from td, but it cannot group without the given labels
    with pytest.raises(ValueError, match="labels"):
        inl.find_label_issues(rec, "ema")
    with pytest.raises(ValueError, match="unknown detector"):
        inl.find_label_issues(noisy_run["rec"], "nope")


def test_suggest_labels(noisy_run):
    rec, flips, clean = noisy_run["rec"], noisy_run["flips"], noisy_run["clean"]
    plain = inl.suggest_labels(rec)
    assert plain.label.dtype == np.int64 and plain.confidence.shape == (600,)
    assert ((plain.confidence >= 0) & (plain.confidence <= 1)).all()
    s = inl.suggest_labels(rec, flagged=flips)
    assert not (s.label[flips] == rec.assigned_labels[flips]).any()  # flagged never get their given label
    np.testing.assert_array_equal(s.label[~flips], plain.label[~flips])
    assert (s.label[flips] == clean[flips]).mean() > 0.85
    with pytest.raises(ValueError, match="bool array"):
        inl.suggest_labels(rec, flagged=np.zeros(5, bool))


def test_clean_policy_and_result(noisy_run):
    rec, flips, clean = noisy_run["rec"], noisy_run["flips"], noisy_run["clean"]
    res = inl.clean(rec, "bhdf", n_bootstrap=10)
    issues = res.issues
    assert list(issues.columns[:5]) == ["sample_id", "given_label", "suggested_label", "score", "action"]
    assert len(issues) == 600 and issues["sample_id"].is_monotonic_increasing
    assert set(issues["action"]) <= {"keep", "drop", "relabel"}
    relabel = issues["action"] == "relabel"
    assert (issues.loc[relabel, "confidence"] >= res.summary["policy"]["min_confidence"]).all()
    assert (issues.loc[issues["action"] == "drop", "confidence"] < res.summary["policy"]["min_confidence"]).all()
    np.testing.assert_array_equal(res.keep_indices, issues.loc[issues["action"] != "drop", "sample_id"].to_numpy())
    np.testing.assert_array_equal(res.labels[relabel.to_numpy()], issues.loc[relabel, "suggested_label"])
    np.testing.assert_array_equal(res.labels[~relabel.to_numpy()], issues.loc[~relabel, "given_label"])
    # cleaning helps: the kept labels are much cleaner than the given ones
    kept = res.keep_indices
    assert (res.labels[kept] != clean[kept]).mean() < flips.mean() / 2
    s = res.summary
    assert s["counts"]["keep"] + s["counts"]["drop"] + s["counts"]["relabel"] == 600
    assert s["method"] == "bhdf" and s["cutoff"] == "auto" and len(s["per_class_noise_rate"]) == 10
    assert s["noise_rate_interval"][0] <= s["estimated_noise_rate"] <= s["noise_rate_interval"][1]
    json.dumps(s)
    strict = inl.clean(rec, "bhdf", relabel=False, n_bootstrap=0)
    assert strict.summary["counts"]["relabel"] == 0
    assert strict.summary["counts"]["drop"] == s["counts"]["drop"] + s["counts"]["relabel"]


def test_clean_decisions_override_and_errors(noisy_run, tmp_path):
    rec = noisy_run["rec"]
    decisions = pd.DataFrame({"sample_id": [0, 1, 2], "action": ["drop", "relabel", "keep"],
                              "new_label": ["", "7", ""]})
    res = inl.clean(rec, "small_loss", decisions=decisions, n_bootstrap=0)
    by_id = res.issues.set_index("sample_id")
    assert list(by_id.loc[[0, 1, 2], "action"]) == ["drop", "relabel", "keep"]
    assert res.labels[1] == 7 and res.labels[2] == rec.assigned_labels[2]
    assert 0 not in res.keep_indices and 1 in res.keep_indices
    assert res.summary["decisions_overridden"] == 3
    path = tmp_path / "decisions.csv"
    for frame, match in (({"sample_id": [9999], "action": ["drop"], "new_label": [""]}, "not in the recording"),
                         ({"sample_id": [1], "action": ["relabel"], "new_label": ["10"]}, "out of range"),
                         ({"sample_id": [1], "action": ["relabel"], "new_label": [""]}, "not an integer"),
                         ({"sample_id": [1], "action": ["delete"], "new_label": [""]}, "unknown action"),
                         ({"sample_id": [1], "action": ["keep"], "new_label": ["3"]}, "must be empty"),
                         ({"sample_id": [1, 1], "action": ["keep", "drop"], "new_label": ["", ""]}, "repeats"),
                         ({"sample_id": [1], "action": ["keep"]}, "lacks column")):
        pd.DataFrame(frame).to_csv(path, index=False)
        with pytest.raises(ValueError, match=match):
            inl.clean(rec, "small_loss", decisions=path, n_bootstrap=0)
    with pytest.raises(ValueError, match="min_confidence"):
        inl.clean(rec, "small_loss", min_confidence=2.0)


def test_cli_clean_writes_outputs_and_refuses_overwrite(noisy_run, tmp_path, capsys):
    out = tmp_path / "cleaned"
    decisions = tmp_path / "decisions.csv"
    pd.DataFrame({"sample_id": [5], "action": ["relabel"], "new_label": [3]}).to_csv(decisions, index=False)
    assert main(["clean", str(noisy_run["path"]), "--method", "bhdf", "--out", str(out),
                 "--decisions", str(decisions)]) == 0
    printed = capsys.readouterr().out
    assert "estimated noise" in printed and "true rate 20.0 %" in printed
    issues = pd.read_csv(out / "issues.csv")
    assert len(issues) == 600 and issues.loc[issues.sample_id == 5, "action"].item() == "relabel"
    assert issues.loc[issues.sample_id == 5, "new_label"].item() == 3  # the reviewer's label reaches the file
    kept_as_is = issues.action == "keep"
    assert (issues.new_label[kept_as_is] == issues.given_label[kept_as_is]).all()
    summary = json.loads((out / "summary.json").read_text())
    keep = pd.read_csv(out / "keep_indices.csv")["sample_id"].to_numpy()
    assert summary["counts"]["drop"] == 600 - keep.size
    assert summary["method"] == "bhdf" and 0 < summary["estimated_noise_rate"] < 0.4
    # --out must not overwrite the input recording
    victim = tmp_path / "victim"
    victim.mkdir()
    rec_copy = victim / "summary.json"
    rec_copy.write_bytes(noisy_run["path"].read_bytes())
    before = rec_copy.read_bytes()
    assert main(["clean", str(rec_copy), "--method", "small_loss", "--out", str(victim)]) == 2
    assert "refusing" in capsys.readouterr().err and rec_copy.read_bytes() == before
    assert main(["clean", str(noisy_run["path"]), "--method", "small_loss", "--out", str(out),
                 "--decisions", str(decisions)]) == 0  # an existing output folder is rewritten
    reviewed = tmp_path / "issues.csv"
    reviewed.write_bytes(decisions.read_bytes())
    assert main(["clean", str(noisy_run["path"]), "--method", "small_loss", "--out", str(tmp_path),
                 "--decisions", str(reviewed)]) == 2  # would overwrite the decisions file
    assert "it is the input" in capsys.readouterr().err and reviewed.read_bytes() == decisions.read_bytes()
    assert main(["clean", str(noisy_run["path"]), "--method", "small_loss", "--out", str(noisy_run["path"])]) == 2
    assert main(["clean", str(noisy_run["path"]), "--method", "bhdf", "--cutoff", "2.0", "--out", str(out)]) == 2
    assert "out of range" in capsys.readouterr().err


def test_class_dependent_noise():
    y = np.repeat(np.arange(5), 200)
    noisy, flips = inl.inject_label_noise(y, 0.2, kind="class_dependent", seed=1)
    assert flips.sum() == 200 and (noisy[flips] != y[flips]).all()
    rates = np.array([flips[y == c].mean() for c in range(5)])
    assert rates.max() - rates.min() > 0.1  # rates differ per class
    assert (rates <= 0.9).all()
    # each class has its own (non-uniform, non-permutation) target distribution
    t = np.zeros((5, 5))
    np.add.at(t, (y[flips], noisy[flips]), 1)
    assert (np.count_nonzero(t, axis=1) >= 2).any()
    again, _ = inl.inject_label_noise(y, 0.2, kind="class_dependent", seed=1)
    np.testing.assert_array_equal(noisy, again)
    binary = np.repeat([0, 1], 100)
    noisy2, flips2 = inl.inject_label_noise(binary, 0.3, kind="class_dependent", seed=0)
    assert flips2.sum() == 60 and (noisy2[flips2] == 1 - binary[flips2]).all()


def test_memorised_run_warns(noisy_run):
    rec = noisy_run["rec"].to_dict()
    td = np.full(rec["td"].shape, 0.05 / 9, dtype=np.float16)
    td[:, :, 0] = 0.95  # every given label fitted from the start: in-sample probabilities hide the noise
    rec["td"] = td
    with pytest.warns(UserWarning, match="memorised"):
        est = inl.estimate_noise(rec, "confident_joint", n_bootstrap=0)
    assert est.details["final_fit"] == 1.0 and est.rate < 0.01


def _memorising_recording(n=300, n_classes=3, n_epochs=12, rate=0.2, seed=0):
    """Synthetic dynamics with an early-learning phase: for the first half of the epochs the model predicts the
    true class of every sample (so the wrong labels show), then it memorises them (fits every given label)."""
    rng = np.random.default_rng(seed)
    true = rng.integers(0, n_classes, size=n)
    flips = rng.random(n) < rate
    given = np.where(flips, (true + rng.integers(1, n_classes, size=n)) % n_classes, true)
    labels = np.stack([np.concatenate([[g], [c for c in range(n_classes) if c != g]]) for g in given])
    td = np.full((n, n_epochs, n_classes), 0.1 / (n_classes - 1))
    td[:, :, 0] = 0.9
    early = n_epochs // 2
    for i in np.flatnonzero(flips):  # before memorisation: the true class wins, the given label does not
        td[i, :early, :] = 0.1 / (n_classes - 1)
        td[i, :early, int(np.flatnonzero(labels[i] == true[i])[0])] = 0.9
    return {"td": td.astype(np.float16), "labels": labels, "label_flip": flips}, flips


def test_early_learning_is_the_default_and_accurate_on_a_generalising_run(noisy_run):
    est = inl.estimate_noise(noisy_run["rec"], n_bootstrap=30)
    assert est.method == "early_learning" == inl.decisions.noise.DEFAULT_ESTIMATOR
    assert est.details["identifiable"] and not est.details["memorised"] and est.details["window"] == "all"
    true = noisy_run["flips"].mean()
    assert abs(est.rate - true) < 0.08, (est.rate, true)
    # the window-spanning bootstrap is never narrower than the span of the alternative windows' estimates
    assert est.interval[0] < est.rate < est.interval[1]
    assert set(est.details["window_rates"]) == {"all", "first half", "second half"}
    cj = inl.estimate_noise(noisy_run["rec"], "confident_joint", n_bootstrap=0)
    assert est.rate == pytest.approx(cj.rate)  # a run that does not memorise: all epochs, as confident_joint
    np.testing.assert_allclose(est.matrix.sum(), 1.0, atol=1e-6)
    assert est.n_issues == round(est.rate * 600)
    json.dumps(est.to_dict())


def test_early_learning_reads_the_epochs_before_memorisation_and_flags_them():
    rec, flips = _memorising_recording()
    curve = inl.decisions.noise.fit_curve(rec)
    assert curve.shape == (12,) and curve[-1] == 1.0 and curve[0] == pytest.approx(1 - flips.mean())
    with pytest.warns(UserWarning, match="memorised"):
        cj = inl.estimate_noise(rec, "confident_joint", n_bootstrap=0)
    assert cj.rate < 0.02  # all epochs: the memorised wrong labels hide
    with pytest.warns(UserWarning, match="not identifiable"):
        est = inl.estimate_noise(rec, n_bootstrap=20)
    assert est.details["memorised"] and not est.details["identifiable"]
    assert est.details["window"] == "first half" and est.details["epochs"] == [0, 5]
    assert abs(est.rate - flips.mean()) < 0.02, (est.rate, flips.mean())
    # honest interval: it spans every candidate window, down to the memorised all-epochs estimate
    rates = est.details["window_rates"].values()
    assert est.interval[0] <= min(rates) and est.interval[1] >= max(rates)
    assert est.interval[1] - est.interval[0] > 0.1


def test_early_learning_windows():
    windows = inl.decisions.noise.early_learning_windows
    w = windows(10, memorised=False)
    assert list(w) == ["all", "first half", "second half"]
    np.testing.assert_array_equal(w["second half"], np.arange(5, 10))
    w = windows(10, memorised=True)
    assert list(w) == ["first half", "first quarter", "all"]
    np.testing.assert_array_equal(w["first quarter"], [0, 1])
    for memorised in (False, True):  # a one-epoch run still has a non-empty window of each kind
        assert all(v.size == 1 for v in windows(1, memorised).values())


def test_early_learning_accepts_given_epochs(noisy_run):
    rec = noisy_run["rec"]
    est = inl.estimate_noise(rec, epochs="late", n_bootstrap=0)
    late = inl.estimate_noise(rec, "confident_joint", epochs="late", n_bootstrap=0)
    assert est.method == "early_learning" and est.details["window"] == "given epochs"
    assert est.rate == pytest.approx(late.rate) and est.details["epochs"] == [7, 14]
    assert len(est.details["window_rates"]) == 4
    with pytest.raises(ValueError, match="epochs"):
        inl.estimate_noise(rec, epochs=99)
