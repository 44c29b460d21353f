"""The typed ``Recording``: every accepted form, validated once, properties, require() and derived losses."""
import numpy as np
import pytest

from interpretdl_noise import DynamicsRecorder, MissingRecordingKey, Recording, save_training_dynamics
from interpretdl_noise.recording import transform_dynamics


def _arrays(n=8, e=5, c=3, seed=0):
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(c), size=(n, e)).astype(np.float32)
    targets = rng.integers(0, c, n)
    td, labels = transform_dynamics(probs, targets)
    flips = np.zeros(n, dtype=bool)
    flips[:2] = True
    return probs, targets, td, labels, flips


def test_every_form_gives_the_same_recording(tmp_path):
    probs, targets, td, labels, flips = _arrays()
    path = save_training_dynamics(tmp_path / "r.npz", td, labels, label_flip=flips, meta={"k": 1})
    rec = DynamicsRecorder(8, 5, 3)
    for epoch in range(5):
        rec.update(epoch, np.arange(8), probs[:, epoch], targets=targets)
    forms = [Recording.coerce(path), Recording.coerce(str(path)), Recording.coerce(np.load(path)),
             Recording.coerce({"td": td, "labels": labels, "label_flip": flips}),
             Recording.from_recorder(rec, label_flip=flips)]
    for r in forms:
        np.testing.assert_array_equal(r.td, td)
        np.testing.assert_array_equal(r.labels, labels)
        np.testing.assert_array_equal(r.label_flip, flips)
        np.testing.assert_array_equal(r.assigned_labels, targets)
        np.testing.assert_array_equal(r.sample_ids, np.arange(8))
        assert (r.n_samples, r.n_epochs, r.n_classes) == (8, 5, 3)
        assert r.has_usable_flips
    assert forms[0].meta == {"k": 1} and forms[0].source == str(path)
    assert Recording.coerce(forms[0]) is forms[0]  # never validated twice


def test_recording_is_a_read_only_mapping():
    _, _, td, labels, _ = _arrays()
    r = Recording.coerce({"td": td, "labels": labels})
    assert set(r) == {"td", "labels"} and len(r) == 2
    assert r["td"] is r.td and "losses" not in r and r.get("losses") is None
    assert r.label_flip is None and not r.has_usable_flips and r.meta == {}
    with pytest.raises(TypeError):
        r["td"] = td  # a Mapping, not a MutableMapping


def test_require_names_the_key_and_how_to_record_it():
    _, _, td, labels, _ = _arrays()
    r = Recording.coerce({"td": td, "labels": labels})
    assert r.require("td", "labels") is r
    with pytest.raises(MissingRecordingKey, match=r"no 'losses' \(ema needs it; record with keep_losses=True\)"):
        r.require("td", "losses", needed_by="ema")
    with pytest.raises(ValueError, match="keep_logits=True"):  # MissingRecordingKey is a ValueError
        r.require("logits")
    assert Recording.coerce({"td": td}).assigned_labels is None


def test_losses_are_derived_from_td_when_absent():
    _, _, td, labels, _ = _arrays()
    r = Recording.coerce({"td": td, "labels": labels})
    assert r.losses_derived
    np.testing.assert_allclose(r.loss_curves(), -np.log(td[:, :, 0].astype(np.float64)))
    losses = np.full(td.shape[:2], 0.5, dtype=np.float32)
    r2 = Recording.coerce({"td": td, "labels": labels, "losses": losses})
    assert not r2.losses_derived and np.all(r2.loss_curves() == 0.5)
    zero = td.copy()
    zero[0, 0] = [0, 1, 0]
    assert np.isfinite(Recording.coerce({"td": zero}).loss_curves()).all()  # p = 0 is clipped, not inf


def test_bad_inputs_are_refused_clearly(tmp_path):
    with pytest.raises(ValueError, match="npz path, a mapping"):
        Recording.coerce(42)
    with pytest.raises(ValueError, match="missing required key 'td'"):
        Recording.coerce({"labels": np.zeros((2, 2))})
    with pytest.raises(FileNotFoundError):
        Recording.coerce(tmp_path / "absent.npz")
