"""Import PaddlePaddle once, with an actionable error when it is missing.

Paddle is an extra, not a hard dependency, so that users pick the CPU or the GPU build themselves.
Importing paddle prints a harmless ``No ccache found`` warning; we silence only that one.
"""
import warnings

_HINT = (
    "interpretdl_noise needs PaddlePaddle, which is not installed. Install it with one of the extras:\n"
    "    pip install 'interpretdl-noise[cpu]'   # paddlepaddle, CPU build\n"
    "    pip install 'interpretdl-noise[gpu]'   # paddlepaddle-gpu"
)

try:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="No ccache found")
        import paddle  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised in a paddle-free environment only
    raise ImportError(_HINT) from exc

__all__ = ["paddle"]
