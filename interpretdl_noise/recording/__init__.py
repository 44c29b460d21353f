"""Recording layer: bounded-memory storage of per-sample dynamics, the td transform and npz files.

Shapes used throughout: ``N`` samples, ``E`` epochs, ``C`` classes.
"""
from .npz import load_training_dynamics, save_training_dynamics, validate_training_dynamics
from .distributed import DistributedRecordingError, RemoteRecording
from .recorder import DynamicsRecorder, NonFiniteDynamicsError, RecorderInUseError
from .recording import MissingRecordingKey, Recording
from .transform import interpolate_missing, transform_dynamics

__all__ = [
    "Recording",
    "MissingRecordingKey",
    "DynamicsRecorder",
    "NonFiniteDynamicsError",
    "RecorderInUseError",
    "DistributedRecordingError",
    "RemoteRecording",
    "interpolate_missing",
    "transform_dynamics",
    "save_training_dynamics",
    "load_training_dynamics",
    "validate_training_dynamics",
]
