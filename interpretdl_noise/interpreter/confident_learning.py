"""Confident learning (Northcutt et al., JAIR 2021) with out-of-sample probabilities from a Paddle model.

Confident learning needs *out-of-sample* predicted probabilities: the probabilities a model gives a
sample it was not trained on. A training-dynamics recording only has in-sample probabilities, so this
detector is **not recording-only**: it trains the same small Paddle model ``K`` times, once per fold of
a (stratified) K-fold split of the raw data ``(x, y)``, and predicts each held-out fold. The
probabilities are then scored with cleanlab:

- :func:`cleanlab.rank.get_label_quality_scores` gives a label quality in [0, 1] (lower = more likely
  mislabeled); our score is ``1 - quality`` (**higher = more likely mislabeled**);
- :func:`cleanlab.filter.find_label_issues` gives the boolean set of label issues (``label_issues_``).
  It runs with ``n_jobs=1``: cleanlab's default multiprocessing would fork the Paddle process.

cleanlab is an optional dependency: ``pip install 'interpretdl-noise[confident]'``.

Randomness: the folds and batch order come from ``numpy.random.default_rng(seed)``; model
initialisation calls ``paddle.seed(seed + fold)`` inside a scope that saves and restores Paddle's global
RNG state, so the caller's random state is left as it was.

Shapes: ``N`` samples, ``C`` classes; ``x`` has shape ``(N, ...)`` (e.g. ``(N, D)`` or ``(N, 1, H, W)``).

References
----------
.. [1] C. G. Northcutt, L. Jiang, I. L. Chuang, "Confident Learning: Estimating Uncertainty in Dataset
   Labels", JAIR 70, 2021, arXiv:1911.00068.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Callable

import numpy as np
from tqdm.auto import tqdm

from .._paddle import require_paddle
from ..common.seeding import paddle_seed
from ..recording.recording import Recording
from .abc_interpreter import DatasetLevelInterpreter

__all__ = [
    "CLEANLAB_HINT",
    "FILTER_BY",
    "QUALITY_METHODS",
    "ConfidentLearningInterpreter",
    "cross_val_pred_probs",
    "default_model",
    "fit_classifier",
    "predict_proba",
    "require_cleanlab",
]

CLEANLAB_HINT = ("confident learning needs the optional dependency cleanlab, which is not installed. "
                 "Install it with:  pip install 'interpretdl-noise[confident]'")
FILTER_BY = ("prune_by_noise_rate", "prune_by_class", "both", "confident_learning", "predicted_neq_given",
             "low_normalized_margin", "low_self_confidence")
QUALITY_METHODS = ("self_confidence", "normalized_margin", "confidence_weighted_entropy")


def require_cleanlab():
    """Import cleanlab's ``filter`` and ``rank`` modules, or raise an ImportError naming the extra."""
    try:
        import cleanlab.filter as cl_filter
        import cleanlab.rank as cl_rank
    except ImportError as exc:
        raise ImportError(CLEANLAB_HINT) from exc
    return cl_filter, cl_rank


