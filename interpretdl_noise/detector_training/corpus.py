"""A corpus of training dynamics with known ground truth, for training and validating BHDF detectors.

Each *run* trains one small Paddle classifier on one offline source whose labels were corrupted with
:func:`interpretdl_noise.inject_label_noise`, and records every sample in every epoch (the softmax of
the logits used for the SGD step, as InterpretDL's and our default recorder do) through
:meth:`interpretdl_noise.TrainingDynamics.generator`, the same loop users record with (its learning-rate
schedules step per batch, ``scheduler_step='step'``). The curves are the same, bit for bit, as those of
the hand-written loop the shipped detector's corpus was recorded with (``tests/test_training_dynamics.py``
keeps that loop and compares), so the shipped weights stay valid. A run's record is a normal recording
dict (``td`` (N, E, C), ``labels``, ``label_flip`` and ``meta`` with the run's settings), so it can be
saved with :func:`interpretdl_noise.save_training_dynamics` and scored by any detector.

Runs are planned from seeded random draws (:func:`plan_corpus`), so a corpus is reproducible from its
groups and seed alone.
"""
from __future__ import annotations

import dataclasses
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
from tqdm.auto import tqdm

from .._paddle import paddle
from ..common.device import device_scope, resolve_device
from ..common.atomic import PathLike
from ..common.seeding import paddle_seed
from ..data.noise import NOISE_KINDS, inject_label_noise
from ..interpreter.training_dynamics import TrainingDynamics
from ..recording import load_training_dynamics, save_training_dynamics
from ..recording.transform import transform_recorder
from .sources import MODELS, SOURCES, build_model, load_source

__all__ = ["RunSpec", "plan_corpus", "record_run", "build_corpus", "Group"]

Group = Tuple[str, str, int]
"""``(source, model, n_runs)``: one block of a corpus plan."""

OPTIMIZERS = ("sgd", "adam")
# sources large enough to be subsampled per run (more regimes for the same cost): full size
_SUBSAMPLED = {"digits": 1797, "mnist1d": 4000}
SCHEDULES = ("constant", "cosine", "step")


@dataclass(frozen=True)
class RunSpec:
    """Settings of one recorded training run (all drawn by :func:`plan_corpus`).

    Attributes
    ----------
    source, model : str
        See :data:`~interpretdl_noise.detector_training.sources.SOURCES` and ``MODELS``.
    noise : {'uniform', 'flip', 'pair'}
    rate : float
        Fraction of corrupted labels.
    epochs : int
    seed : int
        Seeds the noise, the model's initial weights, the batch order and (for ``synthetic``) the data.
    optimizer : {'sgd', 'adam'}
        SGD with Nesterov momentum 0.9, or Adam.
    lr : float
    schedule : {'constant', 'cosine', 'step'}
        ``step`` multiplies the rate by 0.1 at 50 % and 75 % of the epochs (the BHDF paper's recipe).
    batch_size, width, depth : int
    weight_decay : float
    n_samples : int, optional
        Train on a seeded random subset of this many samples (``None``: the whole source).
    split : str
        A free tag, e.g. ``'train'`` or ``'holdout'``.
    """

    source: str
    model: str
    noise: str
    rate: float
    epochs: int
    seed: int
    optimizer: str = "sgd"
    lr: float = 0.05
    schedule: str = "constant"
    batch_size: int = 64
    width: int = 64
    depth: int = 1
    weight_decay: float = 0.0
    n_samples: Optional[int] = None
    split: str = "train"

    def _choices(self) -> Tuple[Tuple[str, Any, Tuple[str, ...]], ...]:
        """``(field, value, allowed values)`` of every field with a fixed set of values (extended by subclasses)."""
        return (("source", self.source, SOURCES), ("model", self.model, MODELS), ("noise", self.noise, NOISE_KINDS),
                ("optimizer", self.optimizer, OPTIMIZERS), ("schedule", self.schedule, SCHEDULES))

    def __post_init__(self):
        for name, value, allowed in self._choices():
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        if not 0.0 <= self.rate < 1.0:
            raise ValueError(f"rate must be in [0, 1), got {self.rate}")
        if int(self.epochs) < 2:
            raise ValueError(f"epochs must be >= 2, got {self.epochs}")

    @property
    def group(self) -> str:
        """``'<source>-<model>'``, the unit of held-out splits."""
        return f"{self.source}-{self.model}"

    def name(self, index: int) -> str:
        return f"run{index:03d}_{self.group}_{self.noise}{int(round(self.rate * 100)):02d}_e{self.epochs}"

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


def _run_rng(seed: int, source: str, model: str, index: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), zlib.crc32(f"{source}-{model}".encode()), int(index)])


