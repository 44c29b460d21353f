"""Recording layer: DynamicsRecorder storage, per-class interpolation, td ordering, npz save/load."""
import zipfile

import numpy as np
import pytest

from interpretdl_noise import DynamicsRecorder, load_training_dynamics, save_training_dynamics, transform_dynamics
from interpretdl_noise.recording import interpolate_missing
from interpretdl_noise.recording.transform import dict_to_array


# ---------------------------------------------------------------- interpolation
def test_interpolation_is_per_class_hand_computed():
    probs = np.array([[[0.6, 0.3, 0.1], [np.nan] * 3, [0.8, 0.1, 0.1]]], dtype=np.float32)
    out = interpolate_missing(probs)
    np.testing.assert_allclose(out[0, 1], [0.7, 0.2, 0.1], atol=1e-6)  # InterpretDL 0.8 gives 0.45 everywhere
    np.testing.assert_allclose(out.sum(axis=-1), 1.0, atol=1e-6)


def test_interpolation_two_gap_weights_and_edges():
    a, b = np.array([0.9, 0.1]), np.array([0.3, 0.7])
    nan = [np.nan, np.nan]
    probs = np.array([[nan, a, nan, nan, b, nan]], dtype=np.float32)
    out = interpolate_missing(probs)[0]
    np.testing.assert_allclose(out[0], a, atol=1e-6)  # leading gap: nearest recorded epoch
    np.testing.assert_allclose(out[2], a + (b - a) / 3, atol=1e-6)
    np.testing.assert_allclose(out[3], a + 2 * (b - a) / 3, atol=1e-6)
    np.testing.assert_allclose(out[5], b, atol=1e-6)  # trailing gap: last recorded epoch, not another class


def test_interpolation_leaves_recorded_values_and_handles_chunks(monkeypatch):
    import interpretdl_noise.recording.transform as tr

    monkeypatch.setattr(tr, "_CHUNK", 3)
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), size=(10, 7)).astype(np.float32)
    holes = rng.random((10, 7)) < 0.3
    holes[:, 0] = False
    gappy = probs.copy()
    gappy[holes] = np.nan
    out = interpolate_missing(gappy)
    np.testing.assert_array_equal(out[~holes], probs[~holes])
    np.testing.assert_allclose(out.sum(-1), 1.0, atol=1e-5)


def test_sample_without_any_epoch_is_named():
    probs = np.full((3, 4, 2), 0.5, dtype=np.float32)
    probs[1] = np.nan
    with pytest.raises(ValueError, match=r"sample ids \[41\]"):
        interpolate_missing(probs, sample_ids=[40, 41, 42])


# ---------------------------------------------------------------- transform
def test_transform_orders_channels_like_interpretdl():
    # sample 0: assigned 2; mean probs over epochs: class0 .5, class1 .2, class2 .3
    probs = np.array([[[0.6, 0.1, 0.3], [0.4, 0.3, 0.3]]], dtype=np.float32)
    td, labels = transform_dynamics(probs, [2])
    assert td.dtype == np.float16 and labels.dtype == np.int16
    np.testing.assert_array_equal(labels, [[2, 0, 1]])
    np.testing.assert_allclose(td[0].astype(np.float32), probs[0][:, [2, 0, 1]], atol=1e-3)


def test_transform_rejects_bad_targets():
    probs = np.full((2, 3, 4), 0.25, dtype=np.float32)
    with pytest.raises(ValueError, match="assigned_targets"):
        transform_dynamics(probs, [0, 4])
    with pytest.raises(ValueError, match="2 samples"):
        transform_dynamics(probs, [0])


def test_interpretdl_dict_input_with_nan_vectors():
    nanvec = np.full(3, np.nan, dtype=np.float32)
    logits = {5: [np.array([0.6, 0.3, 0.1]), nanvec, np.array([0.8, 0.1, 0.1])],
              2: [np.array([0.1, 0.1, 0.8])] * 3}
    ids, probs = dict_to_array(logits)
    np.testing.assert_array_equal(ids, [2, 5])
    td, labels = transform_dynamics(probs, [2, 0], sample_ids=ids)
    np.testing.assert_allclose(td[1, 1].astype(np.float32), [0.7, 0.2, 0.1], atol=2e-3)
    with pytest.raises(ValueError, match="same number of epoch vectors"):
        dict_to_array({0: [nanvec], 1: [nanvec, nanvec]})


# ---------------------------------------------------------------- recorder
def test_recorder_writes_by_id_and_tracks_seen():
    rec = DynamicsRecorder(5, 2, 3)
    rec.update(0, [4, 0], np.eye(3)[[1, 2]], targets=[1, 2])
    assert rec.seen[[4, 0], 0].all() and rec.seen.sum() == 2
    np.testing.assert_array_equal(rec.probs[4, 0], [0, 1, 0])
    assert np.isnan(rec.probs[1, 0]).all()
    np.testing.assert_array_equal(rec.targets, [2, -1, -1, -1, 1])
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        rec.update(0, [5], np.eye(3)[:1])
    with pytest.raises(ValueError, match="epoch"):
        rec.update(2, [0], np.eye(3)[:1])
    with pytest.raises(ValueError, match="shape"):
        rec.update(0, [0, 1], np.eye(3)[:1])


