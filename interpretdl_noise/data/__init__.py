"""Data helpers: index-carrying datasets, label-noise injection and the bundled offline datasets."""
from .datasets import ArrayDataset, DatasetWithIndex, SeededBatchSampler, load_digits_arrays
from .noise import inject_label_noise

__all__ = ["ArrayDataset", "DatasetWithIndex", "SeededBatchSampler", "load_digits_arrays", "inject_label_noise"]
