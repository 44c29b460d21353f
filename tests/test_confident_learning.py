"""Confident learning: K-fold out-of-sample probabilities, cleanlab scoring, and the optional-import hint."""
import sys

import numpy as np
import pytest

from interpretdl_noise._paddle import paddle
from interpretdl_noise.interpreter import confident_learning as cl_mod


def blobs_one_flip_per_class(n_classes=3, n_per_class=40, seed=0):
    """Well separated Gaussian blobs; one label per class flipped to the next class."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 6, (n_classes, 2))
    y = np.repeat(np.arange(n_classes), n_per_class)
    x = (centers[y] + rng.normal(0, 0.7, (y.size, 2))).astype(np.float32)
    flipped = np.array([c * n_per_class + 5 for c in range(n_classes)])
    noisy = y.copy()
    noisy[flipped] = (noisy[flipped] + 1) % n_classes
    return x, noisy, flipped


def test_missing_cleanlab_gives_install_hint(monkeypatch):
    for name in ("cleanlab", "cleanlab.filter", "cleanlab.rank"):
        monkeypatch.setitem(sys.modules, name, None)  # makes `import cleanlab...` raise ImportError
    with pytest.raises(ImportError, match=r"pip install 'interpretdl-noise\[confident\]'"):
        cl_mod.ConfidentLearningInterpreter()
    with pytest.raises(ImportError, match="cleanlab"):
        cl_mod.require_cleanlab()
    from interpretdl_noise.interpreter.registry import applicability

    reason = applicability("confident_learning", has_data=True)
    assert reason is not None and "interpretdl-noise[confident]" in reason


def test_cross_val_pred_probs_are_out_of_sample_and_leave_rng_alone():
    x, noisy, flipped = blobs_one_flip_per_class()
    paddle.seed(123)
    expected = paddle.rand([3]).numpy()
    paddle.seed(123)
    probs = cl_mod.cross_val_pred_probs(x, noisy, n_splits=4, epochs=25, batch_size=32, learning_rate=1e-2, seed=0)
    after = paddle.rand([3]).numpy()
    np.testing.assert_array_equal(after, expected)  # the caller's Paddle RNG stream is untouched
    assert probs.shape == (len(noisy), 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    # out-of-sample: the flipped samples are predicted as their true class, not their given label
    assert (probs[flipped].argmax(axis=1) != noisy[flipped]).all()
    again = cl_mod.cross_val_pred_probs(x, noisy, n_splits=4, epochs=25, batch_size=32, learning_rate=1e-2, seed=0)
    np.testing.assert_array_equal(probs, again)


def test_flipped_labels_rank_most_suspicious():
    pytest.importorskip("cleanlab")
    x, noisy, flipped = blobs_one_flip_per_class()
    cl = cl_mod.ConfidentLearningInterpreter(n_splits=4, epochs=25, batch_size=32, learning_rate=1e-2)
    order, scores = cl.interpret(x, noisy)
    assert set(order[-3:].tolist()) == set(flipped.tolist())
    assert np.all((scores >= 0) & (scores <= 1))
    assert cl.label_issues_[flipped].all()
    flips = np.zeros(len(noisy), bool)
    flips[flipped] = True
    assert cl.evaluate(flips)["auroc"] == 1.0


@pytest.mark.filterwarnings("ignore:May not flag all label issues:UserWarning")
def test_precomputed_pred_probs_self_confidence():
    pytest.importorskip("cleanlab")
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [0.4, 0.6]])
    y = np.array([0, 1, 1, 1])
    cl = cl_mod.ConfidentLearningInterpreter()
    order, scores = cl.interpret(y=y, pred_probs=probs)
    np.testing.assert_allclose(scores, 1 - probs[np.arange(4), y])
    assert order[-1] == 2


def test_bad_input():
    pytest.importorskip("cleanlab")
    with pytest.raises(ValueError, match="method must be one of"):
        cl_mod.ConfidentLearningInterpreter(method="entropy")
    with pytest.raises(ValueError, match="filter_by must be one of"):
        cl_mod.ConfidentLearningInterpreter(filter_by="nope")
    cl = cl_mod.ConfidentLearningInterpreter()
    with pytest.raises(ValueError, match="give x"):
        cl.interpret(y=np.array([0, 1]))
    with pytest.raises(ValueError, match="pred_probs must have shape"):
        cl.interpret(y=np.array([0, 1]), pred_probs=np.ones((3, 2)) / 2)
    with pytest.raises(ValueError, match="x must have shape"):
        cl_mod.cross_val_pred_probs(np.zeros((4, 2)), np.array([0, 1, 0]))
    with pytest.raises(ValueError, match="n_splits"):
        cl_mod.cross_val_pred_probs(np.zeros((4, 2)), np.array([0, 1, 0, 1]), n_splits=9)
    with pytest.raises(ValueError, match="per-sample shapes"):
        cl_mod.default_model((2, 3), 2)
