"""Read Datumaro-format noisy-label-detection exports without needing ``datumaro`` installed.

OpenVINO Training Extensions (OTX 1.x, ``--algo_backend.enable_noisy_label_detection True``) exports each
training annotation's loss history in Datumaro's JSON format:

* ``annotations/<subset>.json`` per subset, with top-level ``infos`` =
  ``{"purpose": "noisy_label_detection", "task": "OTX-MultiClassCls" | "OTX-Det"}``, the label names under
  ``categories.label.labels[*].name`` and an ``items`` list;
* every annotation of an item carries ``attributes["iters"]`` (the training iterations at which the loss
  was recorded) and, of the same length, ``attributes["loss_dynamics"]`` (classification) or
  ``attributes["loss_dynamics_<type>"]`` with ``<type>`` in ``cls``, ``bbox``, ``bbox_refine``,
  ``centerness`` (detection).

:func:`read_datumaro_export` reads such a file or folder; :func:`from_datumaro_dataset` reads the same
content from a ``datumaro.Dataset`` object. Both return a :class:`NoisyLabelExport`, and
:func:`loss_key` applies Datumaro's rules for ``purpose``, ``task`` and ``tracking_loss_type``.

The adapters at the end turn every source the EMA analyzer accepts (a :class:`Recording` or anything
``Recording.coerce`` takes, a ``DynamicsRecorder``, an export, plain loss histories) into one
:class:`LossTable`: ``R`` rows (annotations; one per sample for a classification recording) by ``S`` steps.
"""
from __future__ import annotations

import json
import numbers
import os
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ..recording import DynamicsRecorder, Recording

__all__ = [
    "ALLOWED_TASK_NAMES",
    "ALLOWED_TRACKING_LOSS_TYPES",
    "LossTable",
    "NoisyLabelAnnotation",
    "NoisyLabelExport",
    "from_datumaro_dataset",
    "is_datumaro_dataset",
    "loss_key",
    "read_datumaro_export",
    "table_from_losses",
    "table_from_recording",
    "table_from_source",
]

#: task names Datumaro's analyzer accepts (``infos["task"]``)
ALLOWED_TASK_NAMES = ("OTX-MultiClassCls", "OTX-Det")
#: loss types a detection export may carry as ``loss_dynamics_<type>``
ALLOWED_TRACKING_LOSS_TYPES = ("cls", "bbox", "centerness", "bbox_refine")
PURPOSE = "noisy_label_detection"


class NoisyLabelAnnotation(NamedTuple):
    """One annotation of a noisy-label-detection export."""

    item_id: Any
    subset: str
    ann_id: int
    label_id: int | None
    attributes: dict[str, Any]


class NoisyLabelExport(NamedTuple):
    """The content of an export: dataset ``infos``, label names (by label id) and all annotations."""

    infos: dict[str, Any]
    label_names: list[str] | None
    annotations: list[NoisyLabelAnnotation]


def loss_key(infos: dict[str, Any], tracking_loss_type: str | None = None) -> str:
    """Check ``infos`` and ``tracking_loss_type`` as Datumaro's analyzer does; return the attribute name.

    Parameters
    ----------
    infos : dict
        Dataset infos; ``purpose`` must be ``'noisy_label_detection'`` and ``task`` one of
        :data:`ALLOWED_TASK_NAMES`.
    tracking_loss_type : {None, 'cls', 'bbox', 'centerness', 'bbox_refine'}
        Mandatory for ``task='OTX-Det'``.

    Returns
    -------
    str
        ``'loss_dynamics'`` or ``'loss_dynamics_<tracking_loss_type>'``.

    Raises
    ------
    ValueError
        With Datumaro's wording, for a wrong purpose, task or loss type.
    """
    purpose = infos.get("purpose")
    if purpose != PURPOSE:
        raise ValueError(f'Dataset infos should have purpose="{PURPOSE}", but it has {purpose}.')
    task = infos.get("task")
    if task not in ALLOWED_TASK_NAMES:
        raise ValueError(f"task={task} is not allowed. The allowed task names are {list(ALLOWED_TASK_NAMES)}.")
    if task == "OTX-Det" and tracking_loss_type is None:
        raise ValueError('If task="OTX-Det", tracking_loss_type should not be None. '
                         f"The allowed tracking loss types are {list(ALLOWED_TRACKING_LOSS_TYPES)}.")
    if tracking_loss_type is not None and tracking_loss_type not in ALLOWED_TRACKING_LOSS_TYPES:
        raise ValueError(f"tracking_loss_type={tracking_loss_type} "
                         f"but the allowed tracking loss types are {list(ALLOWED_TRACKING_LOSS_TYPES)}.")
    return "loss_dynamics" if tracking_loss_type is None else f"loss_dynamics_{tracking_loss_type}"


