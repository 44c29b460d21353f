"""EMA loss dynamics (port of Datumaro's LossDynamicsAnalyzer): EMA, frame layout, parity, sources, plots."""
import importlib.util
import json

import numpy as np
import pandas as pd
import pytest
from conftest import REPO, make_mlp, run_notebook

from interpretdl_noise import (
    DynamicsRecorder,
    LossDynamicsAnalyzer,
    LossDynamicsInterpreter,
    NoisyLabelCandidate,
    save_training_dynamics,
)
from interpretdl_noise.interpreter.loss_dynamics import ema_loss_dynamics
from interpretdl_noise.interpreter.loss_dynamics_io import read_datumaro_export

FIXTURES = REPO / "tests" / "fixtures" / "loss_dynamics"
NOTEBOOK = REPO / "tutorials" / "loss_dynamics_ema.ipynb"


def _load_make_fixture():
    spec = importlib.util.spec_from_file_location("ld_make_fixture", FIXTURES / "make_fixture.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MAKE = _load_make_fixture()
CASES, EXPECTED = MAKE.load_cases()
HAVE_DATUMARO = importlib.util.find_spec("datumaro") is not None


def _reference(name, source, alpha, tracking):
    """The real analyzer's outputs: computed live when datumaro is importable, else the committed fixture."""
    if HAVE_DATUMARO:
        return MAKE.analyzer_outputs(MAKE.load_source(source, EXPECTED["inputs"]), alpha, tracking)
    return EXPECTED["cases"][name]


def _ours(source, alpha, tracking):
    if source.startswith("export_"):
        return LossDynamicsAnalyzer(FIXTURES / source, alpha=alpha, tracking_loss_type=tracking)
    spec = EXPECTED["inputs"][source]
    ids = [str(i) for i in range(len(spec["losses"]))]
    return LossDynamicsAnalyzer.from_losses(dict(zip(ids, spec["losses"])), dict(zip(ids, spec["labels"])), alpha=alpha)


def _arr(rows):
    return np.array([[np.nan if v is None else v for v in row] for row in rows], dtype=float)


def _python_ema(seq, alpha):
    out, ema = [], 0.0
    for loss in seq:
        ema = (1 - alpha) * ema + alpha * loss
        out.append(ema)
    return out


# ---------------------------------------------------------------------------------------------- EMA core
def test_ema_matches_hand_recurrence_and_first_step():
    losses = np.array([[0.70703125, 0.5, 0.25], [2.0, 1.0, 4.0]])
    ema = ema_loss_dynamics(losses, alpha=0.001)
    assert ema[0, 0] == pytest.approx(0.001 * 0.70703125, rel=1e-12)          # ema(-1) = 0
    for row, seq in zip(ema, losses):
        np.testing.assert_allclose(row, _python_ema(seq, 0.001), rtol=1e-12)
    np.testing.assert_allclose(ema_loss_dynamics(losses, alpha=0.5)[1], [1.0, 1.0, 2.5])


def test_ema_is_bit_identical_to_pandas_ewm_as_datumaro_calls_it():
    rng = np.random.default_rng(0)
    losses = rng.gamma(2.0, 0.5, size=(7, 40))
    for alpha in (0.001, 0.013, 0.3, 1.0):
        ours = ema_loss_dynamics(losses, alpha)
        for row, seq in zip(ours, losses):
            ref = pd.Series([0.0, *seq]).ewm(alpha=alpha, adjust=False).mean().to_numpy()[1:]
            np.testing.assert_array_equal(row, ref)


def test_ema_gaps_are_skipped_like_missing_iterations():
    """NaN = no record: the EMA carries over without decay (pandas ignore_na=True), output NaN there."""
    row = np.array([1.0, np.nan, np.nan, 3.0, np.nan, 2.0])
    ema = ema_loss_dynamics(row[None], alpha=0.2)[0]
    assert np.isnan(ema[[1, 2, 4]]).all()
    np.testing.assert_allclose(ema[[0, 3, 5]], _python_ema([1.0, 3.0, 2.0], 0.2), rtol=1e-12)
    ref = pd.Series([0.0, *row]).ewm(alpha=0.2, adjust=False, ignore_na=True).mean().to_numpy()[1:]
    np.testing.assert_allclose(ema[~np.isnan(row)], ref[~np.isnan(row)], rtol=1e-12)
    with pytest.raises(ValueError, match="inf"):
        ema_loss_dynamics([[1.0, np.inf, 2.0]])
    with pytest.raises(ValueError, match="non-empty 2-D"):
        ema_loss_dynamics(np.ones(3))


def test_blocked_computation_matches_loop_across_blocks(monkeypatch):
    """Several row blocks, some with gaps and some without, float32 input, and a row permutation."""
    from interpretdl_noise.interpreter import loss_dynamics as ld

    monkeypatch.setattr(ld, "BLOCK_ROWS", 4)
    monkeypatch.setattr(ld, "STEP_CHUNK", 3)
    rng = np.random.default_rng(1)
    losses = rng.gamma(2.0, 0.5, size=(11, 9)).astype(np.float32)
    losses[9, [2, 3]] = np.nan                     # gaps only in the last block
    ema = ema_loss_dynamics(losses, 0.3)
    for row, seq in zip(ema, losses.astype(np.float64)):
        keep = ~np.isnan(seq)
        np.testing.assert_allclose(row[keep], _python_ema(seq[keep], 0.3), rtol=1e-12)
        assert np.isnan(row[~keep]).all()
    order = rng.permutation(11)
    out = np.empty((9, 11))
    last = ld._ema_rows(losses, 0.3, out=out, rows=order)
    np.testing.assert_array_equal(out.T, ema[order])
    np.testing.assert_array_equal(last, [row[~np.isnan(row)][-1] for row in ema[order]])
    np.testing.assert_array_equal(ld._ema_rows(losses, 0.3), [row[~np.isnan(row)][-1] for row in ema])


@pytest.mark.parametrize("bad", [0, -0.1, 1.5, True, "0.1", np.nan])
def test_bad_alpha(bad):
    with pytest.raises(ValueError, match="alpha"):
        ema_loss_dynamics(np.ones((2, 2)), alpha=bad)
    with pytest.raises(ValueError, match="alpha"):
        LossDynamicsAnalyzer.from_losses({0: [1.0]}, {0: 0}, alpha=bad)


# ---------------------------------------------------------------------------------------------- Datumaro parity
@pytest.mark.parametrize("name,source,alpha,tracking", CASES, ids=[c[0] for c in CASES])
def test_parity_with_datumaro_analyzer(name, source, alpha, tracking):
    ref = _reference(name, source, alpha, tracking)
    an = _ours(source, alpha, tracking)
    df = an.ema_dataframe
    assert list(df.index.names) == ref["index_names"] == ["item_id", "item_subset", "ann_id", "ann_label"]
    assert list(df.columns) == ref["columns"] and df.columns[0] == "last_value"
    ours_index = [list(t) for t in df.index]
    if name == "ties":
        # Datumaro's tie order follows numpy's (unstable) quicksort; ours keeps source order. Same rows, same values.
        order = [ours_index.index(t) for t in ref["index"]]
        np.testing.assert_array_equal(df.to_numpy()[order], _arr(ref["data"]))
        last = df["last_value"].to_numpy()
        ids = [int(i) for i in df.index.get_level_values("item_id")]
        assert all(ids[i] < ids[i + 1] for i in range(len(ids) - 1) if last[i] == last[i + 1])
    else:
        assert ours_index == ref["index"]
        np.testing.assert_array_equal(df.to_numpy(), _arr(ref["data"]))             # bit-identical
        assert [[c.id, c.subset, c.ann_id, c.label_id, c.metric] for c in an.get_top_k_cands(len(df))] == ref["top_k"]
    np.testing.assert_array_equal(an.mean_loss_dyns.to_numpy(), np.array(ref["mean_loss_dyns"], dtype=float))
    per_id = an.mean_loss_dyns_per_label_id
    assert [str(k) for k in per_id] == list(ref["mean_loss_dyns_per_label"])
    for key, series in per_id.items():
        np.testing.assert_allclose(series.to_numpy(), np.array(ref["mean_loss_dyns_per_label"][str(key)], dtype=float),
                                   rtol=1e-12, atol=1e-15)
    # Datumaro 1.10.0's public per-label property raises; ours works
    assert ref["mean_loss_dyns_per_label_error"] == "TypeError: unhashable type: 'Category'"
    assert len(an.mean_loss_dyns_per_label) == len(per_id)


def test_fixture_was_made_by_datumaro():
    assert EXPECTED["generated_by"]["datumaro"] == "1.10.0"
    assert (FIXTURES / "export_cls" / "annotations" / "train.json").is_file()


# ---------------------------------------------------------------------------------------------- frame and candidates
def test_frame_layout_per_label_means_and_ragged_iters():
    losses = {"a": [1.0, 2.0, 3.0], "b": [4.0, 0.5], "c": [0.2, 0.2, 0.2], "d": [9.0]}
    iters = {"a": [0, 1, 2], "b": [1, 5], "c": [0, 2, 5], "d": [3]}
    labels = {"a": 0, "b": 1, "c": 0, "d": 1}
    an = LossDynamicsAnalyzer.from_losses(losses, labels, alpha=0.5, iters=iters, label_names=["cat", "dog"])
    df = an.ema_dataframe
    assert list(df.columns) == ["last_value", 0, 1, 2, 3, 5]
    assert list(df.index.names) == ["item_id", "item_subset", "ann_id", "ann_label"]
    assert df["last_value"].is_monotonic_increasing
    assert df.loc[("b", "train", 0, 1)].tolist()[1:] == pytest.approx([np.nan, 2.0, np.nan, np.nan, 1.25],
                                                                      nan_ok=True)
    assert df.loc[("d", "train", 0, 1), "last_value"] == 4.5
    labels_of_rows = df.index.get_level_values("ann_label")
    expect = {name: df[labels_of_rows == k].mean(axis=0) for k, name in enumerate(["cat", "dog"])}
    got = an.mean_loss_dyns_per_label
    assert list(got) == ["cat", "dog"]
    for name in got:
        pd.testing.assert_series_equal(got[name], expect[name], check_names=False)
    cat_last = np.mean([df.loc[(k, "train", 0, 0), "last_value"] for k in ("a", "c")])
    assert got["cat"]["last_value"] == pytest.approx(cat_last)
    np.testing.assert_allclose(an.mean_loss_dyns.to_numpy(), np.nanmean(df.to_numpy(), axis=0))
    assert set(an.mean_loss_dyns_per_label_id) == {0, 1}


def test_top_k_descending_with_stable_ties_and_bounds():
    losses = {i: [1.0, v] for i, v in enumerate([2.0, 5.0, 2.0, 5.0, 0.0])}
    an = LossDynamicsAnalyzer.from_losses(losses, {i: i % 2 for i in losses}, alpha=0.5)
    assert [c.id for c in an.get_top_k_cands(5)] == [1, 3, 0, 2, 4]
    assert [c.id for c in an.get_top_k_cands(1)] == [1]
    assert [i for i, *_ in an.ema_dataframe.index] == [4, 0, 2, 1, 3]       # ascending, ties in source order
    cands = an.get_top_k_cands(3)
    assert [c.metric for c in cands] == sorted((c.metric for c in cands), reverse=True)
    for bad in (0, -1, 6, 1.5, True, None):
        with pytest.raises(ValueError, match="top_k"):
            an.get_top_k_cands(bad)


def test_candidate_equality_and_order_semantics():
    a = NoisyLabelCandidate("x", "train", 0, 1, 0.5)
    same = NoisyLabelCandidate("x", "train", 0, 7, 0.9)         # label and metric ignored by ==
    other = NoisyLabelCandidate("x", "train", 1, 1, 0.5)
    assert a == same and hash(a) == hash(same) and a != other
    assert len({a, same, other}) == 2
    assert a < same and not other < a and sorted([same, a]) == [a, same]   # order by metric only
    assert a != "x"


# ---------------------------------------------------------------------------------------------- bad input
def test_from_losses_bad_input():
    with pytest.raises(ValueError, match="empty"):
        LossDynamicsAnalyzer.from_losses({}, {})
    with pytest.raises(ValueError, match="non-empty"):
        LossDynamicsAnalyzer.from_losses({0: []}, {0: 0})
    with pytest.raises(ValueError, match="ambiguous"):
        LossDynamicsAnalyzer.from_losses({0: [1.0, 2.0], 1: [1.0]}, {0: 0, 1: 0})
    with pytest.raises(ValueError, match="NaN"):
        LossDynamicsAnalyzer.from_losses({0: [1.0, float("nan")]}, {0: 0})
    with pytest.raises(ValueError, match="NaN"):
        LossDynamicsAnalyzer.from_losses(np.array([[1.0, np.inf]]), [0])
    with pytest.raises(ValueError, match="no entry"):
        LossDynamicsAnalyzer.from_losses({0: [1.0], 1: [2.0]}, {0: 0})
    with pytest.raises(ValueError, match="strictly increasing"):
        LossDynamicsAnalyzer.from_losses({0: [1.0, 2.0]}, {0: 0}, iters={0: [3, 3]})
    with pytest.raises(ValueError, match="2 losses but 3 iters"):
        LossDynamicsAnalyzer.from_losses({0: [1.0, 2.0]}, {0: 0}, iters=[0, 1, 2])
    with pytest.raises(ValueError, match="label id"):
        LossDynamicsAnalyzer.from_losses({0: [1.0]}, {0: -1})
    with pytest.raises(ValueError, match="has no name"):
        LossDynamicsAnalyzer.from_losses({0: [1.0]}, {0: 2}, label_names=["a", "b"])
    an = LossDynamicsAnalyzer.from_losses(np.ones((3, 4)), [0, 1, 0], iters=[0, 10, 20, 30])
    assert list(an.ema_dataframe.columns) == ["last_value", 0, 10, 20, 30]


# ---------------------------------------------------------------------------------------------- sources
def _recorder(n=6, epochs=4, seed=0):
    rng = np.random.default_rng(seed)
    rec = DynamicsRecorder(n, epochs, 3, keep_losses=True)
    targets = np.arange(n) % 3
    for e in range(epochs):
        probs = rng.dirichlet(np.ones(3), size=n)
        rec.update(e, np.arange(n), probs, targets=targets, losses=rng.gamma(2.0, 0.5, size=n))
    return rec


def test_recorder_sources_gaps_and_errors():
    rec = _recorder()
    an = LossDynamicsAnalyzer(rec, alpha=0.1)
    np.testing.assert_allclose(an.scores, ema_loss_dynamics(rec.losses, 0.1)[:, -1], rtol=1e-12)
    assert list(an.ema_dataframe.columns) == ["last_value", 0, 1, 2, 3]
    assert set(an.ema_dataframe.index.get_level_values("item_id")) == set(range(6))

    class Holder:                               # TrainingDynamics / RecordTrainingDynamics expose .recorder
        recorder = rec
    np.testing.assert_array_equal(LossDynamicsAnalyzer(Holder(), alpha=0.1).scores, an.scores)

    gappy = _recorder()
    gappy.seen[2, 1] = False                    # epoch 1 of sample 2 not recorded -> skipped, not an error
    gappy.losses[2, 1] = np.nan
    g = LossDynamicsAnalyzer(gappy, alpha=0.1)
    assert np.isnan(g.ema_dataframe.loc[(2, "train", 0, 2), 1])
    assert g.scores[2] == pytest.approx(_python_ema(gappy.losses[2, [0, 2, 3]], 0.1)[-1])

    broken = _recorder()
    broken.losses[1, 2] = np.nan                # recorded but NaN: a real NaN loss
    with pytest.raises(ValueError, match="NaN or inf"):
        LossDynamicsAnalyzer(broken)
    with pytest.raises(ValueError, match="keep_losses=True"):
        LossDynamicsAnalyzer(DynamicsRecorder(3, 2, 2))
    with pytest.raises(ValueError, match="only to detection"):
        LossDynamicsAnalyzer(rec, tracking_loss_type="cls")
    with pytest.raises(ValueError, match="unsupported source"):
        LossDynamicsAnalyzer(42)


def test_npz_record_and_interpreter(tmp_path):
    rec = _recorder(n=8, epochs=5)
    labels = np.stack([np.roll(np.arange(3), -t) for t in rec.targets]).astype(np.int16)
    td = rec.probs[:, :, :].astype(np.float16)
    path = save_training_dynamics(tmp_path / "td.npz", td, labels, label_flip=np.arange(8) % 4 == 0,
                                  losses=rec.losses)
    an = LossDynamicsAnalyzer(path, alpha=0.05)
    np.testing.assert_allclose(an.scores, ema_loss_dynamics(rec.losses, 0.05)[:, -1], rtol=1e-12)
    interp = LossDynamicsInterpreter(alpha=0.05)
    order, scores = interp.interpret(training_dynamics_path=path)
    np.testing.assert_array_equal(scores, an.scores)
    np.testing.assert_array_equal(order, np.argsort(scores, kind="stable"))
    assert set(interp.evaluate()) >= {"auroc", "ap"}
    # without recorded losses the interpreter scores the cross-entropy derived from td (and says so);
    # the analyzer, a loss source of its own, still asks for recorded losses
    derived = LossDynamicsInterpreter(alpha=0.05)
    _, derived_scores = derived.interpret(training_dynamics={"td": td, "labels": labels})
    assert derived.losses_derived_ and not interp.losses_derived_
    np.testing.assert_allclose(derived_scores, ema_loss_dynamics(-np.log(td[:, :, 0].astype(np.float64)),
                                                                 0.05)[:, -1], rtol=1e-12)
    with pytest.raises(ValueError, match="no 'labels'"):
        LossDynamicsInterpreter().interpret(training_dynamics={"td": td, "losses": rec.losses})
    with pytest.raises(ValueError, match="losses"):
        LossDynamicsAnalyzer({"td": td, "labels": labels})


def test_trained_recording_ranks_flipped_digits(digits_small):
    """A real Paddle recording (keep_losses=True) -> EMA ranks the injected flips high."""
    import paddle

    from interpretdl_noise import ArrayDataset, DatasetWithIndex, TrainingDynamics
    from interpretdl_noise.common.metrics import detection_metrics

    x, _, noisy, flips = digits_small
    net = make_mlp()
    loader = paddle.io.DataLoader(DatasetWithIndex(ArrayDataset(x, noisy), index_first=True), batch_size=64,
                                  shuffle=False)
    opt = paddle.optimizer.Adam(learning_rate=1e-2, parameters=net.parameters())
    rec = TrainingDynamics(net).generator(loader, opt, epochs=8, keep_losses=True, progress=False)
    an = LossDynamicsAnalyzer(rec, alpha=0.1)
    assert detection_metrics(an.scores, flips)["auroc"] > 0.8
    top = an.get_top_k_cands(int(flips.sum()))
    assert np.mean([flips[c.id] for c in top]) > 0.5
    assert all(c.label_id == noisy[c.id] for c in top)


# ---------------------------------------------------------------------------------------------- Datumaro exports
def test_read_export_file_and_folder():
    folder = read_datumaro_export(FIXTURES / "export_cls")
    assert folder.infos == {"purpose": "noisy_label_detection", "task": "OTX-MultiClassCls"}
    assert folder.label_names == ["airplane", "bird", "cat", "dog"]
    assert {a.subset for a in folder.annotations} == {"train", "val"} and len(folder.annotations) == 12
    one = read_datumaro_export(FIXTURES / "export_cls" / "annotations" / "val.json")
    assert [a.item_id for a in one.annotations] == ["img_09", "img_10", "img_11"]
    an = LossDynamicsAnalyzer(FIXTURES / "export_cls" / "annotations" / "train.json")
    assert len(an.ema_dataframe) == 9 and set(an.mean_loss_dyns_per_label) <= {"airplane", "bird", "cat", "dog"}
    det = LossDynamicsAnalyzer(str(FIXTURES / "export_det"), tracking_loss_type="centerness")
    assert det.tracking_loss_type == "centerness" and len(det.ema_dataframe) == 16


def test_export_errors_are_datumaro_like(tmp_path):
    with pytest.raises(ValueError, match='tracking_loss_type should not be None'):
        LossDynamicsAnalyzer(FIXTURES / "export_det")
    with pytest.raises(ValueError, match="tracking_loss_type=foo but the allowed"):
        LossDynamicsAnalyzer(FIXTURES / "export_det", tracking_loss_type="foo")
    with pytest.raises(ValueError, match="'loss_dynamics_bbox_refine'"):
        LossDynamicsAnalyzer(FIXTURES / "export_det", tracking_loss_type="bbox_refine")
    data = json.loads((FIXTURES / "export_cls" / "annotations" / "val.json").read_text())
    for infos, message in (({"purpose": "x", "task": "OTX-MultiClassCls"}, 'purpose="noisy_label_detection"'),
                           ({"purpose": "noisy_label_detection", "task": "Seg"}, "task=Seg is not allowed")):
        bad = tmp_path / f"{len(message)}" / "val.json"
        bad.parent.mkdir()
        bad.write_text(json.dumps({**data, "infos": infos}))
        with pytest.raises(ValueError, match=message):
            LossDynamicsAnalyzer(bad)
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        LossDynamicsAnalyzer(tmp_path / "broken.json")
    with pytest.raises(FileNotFoundError):
        LossDynamicsAnalyzer(tmp_path / "nowhere")


@pytest.mark.skipif(not HAVE_DATUMARO, reason="datumaro is not installed")
def test_accepts_a_datumaro_dataset():
    import datumaro as dm

    ds = dm.Dataset.import_from(str(FIXTURES / "export_cls"), "datumaro")
    an = LossDynamicsAnalyzer(ds, alpha=0.3)
    pd.testing.assert_frame_equal(an.ema_dataframe, _ours("export_cls", 0.3, None).ema_dataframe)
    assert list(an.mean_loss_dyns_per_label) == ["airplane", "bird", "cat", "dog"]


# ---------------------------------------------------------------------------------------------- plots
def test_plots_return_figures_and_save_png(tmp_path):
    import matplotlib.pyplot as plt

    an = LossDynamicsAnalyzer(FIXTURES / "export_cls", alpha=0.3)
    cands = an.get_top_k_cands(3)
    before = plt.get_fignums()
    fig = an.plot_ema_loss_dynamics(cands, mode="mean", save_path=tmp_path / "out" / "mean.png")
    assert len(fig.axes) == 1 and len(fig.axes[0].lines) == 4
    assert fig.axes[0].get_title() == "Compare the candidates with the average of dataset"
    assert (tmp_path / "out" / "mean.png").read_bytes()[:4] == b"\x89PNG"
    fig = an.plot_ema_loss_dynamics(cands, mode="label_mean", figsize=(3, 2))
    labels = sorted({c.label_id for c in cands})
    assert len(fig.axes) == len(labels)
    assert fig.axes[0].get_title().endswith(f"({an.label_names[labels[0]]})")
    assert fig.get_size_inches()[0] == pytest.approx(3 * len(labels))
    assert plt.get_fignums() == before                        # no pyplot figure left open
    with pytest.raises(ValueError, match="mode"):
        an.plot_ema_loss_dynamics(cands, mode="median")
    with pytest.raises(ValueError, match="matches 0 rows"):
        an.plot_ema_loss_dynamics([NoisyLabelCandidate("nope", "train", 0, 0, 1.0)])


# ---------------------------------------------------------------------------------------------- tutorial
def test_tutorial_notebook_runs_quick():
    nb = run_notebook(NOTEBOOK, timeout=300, INTERPRETDL_NOISE_QUICK=1)
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "AUROC" in text


def test_interpreter_runs_the_ema_once(monkeypatch):
    """Scoring needs only the last EMA: one pass over the losses; the per-step frame is built on demand."""
    from interpretdl_noise.interpreter import loss_dynamics

    calls = []
    original = loss_dynamics._ema_rows

    def counting(*args, **kwargs):
        calls.append(kwargs.get("out") is not None)
        return original(*args, **kwargs)

    monkeypatch.setattr(loss_dynamics, "_ema_rows", counting)
    rng = np.random.default_rng(1)
    losses = rng.uniform(0, 3, (50, 7))
    td = np.stack([np.exp(-losses), 1 - np.exp(-losses)], axis=2).astype(np.float16)
    labels = np.tile(np.array([[0, 1]], dtype=np.int16), (50, 1))
    expected = original(losses, 0.2)
    interp = LossDynamicsInterpreter(alpha=0.2)
    _, scores = interp.interpret(training_dynamics={"td": td, "labels": labels, "losses": losses})
    assert calls == [False]
    np.testing.assert_allclose(scores, expected, rtol=1e-12)
    frame = interp.analyzer_.ema_dataframe                     # built now, once
    assert calls == [False, True] and interp.analyzer_.ema_dataframe is frame
    np.testing.assert_allclose(frame["last_value"].to_numpy(), np.sort(scores))
