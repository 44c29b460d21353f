"""Area Under the Margin (AUM): a streaming calculator and a detector on saved recordings.

AUM (Pleiss et al., NeurIPS 2020) averages, over training, each sample's *margin*

    M_t(x, y) = z_y(x) - max_{c != y} z_c(x)

(assigned-class logit minus the largest other logit). Mislabeled samples are pushed towards their true
class by their neighbours, so their margin stays small or negative: **low AUM = likely mislabeled**.

Two entry points:

- :class:`AUMCalculator` is a drop-in for the ``aum`` package's calculator (PyTorch) that takes Paddle
  tensors or numpy arrays: ``update(logits, targets, sample_ids)`` once per training batch, then
  ``finalize()`` writes ``aum_values.csv`` (and ``full_aum_records.csv``) with the package's columns, row
  order and values. The bookkeeping is vectorised: sample ids map to dense slots of growing numpy arrays.
- :class:`AUMInterpreter` scores a saved recording (``training_dynamics.npz``) like every other detector
  of this library: ``score = -AUM``, so a **higher score means more likely mislabeled**.

Shapes: ``B`` rows in a batch, ``N`` samples, ``E`` epochs, ``C`` classes.

References
----------
G. Pleiss, T. Zhang, E. Elenberg, K. Q. Weinberger. "Identifying Mislabeled Data using the Area Under
the Margin Ranking." NeurIPS 2020. arXiv:2001.10528.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np
import pandas as pd

from ..common.atomic import PathLike, atomic_group, complete_atomic_group
from ..recording.recording import Recording
from .abc_interpreter import DatasetLevelInterpreter

SampleId = Union[int, str]
AUM_VALUES_FILE = "aum_values.csv"
FULL_RECORDS_FILE = "full_aum_records.csv"
FINALIZE_JOURNAL = ".aum_finalize.json"  # present only while finalize() renames its two files
MARGIN_SOURCES = ("auto", "logits", "probability")

__all__ = [
    "AUMCalculator",
    "AUMInterpreter",
    "AUMRecord",
    "area_under_margin",
    "logit_margins",
    "margins_over_epochs",
    "probability_margins",
]


@dataclass
class AUMRecord:
    """One sample's AUM state after one :meth:`AUMCalculator.update` (fields and order as in ``aum`` 1.0.2).

    Attributes
    ----------
    sample_id : int or str
    num_measurements : int
        Number of margins recorded for this sample so far, this one included.
    target_logit : int
        Index of the assigned class.
    target_val : float
        Its logit.
    other_logit : int
        Index of the largest logit among the other classes (first one on ties).
    other_val : float
        That logit.
    margin : float
        ``target_val - other_val``, computed in the logits' precision.
    aum : float
        Running mean of all margins of this sample, this one included.
    """

    sample_id: SampleId
    num_measurements: int
    target_logit: int
    target_val: float
    other_logit: int
    other_val: float
    margin: float
    aum: float


# ---------------------------------------------------------------------------------------------- numpy core
def _to_numpy(value: Any) -> np.ndarray:
    """Paddle / torch tensors, numpy arrays and sequences to a numpy array (no copy when possible)."""
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "detach"):  # paddle.Tensor and torch.Tensor
        value = value.detach()
        if hasattr(value, "cpu"):
            value = value.cpu()
    if hasattr(value, "numpy"):
        return np.asarray(value.numpy())
    return np.asarray(value)


def _float_logits(logits: np.ndarray) -> np.ndarray:
    """Keep float16/32/64 precision (as torch would); other numbers become float64."""
    return logits if logits.dtype.kind == "f" else logits.astype(np.float64)


def logit_margins(logits, targets) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Margins of one batch: assigned-class logit minus the largest other logit.

    Parameters
    ----------
    logits : array-like of shape (B, C), C >= 2
        Raw (pre-softmax) outputs.
    targets : array-like of shape (B,), int
        Assigned class of each row, in ``[0, C)``.

    Returns
    -------
    target_val : ndarray of shape (B,)
        ``logits[i, targets[i]]``, in the logits' float precision.
    other_index : ndarray of shape (B,), int64
        Index of the largest other logit (the first one on ties, like ``torch.max``).
    other_val : ndarray of shape (B,)
    margin : ndarray of shape (B,)
        ``target_val - other_val``; lower = more likely mislabeled.
    """
    logits = _float_logits(_to_numpy(logits))
    targets = _to_numpy(targets).reshape(-1).astype(np.int64, copy=False)
    rows = np.arange(logits.shape[0])
    target_val = logits[rows, targets]
    masked = logits.copy()
    masked[rows, targets] = -np.inf
    other_index = masked.argmax(axis=1)
    other_val = masked[rows, other_index]
    return target_val, other_index.astype(np.int64, copy=False), other_val, target_val - other_val


