"""Train your own BHDF detector: a corpus of recorded runs with known label noise, then the LSTM.

Shapes: ``N`` samples, ``E`` epochs, ``C`` classes. See :func:`build_detector` for the whole pipeline
(``interpretdl-noise train-detector``), or combine :func:`plan_corpus`, :func:`build_corpus`,
:func:`train_detector` and :func:`evaluate_detector` to fine-tune on your own domain.
"""
from .._lazy import lazy_exports

# Paddle-backed (recording runs, training the LSTM): imported on first use
_LAZY = {
    "MODELS": ".sources",
    "PRESETS": ".train",
    "RunSpec": ".corpus",
    "SOURCES": ".sources",
    "Source": ".sources",
    "available_sources": ".sources",
    "build_corpus": ".corpus",
    "build_detector": ".train",
    "build_model": ".sources",
    "evaluate_detector": ".train",
    "evaluation_markdown": ".train",
    "load_source": ".sources",
    "plan_corpus": ".corpus",
    "record_run": ".corpus",
    "save_detector": ".train",
    "summarize_evaluation": ".train",
    "train_detector": ".train",
    # the realistic corpus, its pipeline and the held-out harness (issue 18)
    "REALISTIC_PRESETS": ".realistic",
    "RealisticRunSpec": ".realistic",
    "plan_realistic": ".realistic",
    "realistic_plan": ".realistic",
    "record_realistic_run": ".realistic",
    "build_realistic_corpus": ".realistic",
    "realistic_noise": ".realistic",
    "build_realistic_detector": ".train_realistic",
    "evaluate_heldout": ".heldout",
    "summarize_heldout": ".heldout",
    "gain_share": ".heldout",
}

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
    "REALISTIC_PRESETS",
    "RealisticRunSpec",
    "plan_realistic",
    "realistic_plan",
    "record_realistic_run",
    "build_realistic_corpus",
    "realistic_noise",
    "build_realistic_detector",
    "evaluate_heldout",
    "summarize_heldout",
    "gain_share",
]
__getattr__, __dir__ = lazy_exports(__name__, _LAZY, [])
