"""Crowd simulation, aggregation baselines (majority vote, Dawid-Skene) and peerannot I/O."""
import json

import numpy as np
import pytest

from interpretdl_noise import load_digits_arrays
from interpretdl_noise.crowd import (
    PeerannotImageFolder,
    answers_to_matrix,
    common_confusion_matrix,
    dawid_skene,
    load_answers,
    majority_vote,
    matrix_to_answers,
    read_metadata,
    save_answers,
    save_image_folder,
    simulate_crowd,
    task_id_from_filename,
    vote_counts,
    write_metadata,
)


@pytest.fixture(scope="module")
def digits_crowd():
    _, y = load_digits_arrays()
    return y, simulate_crowd(y, 10, seed=0)


# ------------------------------------------------------------------------------------------------ simulation
def test_common_confusion_is_a_pair_swap():
    t = common_confusion_matrix(10, rate=0.6, seed=3)
    np.testing.assert_allclose(t.sum(1), 1.0)
    np.testing.assert_allclose(np.diag(t), 0.4)
    partner = t.argmax(1)
    assert np.all(partner != np.arange(10))
    np.testing.assert_array_equal(partner[partner], np.arange(10))  # an involution: pairs swap
    with pytest.raises(ValueError, match="rate"):
        common_confusion_matrix(10, rate=1.5)


def test_simulation_structure_and_reproducibility(digits_crowd):
    y, sim = digits_crowd
    state = np.random.get_state()[1].copy()
    again = simulate_crowd(y, 10, seed=0)
    np.testing.assert_array_equal(np.random.get_state()[1], state)  # no global numpy seeding
    np.testing.assert_array_equal(sim.labels, again.labels)
    assert not np.array_equal(sim.labels, simulate_crowd(y, 10, seed=1).labels)
    assert sim.labels.shape == (y.size, 30)
    np.testing.assert_array_equal((sim.labels >= 0).sum(1), 3)  # k distinct workers per task
    kinds, counts = np.unique(sim.worker_types, return_counts=True)
    assert dict(zip(kinds.tolist(), counts.tolist())) == {"confuser": 12, "expert": 15, "spammer": 3}
    np.testing.assert_allclose(sim.confusions.sum(-1), 1.0)


def test_confusers_follow_the_common_confusion(digits_crowd):
    y, sim = digits_crowd
    conf = sim.worker_types == "confuser"
    t, w = np.nonzero(sim.labels[:, conf] >= 0)
    answers = sim.labels[:, conf][t, w]
    emp = np.zeros((10, 10))
    np.add.at(emp, (y[t], answers), 1)
    emp /= emp.sum(1, keepdims=True)
    assert np.abs(emp - sim.common_confusion).max() < 0.12
    spam = sim.worker_accuracy()[sim.worker_types == "spammer"]
    assert np.all(spam < 0.25)


def test_simulation_rejects_bad_input():
    with pytest.raises(ValueError, match="labels_per_task"):
        simulate_crowd(np.array([0, 1, 2]), 3, n_workers=2, labels_per_task=3)
    with pytest.raises(ValueError, match="sum to at most 1"):
        simulate_crowd(np.array([0, 1]), 2, frac_confusers=0.7, frac_spammers=0.5)
    with pytest.raises(ValueError, match="n_classes"):
        simulate_crowd(np.array([0, 5]), 3)


# ------------------------------------------------------------------------------------------------ aggregation
def test_majority_vote_by_hand():
    labels = np.array([[0, 0, 1, -1],
                       [2, -1, 1, -1],
                       [-1, -1, -1, -1],
                       [1, 1, 1, 0]])
    np.testing.assert_array_equal(vote_counts(labels, 3), [[2, 1, 0], [0, 1, 1], [0, 0, 0], [1, 3, 0]])
    first = majority_vote(labels, 3, ties="first")
    np.testing.assert_array_equal(first, [0, 1, -1, 1])
    tie_picks = {int(majority_vote(labels, 3, seed=s)[1]) for s in range(20)}
    assert tie_picks == {1, 2}  # random tie-break among the tied classes only
    answers = {"0": {"0": 0, "1": 0, "2": 1}, "1": {"0": 2, "2": 1}, "3": {"0": 1, "1": 1, "2": 1, "3": 0}}
    np.testing.assert_array_equal(majority_vote(answers, 3, ties="first"), first)
    with pytest.raises(ValueError, match="ties"):
        majority_vote(labels, ties="max")
    with pytest.raises(ValueError, match="no answer"):
        majority_vote(np.full((2, 2), -1))


def test_dawid_skene_beats_majority_vote(digits_crowd):
    y, sim = digits_crowd
    ds = dawid_skene(sim.labels, 10)
    mv = majority_vote(sim.labels, 10)
    assert ds.converged
    np.testing.assert_allclose(ds.posteriors.sum(1), 1.0)
    np.testing.assert_allclose(ds.confusions.sum(-1), 1.0)
    acc_ds, acc_mv = (ds.labels == y).mean(), (mv == y).mean()
    assert acc_ds > acc_mv + 0.1
    # crowd-kit 1.4.2 DawidSkene(n_iter=100) on this very crowd reaches 0.87312 (checked in a side venv; it
    # agreed with ours on 99.9% of the tasks)
    assert abs(acc_ds - 0.87312) < 0.003
    # the confusers' estimated matrices find the common confusion
    est = ds.confusions[sim.worker_types == "confuser"].mean(0)
    assert np.abs(est - sim.common_confusion).mean() < np.abs(np.eye(10) - sim.common_confusion).mean() / 2


