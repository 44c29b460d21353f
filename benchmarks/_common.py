"""Shared helpers for the benchmarks: loading InterpretDL 0.8's TrainingDynamics, timing, memory.

InterpretDL is needed only here (benchmark environment), never by the library or its tests.

``import interpretdl`` 0.8.0 is fragile in current environments: its ``__init__`` runs
``from .interpreter import *``, which needs IPython < 9 and ``cv2``, and on Paddle >= 2.6 it silently
drops ``TrainingDynamics`` because ``paddle.fluid`` is gone. :func:`load_interpretdl_training_dynamics`
therefore never runs those package ``__init__`` files. It locates the installed package with
``importlib.util.find_spec`` (which does not execute it), registers two empty stub *packages*
``interpretdl`` and ``interpretdl.interpreter`` in ``sys.modules`` whose ``__path__`` points at the
installed folders, and then imports ``interpretdl.interpreter.training_dynamics`` from its installed
file. Its own imports (``interpretdl.common.file_utils`` and ``.abc_interpreter``) then resolve to the
real installed submodules. The InterpretDL code that runs is unmodified.
"""
from __future__ import annotations

import gc
import importlib
import importlib.util
import os
import statistics
import sys
import time
import types
import warnings
from typing import Callable

__all__ = [
    "fmt_mb",
    "load_interpretdl_training_dynamics",
    "machine_info",
    "peak_rss_bytes",
    "reset_peak_rss",
    "rss_bytes",
    "timeit_median",
]


def load_interpretdl_training_dynamics() -> types.ModuleType:
    """Return InterpretDL 0.8's ``interpretdl/interpreter/training_dynamics.py`` module, loaded from its
    installed file without running ``interpretdl/__init__.py`` (see the module docstring)."""
    name = "interpretdl.interpreter.training_dynamics"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec("interpretdl")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("InterpretDL is not installed in this environment; the benchmark venv installs it with "
                          "`pip install --no-deps interpretdl==0.8.0`")
    root = next(iter(spec.submodule_search_locations))
    for pkg, path in (("interpretdl", root), ("interpretdl.interpreter", os.path.join(root, "interpreter"))):
        if pkg not in sys.modules:
            stub = types.ModuleType(pkg)
            stub.__path__ = [path]
            stub.__package__ = pkg
            sys.modules[pkg] = stub
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return importlib.import_module(name)


def timeit_median(fn: Callable[[], object], repeat: int = 3) -> dict[str, object]:
    """Run ``fn`` ``repeat`` times; return median and all wall-clock (``times``) and CPU (``cpu_times``,
    this process, all threads) seconds. On a shared machine the CPU time is the steadier of the two."""
    times: list[float] = []
    cpu: list[float] = []
    for _ in range(repeat):
        gc.collect()
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return {"median": statistics.median(times), "times": times, "cpu_median": statistics.median(cpu), "cpu_times": cpu}


def rss_bytes() -> int:
    """Current resident set size of this process, in bytes."""
    import psutil

    return psutil.Process().memory_info().rss


def reset_peak_rss() -> bool:
    """Reset this process's peak-RSS counter (``VmHWM``) to its current RSS (Linux >= 4.0).

    ``resource.getrusage(...).ru_maxrss`` is not usable for a child process: Linux carries the parent's
    peak across ``fork`` + ``exec``. ``VmHWM`` belongs to the process's own address space and can be reset.
    Returns False when the reset is not supported.
    """
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def peak_rss_bytes() -> int:
    """Peak resident set size (``VmHWM`` from ``/proc/self/status``) since start or the last reset, bytes."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise OSError("VmHWM not found in /proc/self/status")


def fmt_mb(n_bytes: float) -> str:
    return f"{n_bytes / 2**20:,.1f} MiB"


def machine_info() -> str:
    import platform
    from importlib.metadata import PackageNotFoundError, version

    import numpy as np

    try:  # not `import paddle`: that would add ~400 MB to this process
        pv = version("paddlepaddle")
    except PackageNotFoundError:  # pragma: no cover
        pv = "absent"
    return (f"python {platform.python_version()}, numpy {np.__version__}, paddle {pv}, "
            f"{os.cpu_count()} CPU cores, {platform.machine()}")
