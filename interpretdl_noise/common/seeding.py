"""Scoped seeding: seed Paddle for a block and restore the caller's random state afterwards."""
from __future__ import annotations

import contextlib
from typing import Iterator, Optional

from .._paddle import require_paddle


@contextlib.contextmanager
def paddle_seed(seed: Optional[int]) -> Iterator[None]:
    """Run a block with ``paddle.seed(seed)``; the previous Paddle RNG state is restored on exit.

    ``seed=None`` leaves Paddle's random state alone.
    """
    if seed is None:
        yield
        return
    paddle = require_paddle()
    state = paddle.get_rng_state()
    cuda_state = paddle.get_cuda_rng_state() if paddle.is_compiled_with_cuda() else None
    paddle.seed(int(seed))  # seeds the CPU and every GPU generator
    try:
        yield
    finally:
        paddle.set_rng_state(state)
        if cuda_state is not None:
            paddle.set_cuda_rng_state(cuda_state)
