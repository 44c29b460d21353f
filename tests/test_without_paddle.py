"""The numpy core works with Paddle missing; the Paddle edges fail only when used, naming the extras.

The check runs in a fresh interpreter (this test process has Paddle imported already, by conftest) whose
``sys.meta_path`` refuses every ``paddle`` import, as on a machine where Paddle is not installed.
"""
import json
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(r'''
    import importlib.abc
    import sys

    class NoPaddle(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "paddle" or name.startswith("paddle."):
                raise ImportError(f"No module named {name!r} (blocked by the test)")
            return None

    sys.meta_path.insert(0, NoPaddle())

    import json
    from pathlib import Path

    import numpy as np

    import interpretdl_noise as idn
    from interpretdl_noise import cli
    from interpretdl_noise.interpreter import registry

    out = {}
    rng = np.random.default_rng(0)
    n, e, c = 200, 12, 4
    flips = np.zeros(n, bool)
    flips[rng.choice(n, 12, replace=False)] = True
    p0 = np.where(flips[:, None], rng.uniform(0.02, 0.3, (n, e)), rng.uniform(0.5, 0.99, (n, e)))
    rest = (1 - p0)[:, :, None] * rng.dirichlet(np.ones(c - 1), size=(n, e))
    td = np.concatenate([p0[:, :, None], rest], axis=2)
    labels = np.stack([rng.permutation(c) for _ in range(n)]).astype(np.int16)
    path = idn.save_training_dynamics(Path("rec.npz"), td, labels, label_flip=flips)

    rec = idn.Recording.coerce(str(path))                      # load + validate, no Paddle
    out["n_samples"] = rec.n_samples
    classes = {name: registry.detector_class(name) for name in registry.detector_names()}
    numpy_detectors = [name for name, cls in classes.items() if not (cls.needs_paddle or cls.needs_data)]
    out["auroc"] = {}
    for name in numpy_detectors:
        det = idn.create_detector(name)
        det.score_record(rec)
        out["auroc"][name] = det.evaluate()["auroc"]
    ema = idn.LossDynamicsInterpreter()
    ema.score_record(rec)
    out["ema_plot"] = type(ema.analyzer_.plot_ema_loss_dynamics(ema.analyzer_.get_top_k_cands(5))).__name__
    maps = idn.DataMapsInterpreter()
    maps.score_record(rec)
    out["map_plot"] = type(maps.plot(top_k=10)).__name__
    result = idn.compare_detectors(path, out_dir="report", progress=False)
    out["status"] = {k: v["status"] for k, v in result.status.items()}
    out["bhdf_reason"] = result.status["bhdf"]["reason"]
    out["ema_note"] = result.status["ema"].get("note")
    out["pngs"] = sorted(p.name for p in Path("report").glob("*.png"))
    out["detect_rc"] = cli.main(["detect", str(path), "--method", "ema", "--out", "ranked.csv"])
    out["ranked_rows"] = len(Path("ranked.csv").read_text().splitlines()) - 1
    out["demo_rc"] = cli.main(["demo", "--quiet"])
    try:
        idn.TrainingDynamics
    except ImportError as exc:
        out["training_dynamics_error"] = str(exc)
    try:
        idn.create_detector("bhdf")
    except registry.DetectorNotApplicable as exc:
        out["bhdf_error"] = exc.reason
    out["paddle_imported"] = any(m == "paddle" or m.startswith("paddle.") for m in sys.modules)
    print(json.dumps(out))
''')


def test_numpy_core_runs_without_paddle(tmp_path):
    proc = subprocess.run([sys.executable, "-c", SCRIPT], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["n_samples"] == 200 and not out["paddle_imported"]
    assert set(out["auroc"]) >= {"aum", "ema", "forgetting", "datamaps", "small_loss"}
    assert all(v > 0.95 for v in out["auroc"].values()), out["auroc"]
    status = out["status"]
    assert status["bhdf"] == "not applicable" and status["confident_learning"] == "not applicable"
    assert all(status[name] == "ran" for name in out["auroc"]), status
    assert "interpretdl-noise[cpu]" in out["bhdf_reason"] and "interpretdl-noise[gpu]" in out["bhdf_reason"]
    assert "derived from td" in out["ema_note"]
    assert out["pngs"] == ["data_map.png", "roc_pr.png", "score_histograms.png"]
    assert out["ema_plot"] == out["map_plot"] == "Figure"
    assert out["detect_rc"] == 0 and out["ranked_rows"] == 200
    assert out["demo_rc"] == 2 and "interpretdl-noise[cpu]" in proc.stderr      # the demo trains a model
    assert "interpretdl-noise[cpu]" in out["training_dynamics_error"]
    assert "interpretdl-noise[gpu]" in out["bhdf_error"]
