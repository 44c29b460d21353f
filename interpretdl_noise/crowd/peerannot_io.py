"""Read, validate and write peerannot's crowdsourcing formats.

peerannot keeps a crowdsourced data set as a folder::

    <tasks_path>/
        answers.json      {task_id: {worker_id: label}}   (ids are strings in JSON, integers in meaning)
        metadata.json     {"name": ..., "n_classes": C, "n_workers": J[, "n_tasks": N]}
        train/<class>/<stem>-<task_id>.<ext>      ImageFolder layout; the task id ends the file stem
        val/<class>/<file>                         true labels from the class folder
        test/<class>/<file>

Class folders are indexed in sorted name order, as torchvision's ``ImageFolder`` does (so ``"10"`` sorts
before ``"2"``; name them with zero padding when ``C > 10``).

Shapes: ``N`` tasks, ``J`` workers, ``C`` classes. A dense label matrix is ``(N, J)`` int64 with ``-1`` where
a worker gave no label.
"""
from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np

from .._paddle import paddle
from ..common.atomic import atomic_path

PathLike = Union[str, "os.PathLike[str]"]
Answers = dict[int, dict[int, int]]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")

# Ids are dataset indices: ASCII decimal digits only (int64 range), never other scripts' digits.
_ID_RE = re.compile(r"\+?[0-9]{1,18}")
# Dense id-indexed outputs (row t = task id t) are refused when the largest id is far beyond the number of
# distinct ids: a few answers must not allocate gigabytes. compact=True handles any ids.
_SPARSE_FACTOR, _SPARSE_SLACK = 4, 1 << 16

__all__ = [
    "IMAGE_EXTENSIONS",
    "AnswerArrays",
    "PeerannotImageFolder",
    "answers_to_arrays",
    "answers_to_matrix",
    "load_answers",
    "matrix_to_answers",
    "read_metadata",
    "save_answers",
    "save_image_folder",
    "task_id_from_filename",
    "write_metadata",
]


def _as_int_id(value: Any, what: str) -> int:
    """An id given as an int or an ASCII decimal string ("12"), in [0, 2**63)."""
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{what} must be a non-negative integer (or its decimal string), got {value!r}")  # noqa: TRY004
    if isinstance(value, (int, np.integer)):
        out = int(value)
    elif isinstance(value, str) and _ID_RE.fullmatch(value.strip()):
        out = int(value.strip())
    else:
        shown = value if not isinstance(value, str) or len(value) <= 40 else value[:40] + "..."
        raise ValueError(f"{what} must be a non-negative integer or a string of ASCII digits 0-9 (at most 18), "
                         f"got {shown!r}")
    if out < 0:
        raise ValueError(f"{what} must be >= 0, got {value!r}")
    if out >= 2**63:
        raise ValueError(f"{what} {value!r} is outside the int64 range")
    return out


def _no_repeated_keys(pairs: list) -> dict:
    """``json`` object hook: a key given twice in one object is an error, not "the last one wins"."""
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"the JSON object holds the key {key!r} twice")
        out[key] = value
    return out


def _read_json(path: Path, what: str) -> Any:
    """Parse a JSON file, naming the file and the position of a syntax error; repeated keys are refused."""
    if not path.is_file():
        raise FileNotFoundError(f"{what} file not found: {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=_no_repeated_keys)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{what} file {path} is not valid JSON: {exc.msg} "
                         f"(line {exc.lineno}, column {exc.colno})") from exc
    except UnicodeDecodeError as exc:
        raise ValueError(f"{what} file {path} is not UTF-8 text: {exc}") from exc
    except RecursionError as exc:
        raise ValueError(f"{what} file {path} nests JSON objects too deeply") from exc
    except ValueError as exc:
        raise ValueError(f"{what} file {path}: {exc}") from exc