def margins_over_epochs(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Logit margin of every sample in every epoch.

    Parameters
    ----------
    logits : ndarray of shape (N, E, C)
        Raw logits in model class order. NaN rows (epochs where a sample was not recorded) give NaN.
    targets : ndarray of shape (N,), int
        Assigned labels.

    Returns
    -------
    ndarray of shape (N, E), float32 (float64 for float64 logits)
        ``z_y - max_{c != y} z_c``; lower = more likely mislabeled.
    """
    logits = _float_logits(np.asarray(logits))
    n, e, c = logits.shape
    targets = np.asarray(targets).reshape(-1).astype(np.int64)
    if targets.shape[0] != n:
        raise ValueError(f"logits have {n} samples but targets has {targets.shape[0]}")
    if targets.size and (targets.min() < 0 or targets.max() >= c):
        raise ValueError(f"targets must lie in [0, {c}), got values in [{targets.min()}, {targets.max()}]")
    picked = np.take_along_axis(logits, targets[:, None, None].repeat(e, axis=1), axis=2)[:, :, 0]
    masked = logits.copy()
    np.put_along_axis(masked, targets[:, None, None].repeat(e, axis=1), -np.inf, axis=2)
    return picked - masked.max(axis=2)


def probability_margins(td: np.ndarray) -> np.ndarray:
    """Margins of recorded probabilities: ``td[:, :, 0] - max(td[:, :, 1:])``.

    Parameters
    ----------
    td : ndarray of shape (N, E, C)
        InterpretDL's layout: channel 0 is the assigned label's softmax probability.

    Returns
    -------
    ndarray of shape (N, E), float32, in [-1, 1]; lower = more likely mislabeled.
    """
    td = np.asarray(td, dtype=np.float32)
    return td[:, :, 0] - td[:, :, 1:].max(axis=2)


def area_under_margin(margins: np.ndarray, *, skip_first_epoch: bool = False) -> np.ndarray:
    """Mean margin over epochs (NaN epochs ignored).

    Parameters
    ----------
    margins : ndarray of shape (N, E)
    skip_first_epoch : bool, default=False
        Drop epoch 0, as the paper's replication code does ("variability of random initialization").

    Returns
    -------
    ndarray of shape (N,), float64; lower = more likely mislabeled.
    """
    margins = np.asarray(margins, dtype=np.float64)
    if skip_first_epoch:
        if margins.shape[1] < 2:
            raise ValueError(f"skip_first_epoch=True needs at least 2 epochs, the recording has {margins.shape[1]}")
        margins = margins[:, 1:]
    seen = np.isfinite(margins)
    if not seen.any(axis=1).all():
        rows = np.flatnonzero(~seen.any(axis=1))
        raise ValueError(f"{rows.size} sample(s) have no recorded margin, e.g. rows {rows[:10].tolist()}")
    return np.where(seen, margins, 0.0).sum(axis=1) / seen.sum(axis=1)


# ---------------------------------------------------------------------------------------------- id index
class _IdIndex:
    """Map sample ids (all int or all str) to dense slots ``0, 1, ...`` in first-seen order.

    Non-negative int ids below a bound use a numpy lookup table (no Python object per id); other int ids
    and str ids use a dict.
    """

    _LUT_MIN = 1 << 20

    def __init__(self):
        self.kind: str | None = None  # 'int' or 'str'
        self.size = 0
        self._int_ids = np.empty(0, dtype=np.int64)  # slot -> id (int kind)
        self._str_ids: list[str] = []  # slot -> id (str kind)
        self._lut: np.ndarray | None = np.empty(0, dtype=np.int64)  # id -> slot (int kind, small ids)
        self._dict: dict[SampleId, int] = {}

    # --- normalising the user's ids
    def normalise(self, sample_ids: Any, n_rows: int) -> tuple[str, np.ndarray | list[str]]:
        if isinstance(sample_ids, (str, bytes)):
            raise ValueError("sample_ids must be a sequence of ids (int or str), not a single string")  # noqa: TRY004
        if not isinstance(sample_ids, (list, tuple)):
            arr = _to_numpy(sample_ids).reshape(-1)
            if arr.dtype.kind in "iu":
                ids: np.ndarray | list[str] = arr.astype(np.int64, copy=False)
                kind = "int"
            elif arr.dtype.kind in "US":
                ids, kind = [str(s) for s in arr.tolist()], "str"
            elif arr.dtype.kind == "O":
                return self.normalise(arr.tolist(), n_rows)
            else:
                raise ValueError(f"sample_ids must be int or str, got an array of dtype {arr.dtype}")
        else:
            types = set(map(type, sample_ids))
            if types and all(issubclass(t, (int, np.integer)) and not issubclass(t, (bool, np.bool_)) for t in types):
                ids, kind = np.asarray(sample_ids, dtype=np.int64), "int"
            elif types == {str}:
                ids, kind = list(sample_ids), "str"
            elif types and all(issubclass(t, str) for t in types):
                ids, kind = [str(s) for s in sample_ids], "str"
            elif not types:
                ids, kind = np.empty(0, dtype=np.int64), (self.kind or "int")
            else:
                names = sorted(t.__name__ for t in types)
                raise ValueError(f"sample_ids must be all int or all str, got types {names}")
        if len(ids) != n_rows:
            raise ValueError(f"sample_ids has {len(ids)} entries but logits have {n_rows} rows")
        if self.kind is not None and kind != self.kind and len(ids):
            raise ValueError(f"sample ids changed type: earlier updates used {self.kind} ids, this batch has "
                             f"{kind} ids; use one id type (int or str) throughout")
        return kind, ids

    def set_kind(self, kind: str) -> None:
        if self.kind is None:
            self.kind = kind

    # --- lookup
    def slots(self, ids: np.ndarray | list[str]) -> np.ndarray:
        """Slots of ``ids``, adding new ids (in first-occurrence order)."""
        if self.kind == "int" and self._lut is not None:
            ids = np.asarray(ids)
            if ids.size == 0:
                return np.empty(0, dtype=np.int64)
            lo, hi = int(ids.min()), int(ids.max())
            if lo >= 0 and hi < max(self._LUT_MIN, 8 * (self.size + ids.size)):
                return self._lut_slots(ids, hi)
            self._lut_to_dict()
        return self._dict_slots(ids)

    def _lut_slots(self, ids: np.ndarray, hi: int) -> np.ndarray:
        if hi >= self._lut.size:
            grown = np.full(max(hi + 1, 2 * self._lut.size), -1, dtype=np.int64)
            grown[:self._lut.size] = self._lut
            self._lut = grown
        slots = self._lut[ids]
        new = slots < 0
        if new.any():
            uniq, first = np.unique(ids[new], return_index=True)
            uniq = uniq[np.argsort(first, kind="stable")]  # first-seen order
            self._lut[uniq] = np.arange(self.size, self.size + uniq.size)
            self._append_ids(uniq)
            slots = self._lut[ids]
        return slots

    def _lut_to_dict(self) -> None:
        self._dict = dict(zip(self._int_ids[:self.size].tolist(), range(self.size)))
        self._lut = None

    def _dict_slots(self, ids) -> np.ndarray:
        keys = ids.tolist() if isinstance(ids, np.ndarray) else ids
        get = self._dict.get
        slots = [get(k, -1) for k in keys]
        if -1 in slots:
            for pos, slot in enumerate(slots):
                if slot < 0:
                    key = keys[pos]
                    slot = self._dict.get(key, -1)
                    if slot < 0:
                        slot = self._dict[key] = self.size
                        self._append_ids([key])
                    slots[pos] = slot
        return np.asarray(slots, dtype=np.int64)

    def _append_ids(self, new_ids) -> None:
        n_new = len(new_ids)
        if self.kind == "int":
            if self.size + n_new > self._int_ids.size:
                grown = np.empty(max(self.size + n_new, 2 * self._int_ids.size, 1024), dtype=np.int64)
                grown[:self.size] = self._int_ids[:self.size]
                self._int_ids = grown
            self._int_ids[self.size:self.size + n_new] = new_ids
        else:
            self._str_ids.extend(new_ids)
        self.size += n_new

    def ids(self) -> np.ndarray | list[str]:
        """All ids, slot order (= first-seen order)."""
        return self._int_ids[:self.size].copy() if self.kind == "int" else list(self._str_ids)

    def ids_at(self, slots: np.ndarray) -> np.ndarray:
        if self.kind == "int":
            return self._int_ids[slots]
        return np.asarray(self._str_ids, dtype=object)[slots]

    def nbytes(self) -> int:
        lut = 0 if self._lut is None else self._lut.nbytes
        return self._int_ids.nbytes + lut


# ---------------------------------------------------------------------------------------------- calculator
_RECORD_COLUMNS = ("sample_id", "num_measurements", "target_logit", "target_val", "other_logit", "other_val",
                   "margin", "aum")


class AUMCalculator:
    """Streaming AUM over training updates, a drop-in for ``aum.AUMCalculator`` (Paddle or numpy inputs).

    Parameters
    ----------
    save_dir : path, optional
        Folder for :meth:`finalize`. May be None when only the in-memory values are needed (then give a
        folder to ``finalize``). Nothing is written before ``finalize``.
    compressed : bool, default=True
        True: keep only per-sample counts and sums (16 bytes per sample plus the id index).
        False: also keep every update's record (columnar numpy chunks), written to
        ``full_aum_records.csv`` by :meth:`finalize` and available as :attr:`records`.

    Notes
    -----
    - Margins are computed in the logits' precision (float32 for float32 logits) and summed in float64
      in update order, exactly as the ``aum`` package does, so values and CSV files are identical.
    - An id that occurs twice in one batch is counted twice; the returned dict keeps its last record.
    - Unlike ``aum`` 1.0.2, a batch of one row works, and bad input raises ``ValueError`` before any
      state changes: mismatched lengths, NaN/inf logits, targets outside ``[0, C)``, fewer than two
      classes, or sample ids whose type (int vs str) differs from earlier updates.

    Examples
    --------
    >>> calc = AUMCalculator("out/aum")                       # doctest: +SKIP
    >>> for x, y, idx in loader:                              # doctest: +SKIP
    ...     logits = net(x); ...
    ...     records = calc.update(logits, y, idx)             # dict[id, AUMRecord]
    >>> calc.finalize()                                       # out/aum/aum_values.csv  # doctest: +SKIP
    """

    def __init__(self, save_dir: PathLike | None = None, compressed: bool = True):
        self.save_dir = save_dir
        self.compressed = bool(compressed)
        if save_dir is not None and Path(save_dir).is_dir():
            # a finalize killed after its commit point left the pair half renamed: finish it, so the
            # folder we are handed holds one consistent pair (all old files or all new ones)
            complete_atomic_group(Path(save_dir) / FINALIZE_JOURNAL)
        self._index = _IdIndex()
        self._counts = np.zeros(0, dtype=np.int64)
        self._sums = np.zeros(0, dtype=np.float64)
        self._chunks: list[tuple[np.ndarray, ...]] = []  # per update: slots, counts, t, tv, o, ov, m, aum
        self.n_updates = 0

    # ----------------------------------------------------------------- update
    def _check(self, logits, targets, sample_ids):
        logits = _to_numpy(logits)
        if logits.ndim == 1 and logits.size:
            raise ValueError(f"logits must be 2-D (B, C); got shape {logits.shape}. For a single sample pass "
                             "logits[None, :]")
        if logits.ndim != 2:
            raise ValueError(f"logits must be 2-D (B, C), got shape {logits.shape}")
        if logits.dtype.kind not in "fiu":
            raise ValueError(f"logits must be numeric, got dtype {logits.dtype}")
        b, c = logits.shape
        if c < 2:
            raise ValueError(f"logits need at least 2 classes (columns) for a margin, got {c}")
        logits = _float_logits(logits)
        if not np.isfinite(logits).all():
            bad = np.flatnonzero(~np.isfinite(logits).all(axis=1))
            raise ValueError(f"logits contain NaN or inf in {bad.size} row(s), e.g. rows {bad[:10].tolist()}")
        targets = _to_numpy(targets)
        if targets.size != b:
            raise ValueError(f"targets has {targets.size} entries but logits have {b} rows")
        targets = targets.reshape(-1)
        if targets.dtype.kind not in "iu":
            if targets.dtype.kind == "f" and np.all(targets == np.round(targets)):
                targets = targets.astype(np.int64)
            else:
                raise ValueError(f"targets must be integer class indices, got dtype {targets.dtype}")
        targets = targets.astype(np.int64, copy=False)
        if b and (targets.min() < 0 or targets.max() >= c):
            bad = targets[(targets < 0) | (targets >= c)]
            raise ValueError(f"targets must lie in [0, {c}) (C = {c} logit columns); got {bad[:10].tolist()}")
        kind, ids = self._index.normalise(sample_ids, b)
        return logits, targets, kind, ids

    def update(self, logits, targets, sample_ids) -> dict[SampleId, AUMRecord]:
        """Add one batch of margins.

        Parameters
        ----------
        logits : paddle.Tensor or ndarray of shape (B, C)
            Raw logits (gradients are not needed; the tensor is detached and copied to host).
        targets : paddle.Tensor or ndarray of shape (B,) or (B, 1), int
            Assigned class of each row (for threshold samples: the fake class).
        sample_ids : sequence of B ints or B strs, or an int tensor / array of shape (B,)
            One id per row; the id type must stay the same across updates.

        Returns
        -------
        dict[int or str, AUMRecord]
            One record per id of this batch (the last one for an id repeated in the batch).
        """
        logits, targets, kind, ids = self._check(logits, targets, sample_ids)
        b = logits.shape[0]
        if b == 0:
            return {}
        self._index.set_kind(kind)
        target_val, other_idx, other_val, margin = logit_margins(logits, targets)
        slots = self._index.slots(ids)
        self._grow(self._index.size)

        margin64 = margin.astype(np.float64)
        counts = np.empty(b, dtype=np.int64)
        aums = np.empty(b, dtype=np.float64)
        # rank of each row among the rows of the same slot: rows of equal rank have distinct slots, so
        # plain fancy indexing adds them, and equal slots are added in row order like aum's loop
        rank = _occurrence_rank(slots)
        for r in range(int(rank.max()) + 1 if rank is not None else 1):
            pos = slice(None) if rank is None else np.flatnonzero(rank == r)
            s = slots[pos]
            self._counts[s] += 1
            self._sums[s] += margin64[pos]
            counts[pos] = self._counts[s]
            aums[pos] = self._sums[s] / counts[pos]
        self.n_updates += 1
        if not self.compressed:
            self._chunks.append((slots, counts, targets.copy(), target_val.astype(np.float64),
                                 other_idx, other_val.astype(np.float64), margin64, aums))
        keys = ids.tolist() if isinstance(ids, np.ndarray) else ids
        return dict(zip(keys, map(AUMRecord, keys, counts.tolist(), targets.tolist(), target_val.tolist(),
                                  other_idx.tolist(), other_val.tolist(), margin.tolist(), aums.tolist())))

    def _grow(self, size: int) -> None:
        if size > self._counts.size:
            cap = max(size, 2 * self._counts.size, 1024)
            counts = np.zeros(cap, dtype=np.int64)
            sums = np.zeros(cap, dtype=np.float64)
            counts[:self._counts.size] = self._counts
            sums[:self._sums.size] = self._sums
            self._counts, self._sums = counts, sums

    # ----------------------------------------------------------------- results in memory
    @property
    def sample_ids(self) -> np.ndarray | list[str]:
        """All sample ids seen so far, in first-seen order (int64 array or list of str)."""
        return self._index.ids()

    def aum_array(self) -> tuple[np.ndarray | list[str], np.ndarray, np.ndarray]:
        """``(sample_ids, aum, counts)`` in first-seen order; ``aum`` is float64 of shape (N,)."""
        n = self._index.size
        counts = self._counts[:n].copy()
        return self._index.ids(), self._sums[:n] / counts, counts

    @property
    def counts(self) -> dict[SampleId, int]:
        """``{sample_id: number of margins}``, as ``aum``'s ``counts`` (built on demand)."""
        ids, _, counts = self.aum_array()
        return dict(zip(ids.tolist() if isinstance(ids, np.ndarray) else ids, counts.tolist()))

    @property
    def sums(self) -> dict[SampleId, float]:
        """``{sample_id: sum of margins}``, as ``aum``'s ``sums`` (built on demand)."""
        n = self._index.size
        ids = self._index.ids()
        return dict(zip(ids.tolist() if isinstance(ids, np.ndarray) else ids, self._sums[:n].tolist()))

    def aum_dataframe(self) -> pd.DataFrame:
        """The content of ``aum_values.csv``: columns ``sample_id, aum``, sorted by descending AUM."""
        ids, aum, _ = self.aum_array()
        if not len(aum):
            return pd.DataFrame({"sample_id": pd.Series([], dtype=object), "aum": pd.Series([], dtype=float)})
        # same construction and sort call as aum 1.0.2, so ties land in the same order
        return pd.DataFrame({"sample_id": ids, "aum": aum}).sort_values(by="aum", ascending=False)

    def records_dataframe(self) -> pd.DataFrame:
        """The content of ``full_aum_records.csv`` (needs ``compressed=False``)."""
        if self.compressed:
            raise ValueError("full records are kept only with compressed=False")
        if not self._chunks:
            return pd.DataFrame({k: pd.Series([], dtype=object) for k in _RECORD_COLUMNS})
        cols = [np.concatenate(parts) for parts in zip(*self._chunks)]
        frame = pd.DataFrame(dict(zip(_RECORD_COLUMNS, [self._index.ids_at(cols[0])] + cols[1:])))
        return frame.sort_values(by=["sample_id", "num_measurements"])

    @property
    def records(self) -> list[AUMRecord]:
        """Every record of every update, in update order (needs ``compressed=False``; built on demand)."""
        if self.compressed:
            raise ValueError("full records are kept only with compressed=False")
        out: list[AUMRecord] = []
        all_ids = self._index.ids_at(np.arange(self._index.size))
        for slots, counts, t, tv, o, ov, m, a in self._chunks:
            ids = all_ids[slots].tolist()
            out.extend(map(AUMRecord, ids, counts.tolist(), t.tolist(), tv.tolist(), o.tolist(), ov.tolist(),
                           m.tolist(), a.tolist()))
        return out

    @staticmethod
    def records_to_df(records: Sequence[AUMRecord]) -> pd.DataFrame:
        """DataFrame of records sorted by ``sample_id`` then ``num_measurements`` (as ``aum``'s)."""
        frame = pd.DataFrame([asdict(r) for r in records], columns=list(_RECORD_COLUMNS))
        return frame.sort_values(by=["sample_id", "num_measurements"])

    # ----------------------------------------------------------------- finalize
    def finalize(self, save_dir: PathLike | None = None) -> dict[str, Path]:
        """Write ``aum_values.csv`` (and ``full_aum_records.csv`` when not compressed), atomically and together.

        Both files are staged, a journal ``.aum_finalize.json`` is committed, then both are renamed: after a
        crash the folder holds the old pair or, once the interrupted renames are finished, the new pair. They
        are finished by the next ``AUMCalculator(save_dir)`` on that folder, the next ``finalize``, or
        :func:`~interpretdl_noise.common.atomic.complete_atomic_group` on the journal.

        Parameters
        ----------
        save_dir : path, optional
            Overrides the folder given at construction (created if missing).

        Returns
        -------
        dict
            ``{'aum_values': path}`` plus ``'full_aum_records'`` when not compressed.

        Raises
        ------
        ValueError
            If no folder was given at all.
        OSError
            If the folder cannot be written (read-only, a file in the way, ...). The in-memory state is
            kept, so ``finalize`` can be called again with another folder.
        """
        target = save_dir if save_dir is not None else self.save_dir
        if target is None:
            raise ValueError("finalize needs a folder: pass save_dir here or to AUMCalculator(save_dir=...)")
        target = Path(target)
        frames = {"aum_values": (AUM_VALUES_FILE, self.aum_dataframe())}
        if not self.compressed:
            frames["full_aum_records"] = (FULL_RECORDS_FILE, self.records_dataframe())
        written = {key: target / name for key, (name, _) in frames.items()}
        try:
            # both files change together (journal, then renames): a kill leaves the old pair or the new one
            with atomic_group(written.values(), journal=target / FINALIZE_JOURNAL) as tmps:
                for tmp, (_, frame) in zip(tmps, frames.values()):
                    frame.to_csv(tmp, index=False)
        except OSError as exc:
            names = " and ".join(str(p) for p in written.values())
            raise type(exc)(f"cannot write {names}: {exc.strerror or exc}. The AUM state is kept in memory; "
                            "call finalize(save_dir=...) with a writable folder") from exc
        return written

    def nbytes(self) -> int:
        """Bytes held by the numpy state (counts, sums, id index, and records when not compressed)."""
        total = self._counts.nbytes + self._sums.nbytes + self._index.nbytes()
        return total + sum(a.nbytes for chunk in self._chunks for a in chunk)

    def __repr__(self) -> str:
        return (f"AUMCalculator(save_dir={os.fspath(self.save_dir) if self.save_dir is not None else None!r}, "
                f"compressed={self.compressed}, n_samples={self._index.size}, n_updates={self.n_updates})")


def _occurrence_rank(slots: np.ndarray) -> np.ndarray | None:
    """For each row, how many earlier rows share its slot; None when all slots differ (the usual case)."""
    order = np.argsort(slots, kind="stable")
    ordered = slots[order]
    same = ordered[1:] == ordered[:-1]
    if not same.any():
        return None
    start = np.concatenate(([True], ~same))
    first = np.maximum.accumulate(np.where(start, np.arange(slots.size), 0))
    rank = np.empty(slots.size, dtype=np.int64)
    rank[order] = np.arange(slots.size) - first
    return rank


# ---------------------------------------------------------------------------------------------- detector
class AUMInterpreter(DatasetLevelInterpreter):
    """AUM on a saved recording. ``score = -AUM``: a **higher score means more likely mislabeled**.

    Parameters
    ----------
    source : {'auto', 'logits', 'probability'}, default='auto'
        ``'logits'``: margins of the recorded raw logits (key ``logits`` (N, E, C), record with
        ``keep_logits=True``), i.e. the paper's AUM; equal to feeding the same logits to
        :class:`AUMCalculator` once per epoch. ``'probability'``: margins of the recorded softmax,
        ``td[:, :, 0] - td[:, :, 1:].max(-1)``, which every recording (also InterpretDL's) has.
        ``'auto'``: logits when the recording has them (and ``labels``), else probabilities.
    skip_first_epoch : bool, default=False
        Ignore epoch 0, as the paper's replication code does.

    Attributes
    ----------
    aum_ : ndarray of shape (N,)
        AUM of the last :meth:`interpret` call (in logit or probability units).
    margins_ : ndarray of shape (N, E)
    source_ : str
        ``'logits'`` or ``'probability'``, what was used.

    Notes
    -----
    The two sources rank differently. Probability margins lie in ``[-1, 1]`` and saturate: once the
    model is confident, a sample's margin is close to 1 however large its logit gap is, and a
    confidently wrong sample sits near -1. Logit margins are unbounded and keep separating samples
    late in training, which is what the paper's threshold (fake-class) samples are calibrated on. Both
    use the same sign, so in both a low AUM means a likely mislabeled sample. The probability version
    is computed from float16 ``td``, so close scores may tie.
    """

    name = "aum"
    summary = "area under the margin (Pleiss et al. 2020)"
    prefers = ("logits",)
    listing_order = 20

    @classmethod
    def note(cls, recording, **params):
        if "logits" not in recording and params.get("source", "auto") != "probability":
            return "no 'logits' in the recording: margins of the recorded probabilities are used"
        return super().note(recording, **params)

    def __init__(self, source: str = "auto", skip_first_epoch: bool = False):
        super().__init__(model=None, device="cpu")
        if source not in MARGIN_SOURCES:
            raise ValueError(f"source must be one of {MARGIN_SOURCES}, got {source!r}")
        self.source = source
        self.skip_first_epoch = bool(skip_first_epoch)
        self.aum_: np.ndarray | None = None
        self.margins_: np.ndarray | None = None
        self.source_: str | None = None

    def _score(self, record: Recording) -> np.ndarray:
        has_logits = record.has("logits", "labels")
        if self.source == "logits":
            record.require("logits", "labels", needed_by="AUMInterpreter(source='logits')")
        if self.source != "probability" and has_logits:
            logits = np.asarray(record.logits)
            # NaN marks an unrecorded epoch; inf is a diverged run (AUMCalculator refuses it)
            if np.isinf(logits).any():
                rows = np.flatnonzero(np.isinf(logits).any(axis=(1, 2)))
                raise ValueError(f"the recording's logits hold inf for {rows.size} sample(s), e.g. rows "
                                 f"{rows[:10].tolist()}; the run diverged, so its margins are meaningless. Use "
                                 "source='probability' or record a run that did not diverge")
            margins = margins_over_epochs(logits, record.assigned_labels)
            self.source_ = "logits"
        else:
            margins = probability_margins(record.td)
            self.source_ = "probability"
        self.margins_ = margins
        self.aum_ = area_under_margin(margins, skip_first_epoch=self.skip_first_epoch)
        return -self.aum_
