"""LabelTracker: exact per-label statistics, label_mapping, figures, errors, paddle.Model.fit, recordings."""
import math
import statistics
from pathlib import Path

import numpy as np
import paddle
import pytest
from conftest import REPO, make_mlp, run_notebook
from paddle.static import InputSpec

from interpretdl_noise import LabelTracker, save_training_dynamics
from interpretdl_noise.callbacks import label_tracker
from interpretdl_noise.callbacks.label_tracker import (
    GroupedStats,
    per_sample_confidence,
    per_sample_loss,
    per_sample_margin,
)


def _hand(labels_by_epoch, values_by_epoch, key):
    """statistics-module reference of one label's per-epoch (mean, stdev, min, max, count)."""
    out = []
    for labels, values in zip(labels_by_epoch, values_by_epoch):
        vals = [float(v) for lab, v in zip(labels, values) if lab == key]
        if not vals:
            out.append((math.nan, math.nan, math.nan, math.nan, 0))
        else:
            out.append((statistics.mean(vals), statistics.stdev(vals) if len(vals) > 1 else 0.0,
                        min(vals), max(vals), len(vals)))
    return out


def _fill(tracker, rng, epochs=2, batches=3, batch=10, classes=(0, 1, 2)):
    """Feed random batches (label 2 seen once in epoch 1, never in epoch 2); return per-epoch flat data."""
    all_labels, all_values = [], []
    for epoch in range(epochs):
        labels_e, values_e = [], []
        for b in range(batches):
            labels = rng.choice(classes[:2], size=batch)
            if epoch == 0 and b == 1:
                labels[3] = classes[2]
            values = rng.normal(loc=labels * 2.0, scale=1.0 + labels, size=batch) + 1e3  # offset: tests stability
            tracker.update(labels.reshape(-1, 1), values)
            labels_e.append(labels)
            values_e.append(values)
        tracker.end_epoch()
        all_labels.append(np.concatenate(labels_e))
        all_values.append(np.concatenate(values_e))
    return all_labels, all_values


@pytest.mark.parametrize("flush", [65536, 7])
def test_statistics_equal_hand_computation(flush, monkeypatch):
    monkeypatch.setattr(label_tracker, "_FLUSH_SAMPLES", flush)  # 7: buffered batches reduced mid-epoch
    tracker = LabelTracker("label", "loss", mode="train")
    labels, values = _fill(tracker, np.random.default_rng(0))
    summary = tracker.summary()
    assert list(summary) == ["0", "1", "2"]
    for key in (0, 1, 2):
        got = summary[str(key)]
        assert got["epoch"] == [1.0, 2.0]
        for e, (mean, std, mn, mx, n) in enumerate(_hand(labels, values, key)):
            assert got["count"][e] == n
            if n == 0:
                assert all(math.isnan(got[s][e]) for s in ("mean", "std", "min", "max"))
                continue
            assert got["mean"][e] == pytest.approx(mean, rel=1e-12)
            assert got["std"][e] == pytest.approx(std, rel=1e-9, abs=1e-12)
            assert got["min"][e] == mn and got["max"][e] == mx
    assert summary["2"]["count"] == [1, 0] and summary["2"]["std"][0] == 0.0  # one value -> std 0.0


def test_grouped_stats_streaming_equals_one_batch():
    rng = np.random.default_rng(1)
    labels, values = rng.integers(0, 5, 1000), rng.normal(size=1000)
    one, many = GroupedStats(), GroupedStats()
    one.add(labels, values)
    for chunk in np.array_split(np.arange(1000), 37):
        many.add(labels[chunk], values[chunk])
    a, b = one.snapshot(), many.snapshot()
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-12)


def test_grouped_stats_label_types_agree():
    """Small ints take a bincount fast path; negative ints, bools, floats and strings go through np.unique."""
    rng = np.random.default_rng(6)
    flags, values = rng.integers(0, 2, 200), rng.normal(size=200)
    ref = GroupedStats()
    ref.add(flags, values)
    for labels, keys in [(flags - 1, (-1, 0)), (flags.astype(bool), (False, True)), (flags * 0.5, (0.0, 0.5)),
                         (np.where(flags == 1, "b", "a"), ("a", "b")), (flags + 5000, (5000, 5001))]:
        other = GroupedStats()
        for chunk in np.array_split(np.arange(200), 7):
            other.add(labels[chunk], values[chunk])
        snap = other.snapshot()
        assert sorted(snap) == sorted(keys)
        for key, ref_key in zip(keys, (0, 1)):
            np.testing.assert_allclose(snap[key], ref.snapshot()[ref_key], rtol=1e-12)


