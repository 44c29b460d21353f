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
"""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

__all__ = [
    "ALLOWED_TASK_NAMES",
    "ALLOWED_TRACKING_LOSS_TYPES",
    "NoisyLabelAnnotation",
    "NoisyLabelExport",
    "from_datumaro_dataset",
    "is_datumaro_dataset",
    "loss_key",
    "read_datumaro_export",
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
