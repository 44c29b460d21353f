"""BHDF detector: InterpretDL-compatible LSTM, shipped weights, any-length resampling, interpret()."""
import hashlib
import json
import warnings

import numpy as np
import paddle
import pytest
from sklearn.metrics import roc_auc_score

from interpretdl_noise import BHDFInterpreter, LSTMDetector, load_training_dynamics
from interpretdl_noise.common.seeding import paddle_seed
from interpretdl_noise.interpreter import bhdf
from interpretdl_noise.interpreter.bhdf import (DEFAULT_GRID, LSTM, N_PARAMETERS, center_dynamics, check_state_dict,
                                                default_weights_path, prepare_curves, resample_dynamics)

# InterpretDL 0.8's parameter names and shapes (interpretdl/interpreter/training_dynamics.py, class LSTM)
IDL_SHAPES = {
    "lstm.weight_ih_l0": [256, 1], "lstm.weight_hh_l0": [256, 64], "lstm.bias_ih_l0": [256], "lstm.bias_hh_l0": [256],
    "lstm.weight_ih_l1": [256, 64], "lstm.weight_hh_l1": [256, 64], "lstm.bias_ih_l1": [256], "lstm.bias_hh_l1": [256],
    "classifier.weight": [64, 2], "classifier.bias": [2],
}


class InterpretDLStyleLSTM(paddle.nn.Layer):
    """The structure of InterpretDL 0.8's ``LSTM`` (softmax in forward), without importing interpretdl."""

    def __init__(self):
        super().__init__()
        self.classifier = paddle.nn.Linear(64, 2)
        self.softmax = paddle.nn.Softmax()
        self.lstm = paddle.nn.LSTM(input_size=1, hidden_size=64, num_layers=2, time_major=False)

    def forward(self, x):
        if len(x.shape) != 3:
            x = paddle.unsqueeze(x, axis=2)
        out, (_, _) = self.lstm(x)
        return self.softmax(self.classifier(out[:, -1, :]))


@pytest.fixture(scope="module")
def digits_run():
    """A real recording: MLP on digits with 20 % uniform noise, 60 epochs (td, flips)."""
    from interpretdl_noise.detector_training import RunSpec, record_run

    rec = record_run(RunSpec("digits", "mlp", "uniform", 0.2, 60, seed=3, optimizer="adam", lr=1e-3, width=64))
    return rec


def test_parameter_names_shapes_and_count():
    det = LSTMDetector()
    params = {name: list(p.shape) for name, p in det.named_parameters()}
    assert params == IDL_SHAPES
    assert sum(int(np.prod(s)) for s in params.values()) == N_PARAMETERS == 50_562
    assert set(det.state_dict()) == set(InterpretDLStyleLSTM().state_dict())


def test_state_dicts_move_both_ways(tmp_path):
    with paddle_seed(1):
        ours = LSTMDetector()
        theirs = InterpretDLStyleLSTM()
    x = paddle.to_tensor(np.random.default_rng(0).random((5, 12), dtype=np.float32))
    # ours -> InterpretDL, through a file, loaded the way InterpretDL loads weights
    path = tmp_path / "w.pdparams"
    paddle.save(ours.state_dict(), str(path))
    paddle.Model(theirs).load(str(path))
    probs_theirs = theirs(x).numpy()
    probs_ours = paddle.nn.functional.softmax(ours(x), axis=-1).numpy()
    np.testing.assert_allclose(probs_theirs, probs_ours, rtol=1e-5, atol=1e-6)
    # InterpretDL -> ours, including a file that holds only the canonical names (no lstm.N.cell aliases)
    with paddle_seed(2):
        theirs2 = InterpretDLStyleLSTM()
    canonical = {k: v for k, v in theirs2.state_dict().items() if ".cell." not in k}
    paddle.save(canonical, str(path))
    fresh = bhdf.load_detector_weights(LSTMDetector(), path)
    np.testing.assert_allclose(paddle.nn.functional.softmax(fresh(x), axis=-1).numpy(), theirs2(x).numpy(),
                               rtol=1e-5, atol=1e-6)