def load_answers(answers: PathLike | Mapping, *, n_classes: int | None = None,
                 n_workers: int | None = None, task_ids: Iterable[int] | None = None) -> Answers:
    """Read and validate peerannot answers ``{task: {worker: label}}``.

    Parameters
    ----------
    answers : path or mapping
        A JSON file (``answers.json``) or the already-loaded mapping. Task and worker ids may be ints or
        decimal strings; labels must be integers.
    n_classes : int, optional
        When given, every label must lie in ``[0, n_classes)``.
    n_workers : int, optional
        When given, every worker id must lie in ``[0, n_workers)``.
    task_ids : iterable of int, optional
        The known tasks (e.g. the train set's); an answer for any other task is an error.

    Returns
    -------
    dict
        ``{task_id: {worker_id: label}}`` with int keys and values, tasks in ascending order.

    Raises
    ------
    ValueError
        Malformed JSON, a non-mapping, no answer at all, a bad id, a label outside ``[0, n_classes)``
        or an unknown task id; the message names the offending task / worker / value.
    """
    if isinstance(answers, (str, os.PathLike)):
        path = Path(answers)
        raw = _read_json(path, "answers")
        source = str(path)
    elif isinstance(answers, Mapping):
        raw, source = answers, "answers"
    else:
        raise ValueError(f"answers must be a path to a JSON file or a mapping {{task: {{worker: label}}}}, "  # noqa: TRY004
                         f"got {type(answers).__name__}")
    if not isinstance(raw, Mapping):
        raise ValueError(f"{source} must be a JSON object {{task: {{worker: label}}}}, got {type(raw).__name__}")  # noqa: TRY004
    out: Answers = {}
    raw_task: dict[int, Any] = {}
    for task_key, votes in raw.items():
        task = _as_int_id(task_key, "task id")
        if task in out:
            raise ValueError(f"{source}: task id {task} appears twice (as {raw_task[task]!r} and {task_key!r})")
        raw_task[task] = task_key
        if not isinstance(votes, Mapping):
            raise ValueError(f"{source}: answers of task {task_key!r} must be an object {{worker: label}}, "  # noqa: TRY004
                             f"got {type(votes).__name__}")
        row: dict[int, int] = {}
        raw_worker: dict[int, Any] = {}
        for worker_key, label in votes.items():
            worker = _as_int_id(worker_key, f"worker id (task {task_key!r})")
            if worker in row:
                raise ValueError(f"{source}: worker {worker} answers task {task_key!r} twice (as "
                                 f"{raw_worker[worker]!r} and {worker_key!r}); keep one answer per worker and task")
            raw_worker[worker] = worker_key
            if n_workers is not None and worker >= n_workers:
                raise ValueError(f"{source}: worker id {worker} of task {task_key!r} is outside "
                                 f"[0, n_workers={n_workers})")
            if isinstance(label, (bool, np.bool_)) or not isinstance(label, (int, np.integer)):
                raise ValueError(f"{source}: label of task {task_key!r}, worker {worker_key!r} must be an integer "  # noqa: TRY004
                                 f"class id, got {label!r}")
            if label < 0 or label >= 2**31 or (n_classes is not None and label >= n_classes):
                allowed = f"[0, {n_classes})" if n_classes is not None else ">= 0"
                raise ValueError(f"{source}: label {label} of task {task_key!r}, worker {worker_key!r} is "
                                 f"outside {allowed}")
            row[worker] = int(label)
        out[task] = row
    if sum(len(v) for v in out.values()) == 0:
        raise ValueError(f"{source} holds no answer at all (need at least one {{task: {{worker: label}}}})")
    if task_ids is not None:
        known = {int(t) for t in task_ids}
        unknown = sorted(set(out) - known)
        if unknown:
            raise ValueError(f"{source} has answers for {len(unknown)} task id(s) that are not in the train set, "
                             f"e.g. {unknown[:5]}; known task ids range over {min(known) if known else None}.."
                             f"{max(known) if known else None}")
    return dict(sorted(out.items()))


def save_answers(answers: Mapping, path: PathLike) -> Path:
    """Write answers as peerannot JSON (string ids), atomically. Returns the path."""
    clean = load_answers(answers)
    payload = {str(t): {str(w): int(lab) for w, lab in votes.items()} for t, votes in clean.items()}
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload), encoding="utf-8")
    return Path(path)


