"""Detector registry, compare_detectors report files, and the ``compare`` / ``detect`` commands."""
import argparse
import json

import numpy as np
import pandas as pd
import pytest

from interpretdl_noise import cli, save_training_dynamics
from interpretdl_noise.commands import compare as compare_cmd
from interpretdl_noise.commands import detect as detect_cmd
from interpretdl_noise.compare import compare_detectors, ranked_table, topk_agreement
from interpretdl_noise.interpreter import registry
from interpretdl_noise.interpreter.abc_interpreter import LOSSES_DERIVED_NOTE, DatasetLevelInterpreter
from interpretdl_noise.interpreter.registry import DetectorNotApplicable

N, E, C = 120, 10, 4
FLIPPED = [5, 17, 60, 61, 90, 111]
RECORDING_ONLY = ["forgetting", "datamaps", "small_loss"]


def synthetic_record(seed=0, with_flip=True, losses=False):
    """td where flipped samples keep a low channel-0 (assigned-label) probability."""
    rng = np.random.default_rng(seed)
    flips = np.zeros(N, bool)
    flips[FLIPPED] = True
    p0 = np.where(flips[:, None], rng.uniform(0.02, 0.3, (N, E)), rng.uniform(0.45, 0.99, (N, E)))
    rest = (1 - p0)[:, :, None] * rng.dirichlet(np.ones(C - 1), size=(N, E))
    td = np.concatenate([p0[:, :, None], rest], axis=2)
    labels = np.stack([rng.permutation(C) for _ in range(N)]).astype(np.int16)
    extras = {"sample_ids": np.arange(1000, 1000 + N)}
    if losses:
        extras["losses"] = -np.log(p0).astype(np.float32)
    return td, labels, (flips if with_flip else None), extras


@pytest.fixture
def npz(tmp_path):
    td, labels, flips, extras = synthetic_record()
    return save_training_dynamics(tmp_path / "rec.npz", td, labels, label_flip=flips, **extras)


def test_registry_names_and_unknown():
    builtin = ["bhdf", "aum", "ema", "forgetting", "datamaps", "small_loss", "confident_learning"]
    # the built-in detectors keep their listing order; a new one may stand anywhere by its listing_order
    assert [name for name in registry.detector_names() if name in builtin] == builtin
    with pytest.raises(ValueError, match="unknown detector 'nope'; choose from"):
        registry.get_spec("nope")


def test_registry_reports_unavailable_detectors(monkeypatch):
    class Ghost(DatasetLevelInterpreter, register=False):
        """Stands for a detector whose optional dependency is not installed."""

        name, summary = "ghost", "missing dependency"

        def __init__(self):
            raise ImportError("ghost needs the package 'ghostlib'")

        def _score(self, record):
            return record.td[:, 0, 0]

    class NoLogits(DatasetLevelInterpreter, register=False):
        name, summary, requires = "nologits", "needs logits", ("logits",)

        def _score(self, record):
            return record.logits[:, 0, 0]

    monkeypatch.setitem(registry._REGISTRY, "ghost", Ghost)
    monkeypatch.setitem(registry._REGISTRY, "nologits", NoLogits)
    td, labels, flips, _ = synthetic_record()
    record = {"td": td, "labels": labels, "label_flip": flips}
    assert registry.applicability("nologits", record) == ("recording has no 'logits' (nologits needs it; record "
                                                          "with keep_logits=True)")
    with pytest.raises(DetectorNotApplicable, match="ghost: not applicable: ghost needs the package 'ghostlib'"):
        registry.run_detector("ghost", record)
    assert "needs the raw training data" in registry.applicability("confident_learning", record)
    result = compare_detectors(record, methods=["ghost", "nologits", "small_loss"], progress=False)
    assert result.status["ghost"]["status"] == "not applicable"
    assert result.status["nologits"]["status"] == "not applicable"
    assert list(result.scores) == ["small_loss"]
    assert "ghost: not applicable" in result.summary()
    # a module that failed to import during discovery is named when its detector is asked for
    monkeypatch.setitem(registry._IMPORT_ERRORS, "interpretdl_noise.interpreter.broken", "ImportError: no ghostlib")
    with pytest.raises(ValueError, match="unknown detector 'broken'.*interpreter.broken failed to import"):
        registry.create_detector("broken")