def test_lstm_alias_is_interpretdl_forward():
    with paddle_seed(0):
        det = LSTM()
    x = paddle.to_tensor(np.random.default_rng(1).random((4, 9, 1), dtype=np.float32))
    out = det(x).numpy()
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(out, paddle.nn.functional.softmax(det.logits(x), axis=-1).numpy(), rtol=1e-6)
    import interpretdl_noise

    assert "LSTM" not in interpretdl_noise.__all__ and "LSTMDetector" in interpretdl_noise.__all__


def test_bad_state_dicts_are_refused(tmp_path):
    det = LSTMDetector()
    state = dict(det.state_dict())
    state["classifier.weight"] = paddle.zeros([64, 3])
    with pytest.raises(ValueError, match=r"classifier.weight: \[64, 3\]"):
        check_state_dict(det, state)
    state = {k: v for k, v in det.state_dict().items() if not k.startswith("classifier")}
    state["head.weight"] = paddle.zeros([2])
    with pytest.raises(ValueError, match=r"missing keys \['classifier.bias', 'classifier.weight'\].*head.weight"):
        check_state_dict(det, state)
    bad = tmp_path / "not_weights.pdparams"
    bad.write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="not a Paddle state dict of arrays"):
        BHDFInterpreter(weights=bad)
    with pytest.raises(FileNotFoundError, match="no detector weights"):
        BHDFInterpreter(weights=str(tmp_path / "missing.pdparams"))


class _Payload:
    """Unpickling this would call os.getcwd: a stand-in for a malicious weights file."""

    def __reduce__(self):
        import os

        return (os.getcwd, ())


def test_weights_loader_never_runs_pickled_code(tmp_path):
    import pickle

    from interpretdl_noise.common.state_dict import load_state_dict

    evil = tmp_path / "evil.pdparams"
    evil.write_bytes(pickle.dumps({"lstm.weight_ih_l0": _Payload()}))
    with pytest.raises(ValueError, match="posix.getcwd; a state dict may only contain numpy arrays"):
        BHDFInterpreter(weights=evil)
    # a real paddle.save'd state dict reads the same as paddle.load
    det = LSTMDetector()
    path = tmp_path / "ok.pdparams"
    paddle.save(det.state_dict(), str(path))
    ours, theirs = load_state_dict(path), paddle.load(str(path))
    assert set(ours) == set(theirs)
    for name, value in ours.items():
        np.testing.assert_array_equal(value, np.asarray(theirs[name]))


def test_resample_block_average_identity_and_mean():
    rng = np.random.default_rng(0)
    x = rng.random((6, 64))
    np.testing.assert_allclose(resample_dynamics(x, 32), x.reshape(6, 32, 2).mean(axis=2), rtol=1e-6)
    np.testing.assert_allclose(resample_dynamics(x, 64), x.astype(np.float32))
    np.testing.assert_allclose(resample_dynamics(x, None), x.astype(np.float32))
    for n_epochs in (5, 7, 33, 200, 300):
        y = rng.random((3, n_epochs))
        out = resample_dynamics(y, DEFAULT_GRID)
        assert out.shape == (3, DEFAULT_GRID) and out.dtype == np.float32
        np.testing.assert_allclose(out.mean(axis=1), y.mean(axis=1), rtol=1e-5)
    # upsampling repeats each epoch's value on its share of the grid
    np.testing.assert_allclose(resample_dynamics(np.array([[0.0, 1.0]]), 4), [[0, 0, 1, 1]])
    with pytest.raises(ValueError, match="grid must be"):
        resample_dynamics(x, 0)
    with pytest.raises(ValueError, match=r"shape \(N, E\)"):
        resample_dynamics(x[0], 8)


def test_centering_removes_run_level_shifts():
    rng = np.random.default_rng(0)
    x = rng.random((50, 12)) * 0.8
    centred = center_dynamics(x)
    np.testing.assert_allclose(np.median(centred, axis=0), 0.0, atol=1e-6)
    np.testing.assert_allclose(center_dynamics(x + 0.1), centred, atol=1e-6)
    np.testing.assert_allclose(prepare_curves(x, 6, center=True), center_dynamics(resample_dynamics(x, 6)))
    np.testing.assert_allclose(prepare_curves(x, None, center=False), x.astype(np.float32))
    # a uniformly more confident copy of a run: same centred curves, only the median prefix moves
    shifted, plain = prepare_curves(x + 0.1, 6, True, True), prepare_curves(x, 6, True, True)
    np.testing.assert_allclose(shifted[:, 6:], plain[:, 6:], atol=1e-6)
    np.testing.assert_allclose(shifted[:, :6], plain[:, :6] + 0.1, atol=1e-6)
    interp = BHDFInterpreter(context=False)       # without the prefix the scores ignore the shift
    np.testing.assert_allclose(interp.predict_curves(x + 0.1), interp.predict_curves(x), atol=1e-5)
    with pytest.warns(UserWarning, match="score whole recordings"):
        interp.predict_curves(x[:5])