@dataclass(frozen=True)
class AnswerArrays:
    """Answers as flat arrays, one entry per answer, with the map from rows / columns back to the user's ids.

    Attributes
    ----------
    task, worker, label : ndarray of shape (M,), int64
        Row index, column index and label of each of the ``M`` answers.
    task_ids : ndarray of shape (N,), int64
        The user's task id of each row (``task_ids[task[m]]`` is the task of answer ``m``).
    worker_ids : ndarray of shape (J,), int64
        The user's worker id of each column.
    """

    task: np.ndarray
    worker: np.ndarray
    label: np.ndarray
    task_ids: np.ndarray
    worker_ids: np.ndarray

    @property
    def n_tasks(self) -> int:
        return int(self.task_ids.size)

    @property
    def n_workers(self) -> int:
        return int(self.worker_ids.size)


def _index_ids(ids: np.ndarray, compact: bool, what: str, size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(position of each id, the id of each position): compacted to the distinct ids, or the ids themselves."""
    uniq, inverse = np.unique(ids, return_inverse=True)
    if compact:
        return inverse.astype(np.int64), uniq.astype(np.int64)
    top = int(uniq[-1]) + 1 if uniq.size else 0
    size = top if size is None else int(size)
    if top > size:
        raise ValueError(f"{what} id {top - 1} is outside [0, {size})")
    if size > _SPARSE_FACTOR * uniq.size + _SPARSE_SLACK:
        raise ValueError(f"{what} ids reach {top - 1} but only {uniq.size} distinct {what} id(s) are used; one "
                         f"row per {what} id 0..{size - 1} would be mostly empty. Pass compact=True to get one row "
                         f"per {what} that has answers (with the ids alongside), or renumber the {what}s")
    return ids.astype(np.int64), np.arange(size, dtype=np.int64)


def answers_to_arrays(answers: Mapping, *, compact: bool = True, n_classes: int | None = None,
                      n_tasks: int | None = None, n_workers: int | None = None) -> AnswerArrays:
    """Flat ``(task, worker, label)`` arrays from answers, in memory proportional to the number of answers.

    Parameters
    ----------
    answers : mapping
        ``{task: {worker: label}}`` (validated with :func:`load_answers`).
    compact : bool, default=True
        True: rows are the tasks that have answers and columns the workers who answered, in ascending id
        order; ``task_ids`` / ``worker_ids`` map them back. False: row ``t`` is task id ``t`` and column
        ``j`` worker id ``j`` (refused with a ``ValueError`` when the ids are so sparse that most rows
        would be empty).
    n_classes : int, optional
        When given, every label must lie in ``[0, n_classes)``.
    n_tasks, n_workers : int, optional
        With ``compact=False``: the number of rows / columns (default the largest id + 1).

    Returns
    -------
    AnswerArrays
    """
    clean = load_answers(answers, n_classes=n_classes)
    t = np.fromiter((t for t, v in clean.items() for _ in v), dtype=np.int64)
    w = np.fromiter((w for v in clean.values() for w in v), dtype=np.int64)
    lab = np.fromiter((x for v in clean.values() for x in v.values()), dtype=np.int64)
    rows, task_ids = _index_ids(t, compact, "task", n_tasks)
    cols, worker_ids = _index_ids(w, compact, "worker", n_workers)
    return AnswerArrays(task=rows, worker=cols, label=lab, task_ids=task_ids, worker_ids=worker_ids)


def answers_to_matrix(answers: Mapping, n_tasks: int | None = None, n_workers: int | None = None
                      ) -> np.ndarray:
    """Dense label matrix from answers.

    Parameters
    ----------
    answers : mapping
        ``{task: {worker: label}}`` (validated with :func:`load_answers`).
    n_tasks, n_workers : int, optional
        Matrix size; default the largest id + 1.

    Returns
    -------
    ndarray of shape (N, J), int64
        ``labels[task, worker]``, ``-1`` where no label was given.

    Raises
    ------
    ValueError
        Bad answers, an id outside ``n_tasks`` / ``n_workers``, or ids so sparse that the matrix would be
        mostly empty (use :func:`answers_to_arrays` for those).
    """
    flat = answers_to_arrays(answers, compact=False, n_tasks=n_tasks, n_workers=n_workers)
    out = np.full((flat.n_tasks, flat.n_workers), -1, dtype=np.int64)
    out[flat.task, flat.worker] = flat.label
    return out


def matrix_to_answers(labels) -> dict[str, dict[str, int]]:
    """peerannot JSON-ready answers ``{"task": {"worker": label}}`` from an (N, J) matrix (``-1`` = none).

    Tasks without any label are left out.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.dtype.kind not in "iu":
        raise ValueError(f"labels must be an integer matrix of shape (N, J), got shape {labels.shape} "
                         f"dtype {labels.dtype}")
    out: dict[str, dict[str, int]] = {}
    tasks, workers = np.nonzero(labels >= 0)
    for t, w in zip(tasks.tolist(), workers.tolist()):
        out.setdefault(str(t), {})[str(w)] = int(labels[t, w])
    return out


def read_metadata(path: PathLike) -> dict[str, Any]:
    """Read ``metadata.json`` and check ``n_classes`` and ``n_workers`` (positive ints)."""
    path = Path(path)
    meta = _read_json(path, "metadata")
    if not isinstance(meta, dict):
        raise ValueError(f"metadata file {path} must hold a JSON object")  # noqa: TRY004
    for key in ("n_classes", "n_workers"):
        value = meta.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"metadata file {path}: {key!r} must be a positive integer, got {value!r}")
    return meta


