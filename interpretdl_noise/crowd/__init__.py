"""Learning from crowd labels: CoNAL trainer, annotator simulation, aggregation baselines, peerannot I/O.

Everything here reaches Paddle (the trainer, or peerannot's file layout), so names are imported on first use.
"""
from .._lazy import lazy_exports

_LAZY = {
    "CoNAL": ".conal_trainer",
    "CrowdSimulation": ".simulate",
    "AnswerArrays": ".peerannot_io",
    "DawidSkeneResult": ".aggregate",
    "PeerannotImageFolder": ".peerannot_io",
    "answers_to_arrays": ".peerannot_io",
    "answers_to_matrix": ".peerannot_io",
    "common_confusion_matrix": ".simulate",
    "dawid_skene": ".aggregate",
    "expected_calibration_error": ".conal_trainer",
    "load_answers": ".peerannot_io",
    "majority_vote": ".aggregate",
    "matrix_to_answers": ".peerannot_io",
    "read_metadata": ".peerannot_io",
    "save_answers": ".peerannot_io",
    "save_image_folder": ".peerannot_io",
    "simulate_crowd": ".simulate",
    "task_id_from_filename": ".peerannot_io",
    "train_classifier": ".conal_trainer",
    "vote_counts": ".aggregate",
    "write_metadata": ".peerannot_io",
}

__all__ = [
    "AnswerArrays",
    "CoNAL",
    "CrowdSimulation",
    "DawidSkeneResult",
    "PeerannotImageFolder",
    "answers_to_arrays",
    "answers_to_matrix",
    "common_confusion_matrix",
    "dawid_skene",
    "expected_calibration_error",
    "load_answers",
    "majority_vote",
    "matrix_to_answers",
    "read_metadata",
    "save_answers",
    "save_image_folder",
    "simulate_crowd",
    "task_id_from_filename",
    "train_classifier",
    "vote_counts",
    "write_metadata",
]
__getattr__, __dir__ = lazy_exports(__name__, _LAZY, [])