def test_recorder_memmap_and_merge_equal_single_process(tmp_path):
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(3), size=(8, 2)).astype(np.float32)
    single = DynamicsRecorder(8, 2, 3, keep_losses=True)
    shards = [DynamicsRecorder(8, 2, 3, keep_losses=True, directory=tmp_path / f"rank{r}") for r in range(2)]
    for epoch in range(2):
        ids = rng.permutation(8)
        single.update(epoch, ids, probs[ids, epoch], targets=ids % 3, losses=ids * 1.0)
        for r, part in enumerate(np.array_split(ids, 2)):  # each rank sees half the ids
            shards[r].update(epoch, part, probs[part, epoch], targets=part % 3, losses=part * 1.0)
    assert (tmp_path / "rank0" / "probs.npy").exists()
    merged = DynamicsRecorder.merge(shards)
    np.testing.assert_array_equal(merged.probs, single.probs)
    np.testing.assert_array_equal(merged.losses, single.losses)
    np.testing.assert_array_equal(merged.targets, single.targets)
    assert merged.seen.all()


# ---------------------------------------------------------------- npz files
def _record(n=6, e=4, c=3, seed=0):
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(c), size=(n, e)).astype(np.float32)
    targets = rng.integers(0, c, size=n)
    td, labels = transform_dynamics(probs, targets)
    return td, labels, rng.random(n) < 0.5


def test_save_load_round_trip_atomic(tmp_path):
    td, labels, flips = _record()
    path = save_training_dynamics(tmp_path / "sub" / "training_dynamics.npz", td, labels, label_flip=flips,
                                  meta={"seed": 3}, losses=np.ones(td.shape[:2], np.float32))
    assert sorted(p.name for p in path.parent.iterdir()) == ["training_dynamics.npz"]  # no temp file left
    rec = load_training_dynamics(path)
    np.testing.assert_array_equal(rec["td"], td)
    np.testing.assert_array_equal(rec["labels"], labels)
    np.testing.assert_array_equal(rec["label_flip"], flips)
    assert rec["meta"] == {"seed": 3} and rec["losses"].shape == td.shape[:2]
    with np.load(path, allow_pickle=False) as raw:  # plain numpy can read every key without pickle
        assert set(raw.files) == {"td", "labels", "label_flip", "meta", "losses"}


def test_interpretdl_style_file_with_pickled_none_loads_without_unpickling(tmp_path, monkeypatch):
    td, labels, _ = _record()
    path = tmp_path / "training_dynamics.npz"
    np.savez_compressed(path, label_flip=None, labels=labels, td=td)  # what InterpretDL 0.8 writes

    import pickle

    def refuse(*a, **k):
        raise AssertionError("unpickling attempted")

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    rec = load_training_dynamics(path)
    assert "label_flip" not in rec and rec["td"].shape == td.shape


@pytest.mark.parametrize("case, message", [
    ("truncated", "truncated or corrupt"),
    ("missing_td", "missing required key 'td'"),
    ("wrong_shape", "shape"),
    ("nan_sample", "NaN for 1 sample"),
    ("object_array", "pickled object"),
    ("bad_labels", "permutation"),
    ("out_of_range", r"\[0, 1\]"),
    ("flip_length", "label_flip"),
])
def test_bad_files_are_rejected_clearly(tmp_path, case, message):
    td, labels, flips = _record()
    path = tmp_path / "bad.npz"
    if case == "truncated":
        save_training_dynamics(path, td, labels)
        path.write_bytes(path.read_bytes()[:100])
    elif case == "missing_td":
        np.savez(path, labels=labels)
    elif case == "wrong_shape":
        np.savez(path, td=td[:, :, 0], labels=labels)
    elif case == "nan_sample":
        bad = td.copy()
        bad[2] = np.nan
        np.savez(path, td=bad, labels=labels)
    elif case == "object_array":
        np.savez(path, td=td, labels=labels, label_flip=np.array([1, "x", None], dtype=object))
    elif case == "bad_labels":
        np.savez(path, td=td, labels=np.zeros_like(labels))
    elif case == "out_of_range":
        np.savez(path, td=td * 3, labels=labels)
    elif case == "flip_length":
        np.savez(path, td=td, labels=labels, label_flip=flips[:-1])
    with pytest.raises(ValueError, match=message):
        load_training_dynamics(path)


def test_missing_file_and_not_a_zip(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_training_dynamics(tmp_path / "none.npz")
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(ValueError, match="not a readable npz"):
        load_training_dynamics(tmp_path / "text.npz")
    with zipfile.ZipFile(tmp_path / "empty.npz", "w"):
        pass
    with pytest.raises(ValueError, match="no .npy arrays"):
        load_training_dynamics(tmp_path / "empty.npz")


def test_failed_save_keeps_existing_file(tmp_path):
    td, labels, _ = _record()
    path = save_training_dynamics(tmp_path / "t.npz", td, labels)
    before = path.read_bytes()
    with pytest.raises(ValueError):
        save_training_dynamics(path, td, labels[:2])
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["t.npz"]


def test_saved_file_has_normal_permissions(tmp_path):
    import os

    td, labels, _ = _record()
    umask = os.umask(0o022)
    try:
        path = save_training_dynamics(tmp_path / "t.npz", td, labels)
    finally:
        os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o644