def test_loss_is_overflow_safe():
    logits = np.array([[0.0, 1.0, 2.0], [-3000.0, -2999.0, -2998.0], [1000.0, 0.0, -1000.0]])
    np.testing.assert_allclose(per_sample_loss(logits, np.array([2, 2, 0])), [0.40760596, 0.40760596, 0.0], atol=1e-8)
    assert np.isfinite(per_sample_loss(logits, np.array([0, 0, 2]))).all()


def test_label_mapping_filters_and_orders():
    tracker = LabelTracker("label", "loss", label_mapping={"bad": 1, "good": 0}, mode="train")
    labels, values = _fill(tracker, np.random.default_rng(2))
    summary = tracker.summary()
    assert list(summary) == ["bad", "good"]  # mapping order; label 2 dropped
    assert summary["good"]["mean"][0] == pytest.approx(_hand(labels, values, 0)[0][0], rel=1e-12)
    assert summary["bad"]["count"] == [int((lab == 1).sum()) for lab in labels]
    fig = tracker.plot()[0]
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["bad", "good"]


def test_figures_lines_bands_and_pngs(tmp_path):
    tracker = LabelTracker("label", "confidence", bounds=["std", "range", None], mode="eval")
    _fill(tracker, np.random.default_rng(3))
    figs = tracker.plot(save_dir=tmp_path)
    assert figs is tracker.figures and len(figs) == 3
    n_labels = 3
    assert [len(f.axes[0].lines) for f in figs] == [n_labels] * 3
    assert [len(f.axes[0].collections) for f in figs] == [n_labels, n_labels, 0]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "confidence_by_label_mean.png", "confidence_by_label_range.png", "confidence_by_label_std.png"]
    # the std band of label 0 spans mean +- std at each epoch
    band = figs[0].axes[0].collections[0].get_paths()[0].vertices
    s = tracker.summary()["0"]
    assert band[:, 1].min() == pytest.approx(min(m - d for m, d in zip(s["mean"], s["std"])))
    assert band[:, 1].max() == pytest.approx(max(m + d for m, d in zip(s["mean"], s["std"])))


def test_several_modes_one_figure_line_per_label_and_mode():
    tracker = LabelTracker("label", "loss", mode=None, bounds="std")
    for mode in ("train", "eval"):
        for epoch in range(3):
            tracker.update([0, 0, 1], [1.0, 2.0, 3.0], mode=mode)
            tracker.end_epoch(mode=mode)
    with pytest.raises(ValueError, match="several modes"):
        tracker.summary()
    assert tracker.summary("eval")["0"]["mean"] == [1.5] * 3
    ax = tracker.plot()[0].axes[0]
    assert len(ax.lines) == 4 and len(ax.collections) == 4
    assert {ln.get_linestyle() for ln in ax.lines} == {"-", "--"}


def test_builtin_metrics_match_paddle():
    rng = np.random.default_rng(4)
    logits = rng.normal(size=(16, 5)) * 3
    y = rng.integers(0, 5, 16)
    ce = paddle.nn.functional.cross_entropy(paddle.to_tensor(logits), paddle.to_tensor(y).reshape([-1, 1]),
                                            reduction="none").numpy().reshape(-1)
    np.testing.assert_allclose(per_sample_loss(logits, y), ce, rtol=1e-10)
    probs = paddle.nn.functional.softmax(paddle.to_tensor(logits)).numpy()
    np.testing.assert_allclose(per_sample_confidence(logits, y), probs[np.arange(16), y], rtol=1e-10)
    others = np.where(np.eye(5, dtype=bool)[y], -np.inf, logits).max(axis=1)
    np.testing.assert_allclose(per_sample_margin(logits, y), logits[np.arange(16), y] - others)
    custom = LabelTracker("label", lambda lg, lb: lg[:, 0], mode="train")
    np.testing.assert_array_equal(custom.compute_metric(logits, y), logits[:, 0])
    assert custom.outputs == "<lambda>_by_label"


