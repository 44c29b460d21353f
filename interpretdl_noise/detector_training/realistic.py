"""A corpus of *realistic* training runs for training and judging BHDF detectors (issue 18).

The first corpus (:mod:`.corpus`) trains plain MLPs / CNNs with uniform, flip and pair noise at 10-50 %.
Real training differs: data augmentation, batch normalisation and residual networks, cosine or step
schedules, class imbalance, low noise rates, confusions between similar classes, eval-mode recordings,
very short runs. Every run here draws those axes from a seeded plan and is recorded by the library's own
:meth:`interpretdl_noise.TrainingDynamics.generator` (probabilities, raw logits and per-sample losses, so
every baseline runs on the same recording).

Axes of a run (:class:`RealisticRunSpec`)

- ``source``: the offline data sets of :mod:`.sources` plus four generated ones: ``blobs``
  (``make_blobs``, anisotropic), ``quantiles`` (``make_gaussian_quantiles``, nested shells),
  ``hastie`` (``make_hastie_10_2``, binary) and ``moons`` (two moons embedded in 10 dimensions).
- ``model``: ``mlp``, ``cnn`` (as in :mod:`.sources`), ``resmlp`` (residual MLP with batch norm and
  dropout) and ``rescnn`` (residual CNN with batch norm, 2-D for images, 1-D for signals).
- ``noise``: ``uniform``, ``flip``, ``pair``, ``class_dependent`` (random per-class rates and
  targets), ``confusable`` (a class's wrong labels go to the classes a linear model confuses it with)
  and ``instance`` (hard samples are more likely mislabeled, to their most likely other class); rates 2-50 %.
- ``augment``: random shifts plus Gaussian jitter (images and signals) or feature jitter (tabular).
- ``imbalance``: ratio between the largest and the smallest class (1 = as loaded).
- ``record``: ``'train'`` (the softmax of the logits of the SGD step) or ``'eval'`` (a separate
  ``model.eval()`` pass after every epoch).
- optimiser, learning rate, ``constant`` / ``cosine`` / ``step`` / ``warmup_cosine`` schedule (stepped
  per epoch), batch size, width, depth, weight decay, 5-200 epochs.

Runs are saved one npz per run in a folder; :func:`build_realistic_corpus` reloads a finished run whose
stored settings equal the plan's, so a build resumes, and ``part=(i, n)`` records every n-th run only, so
a large corpus can be built in sittings (or on several machines) and merged by pointing at one folder.
"""
from __future__ import annotations

import dataclasses
import json
import time
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np
from tqdm.auto import tqdm

from .._paddle import paddle
from ..common.device import device_scope, resolve_device
from ..common.atomic import PathLike
from ..common.seeding import paddle_seed
from ..data.noise import inject_label_noise
from ..recording import load_training_dynamics
from .corpus import OPTIMIZERS, RunSpec
from .sources import Source, _standardise, build_model, load_source

__all__ = [
    "REALISTIC_SOURCES",
    "REALISTIC_MODELS",
    "REALISTIC_NOISE",
    "RealisticRunSpec",
    "load_realistic_source",
    "build_realistic_model",
    "realistic_noise",
    "plan_realistic",
    "record_realistic_run",
    "build_realistic_corpus",
    "REALISTIC_PRESETS",
    "realistic_plan",
]

REALISTIC_SOURCES = ("digits", "wine", "iris", "breast_cancer", "synthetic", "mnist1d", "blobs", "quantiles",
                     "hastie", "moons")
REALISTIC_MODELS = ("mlp", "cnn", "resmlp", "rescnn")
REALISTIC_NOISE = ("uniform", "flip", "pair", "class_dependent", "confusable", "instance")
SCHEDULES = ("constant", "cosine", "step", "warmup_cosine")
RECORD_MODES = ("train", "eval")
_SUBSAMPLED = {"digits": 1797, "mnist1d": 4000}
_BINARY_KINDS = ("uniform", "instance")

