"""Learning from crowd labels: CoNAL trainer, annotator simulation, aggregation baselines, peerannot I/O."""
from .aggregate import DawidSkeneResult, dawid_skene, majority_vote, vote_counts
from .conal_trainer import CoNAL, expected_calibration_error, train_classifier
from .peerannot_io import (
    AnswerArrays,
    PeerannotImageFolder,
    answers_to_arrays,
    answers_to_matrix,
    load_answers,
    matrix_to_answers,
    read_metadata,
    save_answers,
    save_image_folder,
    task_id_from_filename,
    write_metadata,
)
from .simulate import CrowdSimulation, common_confusion_matrix, simulate_crowd

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
