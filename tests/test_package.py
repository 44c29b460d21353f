"""Package-level behaviour: public API, import without side effects, the paddle-missing message, the demo."""
import subprocess
import sys

import numpy as np
import pytest

import interpretdl_noise
from interpretdl_noise import inject_label_noise
from interpretdl_noise.cli import main


def test_public_api_is_explicit_and_importable():
    assert "TrainingDynamics" in interpretdl_noise.__all__
    for name in interpretdl_noise.__all__:
        assert hasattr(interpretdl_noise, name), name


def test_import_has_no_side_effects(tmp_path):
    code = ("import os, paddle; before = paddle.get_device(); import interpretdl_noise; "
            "assert paddle.get_device() == before; assert os.listdir('.') == [], os.listdir('.'); "
            "import sys; assert 'interpretdl' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True, capture_output=True)


def test_missing_paddle_names_both_extras(tmp_path):
    # the import itself works without Paddle (tests/test_without_paddle.py); using a Paddle edge fails clearly
    code = "import sys; sys.modules['paddle'] = None; import interpretdl_noise; interpretdl_noise.TrainingDynamics"
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode != 0
    assert "interpretdl-noise[cpu]" in proc.stderr and "interpretdl-noise[gpu]" in proc.stderr


@pytest.mark.parametrize("kind", ["uniform", "flip", "pair"])
def test_noise_injection_exact_rate_and_kind(kind):
    y = np.repeat(np.arange(10), 50)
    noisy, flips = inject_label_noise(y, 0.2, kind=kind, seed=3)
    assert flips.sum() == 100 and (noisy[flips] != y[flips]).all() and (noisy[~flips] == y[~flips]).all()
    if kind == "flip":
        np.testing.assert_array_equal(noisy[flips], (y[flips] + 1) % 10)
    if kind == "pair":
        pairs = set(zip(y[flips].tolist(), noisy[flips].tolist()))
        assert all((b, a) in pairs or b not in y[flips] for a, b in pairs)  # swaps within pairs
    again, _ = inject_label_noise(y, 0.2, kind=kind, seed=3)
    np.testing.assert_array_equal(noisy, again)


def test_noise_injection_bad_input():
    with pytest.raises(ValueError, match="kind must be one of"):
        inject_label_noise(np.arange(4), 0.1, kind="bogus")
    with pytest.raises(ValueError, match="rate"):
        inject_label_noise(np.arange(4), 1.5)


def test_demo_command_end_to_end(tmp_path, capsys):
    assert main(["demo", "--epochs", "4", "--out", str(tmp_path), "--quiet", "--top", "3"]) == 0
    captured = capsys.readouterr()
    out = captured.out
    assert "it/s" not in captured.err and "%|" not in captured.err  # --quiet: no progress bar at all
    assert "auroc" in out and "Top 3 suspects" in out and "small_loss" in out
    for name in ("training_dynamics.npz", "clean_vs_noisy.png", "metrics.json", "ranked_aum.csv", "roc_pr.png",
                 "report.html"):
        assert (tmp_path / name).exists(), name
    rec = interpretdl_noise.load_training_dynamics(tmp_path / "training_dynamics.npz")
    assert rec["td"].shape == (1797, 4, 10) and int(rec["label_flip"].sum()) == 359
    assert "Estimated noise rate" in out and "suggested" in out  # the decisions step
    assert all((tmp_path / "clean" / name).exists() for name in ("issues.csv", "summary.json", "keep_indices.csv"))


def test_cli_reports_bad_input_cleanly(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--noise-type", "bogus"])
    assert main(["demo", "--noise-rate", "1.5", "--out", str(tmp_path), "--quiet"]) == 2
    assert "rate must be in [0, 1)" in capsys.readouterr().err
