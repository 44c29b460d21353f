"""interpretdl_noise: find mislabeled training samples from a Paddle model's training dynamics.

Import it beside InterpretDL. Every detector scores samples so that a **higher score means more likely
mislabeled**. Shapes: ``N`` samples, ``E`` epochs, ``C`` classes.
"""
from . import _paddle  # noqa: F401  (fails early, naming the [cpu] / [gpu] extras, when paddle is missing)
from .common.metrics import detection_metrics
from .data import ArrayDataset, DatasetWithIndex, inject_label_noise, load_digits_arrays
from .interpreter import DatasetLevelInterpreter, Interpreter, SmallLossInterpreter, TrainingDynamics
from .recording import DynamicsRecorder, load_training_dynamics, save_training_dynamics, transform_dynamics

__version__ = "0.1.0"

__all__ = [
    "__version__",
    # recording
    "TrainingDynamics",
    "DynamicsRecorder",
    "transform_dynamics",
    "load_training_dynamics",
    "save_training_dynamics",
    # interpreters
    "Interpreter",
    "DatasetLevelInterpreter",
    "SmallLossInterpreter",
    # data and metrics
    "ArrayDataset",
    "DatasetWithIndex",
    "inject_label_noise",
    "load_digits_arrays",
    "detection_metrics",
]
