"""The BHDF network (the Paddle edge of :mod:`interpretdl_noise.interpreter.bhdf`).

Kept apart so that :mod:`~interpretdl_noise.interpreter.bhdf` (curve preparation, weights, the interpreter)
imports without Paddle; ``bhdf.LSTMDetector`` and ``bhdf.LSTM`` resolve to these classes on first use.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from .._paddle import paddle
from .bhdf import DEFAULT_GRID

__all__ = ["LSTM", "LSTMDetector"]


class LSTMDetector(paddle.nn.Layer):
    """InterpretDL's BHDF network; ``forward`` returns logits (class 1 = mislabeled).

    ``paddle.nn.LSTM(input_size, hidden_size, num_layers)`` reads the curve, the last time step's output
    goes through ``Linear(hidden_size, 2)``. With the defaults it has 50,562 parameters named
    ``lstm.weight_ih_l0`` ... ``lstm.bias_hh_l1``, ``classifier.weight``, ``classifier.bias``, exactly as
    InterpretDL 0.8's ``LSTM``, so state dicts load in both directions.

    Parameters
    ----------
    input_size, hidden_size, num_layers : int
        Keep the defaults (1, 64, 2) for InterpretDL compatibility and the shipped weights.
    grid : int or None, default=DEFAULT_GRID
        The resampling grid this detector expects (see :func:`resample_dynamics`); ``None`` = raw
        curves. Stored as a plain attribute and used by :class:`BHDFInterpreter` when ``grid='auto'``.
    center : bool, default=True
        Whether it expects curves centred on the recording's per-epoch median (:func:`center_dynamics`);
        a plain attribute used by :class:`BHDFInterpreter` when ``center='auto'``.
    context : bool, default=True
        Whether it expects the recording's median curve as a prefix (see :func:`prepare_curves`); a plain
        attribute used by :class:`BHDFInterpreter` when ``context='auto'``.
    """

    def __init__(self, input_size: int = 1, hidden_size: int = 64, num_layers: int = 2,
                 grid: Optional[int] = DEFAULT_GRID, center: bool = True, context: bool = True):
        super().__init__()
        self.classifier = paddle.nn.Linear(in_features=hidden_size, out_features=2)
        self.lstm = paddle.nn.LSTM(input_size=input_size, hidden_size=hidden_size, num_layers=num_layers,
                                   time_major=False)
        self.grid = grid
        self.center = center
        self.context = context

    def logits(self, x, initial_states=None):
        """Logits of shape (B, 2) for curves ``x`` of shape (B, T) or (B, T, 1).

        ``initial_states``: optional LSTM ``(h, c)`` to start from, each (num_layers, B, hidden), e.g.
        the state after a shared prefix (:meth:`prefix_state`).
        """
        if len(x.shape) != 3:
            x = paddle.unsqueeze(x, axis=2)
        out, _ = self.lstm(x, initial_states)
        return self.classifier(out[:, -1, :])

    def prefix_state(self, prefix):
        """LSTM state ``(h, c)`` after reading ``prefix`` of shape (T,) or (1, T): batch size 1."""
        prefix = paddle.reshape(paddle.to_tensor(np.asarray(prefix, dtype=np.float32)), [1, -1, 1])
        _, state = self.lstm(prefix)
        return state

    def forward(self, x):
        """Logits of shape (B, 2); ``x`` has shape (B, T) or (B, T, 1)."""
        return self.logits(x)


class LSTM(LSTMDetector):
    """Drop-in for InterpretDL's ``LSTM``: same parameters, ``forward`` returns softmax probabilities."""

    def forward(self, x):
        """Probabilities of shape (B, 2); column 1 is P(mislabeled)."""
        return paddle.nn.functional.softmax(self.logits(x), axis=-1)