def _annotation_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"no Datumaro export at {path} (expected an annotations JSON file or a folder)")
    for folder in (path / "annotations", path):
        files = sorted(folder.glob("*.json"))
        if files:
            return files
    raise FileNotFoundError(f"{path} holds no Datumaro annotations: expected {path / 'annotations'}/<subset>.json")


def _read_one(file: Path) -> NoisyLabelExport:
    try:
        with open(file, encoding="utf-8") as fh:
            data = json.load(fh)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{file} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("items"), list):
        raise ValueError(f"{file} is not a Datumaro-format annotations file: it has no 'items' list")  # noqa: TRY004
    labels = (data.get("categories") or {}).get("label") or {}
    names = [entry.get("name") for entry in labels.get("labels", [])] or None
    subset = file.stem
    anns: list[NoisyLabelAnnotation] = []
    for item in data["items"]:
        if "id" not in item:
            raise ValueError(f"{file}: an item has no 'id'")
        for ann in item.get("annotations", []):
            anns.append(NoisyLabelAnnotation(item["id"], subset, int(ann.get("id", 0)), ann.get("label_id"),
                                             ann.get("attributes") or {}))
    return NoisyLabelExport(dict(data.get("infos") or {}), names, anns)


def read_datumaro_export(path: str | os.PathLike[str]) -> NoisyLabelExport:
    """Read a Datumaro-format noisy-label-detection export (no ``datumaro`` needed).

    Parameters
    ----------
    path : path
        One ``annotations/<subset>.json`` file, or the export folder (its ``annotations/*.json`` are read
        in file-name order, one subset each; the subset is the file stem, as Datumaro names it).

    Returns
    -------
    NoisyLabelExport
        ``infos`` (taken from the first file; all files must agree), label names and the annotations in
        file order.
    """
    files = _annotation_files(Path(path))
    parts = [_read_one(f) for f in files]
    infos, names = parts[0].infos, parts[0].label_names
    for file, part in zip(files[1:], parts[1:]):
        if part.infos != infos:
            raise ValueError(f"{file} has infos {part.infos}, but {files[0]} has {infos}")
        if names is None:
            names = part.label_names
        elif part.label_names is not None and part.label_names != names:
            raise ValueError(f"{file} has label names {part.label_names}, but {files[0]} has {names}")
    return NoisyLabelExport(infos, names, [ann for part in parts for ann in part.annotations])


def is_datumaro_dataset(obj: Any) -> bool:
    """True for a ``datumaro`` dataset-like object (it has ``infos()``, ``categories()`` and is iterable)."""
    return (type(obj).__module__.split(".")[0] == "datumaro" and callable(getattr(obj, "infos", None))
            and callable(getattr(obj, "categories", None)) and hasattr(obj, "__iter__"))


def from_datumaro_dataset(dataset: Any) -> NoisyLabelExport:
    """Read the same content as :func:`read_datumaro_export` from a ``datumaro.Dataset`` object."""
    from datumaro.components.annotation import AnnotationType  # only reached with a datumaro object

    categories = dataset.categories().get(AnnotationType.label)
    names: Sequence[str] | None = [cat.name for cat in categories] if categories is not None else None
    anns = [NoisyLabelAnnotation(item.id, item.subset, int(ann.id), getattr(ann, "label", None),
                                 dict(ann.attributes or {}))
            for item in dataset for ann in item.annotations]
    return NoisyLabelExport(dict(dataset.infos()), list(names) if names else None, anns)


# ---------------------------------------------------------------------------------------------- adapters
# Every source the analyzer reads becomes one LossTable: R rows (annotations) x S steps.
class LossTable(NamedTuple):
    """Normalised input: R rows (annotations) x S steps, NaN where a row has no record."""

    item_ids: np.ndarray   # (R,) object
    subsets: np.ndarray    # (R,) object
    ann_ids: np.ndarray    # (R,) int64
    labels: np.ndarray     # (R,) int64
    steps: np.ndarray      # (S,) int64, strictly increasing
    losses: np.ndarray     # (R, S) float
    label_names: list[str] | None
    step_name: str         # 'iteration' or 'epoch'


def _obj(values) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = list(values)
    return out


