"""Shared fixtures: seeded small data, a tiny model, notebook execution, and a clean-cwd guard."""
import os
import warnings
from pathlib import Path

import pytest

warnings.filterwarnings("ignore", message="No ccache found")

import paddle  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _clean_cwd_and_device(tmp_path_factory, monkeypatch):
    """Run every test in an empty cwd and fail if it leaves files there or changes paddle's device."""
    cwd = tmp_path_factory.mktemp("cwd")
    monkeypatch.chdir(cwd)
    device = paddle.get_device()
    yield
    assert paddle.get_device() == device, "test left paddle's global device changed"
    left = sorted(p.name for p in cwd.iterdir())
    assert not left, f"files written to the working directory: {left}"


@pytest.fixture
def digits_small():
    """300 digits samples, 10 classes, 10% uniform noise (seeded): (x, clean_y, noisy_y, flips)."""
    from interpretdl_noise import inject_label_noise, load_digits_arrays

    x, y = load_digits_arrays()
    x, y = x[:300], y[:300]
    noisy, flips = inject_label_noise(y, 0.1, seed=0)
    return x, y, noisy, flips


@pytest.fixture
def tiny():
    """70 seeded 6-feature samples, 3 classes from the signs of the first two features: (x, y)."""
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=(70, 6)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0)
    return x, y


def make_mlp(n_in=64, n_hidden=32, n_out=10, seed=0):
    paddle.seed(seed)
    return paddle.nn.Sequential(paddle.nn.Linear(n_in, n_hidden), paddle.nn.ReLU(), paddle.nn.Linear(n_hidden, n_out))


def run_notebook(path, timeout=300, **env):
    """Execute a notebook in a fresh kernel (quick settings via environment variables); return it."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(str(path), as_version=4)
    old = {k: os.environ.get(k) for k in env}
    os.environ.update({k: str(v) for k, v in env.items()})
    try:
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(Path.cwd())}})
        client.execute()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return nb