REALISTIC_PRESETS: Dict[str, Dict[str, Any]] = {
    # training sources: digits, synthetic, blobs, wine, iris, moons with mlp / resmlp / cnn. Held out (never in
    # training or model selection): the data sets breast_cancer, mnist1d, quantiles, hastie and the model family
    # rescnn. The shipped single-channel weights never saw any held-out data set either.
    "realistic": {
        "train_groups": [("digits", "mlp", 40), ("digits", "resmlp", 40), ("digits", "cnn", 30),
                         ("synthetic", "mlp", 45), ("synthetic", "resmlp", 40), ("blobs", "mlp", 25),
                         ("blobs", "resmlp", 25), ("wine", "mlp", 20), ("iris", "mlp", 15), ("moons", "mlp", 15),
                         ("moons", "resmlp", 15)],
        "holdout_groups": [("breast_cancer", "mlp", 6), ("breast_cancer", "resmlp", 6), ("mnist1d", "mlp", 12),
                           ("mnist1d", "resmlp", 6), ("mnist1d", "cnn", 6), ("mnist1d", "rescnn", 12),
                           ("quantiles", "mlp", 6), ("quantiles", "resmlp", 6), ("hastie", "mlp", 6),
                           ("hastie", "resmlp", 6)],
        "epochs": (5, 200), "rates": (0.02, 0.5),
    },
    # a smoke test of the whole pipeline in well under a minute
    "realistic_quick": {
        "train_groups": [("digits", "resmlp", 4), ("synthetic", "mlp", 4), ("wine", "mlp", 4)],
        "holdout_groups": [("breast_cancer", "mlp", 2), ("quantiles", "resmlp", 2)],
        "epochs": (5, 15), "rates": (0.02, 0.5),
    },
}     # flip / pair / class-dependent are all "uniform" with 2 classes


# --------------------------------------------------------------------------- data
def load_realistic_source(name: str, *, seed: int = 0) -> Source:
    """Load one offline source (the :mod:`.sources` ones plus ``blobs``, ``quantiles``, ``hastie``, ``moons``).

    The generated sources draw their size and shape from ``seed``.

    Returns
    -------
    Source
    """
    from sklearn import datasets

    rng = np.random.default_rng([int(seed), 7])
    if name == "blobs":
        n_classes, dim = int(rng.integers(3, 9)), int(rng.integers(5, 31))
        x, y = datasets.make_blobs(n_samples=int(rng.integers(600, 2001)), n_features=dim, centers=n_classes,
                                   cluster_std=float(rng.uniform(1.0, 4.0)), random_state=int(seed))
        x = x @ rng.normal(size=(dim, dim))             # anisotropic clusters
        return Source(name, _standardise(x), y.astype(np.int64), n_classes, ())
    if name == "quantiles":
        n_classes = int(rng.integers(3, 7))
        x, y = datasets.make_gaussian_quantiles(n_samples=int(rng.integers(600, 2001)),
                                                n_features=int(rng.integers(3, 13)), n_classes=n_classes,
                                                random_state=int(seed))
        return Source(name, _standardise(x), y.astype(np.int64), n_classes, ())
    if name == "hastie":
        x, y = datasets.make_hastie_10_2(n_samples=int(rng.integers(600, 2001)), random_state=int(seed))
        return Source(name, _standardise(x), (y > 0).astype(np.int64), 2, ())
    if name == "moons":
        x2, y = datasets.make_moons(n_samples=int(rng.integers(500, 1501)), noise=float(rng.uniform(0.1, 0.3)),
                                    random_state=int(seed))
        extra = rng.normal(size=(x2.shape[0], 8))
        x = np.concatenate([x2, extra], axis=1) @ rng.normal(size=(10, 10))
        return Source(name, _standardise(x), y.astype(np.int64), 2, ())
    if name in REALISTIC_SOURCES:
        return load_source(name, seed=seed)
    raise ValueError(f"unknown source {name!r}; choose one of {REALISTIC_SOURCES}")