def plan_corpus(groups: Iterable[Group], *, seed: int = 0, epochs: Tuple[int, int] = (10, 200),
                rates: Tuple[float, float] = (0.1, 0.5), noise_kinds: Sequence[str] = NOISE_KINDS,
                split: str = "train", max_asymmetric_rate: float = 0.4) -> List[RunSpec]:
    """Draw the settings of every run.

    Parameters
    ----------
    groups : iterable of (source, model, n_runs)
    seed : int, default=0
        Each run's settings come from ``default_rng([seed, crc32(group), run index])``: adding a group
        does not change the others.
    epochs : (int, int), default=(10, 200)
        Epoch counts are drawn log-uniformly in this range (inclusive).
    rates : (float, float), default=(0.1, 0.5)
        Noise rates are drawn uniformly in this range (rounded to 0.01).
    noise_kinds : sequence of str, default=('uniform', 'flip', 'pair')
        Cycled through the runs of each group, so every kind appears equally often.
    split : str, default='train'
        Tag stored in every spec.
    max_asymmetric_rate : float, default=0.4
        Upper rate for ``flip`` / ``pair`` noise and for two-class sources, where a rate of 0.5 would make
        the noisy label as likely as the true one.

    Returns
    -------
    list of RunSpec
    """
    lo_e, hi_e = int(epochs[0]), int(epochs[1])
    if not 2 <= lo_e <= hi_e:
        raise ValueError(f"epochs must be (low, high) with 2 <= low <= high, got {epochs}")
    if not 0.0 <= rates[0] <= rates[1] < 1.0:
        raise ValueError(f"rates must be (low, high) with 0 <= low <= high < 1, got {rates}")
    kinds = list(noise_kinds)
    if not kinds or any(k not in NOISE_KINDS for k in kinds):
        raise ValueError(f"noise_kinds must be a non-empty subset of {NOISE_KINDS}, got {noise_kinds}")
    specs: List[RunSpec] = []
    for source, model, n_runs in groups:
        if source not in SOURCES or model not in MODELS:
            raise ValueError(f"unknown group {(source, model)}; sources {SOURCES}, models {MODELS}")
        binary = source == "breast_cancer"
        for i in range(int(n_runs)):
            rng = _run_rng(seed, source, model, i)
            kind = kinds[i % len(kinds)]
            hi_r = min(rates[1], max_asymmetric_rate) if (kind != "uniform" or binary) else rates[1]
            rate = round(float(rng.uniform(rates[0], max(rates[0], hi_r))), 2)
            n_epochs = int(round(np.exp(rng.uniform(np.log(lo_e), np.log(hi_e + 0.499)))))
            optimizer = OPTIMIZERS[int(rng.integers(len(OPTIMIZERS)))]
            lr = float(rng.choice([0.003, 0.01, 0.03, 0.1]) if optimizer == "sgd"
                       else rng.choice([1e-4, 3e-4, 1e-3, 3e-3]))
            full = _SUBSAMPLED.get(source)
            n_samples = int(rng.integers(full // 3, full + 1)) if full else None
            specs.append(RunSpec(
                source=source, model=model, noise=kind, rate=rate, epochs=min(max(n_epochs, lo_e), hi_e),
                seed=int(rng.integers(2**31 - 1)), optimizer=optimizer, lr=lr,
                schedule=SCHEDULES[int(rng.integers(len(SCHEDULES)))],
                batch_size=int(rng.choice([32, 64, 128])), width=int(rng.choice([16, 32, 64, 128, 256])),
                depth=int(rng.integers(1, 3)), weight_decay=float(rng.choice([0.0, 1e-4, 5e-4])),
                n_samples=n_samples, split=split))
    return specs


def _optimizer(spec: RunSpec, net, steps_per_epoch: int):
    if spec.schedule == "cosine":
        lr = paddle.optimizer.lr.CosineAnnealingDecay(spec.lr, T_max=spec.epochs * steps_per_epoch)
    elif spec.schedule == "step":
        lr = paddle.optimizer.lr.MultiStepDecay(spec.lr, milestones=[max(1, spec.epochs // 2) * steps_per_epoch,
                                                                      max(1, 3 * spec.epochs // 4) * steps_per_epoch],
                                                gamma=0.1)
    else:
        lr = spec.lr
    wd = spec.weight_decay or None
    if spec.optimizer == "sgd":
        opt = paddle.optimizer.Momentum(learning_rate=lr, momentum=0.9, use_nesterov=True, weight_decay=wd,
                                        parameters=net.parameters())
    else:
        opt = paddle.optimizer.Adam(learning_rate=lr, weight_decay=wd, parameters=net.parameters())
    return opt, (lr if not isinstance(lr, float) else None)


def _batch_mean_cross_entropy(logits, labels):
    """The corpus's loss: batch-mean cross-entropy (the recorder derives nothing from it)."""
    return paddle.nn.functional.cross_entropy(logits, labels.reshape([-1, 1]))


def record_run(spec: RunSpec, *, device: str = "cpu", progress: bool = False) -> Dict[str, Any]:
    """Train one classifier on noisy labels and record its training dynamics.

    Parameters
    ----------
    spec : RunSpec
    device : str, default='cpu'
    progress : bool, default=False
        A tqdm bar over epochs.

    Returns
    -------
    dict
        A recording: ``td`` (N, E, C) float16, ``labels`` (N, C) int16, ``label_flip`` (N,) bool and
        ``meta`` (the spec plus ``n_samples``, ``n_classes`` and the final noisy-label train accuracy).
    """
    source = load_source(spec.source, seed=spec.seed)
    if spec.n_samples is not None and spec.n_samples < source.x.shape[0]:
        keep = np.sort(np.random.default_rng([spec.seed, 1]).choice(source.x.shape[0], spec.n_samples, replace=False))
        source = dataclasses.replace(source, x=source.x[keep], y=source.y[keep])
    noisy, flips = inject_label_noise(source.y, spec.rate, kind=spec.noise, n_classes=source.n_classes,
                                      seed=spec.seed)
    n = source.x.shape[0]
    rng = np.random.default_rng(spec.seed)
    steps = int(np.ceil(n / spec.batch_size))
    device = resolve_device(device)
    with device_scope(device), paddle_seed(spec.seed):
        net = build_model(spec.model, source, width=spec.width, depth=spec.depth)
        optimizer, scheduler = _optimizer(spec, net, steps)
        x_all = paddle.to_tensor(source.x)
        y_all = paddle.to_tensor(noisy)

        def batches():  # one seeded permutation per epoch, drawn when the epoch starts
            order = rng.permutation(n)
            for start in range(0, n, spec.batch_size):
                ids = order[start:start + spec.batch_size]
                idx = paddle.to_tensor(ids)
                yield ids, paddle.gather(x_all, idx), paddle.gather(y_all, idx)

        # the library's own recording loop, so a fix to the recorder reaches the detector's corpus
        recorder = TrainingDynamics(net, device=device).generator(
            batches, optimizer, spec.epochs, loss_fn=_batch_mean_cross_entropy, lr_scheduler=scheduler,
            scheduler_step="step", n_samples=n, keep_logits=True, progress=progress)
    last = np.asarray(recorder.logits[:, -1])
    accuracy = float((last.argmax(axis=1) == noisy).mean())
    td, labels, _, _ = transform_recorder(recorder, noisy)
    meta = spec.to_dict()
    meta.update(n_samples=int(n), n_classes=int(source.n_classes), final_train_accuracy=round(accuracy, 4),
                group=spec.group)
    return {"td": td, "labels": labels, "label_flip": flips, "meta": meta}


def build_corpus(specs: Sequence[RunSpec], *, out_dir: Optional[PathLike] = None, device: str = "cpu",
                 progress: bool = True) -> List[Dict[str, Any]]:
    """Record every run (with a tqdm bar over runs).

    Parameters
    ----------
    specs : sequence of RunSpec
    out_dir : path, optional
        Save each run as ``<out_dir>/<spec.name(i)>.npz`` (atomic). A file that already exists with the
        same settings is loaded instead of re-recorded, so an interrupted build resumes.
    device : str, default='cpu'
    progress : bool, default=True

    Returns
    -------
    list of dict
        One recording per spec, in order (see :func:`record_run`).
    """
    out = Path(out_dir) if out_dir is not None else None
    records: List[Dict[str, Any]] = []
    bar = tqdm(list(enumerate(specs)), desc="recording corpus", unit="run", disable=not progress)
    for i, spec in bar:
        bar.set_postfix_str(f"{spec.group} {spec.noise} {spec.rate:.2f} e{spec.epochs}")
        path = out / f"{spec.name(i)}.npz" if out is not None else None
        if path is not None and path.is_file():
            rec = load_training_dynamics(path)
            stored = rec.get("meta", {}) or {}
            # fields the spec leaves open (None, e.g. a synthetic run's size) are fixed by the recording
            if all(stored.get(k) == v for k, v in spec.to_dict().items() if v is not None):
                records.append(rec)
                continue
        rec = record_run(spec, device=device)
        if path is not None:
            save_training_dynamics(path, rec["td"], rec["labels"], label_flip=rec["label_flip"], meta=rec["meta"])
        records.append(rec)
    return records
