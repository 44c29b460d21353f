"""interpretdl_noise: find mislabeled training samples from a Paddle model's training dynamics.

Import it beside InterpretDL. Every detector scores samples so that a **higher score means more likely
mislabeled**. Shapes: ``N`` samples, ``E`` epochs, ``C`` classes.

The numpy core (recordings, the numpy detectors, ``compare_detectors``, metrics, plots) is imported here
and works without Paddle. What runs a Paddle model (recording, the BHDF network, CoNAL, the callbacks,
detector training) is imported on first use; without Paddle that use raises an ``ImportError`` naming the
``[cpu]`` / ``[gpu]`` extras.
"""
import warnings as _warnings

from ._lazy import lazy_exports
from .common.metrics import detection_metrics
from .compare import ComparisonResult, compare_detectors
from .data import inject_label_noise
from .interpreter import (AUMCalculator, AUMInterpreter, AUMRecord, BHDFInterpreter, BHDFMarginInterpreter,
                          ConfidentLearningInterpreter,
                          DataMapsInterpreter, DatasetLevelInterpreter, ForgettingEventsInterpreter, Interpreter,
                          LossDynamicsAnalyzer, LossDynamicsInterpreter, NoisyLabelCandidate, SmallLossInterpreter,
                          prepare_curves, resample_dynamics)
from .interpreter.registry import create_detector, detector_names
from .decisions import (CleanResult, NoiseEstimate, SuggestedLabels, class_probabilities, clean,
                        estimate_noise, find_label_issues, suggest_labels, write_clean)
from .recording import (DynamicsRecorder, MissingRecordingKey, Recording, load_training_dynamics,
                        save_training_dynamics, transform_dynamics)
from .reporting import Report, ReportContent, report

__version__ = "0.1.0"

# Paddle-backed names, imported on first use
_LAZY = {
    "TrainingDynamics": ".interpreter.training_dynamics",
    "LSTMDetector": ".interpreter.bhdf_network",
    "RecordTrainingDynamics": ".callbacks.dynamics",
    "AUMCallback": ".callbacks.aum",
    "LabelTracker": ".callbacks.label_tracker",
    **dict.fromkeys(["ThresholdSamplesDataset", "ThresholdResult", "threshold_sample_indices", "aum_cutoff",
                     "flag_below_cutoff", "combine_threshold_runs", "run_threshold_procedure"],
                    ".interpreter.aum_threshold"),
    **dict.fromkeys(["plan_corpus", "build_corpus", "train_detector", "evaluate_detector", "build_detector"],
                    ".detector_training"),
    **dict.fromkeys(["NoiseAdaptationLayer", "AuxiliaryNetwork", "CoNALNetwork", "conal_loss"], ".layers"),
    **dict.fromkeys(["CoNAL", "train_classifier", "simulate_crowd", "CrowdSimulation", "majority_vote",
                     "dawid_skene", "DawidSkeneResult"], ".crowd"),
    **dict.fromkeys(["ArrayDataset", "DatasetWithIndex", "SeededBatchSampler", "load_digits_arrays"], ".data"),
}

__all__ = [
    "__version__",
    # recording
    "Recording", "MissingRecordingKey",
    "TrainingDynamics", "RecordTrainingDynamics", "DynamicsRecorder", "transform_dynamics",
    "load_training_dynamics", "save_training_dynamics",
    # interpreter bases and the detector registry
    "Interpreter", "DatasetLevelInterpreter", "detector_names", "create_detector",
    # detectors (one module each in interpretdl_noise.interpreter)
    "BHDFInterpreter", "BHDFMarginInterpreter", "LSTMDetector", "resample_dynamics", "prepare_curves",
    "AUMInterpreter", "AUMCalculator", "AUMRecord", "AUMCallback",
    "ThresholdSamplesDataset", "ThresholdResult", "threshold_sample_indices", "aum_cutoff", "flag_below_cutoff",
    "combine_threshold_runs", "run_threshold_procedure",
    "LossDynamicsAnalyzer", "LossDynamicsInterpreter", "NoisyLabelCandidate",
    "ForgettingEventsInterpreter", "DataMapsInterpreter", "SmallLossInterpreter",
    "ConfidentLearningInterpreter",
    # comparing detectors
    "compare_detectors", "ComparisonResult", "detection_metrics",
    # from scores to decisions
    "estimate_noise", "NoiseEstimate", "find_label_issues", "suggest_labels", "SuggestedLabels", "clean",
    "CleanResult", "write_clean", "class_probabilities",
    # training the BHDF detector
    "plan_corpus", "build_corpus", "train_detector", "evaluate_detector", "build_detector",
    # label tracking
    "LabelTracker",
    # learning from crowd labels (CoNAL)
    "NoiseAdaptationLayer", "AuxiliaryNetwork", "CoNALNetwork", "conal_loss", "CoNAL", "train_classifier",
    "simulate_crowd", "CrowdSimulation", "majority_vote", "dawid_skene", "DawidSkeneResult",
    # the HTML report
    "report", "Report", "ReportContent",
    # data
    "ArrayDataset", "DatasetWithIndex", "SeededBatchSampler", "inject_label_noise", "load_digits_arrays",
]

_lazy_getattr, __dir__ = lazy_exports(__name__, _LAZY, [n for n in __all__ if n not in _LAZY])


def __getattr__(name: str):
    if name == "ConfidentLearning":  # the one old alias, kept for code written against 0.1.0
        _warnings.warn("interpretdl_noise.ConfidentLearning is deprecated; use ConfidentLearningInterpreter",
                       DeprecationWarning, stacklevel=2)
        return ConfidentLearningInterpreter
    return _lazy_getattr(name)
