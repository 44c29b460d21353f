"""BHDF-margin: the BHDF LSTM reading the assigned label's curve, the margin curve and its rank in the run.

The single-channel BHDF detector (:mod:`.bhdf`) reads only ``td[:, :, 0]``. AUM wins where that is not
enough: with pair and confusable-class noise a mislabeled sample's *true* class keeps a high probability,
which the assigned-label curve alone does not show. This detector keeps BHDF's network (a 2-layer
``paddle.nn.LSTM`` with 64 units and ``Linear(64, 2)``, InterpretDL's parameter names) and feeds it three
channels per step of training progress (``grid`` points, exact area resampling as in
:func:`~.bhdf.resample_dynamics`):

0. ``p`` - the assigned label's probability, centred on the run's per-step median;
1. ``m = p - max other p`` - the probability margin (AUM's per-epoch quantity), centred the same way;
2. the within-run percentile rank of ``m`` at that step, minus 0.5 (scale-free across runs).

Before them the LSTM reads ``grid`` steps of run context: the median ``p``, the median ``m`` and the
share of samples whose margin is negative (misclassified) at that step, which tells it where the run is
(still learning, memorising) and roughly how much of the data it gets wrong. The prefix is the same for
every sample, so it is read once per recording.

Scores are P(mislabeled), higher = more likely mislabeled. Weights and their JSON sidecar (``kind:
"margin"``, ``grid``, ``train_prior``) are produced by
:func:`interpretdl_noise.detector_training.train.train_detector` with ``features='margin'``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import numpy as np

from ..common.atomic import PathLike
from ..recording.recording import Recording
from .abc_interpreter import DatasetLevelInterpreter
from .bhdf import (DEFAULT_GRID, SUPPORTED_EPOCHS, _verify_sidecar_sha256, _weights_info, load_detector_weights,
                   resample_dynamics)

__all__ = ["BHDFMarginInterpreter", "margin_features", "N_CHANNELS", "MARGIN_WEIGHTS_FILE"]

N_CHANNELS = 3
MARGIN_WEIGHTS_FILE = "noise_detector_margin.pdparams"


def _percentile_ranks(x: np.ndarray) -> np.ndarray:
    """Per column, the average rank of each row scaled to [0, 1] (ties share their mean rank)."""
    from scipy.stats import rankdata

    n = x.shape[0]
    return ((rankdata(x, axis=0, method="average") - 1.0) / max(n - 1, 1)).astype(np.float32)


def margin_features(td, grid: int = DEFAULT_GRID) -> Tuple[np.ndarray, np.ndarray]:
    """The detector's input for one whole recording.

    Parameters
    ----------
    td : array-like of shape (N, E, C)
        A recording's ``td`` (channel 0 = assigned label), ``C >= 2``.
    grid : int, default=DEFAULT_GRID
        ``G``, steps of training progress after resampling.

    Returns
    -------
    prefix : ndarray of shape (G, 3), float32
        Run context: median ``p``, median margin, share of samples with a negative margin.
    body : ndarray of shape (N, G, 3), float32
        Centred ``p``, centred margin, percentile rank of the margin minus 0.5.
    """
    td = np.asarray(td)
    if td.ndim != 3 or td.shape[2] < 2 or td.shape[0] < 1:
        raise ValueError(f"td must have shape (N, E, C) with C >= 2, got {td.shape}")
    p = td[:, :, 0].astype(np.float32)
    margin = p - td[:, :, 1:].max(axis=2).astype(np.float32)
    p_g = resample_dynamics(p, grid)
    m_g = resample_dynamics(margin, grid)
    med_p = np.median(p_g, axis=0)
    med_m = np.median(m_g, axis=0)
    wrong = resample_dynamics((margin < 0).astype(np.float32), grid).mean(axis=0)
    body = np.stack([p_g - med_p, m_g - med_m, _percentile_ranks(m_g) - 0.5], axis=2)
    prefix = np.stack([med_p, med_m, wrong], axis=1).astype(np.float32)
    return prefix, body.astype(np.float32)


def stacked_margin_features(td, grid: int = DEFAULT_GRID) -> np.ndarray:
    """``margin_features`` as one (N, 2 G, 3) sequence per sample (prefix then body), for training."""
    prefix, body = margin_features(td, grid)
    return np.concatenate([np.broadcast_to(prefix, (body.shape[0],) + prefix.shape), body], axis=1)


def default_margin_weights_path() -> Path:
    """Where the shipped margin weights live (package data), whether or not they are installed."""
    return Path(__file__).resolve().parents[1] / "assets" / MARGIN_WEIGHTS_FILE


class BHDFMarginInterpreter(DatasetLevelInterpreter):
    """P(mislabeled) from BHDF's LSTM on three channels (assigned probability, margin, margin rank).

    Parameters
    ----------
    weights : path, optional
        A ``.pdparams`` file written by ``train_detector(features='margin')`` (with its JSON sidecar).
        Default: the shipped ``assets/noise_detector_margin.pdparams`` (checked against its ``.sha256``),
        trained by ``interpretdl-noise train-detector --preset realistic --seed 0 --features margin``; see
        ``assets/MODEL_CARD.md``.
    device : str, default='cpu'
    batch_size : int, default=1024
    prior_shift : bool, default=False
        Re-weight the probabilities for the recording's own noise rate (Saerens EM from the
        detector's training prior, :func:`interpretdl_noise.decisions.noise.adapt_prior`);
        ``estimated_rate_`` holds the adapted rate. The ranking is unchanged.

    Notes
    -----
    Scores: higher = more likely mislabeled. Score whole recordings: the centring, the ranks and the
    prefix use all of the recording's samples.
    """

    name = "bhdf_margin"
    summary = "LSTM on assigned probability, margin and margin rank curves (BHDF, 3 channels)"
    needs_paddle = True
    listing_order = 11

    def __init__(self, weights: Optional[PathLike] = None, device: str = "cpu", *, batch_size: int = 1024,
                 prior_shift: bool = False, detector=None, grid: Optional[int] = None):
        from .bhdf_network import LSTMDetector

        self.weights_path: Optional[Path] = None
        info: Dict[str, Any] = {}
        if detector is None:
            path = Path(weights) if weights is not None else default_margin_weights_path()
            if not path.is_file():
                raise FileNotFoundError(f"no margin detector weights at {path}; train them with "
                                        "train_detector(records, features='margin') or pass weights=")
            if weights is None:
                _verify_sidecar_sha256(path)    # the shipped file: a corrupted install fails loudly
            info = _weights_info(path)          # validated like BHDF's sidecar (grid range, booleans)
            if info.get("kind", "margin") != "margin":
                raise ValueError(f"{path.with_suffix('.json')} does not describe margin detector weights "
                                 f"(kind={info.get('kind')!r})")
            detector = LSTMDetector(input_size=N_CHANNELS, grid=int(info.get("grid", DEFAULT_GRID)))
            load_detector_weights(detector, path)
            self.weights_path = path
        super().__init__(model=detector, device=device)
        self.detector = detector
        self.grid = int(grid if grid is not None else info.get("grid", getattr(detector, "grid", DEFAULT_GRID)))
        self.train_prior = float(info.get("train_prior", 0.0)) or None
        self.weights_info = info
        self.batch_size = int(batch_size)
        self.prior_shift = bool(prior_shift)
        self.estimated_rate_: Optional[float] = None
        detector.eval()

    def predict_td(self, td) -> np.ndarray:
        """P(mislabeled) (N,) for one whole recording's ``td`` (N, E, C)."""
        from .._paddle import paddle

        td = np.asarray(td)
        if td.ndim != 3 or td.shape[1] < 2:
            raise ValueError(f"td must have shape (N, E, C) with E >= 2, got {td.shape}")
        if not SUPPORTED_EPOCHS[0] <= td.shape[1] <= SUPPORTED_EPOCHS[1]:
            import warnings

            warnings.warn(f"the recording has {td.shape[1]} epochs; the detector is validated for "
                          f"{SUPPORTED_EPOCHS[0]}-{SUPPORTED_EPOCHS[1]}", UserWarning, stacklevel=2)
        prefix, body = margin_features(td, self.grid)
        out = np.empty(body.shape[0], dtype=np.float64)
        net = self.detector
        with self.device_scope(), paddle.no_grad():
            _, state = net.lstm(paddle.to_tensor(prefix[None]))
            for start in range(0, body.shape[0], self.batch_size):
                batch = paddle.to_tensor(body[start:start + self.batch_size])
                size = batch.shape[0]
                initial = tuple(paddle.expand(t, [t.shape[0], size, t.shape[2]]) for t in state)
                logits = net.logits(batch, initial).numpy().astype(np.float64)
                out[start:start + size] = 0.5 * (1.0 + np.tanh(0.5 * (logits[:, 1] - logits[:, 0])))
        if not np.all(np.isfinite(out)):
            raise ValueError("the margin detector returned non-finite probabilities; check the weights")
        if self.prior_shift:
            from ..decisions.noise import adapt_prior

            if self.train_prior is None:
                raise ValueError("prior_shift needs the detector's training prior (train_prior in its JSON)")
            out, self.estimated_rate_ = adapt_prior(out, self.train_prior)
        return out

    def _score(self, record: Recording) -> np.ndarray:
        return self.predict_td(record.td)