def default_model(input_shape: Sequence[int], n_classes: int, *, hidden: int = 64):
    """A small classifier for ``x`` of per-sample shape ``input_shape`` (weights from Paddle's RNG).

    ``(D,)``: MLP ``D -> hidden -> C`` with ReLU. ``(channels, H, W)``: a small CNN, 3x3 conv (8
    channels), ReLU, 2x2 max-pool, 3x3 conv (16 channels), ReLU, then a linear layer to ``C``.
    """
    nn = require_paddle().nn
    shape = tuple(int(s) for s in input_shape)
    if len(shape) == 1:
        return nn.Sequential(nn.Linear(shape[0], hidden), nn.ReLU(), nn.Linear(hidden, n_classes))
    if len(shape) == 3:
        ch, h, w = shape
        return nn.Sequential(nn.Conv2D(ch, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2D(2),
                             nn.Conv2D(8, 16, 3, padding=1), nn.ReLU(), nn.Flatten(),
                             nn.Linear(16 * (h // 2) * (w // 2), n_classes))
    raise ValueError(f"default_model supports per-sample shapes (D,) or (channels, H, W); got {shape}. "
                     "Pass model_fn for other inputs.")


def fit_classifier(model, x: np.ndarray, y: np.ndarray, *, epochs: int = 30, batch_size: int = 64,
                   learning_rate: float = 1e-3, weight_decay: float = 0.0, seed: int = 0):
    """Train ``model`` in place with Adam and cross-entropy on ``(x, y)``; return it (in eval mode).

    Parameters
    ----------
    model : paddle.nn.Layer
        Returns logits of shape (B, C).
    x : ndarray of shape (N, ...)
    y : ndarray of shape (N,), integer labels
    epochs, batch_size, learning_rate, weight_decay
        The usual; ``weight_decay`` is Adam's L2 coefficient.
    seed : int, default=0
        Seeds the batch order (numpy ``default_rng``). Runs on Paddle's current device.
    """
    paddle = require_paddle()
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y, dtype=np.int64).reshape(-1)
    rng = np.random.default_rng(seed)
    opt = paddle.optimizer.Adam(learning_rate=learning_rate, parameters=model.parameters(),
                                weight_decay=weight_decay or None)
    model.train()
    for _ in range(int(epochs)):
        perm = rng.permutation(len(y))
        for start in range(0, len(y), batch_size):
            idx = perm[start:start + batch_size]
            logits = model(paddle.to_tensor(x[idx]))
            loss = paddle.nn.functional.cross_entropy(logits, paddle.to_tensor(y[idx]).reshape([-1, 1]))
            loss.backward()
            opt.step()
            opt.clear_grad()
    model.eval()
    return model


def predict_proba(model, x: np.ndarray, *, batch_size: int = 1024) -> np.ndarray:
    """Softmax of ``model`` on ``x`` in eval mode, without gradients: ndarray of shape (N, C), float64."""
    paddle = require_paddle()
    x = np.asarray(x, dtype=np.float32)
    was_training = model.training
    model.eval()
    out = []
    with paddle.no_grad():
        for start in range(0, len(x), batch_size):
            logits = model(paddle.to_tensor(x[start:start + batch_size]))
            out.append(paddle.nn.functional.softmax(logits, axis=-1).numpy().astype(np.float64))
    if was_training:
        model.train()
    return np.concatenate(out, axis=0)


def _check_xy(x, y, n_classes: int | None) -> tuple[np.ndarray, np.ndarray, int]:
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y).reshape(-1)
    if y.dtype.kind not in "iu":
        raise ValueError(f"y must hold integer class ids, got dtype {y.dtype}")
    if x.ndim < 2 or x.shape[0] != y.shape[0]:
        raise ValueError(f"x must have shape (N, ...) with N = len(y) = {y.shape[0]}, got {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("x contains NaN or inf")
    c = int(n_classes) if n_classes is not None else int(y.max()) + 1
    if c < 2 or y.min() < 0 or y.max() >= c:
        raise ValueError(f"y must lie in [0, {c}) with at least 2 classes; got range [{y.min()}, {y.max()}]")
    return x, y.astype(np.int64), c


def cross_val_pred_probs(x, y, *, model_fn: Callable[[], Any] | None = None, n_splits: int = 5,
                         n_classes: int | None = None, epochs: int = 30, batch_size: int = 64,
                         learning_rate: float = 1e-3, weight_decay: float = 0.0, seed: int = 0,
                         progress: bool = False) -> np.ndarray:
    """Out-of-sample predicted probabilities by K-fold cross-validated training.

    Parameters
    ----------
    x : array-like of shape (N, ...)
        Raw inputs, e.g. (N, D) features or (N, 1, H, W) images.
    y : array-like of shape (N,)
        Given (possibly noisy) labels in ``[0, C)``.
    model_fn : callable, optional
        ``model_fn() -> paddle.nn.Layer``, a fresh untrained model each call (the same architecture as
        the recorded run). Default: :func:`default_model` for the shape of ``x``.
    n_splits : int, default=5
        ``K``. Stratified when every class has at least ``K`` samples, plain K-fold otherwise.
    n_classes : int, optional
        ``C``; defaults to ``max(y) + 1``.
    epochs, batch_size, learning_rate, weight_decay
        Training of each fold (Adam, cross-entropy).
    seed : int, default=0
        Folds, batch order and (through a restored ``paddle.seed`` scope) initial weights.
    progress : bool, default=False
        tqdm bar over folds.

    Returns
    -------
    ndarray of shape (N, C), float64
        Row ``i`` was predicted by the model that did not see sample ``i``; rows sum to 1.
    """
    from sklearn.model_selection import KFold, StratifiedKFold

    x, y, c = _check_xy(x, y, n_classes)
    if not 2 <= int(n_splits) <= len(y):
        raise ValueError(f"n_splits must be between 2 and N={len(y)}, got {n_splits}")
    stratify = np.bincount(y, minlength=c)[np.unique(y)].min() >= n_splits
    splitter = (StratifiedKFold if stratify else KFold)(n_splits=int(n_splits), shuffle=True,
                                                        random_state=int(seed) % (2 ** 32))
    build = model_fn or (lambda: default_model(x.shape[1:], c))
    probs = np.zeros((len(y), c), dtype=np.float64)
    folds = list(splitter.split(np.zeros(len(y)), y))
    for fold, (train, held) in enumerate(tqdm(folds, desc="confident learning folds", disable=not progress)):
        with paddle_seed(seed + fold):
            model = build()
        fit_classifier(model, x[train], y[train], epochs=epochs, batch_size=batch_size,
                       learning_rate=learning_rate, weight_decay=weight_decay, seed=seed + fold)
        p = predict_proba(model, x[held])
        if p.shape[1] != c:
            raise ValueError(f"model_fn's model outputs {p.shape[1]} classes, expected {c}")
        probs[held] = p
    return probs


class ConfidentLearningInterpreter(DatasetLevelInterpreter):
    """Confident learning on raw data: K-fold Paddle training + cleanlab label-quality scores.

    Not a recording-only detector (``needs_data``): :meth:`interpret` needs ``(x, y)`` (or precomputed
    out-of-sample ``pred_probs``), and :meth:`score_data` takes a recording plus ``x``. In
    :func:`interpretdl_noise.compare.compare_detectors` it runs only when ``x`` is passed from Python.

    Parameters
    ----------
    model_fn : callable, optional
        ``model_fn() -> paddle.nn.Layer``, a fresh model per fold; default :func:`default_model`.
    n_splits : int, default=5
    epochs, batch_size, learning_rate, weight_decay
        Per-fold training (Adam, cross-entropy).
    method : {'self_confidence', 'normalized_margin', 'confidence_weighted_entropy'}, default='self_confidence'
        ``cleanlab.rank.get_label_quality_scores`` method.
    filter_by : str, default='prune_by_noise_rate'
        ``cleanlab.filter.find_label_issues`` method, one of :data:`FILTER_BY`.
    seed : int, default=0
    device : str, default='cpu'
        Set only while training (scoped).
    progress : bool, default=False

    Attributes
    ----------
    scores_ : ndarray of shape (N,)
        ``1 - label quality``; higher = more likely mislabeled.
    pred_probs_ : ndarray of shape (N, C)
        Out-of-sample probabilities.
    label_issues_ : ndarray of shape (N,), bool
        cleanlab's ``find_label_issues`` mask.

    Raises
    ------
    ImportError
        With the hint ``pip install 'interpretdl-noise[confident]'`` when cleanlab is missing.

    Examples
    --------
    >>> cl = ConfidentLearningInterpreter(epochs=20)                          # doctest: +SKIP
    >>> order, scores = cl.interpret(x, noisy_y)
    >>> cl.evaluate(label_flip)["auroc"]
    """

    name = "confident_learning"
    summary = "cleanlab label quality on K-fold out-of-sample probabilities (Northcutt et al. 2021)"
    needs_data = True
    needs_paddle = True
    listing_order = 90

    scores_: np.ndarray | None = None

    @classmethod
    def applicability(cls, recording: Recording | None = None, *, has_data: bool = False) -> str | None:
        reason = super().applicability(recording, has_data=has_data)
        if reason is None:
            try:
                require_cleanlab()
            except ImportError as exc:
                return str(exc)
        return reason

    def __init__(self, model_fn: Callable[[], Any] | None = None, *, n_splits: int = 5, epochs: int = 30,
                 batch_size: int = 64, learning_rate: float = 1e-3, weight_decay: float = 0.0,
                 method: str = "self_confidence", filter_by: str = "prune_by_noise_rate", seed: int = 0,
                 device: str = "cpu", progress: bool = False):
        require_cleanlab()
        super().__init__(model=model_fn, device=device)
        if method not in QUALITY_METHODS:
            raise ValueError(f"method must be one of {QUALITY_METHODS}, got {method!r}")
        if filter_by not in FILTER_BY:
            raise ValueError(f"filter_by must be one of {FILTER_BY}, got {filter_by!r}")
        self.model_fn = model_fn
        self.n_splits = n_splits
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.method = method
        self.filter_by = filter_by
        self.seed = seed
        self.progress = progress

    def interpret(self, x=None, y=None, *, pred_probs: np.ndarray | None = None,
                  n_classes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Score every sample.

        Parameters
        ----------
        x : array-like of shape (N, ...), optional
            Raw inputs; required unless ``pred_probs`` is given.
        y : array-like of shape (N,)
            Given labels.
        pred_probs : ndarray of shape (N, C), optional
            Out-of-sample probabilities computed elsewhere; skips the K-fold training.
        n_classes : int, optional

        Returns
        -------
        order : ndarray of shape (N,)
            ``argsort(scores)`` ascending (stable): the most suspicious sample is last.
        scores : ndarray of shape (N,)
            ``1 - label quality`` in [0, 1]; higher = more likely mislabeled.
        """
        cl_filter, cl_rank = require_cleanlab()
        if y is None:
            raise ValueError("y (the given labels, shape (N,)) is required")
        if pred_probs is None:
            if x is None:
                raise ValueError("give x (raw inputs) to compute out-of-sample pred_probs, or pred_probs")
            with self.device_scope():
                pred_probs = cross_val_pred_probs(
                    x, y, model_fn=self.model_fn, n_splits=self.n_splits, n_classes=n_classes, epochs=self.epochs,
                    batch_size=self.batch_size, learning_rate=self.learning_rate, weight_decay=self.weight_decay,
                    seed=self.seed, progress=self.progress)
        labels = np.asarray(y).reshape(-1).astype(np.int64)
        pred_probs = np.asarray(pred_probs, dtype=np.float64)
        if pred_probs.ndim != 2 or pred_probs.shape[0] != labels.shape[0]:
            raise ValueError(f"pred_probs must have shape (N={labels.shape[0]}, C), got {pred_probs.shape}")
        if labels.min() < 0 or labels.max() >= pred_probs.shape[1]:
            raise ValueError(f"y must lie in [0, {pred_probs.shape[1]}), got range [{labels.min()}, {labels.max()}]")
        quality = cl_rank.get_label_quality_scores(labels, pred_probs, method=self.method)
        issues = cl_filter.find_label_issues(labels, pred_probs, filter_by=self.filter_by, n_jobs=1)
        self.label_issues_ = np.asarray(issues, dtype=bool)
        self.pred_probs_ = pred_probs
        self.quality_ = np.asarray(quality, dtype=np.float64)
        self.scores_ = 1.0 - self.quality_
        return np.argsort(self.scores_, kind="stable"), self.scores_

    def score_data(self, recording: Any, x, y=None) -> tuple[np.ndarray, np.ndarray]:
        """Score the samples of ``recording`` from their raw data: ``x[sample_ids]`` with the given labels.

        Parameters
        ----------
        recording : Recording or any form :meth:`Recording.coerce` accepts
            Gives the row order (``sample_ids``), the labels (``assigned_labels``) and ``C``.
        x : array-like of shape (M, ...)
            Raw inputs indexed by dataset index (see :func:`~interpretdl_noise.interpreter.registry.align_data`).
        y : array-like, optional
            Given labels; default the recording's.

        Returns
        -------
        order, scores : as :meth:`interpret`; row ``i`` is the recording's row ``i``.
        """
        from .registry import align_data

        rec = Recording.coerce(recording)
        x_rows, y_rows = align_data(rec, x, y)
        result = self.interpret(x_rows, y_rows, n_classes=rec.n_classes)
        self.label_flip_ = rec.label_flip
        return result

    def _score(self, record: Recording) -> np.ndarray:
        raise ValueError("confident learning needs the raw training data: call score_data(recording, x) or "
                         "interpret(x, y), not interpret(training_dynamics=...)")
