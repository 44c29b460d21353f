"""Device parsing and a scoped ``paddle.set_device`` that always restores the caller's device.

Paddle is imported when a GPU is asked for or a scope is entered, so numpy-only detectors run without it.
"""
from __future__ import annotations

import contextlib
import re
import warnings
from typing import Iterator

from .._paddle import require_paddle

_DEVICE_RE = re.compile(r"^(cpu|gpu(:\d+)?)$")


def resolve_device(device: str = "cpu") -> str:
    """Validate ``device`` and return the device that will really be used.

    Parameters
    ----------
    device : str
        ``'cpu'``, ``'gpu'`` or ``'gpu:N'``. A GPU request on a Paddle build without CUDA falls back to
        ``'cpu'`` with a ``UserWarning``.

    Returns
    -------
    str
        ``'cpu'`` or ``'gpu:N'``.
    """
    if not isinstance(device, str) or not _DEVICE_RE.match(device.strip().lower()):
        raise ValueError(f"device must be 'cpu', 'gpu' or 'gpu:N', got {device!r}")
    device = device.strip().lower()
    if device.startswith("gpu"):
        paddle = require_paddle()
        if not paddle.is_compiled_with_cuda() or paddle.device.cuda.device_count() == 0:
            warnings.warn(f"device={device!r} was requested but Paddle has no usable CUDA GPU; using 'cpu'.",
                          UserWarning, stacklevel=2)
            return "cpu"
        return device if ":" in device else "gpu:0"
    return "cpu"


@contextlib.contextmanager
def device_scope(device: str) -> Iterator[str]:
    """Run a block with ``paddle.set_device(device)`` and restore the previous device afterwards.

    ``device`` should already be resolved with :func:`resolve_device`.
    """
    paddle = require_paddle()
    previous = paddle.get_device()
    if previous == device:
        yield device
        return
    paddle.set_device(device)
    try:
        yield device
    finally:
        paddle.set_device(previous)
