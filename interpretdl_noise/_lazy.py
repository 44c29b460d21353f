"""Lazy exports for ``__init__`` files (PEP 562): Paddle-backed names are imported when first used.

``import interpretdl_noise`` then works without Paddle: the numpy core is imported eagerly, and a name
such as ``TrainingDynamics`` imports its module on first access, where a missing Paddle raises the
``ImportError`` that names the ``[cpu]`` / ``[gpu]`` extras.
"""
from __future__ import annotations

import importlib
from typing import Callable, Mapping


def lazy_exports(package: str, names: Mapping[str, str], eager: list[str]) -> tuple[Callable, Callable]:
    """``(__getattr__, __dir__)`` for ``package`` whose lazy ``names`` map to relative module paths.

    Parameters
    ----------
    package : str
        The package's ``__name__``.
    names : mapping of attribute -> module
        e.g. ``{"TrainingDynamics": ".interpreter.training_dynamics"}``; the attribute is read from that
        module on first access and cached in the package namespace.
    eager : list of str
        The names already defined (listed by ``dir()`` as well).
    """
    namespace = importlib.import_module(package).__dict__

    def __getattr__(name: str):
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        namespace[name] = value
        return value

    def __dir__():
        return sorted(set(eager) | set(names))

    return __getattr__, __dir__
