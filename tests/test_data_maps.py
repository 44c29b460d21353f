"""Data maps: hand-computed statistics, score direction, the plot, and flipped samples ranked first."""
import numpy as np
import pytest
from matplotlib.figure import Figure

from interpretdl_noise.interpreter.data_maps import DataMapsInterpreter, data_map_statistics


def hand_td():
    """Two samples, four epochs, three classes; p0 = assigned-label probability."""
    p0 = np.array([[0.2, 0.4, 0.6, 0.8],
                   [0.5, 0.5, 0.5, 0.5]])
    p1 = np.array([[0.7, 0.5, 0.3, 0.1],     # argmax channel 1, 1, 0, 0 -> correct in 2 of 4 epochs
                   [0.3, 0.3, 0.3, 0.3]])    # channel 0 always wins -> correct 4 of 4
    td = np.stack([p0, p1, 1 - p0 - p1], axis=2).astype(np.float16)
    return td


def test_hand_computed_statistics():
    stats = data_map_statistics(hand_td())
    assert list(stats.columns) == ["confidence", "variability", "correctness", "threshold_closeness"]
    np.testing.assert_allclose(stats["confidence"], [0.5, 0.5], atol=1e-3)
    # population std of (0.2, 0.4, 0.6, 0.8) = sqrt(0.05)
    np.testing.assert_allclose(stats["variability"], [np.sqrt(0.05), 0.0], atol=1e-3)
    np.testing.assert_allclose(stats["correctness"], [0.5, 1.0])
    np.testing.assert_allclose(stats["threshold_closeness"], [0.25, 0.25], atol=1e-3)
    ci = data_map_statistics(hand_td(), variability="ci")["variability"]
    np.testing.assert_allclose(ci, [np.sqrt(0.05 + 0.05 ** 2 / 3), 0.0], atol=1e-3)


def test_score_is_low_confidence_and_plot(tmp_path):
    td = hand_td()
    td[1, :, 0] = 0.9
    td[1, :, 1:] = 0.05
    dm = DataMapsInterpreter()
    order, scores = dm.interpret(training_dynamics={"td": td})
    np.testing.assert_allclose(scores, 1 - dm.statistics_["confidence"].to_numpy())
    np.testing.assert_allclose(scores, [0.5, 0.1], atol=2e-3)
    assert order.tolist() == [1, 0]
    fig = dm.plot(top_k=1, save_path=tmp_path / "map.png")
    assert isinstance(fig, Figure)
    assert (tmp_path / "map.png").read_bytes()[:4] == b"\x89PNG"
    ax = fig.axes[0]
    assert ax.get_xlabel().startswith("variability") and ax.get_ylabel().startswith("confidence")
    assert "top-1" in ax.get_legend().get_texts()[0].get_text()
    dm.plot(flagged=np.array([True, False]))


def test_flipped_samples_rank_most_suspicious():
    rng = np.random.default_rng(1)
    n, e, c = 150, 15, 5
    flipped = [7, 42, 99]
    rise = np.linspace(0.3, 0.95, e)
    p0 = np.clip(rise + rng.normal(0, 0.05, (n, e)), 0.01, 0.99)
    p0[flipped] = np.clip(0.15 + rng.normal(0, 0.05, (len(flipped), e)), 0.01, 0.99)
    rest = (1 - p0)[:, :, None] * rng.dirichlet(np.ones(c - 1), size=(n, e))
    td = np.concatenate([p0[:, :, None], rest], axis=2)
    order, _ = DataMapsInterpreter().interpret(training_dynamics={"td": td})
    assert set(order[-3:].tolist()) == set(flipped)


def test_bad_input():
    with pytest.raises(ValueError, match="variability must be one of"):
        DataMapsInterpreter(variability="var")
    with pytest.raises(ValueError, match="needs at least 2 epochs"):
        data_map_statistics(hand_td()[:, :1], variability="ci")
    with pytest.raises(RuntimeError, match="interpret"):
        DataMapsInterpreter().plot()
    dm = DataMapsInterpreter()
    dm.interpret(training_dynamics={"td": hand_td()})
    with pytest.raises(ValueError, match="top_k"):
        dm.plot(top_k=5)
