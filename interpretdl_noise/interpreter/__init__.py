"""Interpreters: the recorder (``TrainingDynamics``) and one module per mislabel detector."""
from .abc_interpreter import DatasetLevelInterpreter, Interpreter
from .aum import AUMCalculator, AUMInterpreter, AUMRecord
from .bhdf import BHDFInterpreter, LSTMDetector, resample_dynamics
from .aum_threshold import (ThresholdResult, ThresholdSamplesDataset, assign_threshold_labels, aum_cutoff,
                            combine_threshold_runs, flag_below_cutoff, run_threshold_procedure,
                            threshold_sample_indices)
from .loss_dynamics import LossDynamicsAnalyzer, LossDynamicsInterpreter, NoisyLabelCandidate
from .confident_learning import ConfidentLearning, ConfidentLearningInterpreter
from .data_maps import DataMapsInterpreter
from .forgetting_events import ForgettingEventsInterpreter
from .small_loss import SmallLossInterpreter
from .training_dynamics import TrainingDynamics

__all__ = ["Interpreter", "DatasetLevelInterpreter", "TrainingDynamics", "SmallLossInterpreter",
           # AUM
           "AUMCalculator", "AUMRecord", "AUMInterpreter", "ThresholdSamplesDataset", "ThresholdResult",
           "threshold_sample_indices", "assign_threshold_labels", "aum_cutoff", "flag_below_cutoff",
           "combine_threshold_runs", "run_threshold_procedure",
           # BHDF
           "BHDFInterpreter", "LSTMDetector", "resample_dynamics",
           # EMA loss dynamics
           "LossDynamicsAnalyzer", "LossDynamicsInterpreter", "NoisyLabelCandidate",
           # baselines
           "ForgettingEventsInterpreter", "DataMapsInterpreter", "ConfidentLearningInterpreter", "ConfidentLearning"]