def test_dawid_skene_recovers_a_flipping_worker():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 2, 200)
    good = np.stack([np.where(rng.random(200) < 0.85, truth, 1 - truth) for _ in range(4)], 1)
    labels = np.concatenate([good, (1 - truth)[:, None]], 1)  # worker 4 always answers the other class
    ds = dawid_skene(labels, 2)
    np.testing.assert_allclose(ds.confusions[4], [[0, 1], [1, 0]], atol=0.05)
    assert (ds.labels == truth).mean() > 0.97


# ------------------------------------------------------------------------------------------------ peerannot I/O
def test_load_answers_accepts_strings_and_ints(tmp_path):
    path = tmp_path / "answers.json"
    path.write_text(json.dumps({"1": {"0": 2, "3": 0}, "0": {"1": 1}}))
    out = load_answers(path, n_classes=3, n_workers=4, task_ids=[0, 1, 2])
    assert out == {0: {1: 1}, 1: {0: 2, 3: 0}}
    assert load_answers({1: {0: 2, 3: 0}, 0: {1: 1}}) == out
    m = answers_to_matrix(out)
    np.testing.assert_array_equal(m, [[-1, 1, -1, -1], [2, -1, -1, 0]])
    assert load_answers(matrix_to_answers(m)) == out
    save_answers(out, tmp_path / "copy.json")
    assert load_answers(tmp_path / "copy.json") == out


@pytest.mark.parametrize("content, match", [
    ("{\"0\": {\"1\": 2,}", "not valid JSON"),
    ("[1, 2]", "JSON object"),
    ("{}", "no answer"),
    ("{\"0\": {}}", "no answer"),
    ("{\"0\": {\"1\": 7}}", "outside \\[0, 3\\)"),
    ("{\"0\": {\"1\": -1}}", "outside"),
    ("{\"0\": {\"1\": \"cat\"}}", "integer class id"),
    ("{\"0\": {\"1\": 1.0}}", "integer class id"),
    ("{\"0\": {\"9\": 1}}", "n_workers=4"),
    ("{\"x\": {\"1\": 1}}", "task id"),
    ("{\"0\": {\"1\": 1}, \"9\": {\"1\": 1}}", "not in the train set"),
    ("{\"0\": 1}", "must be an object"),
])
def test_bad_answers_are_clear_errors(tmp_path, content, match):
    path = tmp_path / "answers.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=match):
        load_answers(path, n_classes=3, n_workers=4, task_ids=[0, 1])


def test_duplicate_task_and_missing_file(tmp_path):
    with pytest.raises(ValueError, match="twice"):
        load_answers({"1": {"0": 1}, 1: {"0": 1}})
    with pytest.raises(FileNotFoundError):
        load_answers(tmp_path / "nope.json")


def test_metadata_roundtrip_and_validation(tmp_path):
    path = write_metadata(tmp_path / "metadata.json", name="toy", n_classes=3, n_workers=5, n_tasks=7)
    assert read_metadata(path) == {"name": "toy", "n_classes": 3, "n_workers": 5, "n_tasks": 7}
    path.write_text(json.dumps({"n_classes": 3}))
    with pytest.raises(ValueError, match="n_workers"):
        read_metadata(path)


def test_task_id_from_filename():
    assert task_id_from_filename("cat-12.png") == 12
    assert task_id_from_filename("/a/b/my-img-7.jpeg") == 7
    with pytest.raises(ValueError, match="-<task_id>"):
        task_id_from_filename("cat.png")


def test_image_folder_roundtrip(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 6, 7), dtype=np.uint8)
    labels = np.array([0, 1, 1, 2, 0])
    save_image_folder(tmp_path / "train", images, labels, task_ids=[10, 11, 12, 13, 14])
    train = PeerannotImageFolder(tmp_path / "train", with_task_ids=True, mode="L")
    assert train.classes == ["0", "1", "2"] and len(train) == 5
    assert sorted(train.task_ids.tolist()) == [10, 11, 12, 13, 14]
    for i in range(5):
        x, tid = train[i]
        assert x.shape == (1, 6, 7) and x.dtype == np.float32
        np.testing.assert_allclose(x[0] * 255.0, images[tid - 10], atol=1e-3)
    rgb = PeerannotImageFolder(tmp_path / "train", img_size=4)
    x, lab = rgb[0]
    assert x.shape == (3, 4, 4) and lab == 0 and rgb.task_ids is None
    save_image_folder(tmp_path / "dup", images[:2], [0, 1], task_ids=[3, 3])
    with pytest.raises(ValueError, match="more than one file"):
        PeerannotImageFolder(tmp_path / "dup", with_task_ids=True)
    with pytest.raises(FileNotFoundError):
        PeerannotImageFolder(tmp_path / "missing")
