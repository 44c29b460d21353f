"""``paddle.Model.fit`` callbacks: training-dynamics recording, AUM, label tracking (Paddle; imported on use)."""
from .._lazy import lazy_exports

_LAZY = {"AUMCallback": ".aum", "RecordTrainingDynamics": ".dynamics", "LabelTracker": ".label_tracker"}

__all__ = ["RecordTrainingDynamics", "LabelTracker", "AUMCallback"]
__getattr__, __dir__ = lazy_exports(__name__, _LAZY, [])
