"""interpretdl_noise: find mislabeled training samples from a Paddle model's training dynamics.

Import it beside InterpretDL. Every detector scores samples so that a **higher score means more likely
mislabeled**. Shapes: ``N`` samples, ``E`` epochs, ``C`` classes.
"""
from . import _paddle  # noqa: F401  (fails early, naming the [cpu] / [gpu] extras, when paddle is missing)
from .callbacks import AUMCallback, LabelTracker, RecordTrainingDynamics
from .common.metrics import detection_metrics
from .compare import ComparisonResult, compare_detectors
from .crowd import (CoNAL, CrowdSimulation, DawidSkeneResult, dawid_skene, majority_vote, simulate_crowd,
                    train_classifier)
from .data import ArrayDataset, DatasetWithIndex, SeededBatchSampler, inject_label_noise, load_digits_arrays
from .decisions import (CleanResult, NoiseEstimate, SuggestedLabels, class_probabilities, clean,
                        estimate_noise, find_label_issues, suggest_labels, write_clean)
from .detector_training import build_corpus, build_detector, evaluate_detector, plan_corpus, train_detector
from .interpreter import DatasetLevelInterpreter, Interpreter, SmallLossInterpreter, TrainingDynamics
from .interpreter.aum import AUMCalculator, AUMInterpreter, AUMRecord
from .interpreter.aum_threshold import (ThresholdResult, ThresholdSamplesDataset, aum_cutoff, combine_threshold_runs,
                                       flag_below_cutoff, run_threshold_procedure, threshold_sample_indices)
from .interpreter.bhdf import BHDFInterpreter, LSTMDetector, resample_dynamics
from .interpreter.confident_learning import ConfidentLearning, ConfidentLearningInterpreter
from .interpreter.data_maps import DataMapsInterpreter
from .interpreter.forgetting_events import ForgettingEventsInterpreter
from .interpreter.loss_dynamics import LossDynamicsAnalyzer, LossDynamicsInterpreter, NoisyLabelCandidate
from .layers import AuxiliaryNetwork, CoNALNetwork, NoiseAdaptationLayer, conal_loss
from .recording import (DynamicsRecorder, MissingRecordingKey, Recording, load_training_dynamics,
                        save_training_dynamics, transform_dynamics)
from .reporting import Report, ReportContent, report

__version__ = "0.1.0"

__all__ = [
    "__version__",
    # recording
    "Recording", "MissingRecordingKey",
    "TrainingDynamics", "RecordTrainingDynamics", "DynamicsRecorder", "transform_dynamics",
    "load_training_dynamics", "save_training_dynamics",
    # interpreter bases
    "Interpreter", "DatasetLevelInterpreter",
    # detectors (one module each in interpretdl_noise.interpreter)
    "BHDFInterpreter", "LSTMDetector", "resample_dynamics",
    "AUMInterpreter", "AUMCalculator", "AUMRecord", "AUMCallback",
    "ThresholdSamplesDataset", "ThresholdResult", "threshold_sample_indices", "aum_cutoff", "flag_below_cutoff",
    "combine_threshold_runs", "run_threshold_procedure",
    "LossDynamicsAnalyzer", "LossDynamicsInterpreter", "NoisyLabelCandidate",
    "ForgettingEventsInterpreter", "DataMapsInterpreter", "SmallLossInterpreter",
    "ConfidentLearningInterpreter", "ConfidentLearning",
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
