"""Paddle layers: CoNAL's common / individual noise adaptation (learning from crowd labels); imported on use."""
from .._lazy import lazy_exports

__all__ = ["AuxiliaryNetwork", "CoNALNetwork", "NoiseAdaptationLayer", "conal_loss"]
__getattr__, __dir__ = lazy_exports(__name__, dict.fromkeys(__all__, ".conal"), [])
