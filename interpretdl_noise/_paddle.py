"""Import PaddlePaddle on first use, with an actionable error when it is missing.

Paddle is an extra, not a hard dependency, so that users pick the CPU or the GPU build themselves, and the
numpy core (loading recordings, the numpy detectors, ``compare``, ``detect``, the plots) works without it.
Modules that run a model write ``from .._paddle import paddle``: without Paddle that import raises an
``ImportError`` naming the ``[cpu]`` / ``[gpu]`` extras. Importing paddle prints a harmless
``No ccache found`` warning; we silence only that one.
"""
import warnings

_HINT = (
    "interpretdl_noise needs PaddlePaddle, which is not installed. Install it with one of the extras:\n"
    "    pip install 'interpretdl-noise[cpu]'   # paddlepaddle, CPU build\n"
    "    pip install 'interpretdl-noise[gpu]'   # paddlepaddle-gpu"
)
PADDLE_HINT = _HINT

__all__ = ["PADDLE_HINT", "paddle_available", "require_paddle"]  # and ``paddle``, resolved on access


def require_paddle():
    """The ``paddle`` module; ``ImportError`` with :data:`PADDLE_HINT` when it cannot be imported."""
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="No ccache found")
            import paddle
    except ImportError as exc:
        raise ImportError(_HINT) from exc
    return paddle


def paddle_available() -> bool:
    """True when ``import paddle`` works."""
    try:
        require_paddle()
    except ImportError:
        return False
    return True


def __getattr__(name: str):
    # PEP 562: ``from interpretdl_noise._paddle import paddle`` imports paddle only here, at that moment
    if name == "paddle":
        return require_paddle()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
