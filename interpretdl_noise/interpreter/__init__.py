"""Interpreters: the recorder (``TrainingDynamics``) and one module per mislabel detector."""
from .abc_interpreter import DatasetLevelInterpreter, Interpreter
from .small_loss import SmallLossInterpreter
from .training_dynamics import TrainingDynamics

__all__ = ["Interpreter", "DatasetLevelInterpreter", "TrainingDynamics", "SmallLossInterpreter"]
