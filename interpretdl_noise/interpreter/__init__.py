"""Interpreters: the recorder (``TrainingDynamics``) and one module per mislabel detector.

Every detector module is importable without Paddle; the Paddle edges (the recorder, the AUM threshold
procedure, the BHDF network) are imported on first use.
"""
from .._lazy import lazy_exports
from .abc_interpreter import DatasetLevelInterpreter, Interpreter
from .aum import AUMCalculator, AUMInterpreter, AUMRecord
from .bhdf import BHDFInterpreter, prepare_curves, resample_dynamics
from .bhdf_margin import BHDFMarginInterpreter
from .confident_learning import ConfidentLearningInterpreter
from .data_maps import DataMapsInterpreter
from .forgetting_events import ForgettingEventsInterpreter
from .loss_dynamics import LossDynamicsAnalyzer, LossDynamicsInterpreter, NoisyLabelCandidate
from .small_loss import SmallLossInterpreter

_LAZY = {
    "TrainingDynamics": ".training_dynamics",
    "LSTMDetector": ".bhdf_network",
    **dict.fromkeys(["ThresholdSamplesDataset", "ThresholdResult", "threshold_sample_indices",
                     "assign_threshold_labels", "aum_cutoff", "flag_below_cutoff", "combine_threshold_runs",
                     "run_threshold_procedure"], ".aum_threshold"),
}

__all__ = ["Interpreter", "DatasetLevelInterpreter", "TrainingDynamics", "SmallLossInterpreter",
           # AUM
           "AUMCalculator", "AUMRecord", "AUMInterpreter", "ThresholdSamplesDataset", "ThresholdResult",
           "threshold_sample_indices", "assign_threshold_labels", "aum_cutoff", "flag_below_cutoff",
           "combine_threshold_runs", "run_threshold_procedure",
           # BHDF
           "BHDFInterpreter", "BHDFMarginInterpreter", "LSTMDetector", "resample_dynamics", "prepare_curves",
           # EMA loss dynamics
           "LossDynamicsAnalyzer", "LossDynamicsInterpreter", "NoisyLabelCandidate",
           # baselines
           "ForgettingEventsInterpreter", "DataMapsInterpreter", "ConfidentLearningInterpreter"]
__getattr__, __dir__ = lazy_exports(__name__, _LAZY, [n for n in __all__ if n not in _LAZY])
