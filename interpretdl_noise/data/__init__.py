"""Data helpers: index-carrying datasets, label-noise injection and the bundled offline datasets.

``inject_label_noise`` is numpy; the datasets are Paddle ``Dataset`` s, imported on first use.
"""
from .._lazy import lazy_exports
from .noise import inject_label_noise

__all__ = ["ArrayDataset", "DatasetWithIndex", "SeededBatchSampler", "load_digits_arrays", "inject_label_noise"]
__getattr__, __dir__ = lazy_exports(__name__, dict.fromkeys(__all__[:4], ".datasets"), ["inject_label_noise"])