def test_ema_needs_labels_and_derives_missing_losses():
    td, labels, flips, _ = synthetic_record()
    assert registry.applicability("ema", {"td": td}) == ("recording has no 'labels' (ema needs it; save the "
                                                         "recording with its labels)")
    assert registry.applicability("ema", {"td": td, "labels": labels}) is None
    td, _labels, _flips, extras = synthetic_record(losses=True)
    assert registry.applicability("ema", {"td": td, **extras}) is not None  # losses but no labels
    assert registry.applicability("ema", {"td": td, "labels": labels, **extras}) is None


def test_compare_runs_ema_on_td_only_and_refuses_it_without_labels():
    td, labels, flips, extras = synthetic_record(losses=True)
    # losses but no labels: not applicable (it used to be reported as failed)
    result = compare_detectors({"td": td, "losses": extras["losses"]}, methods=["ema", "small_loss"],
                               progress=False)
    assert result.status["ema"]["status"] == "not applicable" and "no 'labels'" in result.status["ema"]["reason"]
    # InterpretDL's layout (td, labels, label_flip): EMA runs on -log td[:, :, 0] and says so
    result = compare_detectors({"td": td, "labels": labels, "label_flip": flips},
                               methods=["ema", "small_loss"],
                               detector_kwargs={"small_loss": {"source": "loss"}}, progress=False)
    assert result.status["ema"]["status"] == "ran" and result.status["ema"]["note"] == LOSSES_DERIVED_NOTE
    assert result.status["small_loss"]["note"] == LOSSES_DERIVED_NOTE
    assert result.metrics.loc["ema", "auroc"] == 1.0
    assert f"ema: note: {LOSSES_DERIVED_NOTE}" in result.summary()
    # with recorded losses there is no note
    with_losses = compare_detectors({"td": td, "labels": labels, **extras}, methods=["ema"], progress=False)
    assert "note" not in with_losses.status["ema"]