def write_metadata(path: PathLike, *, name: str, n_classes: int, n_workers: int,
                   n_tasks: int | None = None) -> Path:
    """Write peerannot's ``metadata.json`` atomically. Returns the path."""
    meta: dict[str, Any] = {"name": str(name), "n_classes": int(n_classes), "n_workers": int(n_workers)}
    if n_tasks is not None:
        meta["n_tasks"] = int(n_tasks)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return Path(path)


def task_id_from_filename(name: str) -> int:
    """Task id of a peerannot train file: the integer after the last ``-`` of the stem (``cat-12.png`` -> 12)."""
    stem = Path(name).name.split(".")[0]
    suffix = stem.rsplit("-", 1)[-1] if "-" in stem else ""
    if not _ID_RE.fullmatch(suffix) or suffix.startswith("+"):
        raise ValueError(f"train file {name!r} does not end in -<task_id> (e.g. 'img-12.png'), "
                         "as peerannot's layout requires")
    return int(suffix)


class PeerannotImageFolder(paddle.io.Dataset):
    """One split of a peerannot folder (ImageFolder layout), read lazily with PIL.

    Parameters
    ----------
    root : path
        The split folder, e.g. ``<tasks_path>/train``, holding one sub-folder per class.
    with_task_ids : bool, default=False
        True for the train split: items are ``(x, task_id)`` with the task id parsed from the file name.
        False: items are ``(x, label)`` with the label from the class folder.
    img_size : int or (int, int), optional
        Resize every image to this (height, width); default keep the stored size (all images must then
        share one size for batching).
    mode : {'RGB', 'L'}, default='RGB'
        PIL conversion; ``'L'`` gives one channel.

    Attributes
    ----------
    classes : list of str
        Class folder names, sorted; the label of folder ``classes[k]`` is ``k``.
    samples : list of (str, int)
        ``(file path, class index)``.
    task_ids : ndarray of shape (N,), int64, or None
        Task ids of the files (train split only).

    Items are ``x`` float32 of shape (channels, H, W) in [0, 1] and an int64 label or task id.
    """

    def __init__(self, root: PathLike, *, with_task_ids: bool = False,
                 img_size: int | tuple[int, int] | None = None, mode: str = "RGB"):
        super().__init__()
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"split folder not found: {root}")
        if mode not in ("RGB", "L"):
            raise ValueError(f"mode must be 'RGB' or 'L', got {mode!r}")
        self.root, self.mode, self.with_task_ids = root, mode, with_task_ids
        self.img_size = (img_size, img_size) if isinstance(img_size, int) else img_size
        self.classes = sorted(p.name for p in root.iterdir() if p.is_dir())
        if not self.classes:
            raise ValueError(f"{root} holds no class folder (expected ImageFolder layout <split>/<class>/<file>)")
        self.samples: list[tuple[str, int]] = []
        for k, cls in enumerate(self.classes):
            for f in sorted((root / cls).iterdir()):
                if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS:
                    self.samples.append((str(f), k))
        if not self.samples:
            raise ValueError(f"{root} holds no image file ({', '.join(IMAGE_EXTENSIONS)})")
        self.targets = np.array([k for _, k in self.samples], dtype=np.int64)
        self.task_ids = None
        if with_task_ids:
            self.task_ids = np.array([task_id_from_filename(p) for p, _ in self.samples], dtype=np.int64)
            uniq, counts = np.unique(self.task_ids, return_counts=True)
            if (counts > 1).any():
                raise ValueError(f"{root}: task id {int(uniq[counts > 1][0])} is used by more than one file")

    def load_image(self, path: str) -> np.ndarray:
        """(channels, H, W) float32 in [0, 1]."""
        from PIL import Image

        with Image.open(path) as img:
            img = img.convert(self.mode)
            if self.img_size is not None:
                img = img.resize((self.img_size[1], self.img_size[0]), Image.BILINEAR)
            arr = np.asarray(img, dtype=np.float32) / 255.0
        return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)

    def __getitem__(self, i):
        path, label = self.samples[i]
        target = self.task_ids[i] if self.with_task_ids else label
        return self.load_image(path), np.int64(target)

    def __len__(self) -> int:
        return len(self.samples)