def test_shipped_weights_offline_and_checksum(monkeypatch, digits_run):
    import socket

    def no_network(*args, **kwargs):
        raise AssertionError("BHDFInterpreter() must not touch the network")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    path = default_weights_path()
    expected = (path.parent / (path.name + ".sha256")).read_text().split()[0]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == expected
    info = json.loads(path.with_suffix(".json").read_text())
    assert info["grid"] == DEFAULT_GRID and info["center"] is True and info["context"] is True
    interp = BHDFInterpreter()
    assert interp.grid == DEFAULT_GRID and interp.center and interp.context and interp.weights_path == path
    order, pred = interp.interpret(training_dynamics=digits_run)
    assert isinstance(pred, np.ndarray) and pred.shape == (1797,) and pred.min() >= 0 and pred.max() <= 1
    np.testing.assert_array_equal(order, np.argsort(pred, kind="stable"))
    assert roc_auc_score(digits_run["label_flip"], pred) > 0.95
    metrics = interp.evaluate()
    assert metrics["auroc"] > 0.95 and metrics["threshold"] == 0.5 and 0 < metrics["recall_at_threshold"] <= 1
    # the most suspicious samples (end of the ascending order) are mostly real flips
    assert digits_run["label_flip"][order[-100:]].mean() > 0.8


def test_interpret_inputs_npz_formats_and_errors(tmp_path, digits_run):
    interp = BHDFInterpreter()
    td = digits_run["td"]
    # a file exactly as InterpretDL 0.8 writes it: label_flip=None becomes a pickled object array
    idl = tmp_path / "idl" / "training_dynamics.npz"
    idl.parent.mkdir()
    np.savez_compressed(idl, label_flip=None, labels=digits_run["labels"], td=td)
    order, pred = interp.interpret(training_dynamics_path=idl)
    # our recorder's format, and a loaded npz given as a mapping
    from interpretdl_noise import save_training_dynamics

    ours = save_training_dynamics(tmp_path / "ours.npz", td, digits_run["labels"], label_flip=digits_run["label_flip"])
    _, pred2 = interp.interpret(training_dynamics_path=ours)
    _, pred3 = interp.interpret(training_dynamics=dict(np.load(ours)))
    _, pred4 = interp.interpret(training_dynamics=load_training_dynamics(ours))
    np.testing.assert_allclose(pred, pred2)
    np.testing.assert_allclose(pred, pred3)
    np.testing.assert_allclose(pred, pred4)
    with pytest.raises(ValueError, match="exactly one"):
        interp.interpret()
    with pytest.raises(ValueError, match="exactly one"):
        interp.interpret(training_dynamics={"td": td}, training_dynamics_path=ours)
    with pytest.raises(ValueError, match="missing required key 'td'"):
        interp.interpret(training_dynamics={"labels": digits_run["labels"]})
    with pytest.raises(ValueError, match="1 epoch has no dynamics"):
        interp.interpret(training_dynamics={"td": td[:, :1]})
    with pytest.warns(UserWarning, match="validated for 5-300 epochs"):
        interp.interpret(training_dynamics={"td": td[:, :3]})
    with pytest.raises(FileNotFoundError):
        interp.interpret(training_dynamics_path=tmp_path / "nope.npz")
    for kwargs, match in (({"grid": 0}, "grid must be"), ({"batch_size": 0}, "batch_size"),
                          ({"detector_output": "odds"}, "detector_output")):
        with pytest.raises(ValueError, match=match):
            BHDFInterpreter(**kwargs)


