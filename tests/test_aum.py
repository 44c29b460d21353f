"""AUM: parity with the ``aum`` package, streaming bookkeeping, bad input, threshold samples, detector, callback."""
import json
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np
import paddle
import pandas as pd
import pytest
from conftest import REPO, make_mlp, run_notebook

from interpretdl_noise import (
    AUMCalculator,
    AUMCallback,
    AUMInterpreter,
    AUMRecord,
    DatasetWithIndex,
    ThresholdSamplesDataset,
    TrainingDynamics,
    aum_cutoff,
    combine_threshold_runs,
    detection_metrics,
    flag_below_cutoff,
    run_threshold_procedure,
    threshold_sample_indices,
)
from interpretdl_noise.data import ArrayDataset
from interpretdl_noise.interpreter.aum import margins_over_epochs, probability_margins
from interpretdl_noise.interpreter.aum_threshold import assign_threshold_labels

FIXTURES = REPO / "tests" / "fixtures" / "aum"
CASES = sorted(p.name for p in FIXTURES.iterdir() if p.is_dir())
FIELDS = ["sample_id", "num_measurements", "target_logit", "target_val", "other_logit", "other_val", "margin", "aum"]


def reference_aum(updates):
    """The aum package's algorithm, written as its plain per-sample loop (numpy margins)."""
    counts, sums, out = {}, {}, []
    for logits, targets, ids in updates:
        for row, t, sid in zip(np.asarray(logits), np.asarray(targets), ids):
            other = np.where(np.arange(row.size) == t, -np.inf, row)
            o = int(other.argmax())
            margin = float(row[t] - other[o])
            counts[sid] = counts.get(sid, 0) + 1
            sums[sid] = sums.get(sid, 0.0) + margin
            out.append(AUMRecord(sid, counts[sid], int(t), float(row[t]), o, float(other[o]), margin,
                                 sums[sid] / counts[sid]))
    return counts, sums, out


def assert_records_equal(ours, theirs):
    assert list(ours) == list(theirs)
    for key in ours:
        a, b = asdict(ours[key]) if not isinstance(ours[key], dict) else ours[key], theirs[key]
        b = asdict(b) if not isinstance(b, dict) else b
        assert list(a) == FIELDS and list(b) == FIELDS
        for f in ("sample_id", "num_measurements", "target_logit", "other_logit"):
            assert a[f] == b[f], (key, f, a[f], b[f])
        np.testing.assert_allclose([a[f] for f in FIELDS[3:]], [b[f] for f in FIELDS[3:]], rtol=1e-12, atol=1e-12)


