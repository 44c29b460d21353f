"""How many labels are wrong: estimators of the noise rate of a recording.

===================  =======================================================================================
method               idea
===================  =======================================================================================
``early_learning``   ``confident_joint`` on the epochs chosen from the run's own dynamics: all of them, or for a
                     run that memorised its labels (last-epoch fit >= ``MEMORISED_FIT``) the first half, before
                     the wrong labels were fitted; such a run is flagged not identifiable (a warning, a wide
                     interval). The bootstrap interval also spans the choice of epochs (the default)
``confident_joint``  cleanlab's calibrated confident joint (Northcutt et al. 2021) on the recording's own
                     per-class probabilities (mean over the chosen epochs; in-sample, see below)
``mixture``          two-component Gaussian mixture on one detector's scores; the share of the component with
                     the higher mean (DivideMix's and Orange *mislabeled*'s GMM split)
``bhdf_prior``       BHDF's P(mislabeled) re-weighted for the prior shift between the detector's training
                     corpus and this recording (EM of Saerens et al. 2002); the rate is the adapted prior
``aum_threshold``    the share removed by the AUM threshold-sample procedure (Pleiss et al. 2020); needs the
                     result of :func:`~interpretdl_noise.run_threshold_procedure` (``threshold=``)
``auto``             the default chosen by measurement (``benchmarks/bench_decisions.py``)
===================  =======================================================================================

The probabilities are **in-sample**: the recorded model was trained on the very labels it is judged
against, and late in training it memorises some wrong labels. cleanlab recommends held-out (cross-validated)
probabilities; averaging over the epochs that precede memorisation is our substitute. When the model fits
(nearly) every given label by the end, the noise is not identifiable from its own probabilities at all:
``early_learning`` then reads the early-learning phase (Liu et al. 2020, the model learns the clean
patterns before it memorises the wrong labels) and says that its estimate is rough.

Shapes: ``N`` samples, ``C`` classes.
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np

from ..recording import Recording
from .probabilities import class_probabilities, detector_scores, normalise_rows, select_epochs

__all__ = ["ESTIMATORS", "DEFAULT_ESTIMATOR", "NoiseEstimate", "estimate_noise", "bhdf_train_prior",
           "adapt_prior", "final_fit", "fit_curve", "early_learning_windows"]

ESTIMATORS = ("early_learning", "confident_joint", "mixture", "bhdf_prior", "aum_threshold")
MEMORISED_FIT = 0.995
"""Last-epoch fit of the given labels from which a run counts as memorised (its noise not identifiable in-sample)."""
DEFAULT_ESTIMATOR = "early_learning"
"""What ``method='auto'`` uses; chosen by ``benchmarks/bench_decisions.py`` (see benchmarks/README.md)."""


@dataclass(frozen=True)
class NoiseEstimate:
    """An estimate of how many labels of a recording are wrong.

    Attributes
    ----------
    rate : float
        Estimated overall share of wrong labels, in [0, 1].
    interval : (float, float)
        A 95 % bootstrap interval for ``rate`` (``(rate, rate)`` when ``n_bootstrap=0``, except that a
        memorised run's ``early_learning`` interval always spans its candidate windows). For
        ``early_learning`` it spans the choice of epochs too (and every candidate window when the run
        memorised); for the others it covers the sampling variation only. Neither covers the bias of
        in-sample probabilities fully (too narrow when the model underfits, or memorises the small tabular
        sets at high noise); see benchmarks/README.md for its measured coverage.
    per_class : ndarray of shape (C,)
        Estimated share of wrong labels among the samples *given* class ``c`` (0 for a class never given).
    matrix : ndarray of shape (C, C)
        Joint distribution: rows = given label, columns = likely true label; fractions of N, summing to 1.
    n_issues : int
        ``round(rate * N)``.
    method : str
        The estimator used (never ``'auto'``).
    n_samples : int
        ``N``.
    details : dict
        Estimator-specific extras (JSON-ready), e.g. the epochs or detector used.
    """

    rate: float
    interval: Tuple[float, float]
    per_class: np.ndarray
    matrix: np.ndarray
    n_issues: int
    method: str
    n_samples: int = 0
    details: Dict[str, Any] = field(default_factory=dict)

    @property
    def per_class_issues(self) -> np.ndarray:
        """Estimated number of wrong labels per given class, (C,) float (``matrix`` off-diagonal row sums x N)."""
        m = np.asarray(self.matrix, dtype=np.float64)
        return (m.sum(axis=1) - np.diag(m)) * self.n_samples

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready dict of every field."""
        return {"rate": float(self.rate), "interval": [float(self.interval[0]), float(self.interval[1])],
                "per_class": [float(v) for v in self.per_class],
                "matrix": [[float(v) for v in row] for row in self.matrix],
                "n_issues": int(self.n_issues), "method": self.method, "n_samples": int(self.n_samples),
                "details": json.loads(json.dumps(self.details, default=_json_default))}


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


# --------------------------------------------------------------------------------------------- shared parts
def _joint_from_posterior(w: np.ndarray, given: np.ndarray, probs: Optional[np.ndarray], n_classes: int
                          ) -> np.ndarray:
    """(C, C) joint from per-sample P(mislabeled) ``w``: the wrong share of a row spread over the other
    classes by the sample's own probabilities (uniformly when there are none)."""
    n = given.size
    if probs is None:
        other = np.full((n, n_classes), 1.0 / max(n_classes - 1, 1))
    else:
        other = np.asarray(probs, dtype=np.float64).copy()
    other[np.arange(n), given] = 0.0
    empty = other.sum(axis=1) <= 0
    other[empty] = 1.0
    other[np.arange(n), given] = 0.0
    other = normalise_rows(other)
    rows = w[:, None] * other
    rows[np.arange(n), given] += 1.0 - w
    joint = np.zeros((n_classes, n_classes))
    np.add.at(joint, given, rows)
    return joint / max(n, 1)


def _per_class_from_joint(joint: np.ndarray) -> np.ndarray:
    row = joint.sum(axis=1)
    wrong = row - np.diag(joint)
    return np.divide(wrong, row, out=np.zeros_like(row), where=row > 0)


def _finish(method: str, joint: np.ndarray, n: int, rate_fn: Callable[[np.ndarray], float], n_bootstrap: int,
            seed: int, details: Dict[str, Any], rate: Optional[float] = None) -> NoiseEstimate:
    rate = float(1.0 - np.trace(joint)) if rate is None else float(rate)
    rate = float(np.clip(rate, 0.0, 1.0))
    if n_bootstrap > 0:
        rng = np.random.default_rng(seed)
        draws = np.array([rate_fn(rng.integers(0, n, size=n)) for _ in range(int(n_bootstrap))])
        low, high = np.quantile(draws, [0.025, 0.975])
        interval = (float(min(low, rate)), float(max(high, rate)))
    else:
        interval = (rate, rate)
    return NoiseEstimate(rate=rate, interval=interval, per_class=_per_class_from_joint(joint), matrix=joint,
                         n_issues=int(round(rate * n)), method=method, n_samples=n,
                         details={**details, "n_bootstrap": int(n_bootstrap)})


# --------------------------------------------------------------------------------------------- estimators
def _require_cleanlab(method: str):
    try:
        from cleanlab.count import estimate_joint
    except ImportError as exc:  # a dependency since the decisions; an old environment may lack it
        raise ImportError(f"estimate_noise(method={method!r}) needs cleanlab: pip install cleanlab") from exc
    return estimate_joint


def _cj_joint(given: np.ndarray, probs: np.ndarray, n_classes: int, idx: np.ndarray) -> np.ndarray:
    """cleanlab's calibrated confident joint of the rows ``idx``, (C, C), also when some class is never given."""
    estimate_joint = _require_cleanlab("confident_joint")
    y, p = given[idx], probs[idx]
    c = n_classes
    present = np.unique(y)
    if present.size < 2:
        return np.diag(np.bincount(y, minlength=c) / max(y.size, 1)).astype(np.float64)
    if present.size == c:
        return estimate_joint(labels=y, pred_probs=p)
    # cleanlab needs every class among the given labels: estimate on the present ones, renormalised
    remap = np.full(c, -1)
    remap[present] = np.arange(present.size)
    sub = normalise_rows(p[:, present], floor=1e-12)
    small = estimate_joint(labels=remap[y], pred_probs=sub)
    full = np.zeros((c, c))
    full[np.ix_(present, present)] = small
    return full


def _confident_joint(rec: Recording, *, epochs=None, n_bootstrap: int, seed: int) -> NoiseEstimate:
    _require_cleanlab("confident_joint")
    given = rec.assigned_labels
    probs = normalise_rows(class_probabilities(rec, epochs), floor=1e-12)
    c = rec.n_classes

    def joint_of(idx: np.ndarray) -> np.ndarray:
        return _cj_joint(given, probs, c, idx)

    joint = joint_of(np.arange(rec.n_samples))
    fit = final_fit(rec)
    if fit >= MEMORISED_FIT and 1.0 - np.trace(joint) < 0.01:
        warnings.warn(f"the model fits {100 * fit:.1f} % of the given labels in its last epoch (it memorised them): "
                      "in-sample probabilities hide wrong labels, so this noise estimate can be far too low; a "
                      "shorter run or a model that generalises better gives a trustworthy estimate", UserWarning,
                      stacklevel=3)
    return _finish("confident_joint", joint, rec.n_samples, lambda idx: 1.0 - np.trace(joint_of(idx)),
                   n_bootstrap, seed, {"epochs": _epochs_note(epochs), "in_sample": True, "final_fit": fit})


def fit_curve(recording: Any) -> np.ndarray:
    """Share of samples whose given label is the arg-max, per epoch.

    Parameters
    ----------
    recording : path, mapping, DynamicsRecorder or Recording
        Needs ``td``.

    Returns
    -------
    ndarray of shape (E,), float64
        1.0 = every given label fitted in that epoch; the last entry is :func:`final_fit`.
    """
    return _fitted(Recording.coerce(recording).td).mean(axis=0).astype(np.float64)


def _fitted(td: np.ndarray) -> np.ndarray:
    """True where the given label (channel 0) is the arg-max of ``td[..., :]`` (ties count as fitted)."""
    td = np.asarray(td)
    return td[..., 0] >= td.max(axis=-1)


def early_learning_windows(n_epochs: int, memorised: bool) -> Dict[str, np.ndarray]:
    """The epoch windows :func:`estimate_noise` (``'early_learning'``) averages probabilities over.

    The first entry is the one the point estimate uses; the others are the alternatives the interval spans.
    A run that ends up fitting (nearly) every given label memorised its wrong labels in the course of
    training, so its estimate comes from the first half of the epochs (the early-learning phase, Liu et al.
    2020, before the wrong labels are fitted), its alternatives are the first quarter and all epochs. Any
    other run uses all epochs (its first epochs are under-fitted, which overstates the noise), with the
    halves as alternatives.

    Parameters
    ----------
    n_epochs : int
        ``E``.
    memorised : bool
        Whether the run fits >= ``MEMORISED_FIT`` of its given labels in its last epoch (see :func:`fit_curve`).

    Returns
    -------
    dict of str to ndarray of int64
        Window name -> epoch indices (never empty), the point estimate's window first.
    """
    every = np.arange(n_epochs)
    half, quarter = every[:max(1, n_epochs // 2)], every[:max(1, n_epochs // 4)]
    if memorised:
        return {"first half": half, "first quarter": quarter, "all": every}
    return {"all": every, "first half": half, "second half": every[n_epochs // 2:]}


def _early_learning(rec: Recording, *, epochs=None, n_bootstrap: int, seed: int) -> NoiseEstimate:
    _require_cleanlab("early_learning")
    given, c, n = rec.assigned_labels, rec.n_classes, rec.n_samples
    fits = fit_curve(rec)
    memorised = bool(fits[-1] >= MEMORISED_FIT)
    windows = early_learning_windows(rec.n_epochs, memorised)
    if epochs is not None:  # the caller's epochs give the estimate; the automatic windows still span the interval
        windows = {"given epochs": select_epochs(rec.n_epochs, epochs), **windows}
    # one (N, C) average per window, never the whole (N, E, C) recording as float64
    probs = {name: normalise_rows(class_probabilities(rec, w), floor=1e-12) for name, w in windows.items()}
    names = list(windows)
    everyone = np.arange(n)
    joints = {name: _cj_joint(given, probs[name], c, everyone) for name in names}
    rates = {name: float(1.0 - np.trace(j)) for name, j in joints.items()}
    main = names[0]
    if memorised:
        warnings.warn(f"the model fits {100 * fits[-1]:.1f} % of the given labels in its last epoch (it memorised "
                      "them): the noise rate is not identifiable from this run's own probabilities; the estimate "
                      f"({100 * rates[main]:.1f} %, from the first half of the epochs) is rough and its interval "
                      "is wide. A shorter run or a model that generalises better gives a trustworthy estimate",
                      UserWarning, stacklevel=3)
    # the bootstrap resamples the samples AND the window (cycling through the candidates), so the interval
    # also reflects how much the estimate depends on which epochs are averaged
    draws = []
    if n_bootstrap > 0:
        rng = np.random.default_rng(seed)
        for b in range(int(n_bootstrap)):
            idx = rng.integers(0, n, size=n)
            draws.append(1.0 - np.trace(_cj_joint(given, probs[names[b % len(names)]], c, idx)))
    rate = float(np.clip(rates[main], 0.0, 1.0))
    if draws:
        low, high = np.quantile(draws, [0.025, 0.975])
        interval = (float(min(low, rate)), float(max(high, rate)))
    else:
        interval = (rate, rate)
    if memorised:  # not identifiable: at least the whole span of the candidate windows
        interval = (float(min(interval[0], *rates.values())), float(max(interval[1], *rates.values())))
    interval = (float(np.clip(interval[0], 0.0, 1.0)), float(np.clip(interval[1], 0.0, 1.0)))
    joint = joints[main]
    details = {"window": main, "epochs": [int(windows[main][0]), int(windows[main][-1])], "memorised": memorised,
               "identifiable": not memorised, "final_fit": float(fits[-1]), "window_rates": rates,
               "in_sample": True, "n_bootstrap": int(n_bootstrap)}
    return NoiseEstimate(rate=rate, interval=interval, per_class=_per_class_from_joint(joint), matrix=joint,
                         n_issues=int(round(rate * n)), method="early_learning", n_samples=n, details=details)


def final_fit(recording: Any) -> float:
    """Share of samples whose given label is the arg-max in the last recorded epoch (1.0 = memorised)."""
    return float(_fitted(Recording.coerce(recording).td[:, -1, :]).mean())


def _mixture_posterior(scores: np.ndarray, seed: int) -> Tuple[np.ndarray, float]:
    """P(sample in the higher-mean component) of a 2-component GMM on ``scores``; and that component's weight."""
    from sklearn.mixture import GaussianMixture

    s = np.asarray(scores, dtype=np.float64).reshape(-1, 1)
    if np.ptp(s) <= 0:
        return np.zeros(s.shape[0]), 0.0
    scale = np.std(s)
    gmm = GaussianMixture(n_components=2, covariance_type="full", random_state=seed, max_iter=200, tol=1e-4,
                          reg_covar=1e-6 * scale ** 2 + 1e-12)
    gmm.fit(s)
    noisy = int(np.argmax(gmm.means_.reshape(-1)))
    post = gmm.predict_proba(s)[:, noisy]
    return post, float(gmm.weights_[noisy])


def _probs_or_none(rec: Recording, epochs) -> Optional[np.ndarray]:
    return normalise_rows(class_probabilities(rec, epochs)) if rec.labels is not None else None


def _mixture(rec: Recording, *, detector: str = "aum", scores=None, epochs=None, n_bootstrap: int, seed: int
             ) -> NoiseEstimate:
    rec.require("labels", needed_by="estimate_noise(method='mixture')")
    s = detector_scores(rec, detector, scores)
    if not np.all(np.isfinite(s)):
        raise ValueError(f"{detector} returned non-finite scores; the mixture needs finite scores")
    post, _ = _mixture_posterior(s, seed)
    joint = _joint_from_posterior(post, rec.assigned_labels, _probs_or_none(rec, epochs), rec.n_classes)
    return _finish("mixture", joint, rec.n_samples, lambda idx: float(_mixture_posterior(s[idx], seed)[0].mean()),
                   n_bootstrap, seed, {"detector": detector if scores is None else "given scores"},
                   rate=float(post.mean()))


def bhdf_train_prior() -> float:
    """Share of mislabeled samples the shipped BHDF detector was trained with (its corpus's prior).

    Read from the JSON beside the shipped weights: ``train_prior`` when present, else the noisy share of
    its held-out runs, which are planned exactly like its training runs.
    """
    from ..interpreter.bhdf import default_weights_path

    info_path = default_weights_path().with_suffix(".json")
    info = json.loads(info_path.read_text()) if info_path.exists() else {}
    if "train_prior" in info:
        return float(info["train_prior"])
    runs = info.get("holdout_runs") or []
    n = sum(int(r.get("n", 0)) for r in runs)
    k = sum(int(r.get("n_noisy", 0)) for r in runs)
    if n <= 0:
        raise ValueError(f"cannot read the BHDF training prior from {info_path}; pass train_prior=")
    return k / n


def adapt_prior(p: np.ndarray, train_prior: float, *, max_iter: int = 1000, tol: float = 1e-8
                ) -> Tuple[np.ndarray, float]:
    """EM for a new class prior (Saerens, Latinne & Decaestecker 2002), binary case.

    Parameters
    ----------
    p : ndarray of shape (N,)
        Posteriors P(mislabeled) from a model trained with prior ``train_prior``.
    train_prior : float in (0, 1)

    Returns
    -------
    posterior : ndarray of shape (N,)
        Posteriors re-weighted for the adapted prior.
    prior : float
        The maximum-likelihood prior of the new data.
    """
    if not 0.0 < train_prior < 1.0:
        raise ValueError(f"train_prior must be in (0, 1), got {train_prior}")
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-9, 1 - 1e-9)
    prior = float(train_prior)
    post = p
    for _ in range(max_iter):
        a = p * (prior / train_prior)
        b = (1.0 - p) * ((1.0 - prior) / (1.0 - train_prior))
        post = a / (a + b)
        new = float(post.mean())
        if abs(new - prior) < tol:
            prior = new
            break
        prior = new
    return post, prior


def _bhdf_prior(rec: Recording, *, scores=None, train_prior: Optional[float] = None, epochs=None,
                n_bootstrap: int, seed: int) -> NoiseEstimate:
    rec.require("labels", needed_by="estimate_noise(method='bhdf_prior')")
    p = detector_scores(rec, "bhdf", scores)
    pi_train = bhdf_train_prior() if train_prior is None else float(train_prior)
    post, prior = adapt_prior(p, pi_train)
    joint = _joint_from_posterior(post, rec.assigned_labels, _probs_or_none(rec, epochs), rec.n_classes)
    return _finish("bhdf_prior", joint, rec.n_samples, lambda idx: adapt_prior(p[idx], pi_train)[1], n_bootstrap,
                   seed, {"train_prior": pi_train, "mean_bhdf_probability": float(p.mean())}, rate=prior)


def _aum_threshold(rec: Recording, *, threshold=None, epochs=None, n_bootstrap: int, seed: int) -> NoiseEstimate:
    if threshold is None:
        raise ValueError("estimate_noise(method='aum_threshold') needs threshold=: the ThresholdResult of "
                         "interpretdl_noise.run_threshold_procedure on the same data (or its `remove` mask)")
    remove = np.asarray(getattr(threshold, "remove", threshold)).astype(bool).reshape(-1)
    if remove.shape[0] != rec.n_samples:
        raise ValueError(f"threshold marks {remove.shape[0]} samples but the recording has {rec.n_samples}")
    rec.require("labels", needed_by="estimate_noise(method='aum_threshold')")
    w = remove.astype(np.float64)
    joint = _joint_from_posterior(w, rec.assigned_labels, _probs_or_none(rec, epochs), rec.n_classes)
    return _finish("aum_threshold", joint, rec.n_samples, lambda idx: float(w[idx].mean()), n_bootstrap, seed,
                   {}, rate=float(w.mean()))


def _epochs_note(epochs) -> Any:
    if epochs is None or isinstance(epochs, (str, int, np.integer)):
        return "all" if epochs is None else epochs
    return str(epochs)


_IMPLS = {"early_learning": _early_learning, "confident_joint": _confident_joint, "mixture": _mixture,
          "bhdf_prior": _bhdf_prior, "aum_threshold": _aum_threshold}


def estimate_noise(recording: Any, method: str = "auto", *, n_bootstrap: int = 100, seed: int = 0,
                   **kw: Any) -> NoiseEstimate:
    """Estimate how many labels of a recording are wrong, overall, per class and as a given-vs-true matrix.

    Parameters
    ----------
    recording : path, mapping, DynamicsRecorder or Recording
        Needs ``td`` and ``labels``.
    method : {'auto', 'early_learning', 'confident_joint', 'mixture', 'bhdf_prior', 'aum_threshold'}, default='auto'
        See the module docstring; ``'auto'`` is ``DEFAULT_ESTIMATOR`` (``'early_learning'``).
    n_bootstrap : int, default=100
        Bootstrap resamples (of the samples) for the 95 % interval; 0 skips it.
    seed : int, default=0
        Seeds the bootstrap and the mixture fit.
    **kw
        Per method: ``epochs`` (which epochs' probabilities to average, see
        :func:`~interpretdl_noise.decisions.probabilities.select_epochs`; all methods; ``early_learning``
        chooses them itself unless given, and its interval spans its own windows too), ``detector`` (the
        registry name whose scores the mixture splits, default ``'aum'``) and ``scores`` (precomputed
        scores of that detector, (N,), higher = more likely mislabeled; ``mixture``, ``bhdf_prior``),
        ``train_prior`` (``bhdf_prior``), ``threshold`` (``aum_threshold``).

    Returns
    -------
    NoiseEstimate

    Raises
    ------
    ValueError
        An unknown method or keyword, a recording without what the method needs (e.g. no ``labels``), or a
        detector that does not apply.
    """
    rec = Recording.coerce(recording).require("labels", needed_by="estimate_noise")
    name = DEFAULT_ESTIMATOR if method == "auto" else method
    if name not in _IMPLS:
        raise ValueError(f"unknown noise estimator {method!r}; choose from {('auto',) + ESTIMATORS}")
    if not isinstance(n_bootstrap, (int, np.integer)) or n_bootstrap < 0:
        raise ValueError(f"n_bootstrap must be a non-negative integer, got {n_bootstrap!r}")
    impl = _IMPLS[name]
    allowed = set(impl.__code__.co_varnames[1:impl.__code__.co_argcount + impl.__code__.co_kwonlyargcount])
    unknown = sorted(set(kw) - allowed)
    if unknown:
        raise ValueError(f"estimate_noise(method={name!r}) got unexpected keyword(s) {unknown}; "
                         f"it accepts {sorted(allowed - {'n_bootstrap', 'seed'})}")
    return impl(rec, n_bootstrap=int(n_bootstrap), seed=int(seed), **kw)