def test_lengths_give_consistent_scores(digits_run):
    """The same dynamics seen at 60, 30, 15 and 12 epochs (every k-th epoch) rank samples alike."""
    interp = BHDFInterpreter()
    td, flips = digits_run["td"], digits_run["label_flip"]
    full = interp.predict_curves(td[:, :, 0])
    base = roc_auc_score(flips, full)
    for step in (2, 4, 5):
        sub = interp.predict_curves(td[:, step - 1::step, 0])
        assert abs(roc_auc_score(flips, sub) - base) < 0.02
        assert np.corrcoef(sub, full)[0, 1] > 0.9
    # a 300-epoch version (each epoch repeated 5 times) scores like the original
    long = interp.predict_curves(np.repeat(td[:, :, 0], 5, axis=1))
    np.testing.assert_allclose(long, full, atol=1e-5)


def test_foreign_detector_and_grid_rules(tmp_path, digits_run):
    shipped = BHDFInterpreter()
    theirs = InterpretDLStyleLSTM()
    paddle.Model(theirs).load(str(default_weights_path()))
    # a foreign network returning probabilities: detected automatically; its grid defaults to raw curves
    raw = BHDFInterpreter(detector=theirs)
    assert raw.grid is None
    assert raw.center is False
    same = BHDFInterpreter(detector=theirs, grid=DEFAULT_GRID, center=True, context=True)
    curves = digits_run["td"][:200, :, 0]
    np.testing.assert_allclose(same.predict_curves(curves), shipped.predict_curves(curves), atol=1e-5)
    assert raw.predict_curves(curves).shape == (200,)
    # weights without metadata: assume the default grid, with a warning; explicit grid silences it
    path = tmp_path / "plain.pdparams"
    paddle.save(shipped.detector.state_dict(), str(path))
    with pytest.warns(UserWarning, match="assuming this package's convention grid=32, center=True, context=True"):
        interp = BHDFInterpreter(weights=path)
    assert interp.grid == DEFAULT_GRID and interp.center is True and interp.context is True
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        interp = BHDFInterpreter(weights=path, grid=None, center=False, context=False)
    assert interp.grid is None and interp.center is False and interp.context is False
    # a sidecar JSON sets the input convention
    path.with_suffix(".json").write_text(json.dumps({"grid": 16, "center": False, "context": False}))
    interp = BHDFInterpreter(weights=path)
    assert interp.grid == 16 and interp.center is False and interp.context is False and interp.detector.grid == 16
    # a JSON written before the context prefix existed means: no prefix
    path.with_suffix(".json").write_text(json.dumps({"grid": 32, "center": True}))
    assert BHDFInterpreter(weights=path).context is False
    # weights given together with a detector are loaded into it
    det = LSTMDetector()
    BHDFInterpreter(detector=det, weights=default_weights_path())
    np.testing.assert_allclose(det.classifier.weight.numpy(), shipped.detector.classifier.weight.numpy())


def test_context_prefix_is_read_once_and_matches_the_full_sequence(digits_run):
    curves = digits_run["td"][:300, :, 0]
    prepared = prepare_curves(curves, 16, center=True, context=True)
    assert prepared.shape == (300, 32)
    median = np.median(resample_dynamics(curves, 16), axis=0)
    np.testing.assert_allclose(prepared[:, :16], np.broadcast_to(median, (300, 16)))
    np.testing.assert_allclose(prepared[:, 16:], prepare_curves(curves, 16, center=True))
    ours = LSTMDetector(grid=16, context=True)
    rng = np.random.default_rng(7)          # large random weights: an untrained LSTM that reacts to its input
    for param in ours.parameters():
        param.set_value(rng.normal(0.0, 0.5, param.shape).astype(np.float32))
    theirs = InterpretDLStyleLSTM()
    theirs.set_state_dict(ours.state_dict())
    # ours: the prefix once, then every sample from its state; theirs: the whole 2 x 16 sequence per sample
    fast = BHDFInterpreter(detector=ours, batch_size=64).predict_curves(curves)
    full = BHDFInterpreter(detector=theirs, grid=16, center=True, context=True).predict_curves(curves)
    np.testing.assert_allclose(fast, full, atol=1e-5)
    # without the prefix the scores differ: the context is really read
    assert np.abs(BHDFInterpreter(detector=ours, context=False).predict_curves(curves) - fast).max() > 1e-2
    with pytest.raises(ValueError, match="context"):
        BHDFInterpreter(detector=ours, context="yes")


def test_training_mode_and_device_are_restored(digits_run):
    interp = BHDFInterpreter()
    interp.detector.train()
    interp.predict_curves(digits_run["td"][:50, :, 0])
    assert interp.detector.training
