"""Compatibility with InterpretDL 0.8 recordings, in both directions (InterpretDL itself is not needed).

The fixtures in ``tests/fixtures/interpretdl/`` were written by the real InterpretDL 0.8.0
``TrainingDynamics.generator`` + ``save`` (see ``make_fixture.py``); ``raw_dynamics.json`` holds the exact
per-epoch softmax dicts and assigned targets that were fed to ``save``. N=40, E=6, C=4.
"""
import json
from pathlib import Path

import numpy as np
import paddle
import pytest

from interpretdl_noise import TrainingDynamics, load_training_dynamics, transform_dynamics

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "interpretdl"
N, E, C = 40, 6, 4


@pytest.fixture(scope="module")
def raw():
    return json.loads((FIXTURES / "raw_dynamics.json").read_text())


def _probs(raw, run):
    """The dict fed to InterpretDL as an (N, E, C) float32 array (NaN where InterpretDL stored NaN)."""
    dyn = raw["runs"][run]["dynamics"]
    return np.array([[[np.nan if v is None else v for v in vec] for vec in dyn[str(i)]] for i in range(len(dyn))],
                    dtype=np.float32)


def _as_dict(probs):
    """InterpretDL's generator format: ``{index: [E float32 vectors of length C]}``."""
    return {i: list(probs[i]) for i in range(len(probs))}


def _interpretdl_npz(name):
    """Read one of InterpretDL's files the way InterpretDL users do (needs pickle for label_flip=None)."""
    with np.load(FIXTURES / name, allow_pickle=True) as f:
        return {k: f[k] for k in f.files}


def _float16_means(probs, labels):
    """InterpretDL ranks classes by ``probs.astype(float16).mean(axis=1)`` (a float16 result)."""
    means = probs.astype(np.float16).mean(axis=1)
    return np.take_along_axis(means, labels.astype(np.int64), axis=1)


# ---------------------------------------------------------------- reading InterpretDL's files
@pytest.mark.parametrize("name", ["training_dynamics_flip_none.npz", "training_dynamics_flip_none_numpy1.npz"])
def test_loads_interpretdl_file_with_label_flip_none(name, raw):
    # InterpretDL stores label_flip=None as a pickled 0-d object array (numpy 2: protocol 4,
    # numpy._core; numpy 1: protocol 3, numpy.core). It must be read as "absent", without unpickling.
    rec = load_training_dynamics(FIXTURES / name)
    assert "label_flip" not in rec
    assert rec["td"].shape == (N, E, C) and rec["td"].dtype == np.float16
    assert rec["labels"].shape == (N, C) and rec["labels"].dtype == np.int16
    ref = _interpretdl_npz(name)
    assert ref["label_flip"].dtype == object and ref["label_flip"].item() is None
    np.testing.assert_array_equal(rec["td"], ref["td"])
    np.testing.assert_array_equal(rec["labels"], ref["labels"])
    np.testing.assert_array_equal(rec["labels"][:, 0], raw["assigned_targets"])


def test_loads_interpretdl_file_with_label_flip_array(raw):
    rec = load_training_dynamics(FIXTURES / "training_dynamics_flip.npz")
    assert rec["label_flip"].dtype == bool
    np.testing.assert_array_equal(rec["label_flip"], raw["label_flip"])
    assert rec["label_flip"].sum() == 8
    np.testing.assert_array_equal(rec["td"], _interpretdl_npz("training_dynamics_flip.npz")["td"])


def test_loads_interpretdl_file_filled_by_its_own_interpolation(raw):
    # InterpretDL recorded the last incomplete batch of every epoch as NaN and filled it by mixing classes,
    # so its per-epoch sums are far from 1; the file is still valid (no NaN, values in [0, 1]).
    probs = _probs(raw, "nan_gaps")
    assert np.isnan(probs).any(axis=2).sum() == 48  # 8 samples per epoch x 6 epochs
    rec = load_training_dynamics(FIXTURES / "training_dynamics_nan_gaps.npz")
    assert "label_flip" not in rec
    sums = rec["td"].astype(np.float32).sum(axis=2)
    assert sums.min() < 0.5 and sums.max() > 1.5


