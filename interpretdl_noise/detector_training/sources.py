"""Offline data sources and small classifiers for the detector-training corpus.

Every source loads without network access:

=================  ==========================================  =======  =====  ========
name               origin                                      N        C      models
=================  ==========================================  =======  =====  ========
``digits``         scikit-learn bundled 8x8 digits             1,797    10     mlp, cnn
``wine``           scikit-learn bundled wine                   178      3      mlp
``iris``           scikit-learn bundled iris                   150      3      mlp
``breast_cancer``  scikit-learn bundled breast cancer          569      2      mlp
``synthetic``      ``sklearn.datasets.make_classification``    600-2k   3-10   mlp
``mnist1d``        MNIST-1D generated locally (``mnist1d``)    4,000    10     mlp, cnn
=================  ==========================================  =======  =====  ========

``mnist1d`` needs the optional ``mnist1d`` package (``pip install 'interpretdl-noise[corpus]'``); it is
generated with ``make_dataset(get_dataset_args())``, never downloaded.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Tuple

import numpy as np

from .._paddle import paddle

__all__ = ["Source", "SOURCES", "MODELS", "available_sources", "load_source", "build_model"]

SOURCES = ("digits", "wine", "iris", "breast_cancer", "synthetic", "mnist1d")
MODELS = ("mlp", "cnn")


@dataclass
class Source:
    """Features, clean labels and the input layout of one data set.

    Attributes
    ----------
    x : ndarray of shape (N, D), float32
        Standardised features (flattened).
    y : ndarray of shape (N,), int64
        Clean labels in ``[0, C)``.
    n_classes : int
    image_shape : tuple
        Layout the CNN reshapes ``x`` to: ``(1, H, W)`` for images, ``(1, L)`` for signals, ``()`` when
        the source has no spatial layout (tabular; only the MLP applies).
    """

    name: str
    x: np.ndarray
    y: np.ndarray
    n_classes: int
    image_shape: Tuple[int, ...]


def available_sources() -> Tuple[str, ...]:
    """Names of the sources usable in this environment (``mnist1d`` only when its package is installed)."""
    has_mnist1d = importlib.util.find_spec("mnist1d") is not None
    return tuple(s for s in SOURCES if s != "mnist1d" or has_mnist1d)


def _standardise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    std = x.std(axis=0)
    return ((x - x.mean(axis=0)) / np.where(std > 0, std, 1.0)).astype(np.float32)


def _mnist1d() -> Tuple[np.ndarray, np.ndarray]:
    if importlib.util.find_spec("mnist1d") is None:
        raise ValueError("source 'mnist1d' needs the optional package mnist1d: pip install 'interpretdl-noise[corpus]' "
                         "(or pip install mnist1d); the data is generated locally, not downloaded")
    import random

    from mnist1d.data import get_dataset_args, make_dataset

    # make_dataset seeds the global numpy and random generators; restore them afterwards
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        data = make_dataset(get_dataset_args())
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    return np.asarray(data["x"], dtype=np.float32), np.asarray(data["y"], dtype=np.int64)


def load_source(name: str, *, seed: int = 0) -> Source:
    """Load one offline source.

    Parameters
    ----------
    name : {'digits', 'wine', 'iris', 'breast_cancer', 'synthetic', 'mnist1d'}
    seed : int, default=0
        Only ``synthetic`` uses it: it draws N in [600, 2000], 3-10 classes, 10-40 features and a class
        separation in [0.4, 2] from ``seed``, then generates the data with that seed.

    Returns
    -------
    Source
    """
    from sklearn import datasets

    if name == "digits":
        data = datasets.load_digits()
        x = (data.data / 16.0).astype(np.float32)
        return Source(name, x, data.target.astype(np.int64), 10, (1, 8, 8))
    if name in ("wine", "iris", "breast_cancer"):
        data = getattr(datasets, f"load_{name}")()
        y = data.target.astype(np.int64)
        return Source(name, _standardise(data.data), y, int(y.max() + 1), ())
    if name == "synthetic":
        rng = np.random.default_rng(seed)
        n_classes = int(rng.integers(3, 11))
        n_features = int(rng.integers(10, 41))
        n_informative = int(rng.integers(max(3, int(np.ceil(np.log2(n_classes * 2)))), n_features // 2 + 2))
        x, y = datasets.make_classification(
            n_samples=int(rng.integers(600, 2001)), n_features=n_features, n_informative=n_informative,
            n_redundant=int(rng.integers(0, (n_features - n_informative) // 2 + 1)), n_classes=n_classes,
            n_clusters_per_class=int(rng.integers(1, 3)), class_sep=float(rng.uniform(0.4, 2.0)), flip_y=0.0,
            random_state=int(seed))
        return Source(name, _standardise(x), y.astype(np.int64), n_classes, ())
    if name == "mnist1d":
        x, y = _mnist1d()
        return Source(name, x, y, 10, (1, x.shape[1]))
    raise ValueError(f"unknown source {name!r}; choose one of {SOURCES}")


class _CNN(paddle.nn.Layer):
    """Two conv blocks and a linear head, 2-D for images (1, H, W) or 1-D for signals (1, L)."""

    def __init__(self, image_shape: Tuple[int, ...], n_classes: int, width: int):
        super().__init__()
        nn = paddle.nn
        self.image_shape = tuple(image_shape)
        if len(image_shape) == 3:
            conv, pool, pool_out = nn.Conv2D, nn.MaxPool2D, nn.AdaptiveAvgPool2D
        else:
            conv, pool, pool_out = nn.Conv1D, nn.MaxPool1D, nn.AdaptiveAvgPool1D
        self.features = nn.Sequential(
            conv(image_shape[0], width, 3, padding=1), nn.ReLU(), pool(2),
            conv(width, 2 * width, 3, padding=1), nn.ReLU(), pool_out(2))
        n_out = 2 * width * (4 if len(image_shape) == 3 else 2)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(n_out, n_classes))

    def forward(self, x):
        return self.head(self.features(x.reshape([-1, *self.image_shape])))


def build_model(kind: str, source: Source, *, width: int = 64, depth: int = 1) -> "paddle.nn.Layer":
    """A small classifier for ``source``; call it inside ``paddle_seed`` for reproducible weights.

    Parameters
    ----------
    kind : {'mlp', 'cnn'}
        ``mlp``: ``depth`` hidden ReLU layers of ``width`` units. ``cnn``: two conv blocks with ``width``
        and ``2 * width`` channels (``width // 4`` is used), 2-D for images and 1-D for signals.
    source : Source
    width, depth : int

    Returns
    -------
    paddle.nn.Layer
        Maps inputs (B, D) to logits (B, C).
    """
    nn = paddle.nn
    if kind == "mlp":
        layers, n_in = [], source.x.shape[1]
        for _ in range(depth):
            layers += [nn.Linear(n_in, width), nn.ReLU()]
            n_in = width
        return nn.Sequential(*layers, nn.Linear(n_in, source.n_classes))
    if kind == "cnn":
        if not source.image_shape:
            raise ValueError(f"model 'cnn' needs an image or signal source; {source.name!r} is tabular (use 'mlp')")
        return _CNN(source.image_shape, source.n_classes, max(4, width // 4))
    raise ValueError(f"unknown model {kind!r}; choose one of {MODELS}")