def _as_steps(values, what: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{what} must be a 1-D sequence of integers, got shape {arr.shape}")
    if arr.size and arr.dtype.kind not in "iu":
        if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise ValueError(f"{what} must hold integer training steps, got {arr[:5].tolist()}")
    return arr.astype(np.int64, copy=False)


def _as_losses(values, what: str, *, allow_nan: bool = False) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} must be numeric losses: {exc}") from exc
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{what} must be a non-empty 1-D sequence of losses, got shape {arr.shape}")
    if np.isinf(arr).any() or (not allow_nan and np.isnan(arr).any()):
        raise ValueError(f"{what} contains NaN or inf losses ({arr[~np.isfinite(arr)][:3].tolist()}); "
                         "drop those steps and pass their iteration numbers with iters= instead")
    return arr


def _table_from_rows(item_ids, subsets, ann_ids, labels, iters_list, losses_list,
                     label_names, step_name) -> LossTable:
    """Scatter ragged ``(iters, losses)`` rows into an (R, S) matrix over the union of steps."""
    if not losses_list:
        raise ValueError("no losses given: the source holds no sample / annotation with loss dynamics")
    lengths = np.array([len(v) for v in losses_list], dtype=np.int64)
    all_iters = np.concatenate(iters_list)
    all_losses = np.concatenate(losses_list)
    steps, cols = np.unique(all_iters, return_inverse=True)
    first = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    within = np.ones(all_iters.size, dtype=bool)
    within[first] = False
    bad = np.flatnonzero(within[1:] & (np.diff(all_iters) <= 0))
    if bad.size:
        row = int(np.searchsorted(first, bad[0] + 1, side="right") - 1)
        raise ValueError(f"iters of item {item_ids[row]!r} (subset {subsets[row]!r}, ann_id {ann_ids[row]}) must be "
                         f"strictly increasing; got {np.asarray(iters_list[row])[:10].tolist()}")
    mat = np.full((lengths.size, steps.size), np.nan)
    mat[np.repeat(np.arange(lengths.size), lengths), cols.reshape(-1)] = all_losses
    return LossTable(_obj(item_ids), _obj(subsets), np.asarray(ann_ids, dtype=np.int64),
                  np.asarray(labels, dtype=np.int64), steps.astype(np.int64), mat, label_names, step_name)


def _table_from_export(export: NoisyLabelExport, tracking_loss_type: str | None) -> LossTable:
    key = loss_key(export.infos, tracking_loss_type)
    cols: dict[str, list] = defaultdict(list)
    for ann in export.annotations:
        where = f"item {ann.item_id!r} (subset {ann.subset!r}, ann_id {ann.ann_id})"
        attrs = ann.attributes
        if key not in attrs or "iters" not in attrs:
            have = sorted(k for k in attrs if k == "iters" or k.startswith("loss_dynamics"))
            raise ValueError(f"{where} has no {'iters' if 'iters' not in attrs else repr(key)} attribute "
                             f"(it has {have}); choose tracking_loss_type among {list(ALLOWED_TRACKING_LOSS_TYPES)} "
                             "to match the exported loss_dynamics_<type> keys")
        if ann.label_id is None:
            raise ValueError(f"{where} has no label")
        iters = _as_steps(attrs["iters"], f"{where} 'iters'")
        losses = _as_losses(attrs[key], f"{where} {key!r}")
        if iters.size != losses.size:
            raise ValueError(f"{where}: 'iters' has {iters.size} entries but {key!r} has {losses.size}")
        for name, value in (("item_ids", ann.item_id), ("subsets", ann.subset), ("ann_ids", ann.ann_id),
                            ("labels", int(ann.label_id)), ("iters", iters), ("losses", losses)):
            cols[name].append(value)
    return _table_from_rows(cols["item_ids"], cols["subsets"], cols["ann_ids"], cols["labels"], cols["iters"],
                            cols["losses"], export.label_names, "iteration")


def _refuse_tracking(tracking_loss_type: str | None) -> None:
    if tracking_loss_type is not None:
        raise ValueError(f"tracking_loss_type={tracking_loss_type!r} applies only to detection exports "
                         "(task='OTX-Det'); a classification recording has one loss per sample, so pass "
                         "tracking_loss_type=None")


