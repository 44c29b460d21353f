"""Train your own BHDF detector: a corpus of recorded runs with known label noise, then the LSTM.

Shapes: ``N`` samples, ``E`` epochs, ``C`` classes. See :func:`build_detector` for the whole pipeline
(``interpretdl-noise train-detector``), or combine :func:`plan_corpus`, :func:`build_corpus`,
:func:`train_detector` and :func:`evaluate_detector` to fine-tune on your own domain.
"""
from .corpus import RunSpec, build_corpus, plan_corpus, record_run
from .sources import MODELS, SOURCES, Source, available_sources, build_model, load_source
from .train import (PRESETS, build_detector, evaluate_detector, evaluation_markdown,
                    save_detector, summarize_evaluation, train_detector)

__all__ = [
    "RunSpec",
    "plan_corpus",
    "record_run",
    "build_corpus",
    "Source",
    "SOURCES",
    "MODELS",
    "available_sources",
    "load_source",
    "build_model",
    "PRESETS",
    "train_detector",
    "evaluate_detector",
    "summarize_evaluation",
    "evaluation_markdown",
    "build_detector",
    "save_detector",
]
