"""``paddle.Model.fit`` callbacks: training-dynamics recording (and, beside it, label tracking)."""
from .dynamics import RecordTrainingDynamics

__all__ = ["RecordTrainingDynamics"]