@pytest.mark.parametrize("kwargs, match", [
    ({"bounds": "minmax"}, "bounds must be None, 'std', 'range'"),
    ({"bounds": ["std", "iqr"]}, "got 'iqr'"),
    ({"metric": "accuracy"}, "metric must be one of"),
    ({"mode": "predict"}, "mode must be one of"),
    ({"label": 1.5}, "label must be a label name"),
    ({"label_mapping": {"a": 0, "b": 0}}, "several names to one label value"),
])
def test_bad_arguments_raise(kwargs, match):
    args = {"label": "label", "metric": "loss"} | kwargs
    with pytest.raises(ValueError, match=match):
        LabelTracker(**args)


def test_bad_batches_raise():
    tracker = LabelTracker("label", "loss", mode="train")
    with pytest.raises(ValueError, match="one entry per sample"):
        tracker.update([0, 1, 2], [1.0, 2.0])
    with pytest.raises(ValueError, match="must be integers in"):
        tracker.compute_metric(np.zeros((2, 3)), [0, 3])
    with pytest.raises(ValueError, match="mode must be one of"):
        tracker.update([0], [1.0], mode="valid")
    with pytest.raises(ValueError, match="nothing to plot"):
        tracker.plot()
    assert tracker.summary() == {}


class _FlagDataset(paddle.io.Dataset):
    def __init__(self, x, y, flag):
        self.x, self.y, self.flag = x, y, flag

    def __getitem__(self, i):
        return self.x[i], self.y[i:i + 1], self.flag[i:i + 1]

    def __len__(self):
        return len(self.y)


def _model(net, label_names=("y", "flag")):
    return paddle.Model(net, inputs=[InputSpec([None, 64], "float32", "x")],
                        labels=[InputSpec([None, 1], "int64", n) for n in label_names])


def test_model_fit_tracks_class_and_extra_label(digits_small, tmp_path):
    x, _, noisy, flips = digits_small
    ds = _FlagDataset(x, noisy, flips.astype(np.int64))
    net = make_mlp()
    by_class = LabelTracker("label", "loss", mode=None, bounds=["std", "range"], save_dir=tmp_path)
    by_flag = LabelTracker("flag", "confidence", label_mapping={"clean": 0, "corrupted": 1}, mode="train")
    model = _model(net)
    model.prepare(paddle.optimizer.Adam(0.01, parameters=net.parameters()),
                  LabelTracker.wrap_loss(paddle.nn.CrossEntropyLoss()), metrics=[by_class.metric, by_flag.metric])
    model.fit(ds, eval_data=ds, epochs=3, batch_size=64, verbose=0, callbacks=[by_class, by_flag])

    assert by_class.recorded_modes() == ["train", "eval"] and by_flag.recorded_modes() == ["train"]
    train = by_class.summary("train")
    assert list(train) == [str(c) for c in range(10)]
    for c in range(10):  # every training sample counted once per epoch, grouped by its (noisy) label
        assert train[str(c)]["count"] == [int((noisy == c).sum())] * 3
    flag = by_flag.summary()
    assert flag["corrupted"]["count"] == [int(flips.sum())] * 3
    assert flag["clean"]["epoch"] == [1.0, 2.0, 3.0]
    # after training, corrupted samples have lower confidence in their (wrong) label
    assert flag["corrupted"]["mean"][-1] < flag["clean"]["mean"][-1]
    assert len(by_class.figures) == 2 and len(by_flag.figures) == 1
    assert len(by_class.figures[0].axes[0].lines) == 20  # 10 labels x (train, eval)
    assert len(list(tmp_path.glob("*.png"))) == 2

    # the eval pass equals a hand computation on the final network (eval mode, no update)
    test = LabelTracker(0, "loss", mode="test")
    model.prepare(loss=LabelTracker.wrap_loss(paddle.nn.CrossEntropyLoss()), metrics=[test.metric])
    model.evaluate(ds, batch_size=64, verbose=0, callbacks=[test])
    net.eval()
    losses = per_sample_loss(net(paddle.to_tensor(x)).numpy().astype(np.float64), noisy)
    got = test.summary()
    assert got["3"]["epoch"] == [0.0]
    np.testing.assert_allclose(got["3"]["mean"][0], losses[noisy == 3].mean(), rtol=1e-5)
    np.testing.assert_allclose(got["3"]["max"][0], losses[noisy == 3].max(), rtol=1e-5)
    assert len(test.figures) == 1


