"""``paddle.Model.fit`` callbacks: training-dynamics recording (and, beside it, label tracking)."""
from .aum import AUMCallback
from .dynamics import RecordTrainingDynamics
from .label_tracker import LabelTracker

__all__ = ["RecordTrainingDynamics", "LabelTracker", "AUMCallback"]