def test_compare_writes_report_with_label_flip(npz, tmp_path):
    out = tmp_path / "report"
    result = compare_detectors(npz, methods=RECORDING_ONLY + ["confident_learning"], out_dir=out, k=10,
                               progress=False)
    assert set(result.scores) == set(RECORDING_ONLY)
    assert result.status["confident_learning"]["status"] == "not applicable"
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == set(RECORDING_ONLY)
    for name in RECORDING_ONLY:
        assert metrics[name]["auroc"] == 1.0 and metrics[name]["ap"] == 1.0
        assert metrics[name]["n_noisy"] == len(FLIPPED) and metrics[name]["k"] == 10
        assert metrics[name]["recall_at_k"] == 1.0 and metrics[name]["precision_at_noise"] == 1.0
        ranked = pd.read_csv(out / f"ranked_{name}.csv")
        assert list(ranked.columns) == ["sample_id", "given_label", "score", "rank"]
        assert ranked["rank"].tolist() == list(range(1, N + 1))
        assert set(ranked["sample_id"].head(len(FLIPPED))) == {1000 + i for i in FLIPPED}
        assert ranked["score"].is_monotonic_decreasing
    table = pd.read_csv(out / "metrics.csv", index_col=0)
    assert {"auroc", "ap", "precision_at_noise", "recall_at_noise", "f1_at_noise", "precision_at_k", "recall_at_k",
            "f1_at_k"} <= set(table.columns)
    for png in ("roc_pr.png", "score_histograms.png", "data_map.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    status = json.loads((out / "detectors.json").read_text())
    assert status["confident_learning"]["status"] == "not applicable"
    assert result.to_dict() == metrics


def test_compare_without_label_flip_reports_agreement(tmp_path):
    td, labels, _, extras = synthetic_record(with_flip=False)
    result = compare_detectors({"td": td, "labels": labels, **extras}, methods=RECORDING_ONLY, out_dir=tmp_path,
                               k=len(FLIPPED), progress=False)
    assert result.metrics is None
    assert not (tmp_path / "metrics.csv").exists() and not (tmp_path / "roc_pr.png").exists()
    agreement = pd.read_csv(tmp_path / "agreement_topk.csv", index_col=0)
    assert agreement.shape == (3, 3)
    np.testing.assert_allclose(np.diag(agreement), 1.0)
    assert agreement.loc["datamaps", "small_loss"] == 1.0  # same top-k by construction
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(metrics) == set(RECORDING_ONLY) and "auroc" not in metrics["small_loss"]
    assert (tmp_path / "ranked_forgetting.csv").exists() and (tmp_path / "data_map.png").exists()
    assert "agreement" in result.summary()


def test_topk_agreement_and_ranked_table_by_hand():
    scores = {"a": np.array([0.9, 0.8, 0.1, 0.0]), "b": np.array([0.9, 0.0, 0.8, 0.1])}
    table = topk_agreement(scores, 2)
    assert table.loc["a", "b"] == pytest.approx(1 / 3)  # {0,1} vs {0,2}
    record = {"td": np.full((4, 1, 2), 0.5), "labels": np.array([[1, 0], [0, 1], [1, 0], [0, 1]])}
    ranked = ranked_table(scores["b"], record)
    assert ranked["sample_id"].tolist() == [0, 2, 3, 1]
    assert ranked["given_label"].tolist() == [1, 1, 0, 0]


def test_compare_bad_input(npz):
    with pytest.raises(ValueError, match="unknown detector"):
        compare_detectors(npz, methods=["nope"], progress=False)
    with pytest.raises(ValueError, match="k must be between"):
        compare_detectors(npz, methods=["small_loss"], k=0, progress=False)
    with pytest.raises(ValueError, match="twice"):
        compare_detectors(npz, methods=["small_loss", "small_loss"], progress=False)


def _parser(module):
    parser = argparse.ArgumentParser(prog="interpretdl-noise")
    module.add_parser(parser.add_subparsers(dest="command", required=True))
    return parser


def test_cli_modules_are_registered():
    assert "interpretdl_noise.commands.compare" in cli.COMMANDS
    assert "interpretdl_noise.commands.detect" in cli.COMMANDS


def test_compare_command(npz, tmp_path, capsys):
    out = tmp_path / "cmp"
    args = _parser(compare_cmd).parse_args(["compare", str(npz), "--out", str(out), "--methods",
                                            "forgetting,datamaps", "--quiet"])
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    assert "auroc" in printed and "forgetting" in printed
    assert set(json.loads((out / "metrics.json").read_text())) == {"forgetting", "datamaps"}
    with pytest.raises(SystemExit):
        _parser(compare_cmd).parse_args(["compare", str(npz), "--out", str(out), "--methods", "bogus"])


def test_detect_command(npz, tmp_path, capsys):
    out = tmp_path / "ranked.csv"
    args = _parser(detect_cmd).parse_args(["detect", str(npz), "--method", "small_loss", "--out", str(out)])
    assert args.func(args) == 0
    assert "AUROC 1.000" in capsys.readouterr().out
    ranked = pd.read_csv(out)
    assert list(ranked.columns) == ["sample_id", "given_label", "score", "rank"]
    assert set(ranked["sample_id"].head(len(FLIPPED))) == {1000 + i for i in FLIPPED}
    # to stdout, top rows only
    args = _parser(detect_cmd).parse_args(["detect", str(npz), "--method", "forgetting", "--top", "3"])
    assert args.func(args) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "sample_id,given_label,score,rank" and len(lines) == 4
    # a detector that needs raw data is refused with the reason
    args = _parser(detect_cmd).parse_args(["detect", str(npz), "--method", "confident_learning"])
    with pytest.raises(ValueError, match="raw training data"):
        args.func(args)


def test_through_cli_main(npz, tmp_path, capsys):
    out = tmp_path / "ranked.csv"
    assert cli.main(["detect", str(npz), "--method", "datamaps", "--out", str(out)]) == 0
    assert pd.read_csv(out).shape == (N, 4)
    assert cli.main(["compare", str(npz), "--out", str(tmp_path / "cmp"), "--methods", "small_loss", "--quiet"]) == 0
    capsys.readouterr()
    assert cli.main(["detect", str(npz), "--method", "ema", "--out", str(out)]) == 0  # losses derived from td
    assert f"ema: note: {LOSSES_DERIVED_NOTE}" in capsys.readouterr().out
    assert cli.main(["detect", str(npz), "--method", "confident_learning"]) == 2  # needs the raw data
    assert "not applicable" in capsys.readouterr().err


def test_compare_validates_the_recording_once(npz, monkeypatch):
    from interpretdl_noise.recording import recording as recording_module

    calls = []
    original = recording_module.validate_training_dynamics

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(recording_module, "validate_training_dynamics", counting)
    td, labels, flips, _ = synthetic_record()
    result = compare_detectors({"td": td, "labels": labels, "label_flip": flips}, methods=RECORDING_ONLY,
                               plots=False)
    assert len(calls) == 1 and sorted(result.scores) == sorted(RECORDING_ONLY)
    # score_record on a validated record gives exactly what interpret gives
    record = original({"td": td, "labels": labels, "label_flip": flips})
    det = registry.create_detector("small_loss")
    np.testing.assert_array_equal(det.score_record(record)[1], det.interpret(training_dynamics=record)[1])