def test_model_fit_unknown_label_name_raises(digits_small):
    x, _, noisy, flips = digits_small
    net = make_mlp()
    tracker = LabelTracker("corrupted", "loss", mode="train")
    model = _model(net)
    model.prepare(paddle.optimizer.SGD(0.1, parameters=net.parameters()),
                  LabelTracker.wrap_loss(paddle.nn.CrossEntropyLoss()), metrics=[tracker.metric])
    with pytest.raises(ValueError, match=r"'corrupted' is not one of the Model's labels \['y', 'flag'\]"):
        model.fit(_FlagDataset(x, noisy, flips.astype(np.int64)), epochs=1, batch_size=64, verbose=0,
                  callbacks=[tracker])


def _record(n=40, e=4, c=3, seed=5):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, e, c)).astype(np.float32)
    y = rng.integers(0, c, n)
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    labels = np.stack([np.roll(np.arange(c), -k) for k in y]).astype(np.int16)  # column 0 = assigned label
    td = np.take_along_axis(probs, labels[:, None, :].astype(np.int64).repeat(e, 1), axis=2)
    losses = -np.log(probs[np.arange(n), :, y]).astype(np.float32)
    return {"td": td.astype(np.float16), "labels": labels, "label_flip": rng.random(n) < 0.3, "losses": losses,
                "logits": logits}, y


def test_from_recording_matches_hand_computation(tmp_path):
    record, y = _record()
    path = save_training_dynamics(tmp_path / "training_dynamics.npz", **record)
    tr = LabelTracker.from_recording(path, metric="loss", label="label_flip", bounds=["std", "range"])
    s = tr.summary()
    assert list(s) == ["clean", "mislabeled"] and s["clean"]["epoch"] == [1.0, 2.0, 3.0, 4.0]
    flip = record["label_flip"]
    for e in range(4):
        vals = record["losses"][flip, e].astype(np.float64)
        assert s["mislabeled"]["mean"][e] == pytest.approx(vals.mean(), rel=1e-6)
        assert s["mislabeled"]["std"][e] == pytest.approx(statistics.stdev(vals.tolist()), rel=1e-6)
    conf = LabelTracker.from_recording(record, metric="confidence", label="label")
    td0 = record["td"][:, :, 0].astype(np.float64)
    assert conf.summary()["2"]["min"] == pytest.approx(td0[y == 2].min(axis=0).tolist())
    margin = LabelTracker.from_recording(record, metric="margin", label=y)
    m = per_sample_margin(record["logits"][:, 1].astype(np.float64), y)
    assert margin.summary()["0"]["mean"][1] == pytest.approx(m[y == 0].mean())
    assert len(tr.plot()) == 2


def test_from_recording_bad_keys_raise():
    record, _ = _record()
    with pytest.raises(ValueError, match="not a per-sample key"):
        LabelTracker.from_recording(record, label="clean_label")
    with pytest.raises(ValueError, match="needs the recording's 'logits'"):
        LabelTracker.from_recording({k: v for k, v in record.items() if k != "logits"}, metric="margin")
    with pytest.raises(ValueError, match="metric must be one of"):
        LabelTracker.from_recording(record, metric="aum")
    with pytest.raises(ValueError, match="shape"):
        LabelTracker.from_recording(record, metric=np.zeros((3, 3)))


def test_notebook_runs_quick():
    nb = run_notebook(REPO / "tutorials" / "label_tracker.ipynb", timeout=120, INTERPRETDL_NOISE_QUICK=1)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert any("image/png" in o.get("data", {}) for o in outputs)
    assert Path.cwd().exists()
