"""Paddle layers: CoNAL's common / individual noise adaptation (learning from crowd labels)."""
from .conal import AuxiliaryNetwork, CoNALNetwork, NoiseAdaptationLayer, conal_loss

__all__ = ["AuxiliaryNetwork", "CoNALNetwork", "NoiseAdaptationLayer", "conal_loss"]
