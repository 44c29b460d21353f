"""Every registered detector on one seeded run, the README's detector table, and adding a detector.

The names come from the registry, never from a list here: a new detector module is picked up by these
tests without editing them.
"""
import re
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from interpretdl_noise import Recording, TrainingDynamics, compare_detectors, detection_metrics
from interpretdl_noise.common.seeding import paddle_seed
from interpretdl_noise.data import ArrayDataset, DatasetWithIndex, SeededBatchSampler
from interpretdl_noise.interpreter import registry
from interpretdl_noise.interpreter.abc_interpreter import DatasetLevelInterpreter

README = Path(__file__).resolve().parents[1] / "README.md"
N, D, C, EPOCHS = 240, 8, 3, 12
FLIPPED = np.array([3, 40, 77, 118, 150, 201])


@pytest.fixture(scope="module")
def seeded_run():
    """Three well separated Gaussian blobs, six labels moved to another class, a small MLP trained for
    12 epochs with logits and losses recorded: ``(Recording, x)``."""
    import paddle

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(C), N // C)
    centres = rng.normal(0, 4, (C, D))
    x = (centres[y] + rng.normal(0, 1, (N, D))).astype(np.float32)
    noisy = y.copy()
    noisy[FLIPPED] = (y[FLIPPED] + 1) % C
    flips = noisy != y
    with paddle_seed(0):
        net = paddle.nn.Sequential(paddle.nn.Linear(D, 32), paddle.nn.ReLU(), paddle.nn.Linear(32, C))
        loader = paddle.io.DataLoader(DatasetWithIndex(ArrayDataset(x, noisy), index_first=True),
                                      batch_sampler=SeededBatchSampler(N, 32, seed=0))
        opt = paddle.optimizer.Adam(learning_rate=3e-3, parameters=net.parameters())
        recorder = TrainingDynamics(net).generator(loader, opt, EPOCHS, keep_logits=True, keep_losses=True,
                                                   progress=False)
    rec = Recording.from_recorder(recorder, label_flip=flips)
    assert rec.has("logits", "losses", "labels") and int(rec.label_flip.sum()) == FLIPPED.size
    return rec, x


FAST = {"confident_learning": {"epochs": 15, "n_splits": 3}}   # keep its K-fold training short


@pytest.mark.parametrize("name", registry.detector_names())
def test_every_detector_ranks_the_flipped_samples_highest(name, seeded_run):
    rec, x = seeded_run
    cls = registry.detector_class(name)
    assert cls.name == name and cls.summary and issubclass(cls, DatasetLevelInterpreter)
    reason = cls.applicability(rec, has_data=True)
    if reason is not None and "not installed" in reason:
        pytest.skip(reason)
    assert reason is None
    scores = registry.run_detector(name, rec, x=x if cls.needs_data else None, **FAST.get(name, {}))
    assert scores.shape == (N,) and scores.dtype == np.float64 and np.isfinite(scores).all()
    top = np.argsort(-scores, kind="stable")[:FLIPPED.size]
    assert set(top.tolist()) == set(FLIPPED.tolist()), f"{name} ranked {sorted(top.tolist())} highest"
    assert detection_metrics(scores, rec.label_flip)["auroc"] == 1.0


def _readme_detector_rows():
    text = README.read_text()
    rows = []
    for line in text.splitlines():
        m = re.match(r"\|\s*`(\w+)`\s*\|\s*`(\w+)`\s*\|([^|]*)\|([^|]*)\|\s*$", line)
        if m:
            rows.append((m.group(1), m.group(2), m.group(4).strip()))
    return rows


def test_readme_detector_table_matches_the_registry():
    rows = _readme_detector_rows()
    assert [r[0] for r in rows] == registry.detector_names()
    for name, class_name, needs in rows:
        cls = registry.detector_class(name)
        assert class_name == cls.__name__, name
        required, _, preferred = needs.partition(";")
        words = lambda part: set(re.findall(r"`(\w+)`", part))  # noqa: E731  (identifiers only, not commands)
        expected = {"x", "y"} if cls.needs_data else {"td", *cls.requires}
        assert words(required) == expected, f"README 'needs' of {name}: {needs!r}"
        assert words(preferred) == set(cls.prefers), f"README 'needs' of {name}: {needs!r}"


PLUGIN = textwrap.dedent('''
    """A detector added as one module: nothing else in the package is edited."""
    import numpy as np

    from interpretdl_noise.interpreter.abc_interpreter import DatasetLevelInterpreter


    class LastEpochInterpreter(DatasetLevelInterpreter):
        """1 - assigned-label probability in the last epoch; higher = more likely mislabeled."""

        name = "last_epoch"
        summary = "1 - last-epoch assigned-label probability"
        requires = ("labels",)

        def __init__(self):
            super().__init__(model=None, device="cpu")

        def _score(self, record):
            return 1.0 - np.asarray(record.td[:, -1, 0], dtype=np.float64)
''')


def test_a_new_detector_is_one_module(seeded_run, tmp_path, monkeypatch, capsys):
    from interpretdl_noise import cli

    (tmp_path / "my_detector.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    try:
        __import__("my_detector")                                   # importing the module registers it
        assert registry.detector_names()[-1] == "last_epoch"
        rec, _ = seeded_run
        result = compare_detectors(rec, methods=["last_epoch", "small_loss"], progress=False)
        assert result.status["last_epoch"]["status"] == "ran" and result.metrics.loc["last_epoch", "auroc"] > 0.9
        assert "no 'labels'" in registry.applicability("last_epoch", {"td": rec.td})
        path = tmp_path / "rec.npz"
        np.savez(path, td=rec.td, labels=rec.labels, label_flip=rec.label_flip)
        assert cli.main(["detect", str(path), "--method", "last_epoch", "--out", str(tmp_path / "r.csv")]) == 0
        assert "last_epoch: ranked 240 samples" in capsys.readouterr().out
        with pytest.raises(ValueError, match="already registered"):
            type("Other", (DatasetLevelInterpreter,), {"name": "last_epoch", "_score": lambda self, r: r.td[:, 0, 0]})
    finally:
        registry.unregister("last_epoch")
        sys.modules.pop("my_detector", None)
    assert "last_epoch" not in registry.detector_names()
