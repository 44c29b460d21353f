"""Data maps / dataset cartography (Swayamdipta et al., EMNLP 2020) on a saved recording.

For every sample, with ``p_e`` the softmax probability of its assigned label at epoch ``e`` (channel 0
of ``td``):

- **confidence** = ``mean_e p_e``;
- **variability** = ``std_e p_e`` (population std, ``np.std``; ``variability='ci'`` gives cartography's
  optional ``sqrt(var + var**2 / (E - 1))``);
- **correctness** = fraction of epochs in which the argmax is the assigned label (cartography sums
  the epochs and plots the fraction; we store the fraction);
- **threshold_closeness** = ``confidence * (1 - confidence)``.

Mislabeled samples gather in the *hard-to-learn* region (low confidence, low variability), so the
detector's score is **low confidence**: ``1 - confidence`` (higher = more likely mislabeled).

References
----------
.. [1] S. Swayamdipta, R. Schwartz, N. Lourie, Y. Wang, H. Hajishirzi, N. A. Smith, Y. Choi, "Dataset
   Cartography: Mapping and Diagnosing Datasets with Training Dynamics", EMNLP 2020, arXiv:2009.10795.
"""
from __future__ import annotations


import numpy as np
import pandas as pd

from ..common.atomic import PathLike
from ..common.metrics import top_k_mask
from ..common.plotting import plot_data_map
from ..recording.recording import Recording
from .abc_interpreter import DatasetLevelInterpreter
from .forgetting_events import correctness_from_td

__all__ = ["VARIABILITY_KINDS", "DataMapsInterpreter", "data_map_statistics"]

VARIABILITY_KINDS = ("std", "ci")


def data_map_statistics(td: np.ndarray, labels: np.ndarray | None = None, *,
                        variability: str = "std") -> pd.DataFrame:
    """Confidence, variability, correctness and threshold closeness of every sample.

    Parameters
    ----------
    td : ndarray of shape (N, E, C)
        Per-epoch softmax, channel 0 = assigned label.
    labels : ndarray of shape (N, C), optional
        Class id of each channel; used for argmax tie-breaking in ``correctness`` (see
        :func:`~interpretdl_noise.interpreter.forgetting_events.correctness_from_td`).
    variability : {'std', 'ci'}, default='std'
        ``'std'``: population std over epochs. ``'ci'``: ``sqrt(var + var**2 / (E - 1))`` (needs E >= 2).

    Returns
    -------
    pandas.DataFrame with N rows
        Columns ``confidence``, ``variability``, ``correctness`` (fraction in [0, 1]) and
        ``threshold_closeness``, in row order of ``td``.
    """
    if variability not in VARIABILITY_KINDS:
        raise ValueError(f"variability must be one of {VARIABILITY_KINDS}, got {variability!r}")
    td = np.asarray(td)
    if td.ndim != 3:
        raise ValueError(f"td must have shape (N, E, C), got {td.shape}")
    p = td[:, :, 0].astype(np.float64)
    conf = p.mean(axis=1)
    var = p.var(axis=1)
    if variability == "ci":
        if p.shape[1] < 2:
            raise ValueError("variability='ci' needs at least 2 epochs")
        spread = np.sqrt(var + var * var / (p.shape[1] - 1))
    else:
        spread = np.sqrt(var)
    correct = correctness_from_td(td, labels).mean(axis=1)
    return pd.DataFrame({"confidence": conf, "variability": spread, "correctness": correct,
                         "threshold_closeness": conf * (1.0 - conf)})


class DataMapsInterpreter(DatasetLevelInterpreter):
    """Dataset cartography: score = ``1 - confidence`` (the hard-to-learn region ranks first).

    Parameters
    ----------
    variability : {'std', 'ci'}, default='std'
        How ``variability`` is computed for the map (the score does not depend on it).

    Attributes
    ----------
    scores_ : ndarray of shape (N,)
        ``1 - confidence``, in [0, 1]; higher = more likely mislabeled.
    statistics_ : pandas.DataFrame
        :func:`data_map_statistics` of the last recording (N rows).

    Examples
    --------
    >>> dm = DataMapsInterpreter()                                               # doctest: +SKIP
    >>> order, scores = dm.interpret(training_dynamics_path="run/training_dynamics.npz")
    >>> fig = dm.plot(top_k=50, save_path="run/data_map.png")
    """

    name = "datamaps"
    summary = "low confidence, dataset cartography (Swayamdipta et al. 2020)"
    listing_order = 50

    statistics_: pd.DataFrame | None = None

    def __init__(self, variability: str = "std"):
        super().__init__(model=None, device="cpu")
        if variability not in VARIABILITY_KINDS:
            raise ValueError(f"variability must be one of {VARIABILITY_KINDS}, got {variability!r}")
        self.variability = variability

    def _score(self, record: Recording) -> np.ndarray:
        stats = data_map_statistics(record.td, record.labels, variability=self.variability)
        self.statistics_ = stats
        return 1.0 - stats["confidence"].to_numpy()

    def plot(self, flagged=None, *, top_k: int | None = None, title: str | None = None,
             save_path: PathLike | None = None):
        """Draw the data map of the last :meth:`interpret` call.

        Parameters
        ----------
        flagged : array-like of shape (N,) bool, or row indices, optional
            Samples to highlight, e.g. the recording's ``label_flip``.
        top_k : int, optional
            Highlight the ``top_k`` highest scores instead (ignored when ``flagged`` is given).
        title : str, optional
        save_path : path, optional
            Also write a PNG.

        Returns
        -------
        matplotlib.figure.Figure
        """
        if self.statistics_ is None:
            raise RuntimeError("call interpret() before plot()")
        label = "flagged"
        if flagged is None and top_k is not None:
            if not 0 < int(top_k) <= len(self.statistics_):
                raise ValueError(f"top_k must be between 1 and {len(self.statistics_)}, got {top_k}")
            flagged = top_k_mask(self.scores_, int(top_k))
            label = f"top-{int(top_k)} low confidence"
        s = self.statistics_
        return plot_data_map(s["confidence"], s["variability"], s["correctness"], flagged=flagged,
                             flagged_label=label, title=title, save_path=save_path)