def _dense_table(losses: np.ndarray, labels: np.ndarray, ids, step_name: str, what: str) -> LossTable:
    """A dense (N, E) loss matrix with NaN = not recorded."""
    if np.isinf(losses).any():
        raise ValueError(f"{what} losses contain inf")
    empty = np.flatnonzero(np.isnan(losses).all(axis=1))
    if empty.size:
        raise ValueError(f"{what}: {empty.size} sample(s) have no recorded loss at all, "
                         f"e.g. rows {empty[:10].tolist()}")
    n = losses.shape[0]
    return LossTable(_obj(ids), _obj(["train"] * n), np.zeros(n, dtype=np.int64), labels.astype(np.int64),
                  np.arange(losses.shape[1], dtype=np.int64), losses, None, step_name)


def _table_from_recorder(rec: DynamicsRecorder) -> LossTable:
    if rec.losses is None:
        raise ValueError("this recording has no per-sample losses: record with keep_losses=True "
                         "(TrainingDynamics.generator(..., keep_losses=True) or "
                         "RecordTrainingDynamics(..., keep_losses=True))")
    n_epochs = rec.epochs_recorded()
    if n_epochs == 0:
        raise ValueError("the recorder holds no recorded epoch (empty losses)")
    seen = rec.seen[:, :n_epochs]
    losses = np.asarray(rec.losses[:, :n_epochs])
    bad = seen & ~np.isfinite(losses)
    if bad.any():
        rows, epochs = np.nonzero(bad)
        raise ValueError(f"{rows.size} recorded loss(es) are NaN or inf, e.g. sample {int(rows[0])} at epoch "
                         f"{int(epochs[0])}; the training diverged or the loss function returned NaN")
    unseen = np.flatnonzero(~seen.any(axis=1) | (rec.targets < 0))
    if unseen.size:
        raise ValueError(f"{unseen.size} sample(s) were never recorded, e.g. sample ids {unseen[:10].tolist()}")
    return _dense_table(np.where(seen, losses, np.nan), rec.targets, np.arange(rec.n_samples), "epoch", "recorder")


def table_from_recording(recording: Recording, *, derive_losses: bool = False) -> LossTable:
    """One row per sample of ``recording``: its ``losses`` (N, E), or with ``derive_losses`` and no recorded
    losses the cross-entropy from ``td`` (:meth:`Recording.loss_curves`). Needs ``labels``."""
    source = recording.source
    if not derive_losses:
        recording.require("losses", needed_by="the EMA loss analyzer")
    losses = recording.loss_curves()
    if losses.ndim != 2 or losses.size == 0:
        raise ValueError(f"{source}: 'losses' must be a non-empty (N, E) array, got shape {losses.shape}")
    labels = recording.require("labels", needed_by="the EMA loss analyzer").assigned_labels
    return _dense_table(losses, labels, recording.sample_ids.tolist(), "epoch", source)


def table_from_source(source: Any, tracking_loss_type: str | None) -> LossTable:
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.suffix == ".npz":
            _refuse_tracking(tracking_loss_type)
            return table_from_recording(Recording.load(path))
        return _table_from_export(read_datumaro_export(path), tracking_loss_type)
    if isinstance(source, NoisyLabelExport):
        return _table_from_export(source, tracking_loss_type)
    if is_datumaro_dataset(source):
        return _table_from_export(from_datumaro_dataset(source), tracking_loss_type)
    recorder = source if isinstance(source, DynamicsRecorder) else getattr(source, "recorder", None)
    if isinstance(recorder, DynamicsRecorder):
        _refuse_tracking(tracking_loss_type)
        return _table_from_recorder(recorder)
    if isinstance(source, Recording) or (hasattr(source, "keys") and hasattr(source, "__getitem__")):
        _refuse_tracking(tracking_loss_type)
        return table_from_recording(Recording.coerce(source))
    if getattr(source, "recorder", False) is None:
        raise ValueError(f"{type(source).__name__} has recorded nothing yet (its recorder is None); train first")
    raise ValueError(
        f"unsupported source {type(source).__name__}: give a DynamicsRecorder (or the TrainingDynamics / "
        "RecordTrainingDynamics that holds one), a recording mapping or .npz path with 'losses', a Datumaro "
        "export (annotations JSON or folder), or a datumaro Dataset; for plain arrays or dicts use "
        "LossDynamicsAnalyzer.from_losses")