def save_image_folder(root: PathLike, images, labels, *, task_ids: Sequence[int] | None = None,
                      class_names: Sequence[str] | None = None, stem: str = "img") -> list[Path]:
    """Write images as one split of a peerannot folder: ``<root>/<class>/<stem>-<task_id>.png``.

    Parameters
    ----------
    root : path
        The split folder (e.g. ``<tasks_path>/train``); created if needed.
    images : ndarray of shape (N, H, W) or (N, H, W, 3)
        uint8, or floats in [0, 1].
    labels : ndarray of shape (N,), int
        Class of each image (its folder). For a train split with unknown truth any valid class works.
    task_ids : sequence of int, optional
        Default ``0..N-1``.
    class_names : sequence of str, optional
        Folder name of each class id; default the zero-padded id, which sorts in class order.
    stem : str, default='img'

    Returns
    -------
    list of Path
        The written files.
    """
    from PIL import Image

    images = np.asarray(images)
    labels = np.asarray(labels).reshape(-1)
    if images.ndim not in (3, 4) or len(images) != len(labels):
        raise ValueError(f"images must be (N, H, W) or (N, H, W, 3) with N == len(labels); got {images.shape} "
                         f"and {labels.shape}")
    if images.dtype != np.uint8:
        images = np.clip(np.rint(np.asarray(images, dtype=np.float64) * 255.0), 0, 255).astype(np.uint8)
    task_ids = np.arange(len(labels)) if task_ids is None else np.asarray(task_ids).reshape(-1)
    if len(task_ids) != len(labels):
        raise ValueError(f"task_ids has {len(task_ids)} entries for {len(labels)} images")
    width = max(1, len(str(int(labels.max()))))
    root = Path(root)
    paths = []
    for img, lab, tid in zip(images, labels, task_ids):
        name = class_names[int(lab)] if class_names is not None else str(int(lab)).zfill(width)
        path = root / name / f"{stem}-{int(tid)}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            Image.fromarray(img).save(tmp, format="PNG")
        paths.append(path)
    return paths
