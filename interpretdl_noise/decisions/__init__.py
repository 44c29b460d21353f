"""From scores to decisions: how many labels are wrong, which ones, what they should be, a cleaned set.

=====================  ==========================================================================
module                 what it answers
=====================  ==========================================================================
``probabilities``      per-class probabilities in the model's class order (``class_probabilities``)
``noise``              how many labels are wrong (``estimate_noise`` -> ``NoiseEstimate``)
``issues``             which samples (``find_label_issues`` -> bool mask)
``suggest``            what their label should be (``suggest_labels`` -> ``SuggestedLabels``)
``clean``              a cleaned data set (``clean`` -> ``CleanResult``; ``write_clean``)
=====================  ==========================================================================

Shapes: ``N`` samples, ``E`` epochs, ``C`` classes. Scores keep the package's direction: higher = more
likely mislabeled. All probabilities come from the recording itself, i.e. they are **in-sample** (the model
trained on these very labels), not held-out predictions as in cleanlab's recommended use.
"""
from .clean import ACTIONS, CleanResult, clean, read_decisions, write_clean
from .issues import find_label_issues, parse_cutoff
from .noise import ESTIMATORS, NoiseEstimate, estimate_noise
from .probabilities import class_probabilities
from .suggest import SuggestedLabels, relabel_policy, suggest_labels

__all__ = [
    "ACTIONS", "CleanResult", "clean", "read_decisions", "write_clean",
    "find_label_issues", "parse_cutoff",
    "ESTIMATORS", "NoiseEstimate", "estimate_noise",
    "class_probabilities",
    "SuggestedLabels", "relabel_policy", "suggest_labels",
]