def _labels_for(ids: list, labels) -> list:
    if isinstance(labels, Mapping):
        missing = [i for i in ids if i not in labels]
        if missing:
            raise ValueError(f"labels has no entry for {len(missing)} sample id(s), e.g. {missing[:5]}")
        label_list = [labels[i] for i in ids]
    else:
        arr = np.asarray(labels).reshape(-1)
        if arr.shape[0] != len(ids):
            raise ValueError(f"labels has {arr.shape[0]} entries for {len(ids)} samples")
        if arr.dtype.kind in "iu" and (arr.size == 0 or arr.min() >= 0):
            return arr.astype(np.int64).tolist()           # fast path: a valid integer array
        label_list = arr.tolist()
    for i, lab in zip(ids, label_list):
        if isinstance(lab, bool) or not isinstance(lab, numbers.Integral) or lab < 0:
            raise ValueError(f"labels[{i!r}] must be a non-negative integer label id, got {lab!r}")
    return label_list


def _dense_from_array(arr: np.ndarray, labels, iters, subset: str) -> LossTable:
    """Fast path: an (N, S) array with no missing steps."""
    if arr.size == 0:
        raise ValueError(f"losses is empty (shape {arr.shape}): give at least one sample with at least one loss")
    if not np.isfinite(arr).all():
        rows = np.flatnonzero(~np.isfinite(arr).all(axis=1))
        raise ValueError(f"losses contain NaN or inf in {rows.size} row(s), e.g. rows {rows[:5].tolist()}; drop "
                         "those steps and pass a mapping with iters= instead")
    ids = list(range(arr.shape[0]))
    label_list = _labels_for(ids, labels)
    steps = np.arange(arr.shape[1], dtype=np.int64) if iters is None else _as_steps(iters, "iters")
    if steps.size != arr.shape[1]:
        raise ValueError(f"every sample has {arr.shape[1]} losses but iters has {steps.size} entries")
    if steps.size > 1 and np.any(np.diff(steps) <= 0):
        raise ValueError(f"iters must be strictly increasing, got {steps[:10].tolist()}")
    n = arr.shape[0]
    return LossTable(_obj(ids), _obj([subset] * n), np.zeros(n, dtype=np.int64), np.asarray(label_list, dtype=np.int64),
                  steps, arr, None, "iteration")


def table_from_losses(losses, labels, iters, subset: str) -> LossTable:
    if isinstance(losses, np.ndarray) and losses.ndim == 2 and not isinstance(iters, Mapping):
        return _dense_from_array(losses if losses.dtype.kind == "f" else losses.astype(np.float64),
                                 labels, iters, subset)
    if isinstance(losses, Mapping):
        ids = list(losses.keys())
        seqs = [losses[i] for i in ids]
    else:
        try:
            arr = None if isinstance(losses, (str, bytes)) else np.asarray(losses, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError("losses must be a mapping {sample id: sequence of per-step losses} (ragged histories "
                             f"need a mapping and iters=) or a 2-D array (N, S): {exc}") from exc
        if arr is None or arr.ndim != 2:
            raise ValueError("losses must be a mapping {sample id: sequence of per-step losses} or a 2-D array "
                             f"(N, S); got {type(losses).__name__}"
                             + ("" if arr is None else f" of shape {arr.shape}"))
        ids = list(range(arr.shape[0]))
        seqs = list(arr)
    if not ids:
        raise ValueError("losses is empty: give at least one sample with at least one loss")
    loss_rows = [_as_losses(seq, f"losses[{i!r}]") for i, seq in zip(ids, seqs)]
    label_list = _labels_for(ids, labels)

    lengths = {row.size for row in loss_rows}
    if iters is None:
        if len(lengths) != 1:
            raise ValueError(f"losses have different lengths {sorted(lengths)[:5]} and no iters were given, so the "
                             "steps are ambiguous; pass iters={sample id: iteration numbers} for ragged histories")
        steps = np.arange(lengths.pop(), dtype=np.int64)
        iter_rows = [steps] * len(ids)
    elif isinstance(iters, Mapping):
        missing = [i for i in ids if i not in iters]
        if missing:
            raise ValueError(f"iters has no entry for {len(missing)} sample id(s), e.g. {missing[:5]}")
        iter_rows = [_as_steps(iters[i], f"iters[{i!r}]") for i in ids]
    else:
        shared = _as_steps(iters, "iters")
        iter_rows = [shared] * len(ids)
    for i, it, row in zip(ids, iter_rows, loss_rows):
        if it.size != row.size:
            raise ValueError(f"sample {i!r} has {row.size} losses but {it.size} iters")
    return _table_from_rows(ids, [subset] * len(ids), [0] * len(ids), [int(v) for v in label_list], iter_rows,
                            loss_rows, None, "iteration")