def _imbalance(source: Source, ratio: float, rng: np.random.Generator) -> Source:
    """Keep class k's share ``ratio ** (-rank / (C - 1))`` (a seeded class order); ratio 1 keeps all."""
    if ratio <= 1.0:
        return source
    c = source.n_classes
    rank = rng.permutation(c)
    keep_share = ratio ** (-rank / max(c - 1, 1))
    keep = []
    for k in range(c):
        rows = np.flatnonzero(source.y == k)
        n_keep = max(5, int(round(keep_share[k] * rows.size)))
        keep.append(rng.choice(rows, size=min(n_keep, rows.size), replace=False))
    keep = np.sort(np.concatenate(keep))
    return dataclasses.replace(source, x=source.x[keep], y=source.y[keep])


# --------------------------------------------------------------------------- noise
def _linear_posteriors(x: np.ndarray, y: np.ndarray, n_classes: int, seed: int) -> np.ndarray:
    """Out-of-fold class probabilities (N, C) of a shrinkage LDA on the clean labels (closed form: fast)."""
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    folds = int(min(5, np.bincount(y, minlength=n_classes).min()))
    model = LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto")
    if folds < 2:
        return model.fit(x, y).predict_proba(x)
    cv = StratifiedKFold(folds, shuffle=True, random_state=int(seed))
    probs = cross_val_predict(model, x, y, cv=cv, method="predict_proba")
    out = np.zeros((y.size, n_classes))
    out[:, np.unique(y)] = probs
    return out


