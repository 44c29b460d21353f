"""Forgetting events on recordings: hand-computed counts, InterpretDL's find_noisy_labels rule, ranking."""
import numpy as np
import pytest

from interpretdl_noise import save_training_dynamics
from interpretdl_noise.interpreter.forgetting_events import (
    ForgettingEventsInterpreter,
    correctness_from_td,
    find_noisy_labels,
    forgetting_counts,
    forgetting_scores,
    mean_correct_epoch,
)

# rows: always right; learned, forgotten, relearned; right-wrong-right-wrong; never learned; learned at the end
CORRECT = np.array([[1, 1, 1, 1],
                    [0, 1, 0, 1],
                    [1, 0, 1, 0],
                    [0, 0, 0, 0],
                    [0, 0, 0, 1]], dtype=bool)


def td_from_correct(correct, n_classes=3):
    """A (N, E, C) td whose per-epoch argmax is channel 0 exactly where ``correct`` is True."""
    n, e = correct.shape
    td = np.full((n, e, n_classes), 0.1 / (n_classes - 2), dtype=np.float32)
    td[:, :, 0] = np.where(correct, 0.8, 0.1)
    td[:, :, 1] = np.where(correct, 0.1, 0.8)
    td[:, :, 2:] = 0.1 / (n_classes - 2)
    return td


def test_hand_computed_counts_scores_and_mean_epoch():
    np.testing.assert_array_equal(forgetting_counts(CORRECT), [0, 1, 2, 0, 0])
    np.testing.assert_array_equal(forgetting_scores(CORRECT), [0, 1, 2, 1000, 0])
    np.testing.assert_array_equal(forgetting_scores(CORRECT, never_learned=7), [0, 1, 2, 7, 0])
    mean = mean_correct_epoch(CORRECT)
    np.testing.assert_allclose(mean[[0, 1, 2, 4]], [1.5, 2.0, 1.0, 3.0])
    assert np.isnan(mean[3])


def test_correctness_from_td_uses_label_order_for_ties():
    # one sample, one epoch, assigned class 2 (channel 0) ties with class 0 (channel 1)
    td = np.array([[[0.4, 0.4, 0.2]]], dtype=np.float16)
    labels = np.array([[2, 0, 1]], dtype=np.int16)
    assert correctness_from_td(td)[0, 0]                      # channel order: channel 0 wins the tie
    assert not correctness_from_td(td, labels)[0, 0]          # model order: class 0 < class 2 wins
    # without a tie both agree
    td2 = np.array([[[0.3, 0.5, 0.2], [0.6, 0.3, 0.1]]], dtype=np.float16)
    np.testing.assert_array_equal(correctness_from_td(td2, labels), [[False, True]])
    np.testing.assert_array_equal(correctness_from_td(td2), [[False, True]])
    with pytest.raises(ValueError, match="labels must have shape"):
        correctness_from_td(td2, labels[:, :2])


def test_find_noisy_labels_interpretdl_rule():
    # 40 samples correct in every epoch (mean epoch 4.5), one learned only at the last epoch (mean 9),
    # one never learned (skipped, as InterpretDL does)
    correct = np.ones((42, 10), dtype=bool)
    correct[40, :9] = False
    correct[41] = False
    values = mean_correct_epoch(correct)[:41]
    assert values[40] > values.mean() + 5 * values.std()
    np.testing.assert_array_equal(find_noisy_labels(correct), [40])
    np.testing.assert_array_equal(find_noisy_labels(correct, sample_ids=np.arange(100, 142)), [140])
    assert find_noisy_labels(correct, n_std=50).size == 0
    assert find_noisy_labels(np.zeros((3, 4), bool)).size == 0


def test_interpreter_on_recording(tmp_path):
    td = td_from_correct(CORRECT)
    labels = np.tile(np.arange(3, dtype=np.int16), (5, 1))
    path = save_training_dynamics(tmp_path / "td.npz", td, labels, sample_ids=np.arange(10, 15))
    fe = ForgettingEventsInterpreter()
    order, scores = fe.interpret(training_dynamics_path=path)
    np.testing.assert_array_equal(scores, [0, 1, 2, 1000, 0])
    assert order[-1] == 3 and order[-2] == 2
    np.testing.assert_array_equal(fe.correct_, CORRECT)
    assert fe.count_forgotten_ == {-1: [3], 0: [0, 4], 1: [1], 2: [2]}
    np.testing.assert_array_equal(fe.never_learned_, [False, False, False, True, False])
    assert fe.find_noisy_labels(training_dynamics_path=path, n_std=0.5).tolist() == [14]


def test_flipped_samples_rank_most_suspicious():
    rng = np.random.default_rng(0)
    n, e = 120, 20
    flips = np.zeros(n, bool)
    flips[[3, 50, 77, 101]] = True
    # clean samples: learned early and rarely forgotten; flipped: never learned or often forgotten
    correct = np.ones((n, e), bool)
    correct[:, :2] = rng.random((n, 2)) < 0.5
    correct[~flips, 2:] = rng.random(((~flips).sum(), e - 2)) > 0.01
    correct[flips] = rng.random((flips.sum(), e)) < 0.5
    correct[3] = False
    fe = ForgettingEventsInterpreter()
    order, _scores = fe.interpret(training_dynamics={"td": td_from_correct(correct)})
    assert set(order[-4:].tolist()) == {3, 50, 77, 101}
    assert fe.evaluate(flips)["auroc"] == 1.0


def test_bad_input():
    with pytest.raises(ValueError, match="never_learned"):
        ForgettingEventsInterpreter(never_learned=float("inf"))
    with pytest.raises(ValueError, match="shape"):
        forgetting_counts(np.ones(3, bool))
    with pytest.raises(ValueError, match="0/1"):
        forgetting_counts(np.array([[0, 2]]))
    with pytest.raises(ValueError, match="exactly one"):
        ForgettingEventsInterpreter().interpret()