def assert_csv_equal(ours: Path, theirs: Path):
    a, b = pd.read_csv(ours, dtype={"sample_id": str}), pd.read_csv(theirs, dtype={"sample_id": str})
    assert list(a.columns) == list(b.columns)
    assert a["sample_id"].tolist() == b["sample_id"].tolist()  # same rows in the same order
    for col in a.columns[1:]:
        np.testing.assert_allclose(a[col].to_numpy(float), b[col].to_numpy(float), rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------------------------- parity
@pytest.mark.parametrize("case", CASES)
def test_parity_with_fixture_from_aum_package(case, tmp_path):
    spec = json.loads((FIXTURES / case / "inputs_and_records.json").read_text())
    calc = AUMCalculator(tmp_path, compressed=spec["compressed"])
    for upd in spec["updates"]:
        logits = np.asarray(upd["logits"], dtype=upd["dtype"])
        records = calc.update(logits, np.asarray(upd["targets"]), upd["sample_ids"])
        assert all(isinstance(r, AUMRecord) for r in records.values())
        assert_records_equal(records, {r["sample_id"]: r for r in upd["records"]})
    written = calc.finalize()
    expected = sorted(p.name for p in (FIXTURES / case).glob("*.csv"))
    assert sorted(p.name for p in written.values()) == expected
    for name in expected:
        assert_csv_equal(tmp_path / name, FIXTURES / case / name)


def test_parity_with_live_aum_package(tmp_path):
    """Runs only where ``aum`` and torch are installed (e.g. /work/venv-torch); the fixture covers the rest."""
    torch = pytest.importorskip("torch")
    aum = pytest.importorskip("aum")
    rng = np.random.default_rng(7)
    for kind in ("int", "str"):
        for compressed in (True, False):
            theirs = aum.AUMCalculator(str(tmp_path / f"a_{kind}_{compressed}"), compressed=compressed)
            ours = AUMCalculator(tmp_path / f"b_{kind}_{compressed}", compressed=compressed)
            for _ in range(8):
                b = int(rng.integers(2, 64))
                logits = rng.normal(size=(b, 10)).astype(np.float32)
                targets = rng.integers(0, 10, b)
                ids = rng.integers(0, 80, b).tolist()
                ids = ids if kind == "int" else [f"s{i}" for i in ids]
                expected = theirs.update(torch.tensor(logits), torch.tensor(targets), ids)
                assert_records_equal(ours.update(paddle.to_tensor(logits), targets, ids), expected)
            theirs.finalize()
            ours.finalize()
            for name in os.listdir(tmp_path / f"a_{kind}_{compressed}"):
                assert_csv_equal(tmp_path / f"b_{kind}_{compressed}" / name, tmp_path / f"a_{kind}_{compressed}" / name)


def test_matches_reference_loop_with_lookup_table_and_dict_ids():
    """Small ids use the lookup table; a huge or negative id switches to the dict, keeping all state."""
    rng = np.random.default_rng(3)
    updates = []
    for step in range(12):
        ids = rng.integers(0, 40, 16)
        if step == 6:
            ids[3] = 10**15
        if step == 9:
            ids[0] = -5
        logits = rng.normal(size=(16, 4)).astype(np.float32)
        updates.append((logits, rng.integers(0, 4, 16), ids.tolist()))
    calc = AUMCalculator(compressed=False)
    for logits, targets, ids in updates:
        calc.update(logits, targets, np.asarray(ids))
    counts, sums, records = reference_aum(updates)
    assert calc.counts == counts
    assert calc.sums == pytest.approx(sums, rel=1e-12)
    ours = calc.records
    assert len(ours) == len(records)
    for a, b in zip(ours, records):
        assert_records_equal({0: a}, {0: b})
    ids, aum, _n = calc.aum_array()
    assert ids.tolist() == list(counts)  # first-seen order
    np.testing.assert_allclose(aum, [sums[i] / counts[i] for i in counts])


def test_duplicate_id_in_one_batch_counts_twice_and_keeps_last_record():
    calc = AUMCalculator(compressed=False)
    logits = np.array([[2.0, 0.0, 1.0], [0.0, 3.0, 1.0], [1.0, 0.0, 0.5]], dtype=np.float32)
    out = calc.update(logits, [0, 0, 0], [7, 8, 7])
    assert list(out) == [7, 8]
    assert out[7] == AUMRecord(7, 2, 0, 1.0, 2, 0.5, 0.5, 0.75)
    assert [r.num_measurements for r in calc.records] == [1, 1, 2]
    assert calc.records[0].aum == 1.0


# --------------------------------------------------------------------------------------------- inputs
def test_single_row_batch_and_paddle_inputs():
    logits = np.array([[3.74, 1.2, 2.48]], dtype=np.float32)
    calc = AUMCalculator()
    out = calc.update(logits, np.array([0]), ["s1"])
    assert out["s1"].num_measurements == 1 and out["s1"].other_logit == 2
    assert out["s1"].margin == pytest.approx(1.26, abs=1e-6)
    tensor = paddle.to_tensor(np.array([[4.59, 0.0, 3.44]], dtype=np.float32), stop_gradient=False)
    out = calc.update(tensor * 1.0, paddle.to_tensor([[0]], dtype="int64"), ["s1"])
    assert out["s1"].aum == pytest.approx((1.26 + 1.15) / 2, abs=1e-6)
    ids = AUMCalculator()
    rec = ids.update(paddle.to_tensor(logits), paddle.to_tensor([0]), paddle.to_tensor([5]))
    assert list(rec) == [5] and isinstance(next(iter(rec)), int)
    assert AUMCalculator().update(np.zeros((0, 3), np.float32), [], []) == {}


@pytest.mark.parametrize("logits, targets, ids, match", [
    (np.zeros((3, 4)), [0, 1], [0, 1, 2], "targets has 2 entries but logits have 3"),
    (np.zeros((3, 4)), [0, 1, 2], [0, 1], "sample_ids has 2 entries but logits have 3"),
    (np.array([[0.0, np.nan], [1.0, 2.0]]), [0, 1], [0, 1], "NaN or inf in 1 row"),
    (np.array([[0.0, 1.0], [np.inf, 2.0]]), [0, 1], [0, 1], "NaN or inf"),
    (np.zeros((2, 4)), [0, 4], [0, 1], r"targets must lie in \[0, 4\).*\[4\]"),
    (np.zeros((2, 4)), [-1, 0], [0, 1], r"targets must lie in \[0, 4\)"),
    (np.zeros((2, 4)), [0.5, 1.0], [0, 1], "integer class indices"),
    (np.zeros((2, 1)), [0, 0], [0, 1], "at least 2 classes"),
    (np.zeros(4), [0], [0], "must be 2-D"),
    (np.zeros((2, 3)), [0, 1], [0, "a"], "all int or all str"),
    (np.zeros((2, 3)), [0, 1], [0.0, 1.0], "all int or all str"),
    (np.zeros((2, 3)), [0, 1], "ab", "not a single string"),
])
def test_bad_input_raises_and_keeps_state(logits, targets, ids, match):
    calc = AUMCalculator()
    calc.update(np.array([[1.0, 0.0, 0.0, 0.0]]), [0], [0])
    before = (calc.counts, calc.sums)
    with pytest.raises(ValueError, match=match):
        calc.update(logits, targets, ids)
    assert (calc.counts, calc.sums) == before


def test_sample_id_type_change_is_refused():
    calc = AUMCalculator()
    calc.update(np.eye(2), [0, 1], [0, 1])
    with pytest.raises(ValueError, match="earlier updates used int ids, this batch has str"):
        calc.update(np.eye(2), [0, 1], ["0", "1"])
    calc = AUMCalculator()
    calc.update(np.eye(2), [0, 1], ["a", "b"])
    with pytest.raises(ValueError, match="earlier updates used str ids, this batch has int"):
        calc.update(np.eye(2), [0, 1], np.array([0, 1]))


# --------------------------------------------------------------------------------------------- finalize
def test_finalize_needs_a_folder_and_writes_nothing_else(tmp_path):
    calc = AUMCalculator()
    calc.update(np.eye(3), [0, 1, 2], [0, 1, 2])
    with pytest.raises(ValueError, match="finalize needs a folder"):
        calc.finalize()
    written = calc.finalize(tmp_path / "new" / "dir")
    assert sorted(p.name for p in (tmp_path / "new" / "dir").iterdir()) == ["aum_values.csv"]
    assert pd.read_csv(written["aum_values"]).columns.tolist() == ["sample_id", "aum"]


def test_finalize_into_unwritable_place_keeps_state(tmp_path, monkeypatch):
    calc = AUMCalculator(tmp_path / "blocker" / "out", compressed=False)
    (tmp_path / "blocker").write_text("a file where a folder should be")
    calc.update(np.array([[2.0, 0.0], [0.0, 1.0]]), [0, 0], ["a", "b"])
    with pytest.raises(OSError, match="AUM state is kept in memory"):
        calc.finalize()
    # a read-only folder: simulated, because root ignores permission bits
    ro = tmp_path / "ro"
    ro.mkdir()
    (ro / "aum_values.csv").write_text("old content\n")

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    with monkeypatch.context() as m:
        m.setattr(os, "replace", refuse)
        with pytest.raises(PermissionError, match="cannot write .*aum_values.csv.*kept in memory"):
            calc.finalize(ro)
    assert (ro / "aum_values.csv").read_text() == "old content\n"  # untouched, no temp files left
    assert sorted(p.name for p in ro.iterdir()) == ["aum_values.csv"]
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        with pytest.raises(PermissionError):
            calc.finalize(locked)
        locked.chmod(0o700)
    calc.finalize(tmp_path / "ok")
    frame = pd.read_csv(tmp_path / "ok" / "aum_values.csv")
    assert frame["sample_id"].tolist() == ["a", "b"] and frame["aum"].tolist() == [2.0, -1.0]
    assert len(pd.read_csv(tmp_path / "ok" / "full_aum_records.csv")) == 2


# --------------------------------------------------------------------------------------------- threshold samples
def test_threshold_sets_are_disjoint_sized_and_seeded():
    a = threshold_sample_indices(1797, 10, 1, seed=0)
    b = threshold_sample_indices(1797, 10, 2, seed=0)
    assert a.size == b.size == 1797 // 11
    assert not set(a) & set(b)
    np.testing.assert_array_equal(a, threshold_sample_indices(1797, 10, 1, seed=0))
    assert not np.array_equal(a, threshold_sample_indices(1797, 10, 1, seed=1))
    with pytest.raises(ValueError, match="set_index"):
        threshold_sample_indices(100, 10, 0)
    with pytest.raises(ValueError, match="too few"):
        threshold_sample_indices(5, 10, 1)
    labels, is_thr = assign_threshold_labels(np.arange(100) % 4, 4, 2, seed=5)
    assert is_thr.sum() == 20 and (labels[is_thr] == 4).all()
    assert (labels[~is_thr] == (np.arange(100) % 4)[~is_thr]).all()


def test_threshold_dataset_relabels_only_threshold_samples():
    x = np.arange(44, dtype=np.float32).reshape(22, 2)
    y = np.arange(22) % 3
    ds = ThresholdSamplesDataset(ArrayDataset(x, y), 3, 1, seed=0)
    assert ds.is_threshold.sum() == 22 // 4 and len(ds) == 22
    for i in range(22):
        xi, yi = ds[i]
        np.testing.assert_array_equal(xi, x[i])
        assert int(yi) == (3 if ds.is_threshold[i] else y[i])


def test_cutoff_reproduces_replication_rule():
    rng = np.random.default_rng(0)
    for n_thr in (1, 7, 50, 100, 101, 250):
        aums = rng.normal(size=400)
        aums[:n_thr] = rng.normal(-1.0, 1.0, n_thr).round(1)  # ties with normal samples too
        aums[n_thr:n_thr + 20] = aums[:min(20, n_thr)].repeat(20)[:20]
        is_thr = np.zeros(400, bool)
        is_thr[:n_thr] = True
        flagged, cutoff = flag_below_cutoff(aums, is_thr)
        # examples/paper_replication/runner.py: AUM_WTR = fraction of threshold AUMs > sample's AUM > 0.01
        wtr = np.array([(aums[is_thr] > a).mean() > 0.01 for a in aums])
        np.testing.assert_array_equal(flagged, wtr & ~is_thr)
        assert cutoff == aum_cutoff(aums[is_thr])


def test_combine_runs_removes_only_if_flagged_in_every_normal_run():
    flagged = np.array([[1, 1, 0, 0, 0, 1], [1, 0, 0, 0, 1, 0]], bool)
    thr = np.array([[0, 0, 0, 1, 1, 0], [0, 0, 1, 0, 0, 1]], bool)
    # sample 0: flagged twice; 1: once of two; 2: thr in run 2, unflagged in 1; 3: thr in 1, unflagged in 2;
    # 4: thr in 1, flagged in 2; 5: flagged in 1, thr in 2
    np.testing.assert_array_equal(combine_threshold_runs(flagged, thr), [1, 0, 0, 0, 1, 1])
    assert not combine_threshold_runs([[0]], [[1]]).any()  # never a normal sample: kept


def test_threshold_procedure_on_digits(digits_small):
    x, _, noisy, flips = digits_small
    result = run_threshold_procedure(lambda c: make_mlp(n_out=c, seed=1), (x, noisy), 10, epochs=12,
                                     batch_size=32, seed=0, progress=False,
                                     optimizer_fn=lambda p: paddle.optimizer.Adam(1e-2, parameters=p))
    assert result.aum.shape == result.is_threshold.shape == result.flagged.shape == (2, 300)
    assert result.is_threshold.sum(axis=1).tolist() == [27, 27]
    assert not (result.is_threshold[0] & result.is_threshold[1]).any()
    assert np.isfinite(result.aum).all() and result.cutoffs.shape == (2,)
    assert result.remove.sum() > 0
    precision, recall = flips[result.remove].mean(), result.remove[flips].mean()
    assert precision > 0.8 and recall > 0.8, (precision, recall)  # 30 flips of 300; measured 27/29 and 27/30
    assert detection_metrics(-result.mean_normal_aum(), flips)["auroc"] > 0.95


# --------------------------------------------------------------------------------------------- detector + callback
def _synthetic_record(rng, n=40, e=5, c=4):
    logits = rng.normal(size=(n, e, c)).astype(np.float32)
    targets = rng.integers(0, c, n)
    from interpretdl_noise import transform_dynamics

    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    td, labels = transform_dynamics(probs, targets)
    return {"td": td, "labels": labels, "logits": logits}, targets


def test_interpreter_logits_equal_calculator_and_probability_fallback():
    rng = np.random.default_rng(0)
    record, targets = _synthetic_record(rng)
    calc = AUMCalculator()
    for epoch in range(record["logits"].shape[1]):
        calc.update(record["logits"][:, epoch], targets, np.arange(40))
    interp = AUMInterpreter()
    order, scores = interp.interpret(training_dynamics=record)
    assert interp.source_ == "logits"
    np.testing.assert_allclose(scores, -calc.aum_array()[1], rtol=1e-6)
    np.testing.assert_array_equal(order, np.argsort(scores, kind="stable"))
    skip = AUMInterpreter(skip_first_epoch=True).interpret(training_dynamics=record)[1]
    np.testing.assert_allclose(skip, -margins_over_epochs(record["logits"], targets)[:, 1:].mean(1), rtol=1e-6)

    no_logits = {k: v for k, v in record.items() if k != "logits"}
    prob = AUMInterpreter()
    prob.interpret(training_dynamics=no_logits)
    assert prob.source_ == "probability"
    td = record["td"].astype(np.float32)
    np.testing.assert_allclose(prob.aum_, (td[:, :, 0] - td[:, :, 1:].max(-1)).mean(1), rtol=1e-6)
    np.testing.assert_allclose(probability_margins(record["td"]), prob.margins_)
    with pytest.raises(ValueError, match="keep_logits=True"):
        AUMInterpreter(source="logits").interpret(training_dynamics=no_logits)
    with pytest.raises(ValueError, match="source must be one of"):
        AUMInterpreter(source="margin")


def test_callback_with_model_fit_matches_recorded_logits(digits_small, tmp_path):
    from paddle.static import InputSpec

    from interpretdl_noise.callbacks import RecordTrainingDynamics

    x, _, noisy, flips = digits_small
    net = make_mlp(seed=2)
    aum_cb = AUMCallback(save_dir=tmp_path / "aum")
    rec = RecordTrainingDynamics(n_samples=300, keep_logits=True)
    model = paddle.Model(net, inputs=[InputSpec([None, 64], "float32", "x")],
                         labels=[InputSpec([None, 1], "int64", "y"), InputSpec([None, 1], "int64", "index")])
    model.prepare(paddle.optimizer.Adam(1e-3, parameters=net.parameters()),
                  loss=aum_cb.wrap_loss(paddle.nn.CrossEntropyLoss()), metrics=[aum_cb.metric, rec.metric])
    model.fit(DatasetWithIndex(ArrayDataset(x, noisy)), epochs=4, batch_size=32, shuffle=True, verbose=0,
              callbacks=[aum_cb, rec])
    ids, aum, counts = aum_cb.calculator.aum_array()
    assert sorted(ids.tolist()) == list(range(300)) and (counts == 4).all()
    path = tmp_path / "td.npz"
    TrainingDynamics(net).save(rec.recorder, label_flip=flips, save_path=path)
    interp = AUMInterpreter()
    _, scores = interp.interpret(training_dynamics_path=path)
    np.testing.assert_allclose(scores[ids], -aum, rtol=1e-5, atol=1e-5)
    saved = pd.read_csv(tmp_path / "aum" / "aum_values.csv")
    assert len(saved) == 300 and saved["aum"].is_monotonic_decreasing

    skip = AUMCallback(skip_first_epoch=True)
    model.prepare(paddle.optimizer.Adam(1e-3, parameters=net.parameters()),
                  loss=skip.wrap_loss(paddle.nn.CrossEntropyLoss()), metrics=[skip.metric])
    model.fit(DatasetWithIndex(ArrayDataset(x, noisy)), epochs=2, batch_size=64, verbose=0, callbacks=[skip])
    assert (skip.calculator.aum_array()[2] == 1).all()


def test_tutorial_notebook_runs_quick():
    nb = run_notebook(REPO / "tutorials" / "aum.ipynb", timeout=300, INTERPRETDL_NOISE_QUICK=1)
    # run_notebook raises on a failing cell; check what the tutorial shows
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    text = "".join(o.get("text", "") for o in outputs)
    assert "max |difference| to AUMInterpreter: 0.0e+00" in text and "source=logits" in text
    assert any("image/png" in o.get("data", {}) for o in outputs)