def realistic_noise(source: Source, rate: float, kind: str, *, seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """Corrupt about ``round(rate * N)`` labels of ``source``.

    ``uniform`` / ``flip`` / ``pair`` / ``class_dependent``: :func:`interpretdl_noise.inject_label_noise`.
    ``confusable``: each class's wrong labels go to the other classes in proportion to how often a
    cross-validated linear discriminant analysis confuses them (its out-of-fold confusion matrix, plus a small
    floor), with a seeded per-class rate of 0.3x-1.7x ``rate``. ``instance``: samples are picked with
    probability proportional to that model's largest wrong-class probability (plus a
    floor), so ambiguous samples are mislabeled more often, and get that most likely wrong class.

    Returns
    -------
    noisy : ndarray of shape (N,), int64
    flipped : ndarray of shape (N,), bool
    """
    y, c = source.y, source.n_classes
    if kind in ("uniform", "flip", "pair", "class_dependent"):
        return inject_label_noise(y, rate, kind=kind, n_classes=c, seed=seed)
    if kind not in REALISTIC_NOISE:
        raise ValueError(f"noise must be one of {REALISTIC_NOISE}, got {kind!r}")
    rng = np.random.default_rng([int(seed), 3])
    probs = _linear_posteriors(source.x, y, c, seed)
    noisy = y.copy()
    total = int(round(rate * y.size))
    if kind == "instance":
        wrong = probs.copy()
        wrong[np.arange(y.size), y] = -1.0
        target = wrong.argmax(axis=1)
        weight = np.clip(wrong.max(axis=1), 0.0, None) + 0.02
        chosen = rng.choice(y.size, size=total, replace=False, p=weight / weight.sum())
        noisy[chosen] = target[chosen]
        return noisy, noisy != y
    confusion = np.zeros((c, c))
    np.add.at(confusion, y, probs)
    np.fill_diagonal(confusion, 0.0)
    counts = np.bincount(y, minlength=c)
    class_rate = np.clip(rate * rng.uniform(0.3, 1.7, size=c), 0.0, 0.9)
    quota = np.floor(class_rate * counts).astype(np.int64)
    # match the total: spread the remainder over the classes with room, largest quota first
    for k in np.argsort(-quota, kind="stable"):
        diff = total - int(quota.sum())
        if diff == 0:
            break
        quota[k] = int(np.clip(quota[k] + diff, 0, int(0.9 * counts[k])))
    for k in range(c):
        if quota[k] <= 0:
            continue
        row = confusion[k] + 0.02 * confusion[k].sum() / max(c - 1, 1) + 1e-9
        row[k] = 0.0
        rows = rng.choice(np.flatnonzero(y == k), size=int(quota[k]), replace=False)
        noisy[rows] = rng.choice(c, size=rows.size, p=row / row.sum())
    return noisy, noisy != y


# --------------------------------------------------------------------------- models
class _ResMLP(paddle.nn.Layer):
    """``Linear`` stem, ``depth`` residual blocks (BN, ReLU, Linear, BN, ReLU, Dropout, Linear), BN-ReLU head."""

    def __init__(self, n_in: int, n_classes: int, width: int, depth: int, dropout: float):
        super().__init__()
        nn = paddle.nn
        self.stem = nn.Linear(n_in, width)
        self.blocks = nn.LayerList([nn.Sequential(
            nn.BatchNorm1D(width), nn.ReLU(), nn.Linear(width, width), nn.BatchNorm1D(width), nn.ReLU(),
            nn.Dropout(dropout), nn.Linear(width, width)) for _ in range(max(1, depth))])
        self.head = nn.Sequential(nn.BatchNorm1D(width), nn.ReLU(), nn.Linear(width, n_classes))

    def forward(self, x):
        h = self.stem(x)
        for block in self.blocks:
            h = h + block(h)
        return self.head(h)


class _ResCNN(paddle.nn.Layer):
    """Conv-BN-ReLU stem and two residual BN blocks (the second halves the resolution), average pool, Linear."""

    def __init__(self, image_shape: Tuple[int, ...], n_classes: int, width: int):
        super().__init__()
        nn = paddle.nn
        self.image_shape = tuple(image_shape)
        two_d = len(image_shape) == 3
        conv, bn = (nn.Conv2D, nn.BatchNorm2D) if two_d else (nn.Conv1D, nn.BatchNorm1D)
        pool = nn.AdaptiveAvgPool2D(1) if two_d else nn.AdaptiveAvgPool1D(1)
        self.stem = nn.Sequential(conv(image_shape[0], width, 3, padding=1), bn(width), nn.ReLU())
        self.block1 = nn.Sequential(conv(width, width, 3, padding=1), bn(width), nn.ReLU(),
                                    conv(width, width, 3, padding=1), bn(width))
        self.block2 = nn.Sequential(conv(width, 2 * width, 3, stride=2, padding=1), bn(2 * width), nn.ReLU(),
                                    conv(2 * width, 2 * width, 3, padding=1), bn(2 * width))
        self.short2 = nn.Sequential(conv(width, 2 * width, 1, stride=2), bn(2 * width))
        self.head = nn.Sequential(pool, nn.Flatten(), nn.Linear(2 * width, n_classes))
        self.relu = nn.ReLU()

    def forward(self, x):
        h = self.stem(x.reshape([-1, *self.image_shape]))
        h = self.relu(h + self.block1(h))
        h = self.relu(self.short2(h) + self.block2(h))
        return self.head(h)


def build_realistic_model(kind: str, source: Source, *, width: int = 64, depth: int = 1,
                          dropout: float = 0.1) -> "paddle.nn.Layer":
    """A classifier for ``source``: ``mlp`` / ``cnn`` (see :func:`.sources.build_model`), ``resmlp``, ``rescnn``.

    Call it inside ``paddle_seed`` for reproducible weights. ``rescnn`` uses ``max(4, width // 4)``
    channels in its stem (as ``cnn``) and needs an image or signal source.

    Returns
    -------
    paddle.nn.Layer
        Maps inputs (B, D) to logits (B, C).
    """
    if kind in ("mlp", "cnn"):
        return build_model(kind, source, width=width, depth=depth)
    if kind == "resmlp":
        return _ResMLP(source.x.shape[1], source.n_classes, width, depth, dropout)
    if kind == "rescnn":
        if not source.image_shape:
            raise ValueError(f"model 'rescnn' needs an image or signal source; {source.name!r} is tabular")
        return _ResCNN(source.image_shape, source.n_classes, max(4, width // 4))
    raise ValueError(f"unknown model {kind!r}; choose one of {REALISTIC_MODELS}")


# --------------------------------------------------------------------------- the plan
@dataclass(frozen=True)
class RealisticRunSpec(RunSpec):
    """Settings of one realistic run (drawn by :func:`plan_realistic`; see the module docstring).

    The fields of :class:`~interpretdl_noise.detector_training.corpus.RunSpec` (over this module's sources,
    models, noise kinds and schedules) plus ``augment`` (input augmentation), ``imbalance`` (largest /
    smallest class size, >= 1) and ``record`` (``'train'`` or ``'eval'``, as in the generator).
    """

    augment: bool = False
    imbalance: float = 1.0
    record: str = "train"

    def _choices(self):
        return (("source", self.source, REALISTIC_SOURCES), ("model", self.model, REALISTIC_MODELS),
                ("noise", self.noise, REALISTIC_NOISE), ("optimizer", self.optimizer, OPTIMIZERS),
                ("schedule", self.schedule, SCHEDULES), ("record", self.record, RECORD_MODES))

    def __post_init__(self):
        super().__post_init__()
        if self.imbalance < 1.0:
            raise ValueError(f"imbalance must be >= 1 (largest / smallest class), got {self.imbalance}")

    def name(self, index: int) -> str:
        return (f"run{index:04d}_{self.group}_{self.noise}{int(round(self.rate * 100)):02d}_e{self.epochs}"
                f"_{self.record}")


def _is_spatial(source: str) -> bool:
    return source in ("digits", "mnist1d")


def plan_realistic(groups: Iterable[Tuple[str, str, int]], *, seed: int = 0, epochs: Tuple[int, int] = (5, 200),
                   rates: Tuple[float, float] = (0.02, 0.5), noise_kinds: Sequence[str] = REALISTIC_NOISE,
                   split: str = "train", eval_share: float = 0.3) -> List[RealisticRunSpec]:
    """Draw every run's settings from ``default_rng([seed, crc32(group), index])``.

    Parameters
    ----------
    groups : iterable of (source, model, n_runs)
    seed : int, default=0
    epochs : (int, int), default=(5, 200)
        Log-uniform; a quarter of the runs are short (``low`` to ``2 * low``) on purpose.
    rates : (float, float), default=(0.02, 0.5)
        Log-uniform, so low rates are as common as in real data; capped at 0.4 for asymmetric noise
        and two-class sources (where 0.5 would make the wrong label as likely as the right one).
    noise_kinds : sequence of str, default=REALISTIC_NOISE
        Cycled over the runs of each group (two-class sources use ``uniform`` and ``instance`` only).
    split : str, default='train'
    eval_share : float, default=0.3
        Share of runs recorded with ``record='eval'``.

    Returns
    -------
    list of RealisticRunSpec
    """
    lo_e, hi_e = int(epochs[0]), int(epochs[1])
    if not 2 <= lo_e <= hi_e:
        raise ValueError(f"epochs must be (low, high) with 2 <= low <= high, got {epochs}")
    if not 0.0 < rates[0] <= rates[1] < 1.0:
        raise ValueError(f"rates must be (low, high) with 0 < low <= high < 1, got {rates}")
    kinds = list(noise_kinds)
    if not kinds or any(k not in REALISTIC_NOISE for k in kinds):
        raise ValueError(f"noise_kinds must be a non-empty subset of {REALISTIC_NOISE}, got {noise_kinds}")
    specs: List[RealisticRunSpec] = []
    for source, model, n_runs in groups:
        if source not in REALISTIC_SOURCES or model not in REALISTIC_MODELS:
            raise ValueError(f"unknown group {(source, model)}")
        if model in ("cnn", "rescnn") and not _is_spatial(source):
            raise ValueError(f"model {model!r} needs an image or signal source, not {source!r}")
        binary = source in ("breast_cancer", "hastie", "moons")
        group_kinds = ([k for k in kinds if k in _BINARY_KINDS] or ["uniform"]) if binary else kinds
        for i in range(int(n_runs)):
            rng = np.random.default_rng([int(seed), zlib.crc32(f"realistic-{source}-{model}".encode()), int(i)])
            kind = group_kinds[i % len(group_kinds)]
            hi_r = min(rates[1], 0.4) if (kind != "uniform" or binary) else rates[1]
            rate = float(np.exp(rng.uniform(np.log(rates[0]), np.log(max(rates[0], hi_r)))))
            rate = round(rate, 3)
            if rng.uniform() < 0.25:
                n_epochs = int(rng.integers(lo_e, min(2 * lo_e, hi_e) + 1))
            else:
                n_epochs = int(round(np.exp(rng.uniform(np.log(lo_e), np.log(hi_e + 0.499)))))
            optimizer = ("sgd", "adam")[int(rng.integers(2))]
            lr = float(rng.choice([0.01, 0.03, 0.1]) if optimizer == "sgd" else rng.choice([3e-4, 1e-3, 3e-3]))
            full = _SUBSAMPLED.get(source)
            n_samples = int(rng.integers(full // 3, full + 1)) if full else None
            if source == "mnist1d" and model in ("cnn", "rescnn"):
                n_samples = int(rng.integers(800, 1501))      # the conv nets are the slow ones on CPU
                n_epochs = min(n_epochs, 60)
            specs.append(RealisticRunSpec(
                source=source, model=model, noise=kind, rate=rate, epochs=min(max(n_epochs, lo_e), hi_e),
                seed=int(rng.integers(2**31 - 1)), optimizer=optimizer, lr=lr,
                schedule=SCHEDULES[int(rng.integers(len(SCHEDULES)))], batch_size=int(rng.choice([32, 64, 128])),
                width=int(rng.choice([32, 64, 128, 256])), depth=int(rng.integers(1, 3)),
                weight_decay=float(rng.choice([0.0, 1e-4, 5e-4])), n_samples=n_samples,
                augment=bool(rng.uniform() < 0.4), imbalance=float(rng.choice([1.0, 1.0, 3.0, 10.0])),
                record="eval" if rng.uniform() < eval_share else "train", split=split))
    return specs


def realistic_plan(preset: str, split: str, *, seed: int = 0) -> List[RealisticRunSpec]:
    """The runs of one split (``'train'`` or ``'holdout'``) of a :data:`REALISTIC_PRESETS` entry."""
    if preset not in REALISTIC_PRESETS:
        raise ValueError(f"preset must be one of {tuple(REALISTIC_PRESETS)}, got {preset!r}")
    if split not in ("train", "holdout"):
        raise ValueError(f"split must be 'train' or 'holdout', got {split!r}")
    cfg = REALISTIC_PRESETS[preset]
    return plan_realistic(cfg[f"{split}_groups"], seed=seed, epochs=cfg["epochs"], rates=cfg["rates"], split=split)


# --------------------------------------------------------------------------- recording
class _Loader:
    """Yields ``(ids, x, y)`` Paddle batches in a seeded order; with ``augment``, jittered copies of ``x``."""

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, *, shuffle: bool, augment: bool,
                 image_shape: Tuple[int, ...], seed: int):
        self.x, self.y, self.batch_size = x, y, int(batch_size)
        self.shuffle, self.augment, self.image_shape = shuffle, augment, tuple(image_shape)
        self.rng = np.random.default_rng(seed)

    def _augmented(self, xb: np.ndarray) -> np.ndarray:
        rng = self.rng
        if len(self.image_shape) == 3:             # images: shift by up to one pixel
            _, h, w = self.image_shape
            img = xb.reshape(-1, h, w)
            dy, dx = rng.integers(-1, 2, size=2)
            img = np.roll(img, (int(dy), int(dx)), axis=(1, 2))
            xb = img.reshape(xb.shape[0], -1)
        elif len(self.image_shape) == 2:           # signals: circular shift by up to 3 steps
            xb = np.roll(xb, int(rng.integers(-3, 4)), axis=1)
        scale = 0.05 if self.image_shape else 0.1
        return (xb + rng.normal(scale=scale, size=xb.shape)).astype(np.float32)

    def __iter__(self) -> Iterator:
        n = self.y.size
        order = self.rng.permutation(n) if self.shuffle else np.arange(n)
        for start in range(0, n, self.batch_size):
            ids = order[start:start + self.batch_size]
            xb = self.x[ids]
            if self.augment:
                xb = self._augmented(xb)
            yield paddle.to_tensor(ids), paddle.to_tensor(xb), paddle.to_tensor(self.y[ids])


def _optimizer(spec: RealisticRunSpec, net):
    e = int(spec.epochs)
    if spec.schedule == "cosine":
        lr = paddle.optimizer.lr.CosineAnnealingDecay(spec.lr, T_max=e)
    elif spec.schedule == "step":
        lr = paddle.optimizer.lr.MultiStepDecay(spec.lr, milestones=[max(1, e // 2), max(2, 3 * e // 4)], gamma=0.1)
    elif spec.schedule == "warmup_cosine":
        warm = max(1, e // 10)
        lr = paddle.optimizer.lr.LinearWarmup(paddle.optimizer.lr.CosineAnnealingDecay(spec.lr, T_max=max(1, e - warm)),
                                              warmup_steps=warm, start_lr=spec.lr / 10, end_lr=spec.lr)
    else:
        lr = spec.lr
    wd = spec.weight_decay or None
    if spec.optimizer == "sgd":
        return paddle.optimizer.Momentum(learning_rate=lr, momentum=0.9, use_nesterov=True, weight_decay=wd,
                                         parameters=net.parameters())
    return paddle.optimizer.Adam(learning_rate=lr, weight_decay=wd, parameters=net.parameters())


def _prepare_data(spec: RealisticRunSpec) -> Tuple[Source, np.ndarray, np.ndarray]:
    source = load_realistic_source(spec.source, seed=spec.seed)
    if spec.n_samples is not None and spec.n_samples < source.x.shape[0]:
        keep = np.sort(np.random.default_rng([spec.seed, 1]).choice(source.x.shape[0], spec.n_samples, replace=False))
        source = dataclasses.replace(source, x=source.x[keep], y=source.y[keep])
    source = _imbalance(source, spec.imbalance, np.random.default_rng([spec.seed, 2]))
    noisy, flips = realistic_noise(source, spec.rate, spec.noise, seed=spec.seed)
    return source, noisy, flips


def record_realistic_run(spec: RealisticRunSpec, path: PathLike, *, device: str = "cpu") -> Path:
    """Train one classifier on noisy labels with :meth:`TrainingDynamics.generator` and save the recording.

    The npz holds ``td``, ``labels``, ``label_flip``, ``logits``, ``losses``, ``sample_ids`` and ``meta``
    (the spec plus ``n_samples``, ``n_classes``, ``true_rate``, ``final_train_accuracy``,
    ``record_seconds`` and ``group``).

    Returns
    -------
    Path
        The written file.
    """
    from ..interpreter.training_dynamics import TrainingDynamics

    source, noisy, flips = _prepare_data(spec)
    n = int(source.y.size)
    train_loader = _Loader(source.x, noisy, spec.batch_size, shuffle=True, augment=spec.augment,
                           image_shape=source.image_shape, seed=spec.seed)
    eval_loader = _Loader(source.x, noisy, 512, shuffle=False, augment=False, image_shape=source.image_shape,
                          seed=spec.seed)
    started = time.perf_counter()
    with device_scope(resolve_device(device)), paddle_seed(spec.seed), warnings.catch_warnings():
        # Paddle's BatchNorm notes on every call that it tracks global statistics: expected here
        warnings.filterwarnings("ignore", message="When training, we now always track")
        net = build_realistic_model(spec.model, source, width=spec.width, depth=spec.depth)
        optimizer = _optimizer(spec, net)
        tdyn = TrainingDynamics(net, device=device)
        recorder = tdyn.generator(train_loader, optimizer, int(spec.epochs), record=spec.record,
                                  eval_loader=eval_loader, keep_logits=True, keep_losses=True, n_samples=n,
                                  progress=False)
        net.eval()
        with paddle.no_grad():
            pred = np.concatenate([net(xb).numpy().argmax(axis=1) for _, xb, _ in eval_loader])
    meta = spec.to_dict()
    meta.update(subset=spec.n_samples, n_samples=n, n_classes=int(source.n_classes),
                true_rate=round(float(flips.mean()), 5),
                final_train_accuracy=round(float((pred == noisy).mean()), 4), group=spec.group,
                record_seconds=round(time.perf_counter() - started, 2), corpus="realistic")
    tdyn.save(recorder, noisy, label_flip=flips, save_path=path, meta=meta)
    return Path(path)


def _finished(path: Path, spec: RealisticRunSpec) -> bool:
    if not path.is_file():
        return False
    try:
        meta = load_training_dynamics(path).get("meta", {}) or {}
    except (OSError, ValueError):
        return False
    # meta's n_samples is the recorded N (after the imbalance subsampling); the planned subset is 'subset'
    planned = spec.to_dict()
    subset = planned.pop("n_samples")
    if "subset" in meta and meta["subset"] != subset:
        return False
    return all(meta.get(k) == v for k, v in planned.items() if v is not None)


def build_realistic_corpus(specs: Sequence[RealisticRunSpec], out_dir: PathLike, *, part: Tuple[int, int] = (1, 1),
                           max_runs: Optional[int] = None, device: str = "cpu", progress: bool = True,
                           log: Optional[PathLike] = None) -> List[Path]:
    """Record the runs of ``specs`` into ``out_dir`` (one npz each), skipping finished ones.

    Parameters
    ----------
    specs : sequence of RealisticRunSpec
    out_dir : path
        Created if needed; ``<out_dir>/<spec.name(i)>.npz`` per run.
    part : (i, n), default=(1, 1)
        Record only runs ``i - 1, i - 1 + n, ...`` (1-based ``i``): split a build over sittings or processes.
    max_runs : int, optional
        Stop after recording this many new runs (finished ones do not count).
    device : str, default='cpu'
    progress : bool, default=True
    log : path, optional
        Append one JSON line per recorded run (name, seconds) to this file.

    Returns
    -------
    list of Path
        The files of every run of this part that exists when the call returns, in plan order.
    """
    i_part, n_part = int(part[0]), int(part[1])
    if not 1 <= i_part <= n_part:
        raise ValueError(f"part must be (i, n) with 1 <= i <= n, got {part}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    mine = [(i, s) for i, s in enumerate(specs) if i % n_part == i_part - 1]
    done: List[Path] = []
    recorded = 0
    bar = tqdm(mine, desc=f"realistic corpus {i_part}/{n_part}", unit="run", disable=not progress)
    for i, spec in bar:
        path = out / f"{spec.name(i)}.npz"
        if _finished(path, spec):
            done.append(path)
            continue
        if max_runs is not None and recorded >= int(max_runs):
            continue
        bar.set_postfix_str(f"{spec.group} {spec.noise} {spec.rate:.3f} e{spec.epochs}")
        t0 = time.perf_counter()
        record_realistic_run(spec, path, device=device)
        recorded += 1
        done.append(path)
        if log is not None:
            with open(log, "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"run": path.name, "seconds": round(time.perf_counter() - t0, 2)}) + "\n")
    return done