# ---------------------------------------------------------------- same transform as InterpretDL
def test_transform_matches_interpretdl_on_nan_free_data(raw):
    probs = _probs(raw, "full_batches")
    targets = np.asarray(raw["assigned_targets"])
    assert not np.isnan(probs).any()
    ref = _interpretdl_npz("training_dynamics_flip_none.npz")

    td, labels = transform_dynamics(probs, targets)
    assert td.dtype == np.float16 and labels.dtype == np.int16
    # Up to ties of InterpretDL's float16 class means, the channel order is the same ...
    np.testing.assert_array_equal(labels[:, 0], ref["labels"][:, 0])
    np.testing.assert_array_equal(_float16_means(probs, labels[:, 1:]), _float16_means(probs, ref["labels"][:, 1:]))
    # ... and this fixture has no such ties, so everything is bit-identical.
    means = np.sort(probs.astype(np.float16).mean(axis=1), axis=1)
    assert (np.diff(means, axis=1) != 0).all()
    np.testing.assert_array_equal(labels, ref["labels"])
    np.testing.assert_array_equal(td, ref["td"])

    # The InterpretDL-style entry point accepts the generator's dict and gives the same result.
    td2, labels2 = TrainingDynamics(paddle.nn.Linear(2, C)).transform(_as_dict(probs), targets)
    np.testing.assert_array_equal(td2, ref["td"])
    np.testing.assert_array_equal(labels2, ref["labels"])


def test_transform_matches_interpretdl_on_near_tied_class_means(raw):
    # 32 rows (E=6, C=10); in 24 of them the float16 class means tie or swap compared with float32 means.
    probs = _probs(raw, "near_ties")
    targets = np.asarray(raw["runs"]["near_ties"]["assigned_targets"])
    ref = _interpretdl_npz("training_dynamics_near_ties.npz")
    td, labels = transform_dynamics(probs, targets)
    np.testing.assert_array_equal(labels[:, 0], ref["labels"][:, 0])
    np.testing.assert_array_equal(labels, ref["labels"])
    np.testing.assert_array_equal(td, ref["td"])


def test_transform_on_interpretdl_gaps_keeps_recorded_values_and_fills_per_class(raw):
    probs = _probs(raw, "nan_gaps")
    targets = np.asarray(raw["assigned_targets"])
    ref = _interpretdl_npz("training_dynamics_nan_gaps.npz")
    td, _ = TrainingDynamics(paddle.nn.Linear(2, C)).transform(_as_dict(probs), targets)
    recorded = ~np.isnan(probs).any(axis=2)
    # Channel 0 is the assigned label in both: recorded epochs agree exactly (float16 of the same value).
    np.testing.assert_array_equal(td[:, :, 0][recorded], ref["td"][:, :, 0][recorded])
    np.testing.assert_array_equal(td[:, :, 0][recorded], probs[np.arange(N), :, targets][recorded].astype(np.float16))
    # Filled epochs still sum to 1 (per-class interpolation), unlike InterpretDL's class-mixing fill.
    sums = td.astype(np.float32).sum(axis=2)
    np.testing.assert_allclose(sums, 1.0, atol=5e-3)
    ref_sums = ref["td"].astype(np.float32).sum(axis=2)
    assert np.abs(ref_sums[~recorded] - 1).max() > 0.3


# ---------------------------------------------------------------- our files read by InterpretDL
@pytest.mark.parametrize("with_flip", [True, False])
def test_our_file_reads_the_way_bhdf_interpreter_reads_it(tmp_path, raw, with_flip):
    probs = _probs(raw, "full_batches")
    targets = np.asarray(raw["assigned_targets"])
    flips = np.asarray(raw["label_flip"]) if with_flip else None
    saver = TrainingDynamics(paddle.nn.Linear(2, C)).save(_as_dict(probs), targets, label_flip=flips,
                                                         save_path=tmp_path)
    path = tmp_path / "training_dynamics.npz"
    assert saver.save_path_ == path and path.is_file()
    ref = _interpretdl_npz("training_dynamics_flip.npz")

    # InterpretDL 0.8 BHDFInterpreter.interpret(training_dynamics_path=path):
    #     paddle.to_tensor(np.load(path)['td'][:, :, 0]).astype(paddle.float32)
    series = np.load(path)["td"][:, :, 0]
    assert series.shape == (N, E) and series.dtype == np.float16
    np.testing.assert_array_equal(series, ref["td"][:, :, 0])
    tensor = paddle.to_tensor(series).astype(paddle.float32)
    assert tuple(tensor.shape) == (N, E)
    # InterpretDL users also read labels / label_flip; nothing in our file needs pickle.
    with np.load(path, allow_pickle=False) as f:
        data = {k: f[k] for k in f.files}
    assert {"td", "labels"} <= set(data)
    np.testing.assert_array_equal(data["labels"], ref["labels"])
    assert data["labels"].dtype == np.int16
    if with_flip:
        np.testing.assert_array_equal(data["label_flip"], raw["label_flip"])
    else:
        assert "label_flip" not in data
