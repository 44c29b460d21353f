"""Train a classifier from crowd labels with CoNAL, with peerannot's interface and outputs.

``CoNAL(tasks_path, answers, model, n_classes, optimizer, n_epochs, ...)`` mirrors peerannot's
``peerannot.models.CoNAL`` (``peerannot aggregate-deep -s conal``): ``.setup()`` builds the data and the
network, ``.run()`` trains, keeps the model with the best validation loss and evaluates it on the test
split. :func:`train_classifier` trains the same backbone on one label per task (e.g. aggregated by
majority vote or Dawid-Skene) with the same loop, for baselines.

Outputs (both written atomically):

- ``<out>/results/<output_name>.json`` with peerannot's keys ``train_loss``, ``val_loss``,
  ``val_accuracy`` (lists over epochs), ``test_loss``, ``test_accuracy``, ``test_ece`` (and, for
  ``C >= 8``, ``test_micro_top2``, ``test_micro_top5``, ``test_macro_top2``, ``test_macro_top5``), plus
  ``best_epoch`` and ``epoch_seconds``. As in peerannot, accuracies are in **percent** and ECE is a
  fraction (15 equal-width bins, L1). ``train_loss`` is the mean batch loss of each epoch (peerannot logs
  the sum over batches).
- ``<out>/best_models/<output_name>.pdparams``: the network's ``state_dict`` (keys ``classifier.*``,
  ``auxiliary_network.*``, ``noise_adaptation_layer.*``), saved each time the validation loss improves.

``<out>`` is ``tasks_path`` for a peerannot folder (or ``output_dir`` when given); for in-memory datasets
``output_dir`` is required. Nothing is ever written to the working directory.
"""
from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable, Union

import numpy as np
from sklearn.metrics import top_k_accuracy_score
from tqdm.auto import tqdm

from .._paddle import paddle
from ..common.device import device_scope, resolve_device
from ..common.atomic import atomic_path
from ..common.seeding import paddle_seed
from ..data import SeededBatchSampler
from ..layers.conal import CONFUSION_INPUTS, CoNALNetwork, conal_loss
from .peerannot_io import PeerannotImageFolder, load_answers, read_metadata

F = paddle.nn.functional
PathLike = Union[str, "os.PathLike[str]"]

OPTIMIZERS = ("sgd", "adam")
SCHEDULERS = (None, "multistep", "cosine")

# kwargs of peerannot's CoNAL that have no meaning here; accepted with a warning
_PEERANNOT_IGNORED = ("data_augmentation", "path_remove", "freeze", "n_params", "labels", "use_parameters")
_DEFAULTS: dict[str, Any] = {
    "n_workers": None, "batch_size": 64, "lr": 0.1, "momentum": 0.9, "decay": 5e-4, "scheduler": None,
    "milestones": (), "lr_decay": 0.1, "num_workers": 0, "img_size": None, "image_mode": "RGB",
    "metadata_path": None, "train_dataset": None, "val_dataset": None, "test_dataset": None,
    "output_dir": None, "embedding_dim": 20, "hidden_dim": 128, "confusion_input": "softmax",
    "instance_features": None, "annotator_features": None, "device": "cpu", "seed": 0,
}

__all__ = ["OPTIMIZERS", "SCHEDULERS", "CoNAL", "expected_calibration_error", "train_classifier"]


# ----------------------------------------------------------------------------------------------- metrics
def expected_calibration_error(probs, labels, n_bins: int = 15) -> float:
    """Top-label expected calibration error (L1), equal-width confidence bins, as torchmetrics computes it.

    Parameters
    ----------
    probs : array-like of shape (N, C)
        Predicted probabilities.
    labels : array-like of shape (N,), int
    n_bins : int, default=15

    Returns
    -------
    float
        ``sum_b |accuracy_b - confidence_b| * n_b / N`` in [0, 1].
    """
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels).reshape(-1)
    if probs.ndim != 2 or probs.shape[0] != labels.shape[0] or probs.shape[0] == 0:
        raise ValueError(f"probs must be (N, C) and labels (N,) with N > 0; got {probs.shape} and {labels.shape}")
    conf = probs.max(1)
    correct = (probs.argmax(1) == labels).astype(np.float64)
    bins = np.clip(np.digitize(conf, np.linspace(0.0, 1.0, n_bins + 1)) - 1, 0, n_bins - 1)
    n_b = np.bincount(bins, minlength=n_bins)
    gap = np.abs(np.bincount(bins, weights=correct, minlength=n_bins) - np.bincount(bins, weights=conf,
                                                                                     minlength=n_bins))
    return float(gap.sum() / n_b.sum())


def _top_k(probs: np.ndarray, labels: np.ndarray, k: int, macro: bool) -> float:
    """Top-k accuracy in percent; macro = mean over the classes present."""
    c = probs.shape[1]
    weight = None
    if macro:
        weight = 1.0 / np.bincount(labels, minlength=c)[labels]
    return 100.0 * float(top_k_accuracy_score(labels, probs, k=k, labels=np.arange(c), sample_weight=weight))


# ----------------------------------------------------------------------------------------------- helpers
def _loader(dataset, batch_size: int, shuffle: bool, seed: int, num_workers: int):
    """Shuffled batches from a private seeded generator (never the global numpy state), or in order."""
    if shuffle:
        sampler = SeededBatchSampler(len(dataset), batch_size, seed=seed)
        return paddle.io.DataLoader(dataset, batch_sampler=sampler, num_workers=num_workers, return_list=True)
    return paddle.io.DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                                return_list=True)


class _CrowdTrainSet(paddle.io.Dataset):
    """Items ``(x, labels_row)``: the base item's input and its (J,) row of worker labels (-1 = none)."""

    def __init__(self, base, item_index: np.ndarray, rows: np.ndarray):
        super().__init__()
        self.base, self.item_index, self.rows = base, item_index, rows

    def __getitem__(self, i):
        return self.base[int(self.item_index[i])][0], self.rows[i]

    def __len__(self) -> int:
        return len(self.item_index)


# Worker ids far beyond the number of workers who answered (a forged answers file or metadata) would size the
# per-worker confusion matrices and the label matrix by the largest id; such ids are compacted instead.
_SPARSE_FACTOR, _SPARSE_SLACK = 4, 1024


def _worker_columns(used: np.ndarray, n_workers: int | None):
    """(worker id of each label-matrix column, id -> column): ids as columns, or compacted when sparse.

    ``n_workers`` (from the caller or ``metadata.json``) keeps columns ``0..n_workers-1`` unless it is far
    larger than the number of workers who answered; without it the columns are ``0..max id`` unless those
    ids are sparse. Compacted columns are the answering workers in ascending id order.
    """
    size = n_workers if n_workers is not None else int(used.max()) + 1
    if size <= _SPARSE_FACTOR * used.size + _SPARSE_SLACK:
        return np.arange(size, dtype=np.int64), int
    declared = f"n_workers={n_workers}" if n_workers else "no n_workers"
    warnings.warn(f"worker ids reach {int(used.max())} ({declared}) but only {used.size} workers answered; using "
                  "one confusion matrix per answering worker (CoNAL.worker_ids and the results' 'worker_ids' map "
                  "them back)", UserWarning, stacklevel=3)
    lookup = {int(w): k for k, w in enumerate(used.tolist())}
    return used.astype(np.int64), lookup.__getitem__


def _check_int(name: str, value, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _build_model(model, n_classes: int, pretrained: bool):
    if isinstance(model, paddle.nn.Layer):
        if pretrained:
            warnings.warn("pretrained=True is ignored when model is already a paddle Layer", UserWarning,
                          stacklevel=3)
        return model
    names = sorted(n for n in paddle.vision.models.__all__ if n[:1].islower())
    if not isinstance(model, str) or model not in names:
        raise ValueError(f"model must be a paddle.nn.Layer or a paddle.vision.models name, one of {names}; "
                         f"got {model!r}")
    return getattr(paddle.vision.models, model)(pretrained=pretrained, num_classes=n_classes)


def _build_optimizer(parameters, name: str, *, lr: float, momentum: float, decay: float, scheduler,
                     milestones, lr_decay: float):
    """Optimizer and (optional) epoch-level LR scheduler, with peerannot's meanings."""
    sched = None
    if scheduler == "multistep":
        sched = paddle.optimizer.lr.MultiStepDecay(learning_rate=lr, milestones=[int(m) for m in milestones],
                                                   gamma=lr_decay)
    elif scheduler == "cosine":
        if not milestones:
            raise ValueError("scheduler='cosine' needs milestones=[T_0] (restart period in epochs), as in peerannot")
        sched = paddle.optimizer.lr.CosineAnnealingWarmRestarts(learning_rate=lr, T_0=int(milestones[0]),
                                                                T_mult=1, eta_min=1e-4)
    rate = sched if sched is not None else lr
    if name == "sgd":
        opt = paddle.optimizer.Momentum(learning_rate=rate, momentum=momentum, parameters=parameters,
                                        weight_decay=decay or None)
    else:  # adam, without weight decay as in peerannot
        opt = paddle.optimizer.Adam(learning_rate=rate, parameters=parameters)
    return opt, sched


def _check_optim_args(optimizer: str, scheduler, milestones) -> str:
    if not isinstance(optimizer, str) or optimizer.lower() not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS} (case-insensitive), got {optimizer!r}")
    if scheduler not in SCHEDULERS:
        raise ValueError(f"scheduler must be one of {SCHEDULERS}, got {scheduler!r}")
    if isinstance(milestones, (int, np.integer)):
        raise ValueError(f"milestones must be a list of epochs, got {milestones!r}")  # noqa: TRY004
    return optimizer.lower()


@paddle.no_grad()
def _evaluate(classifier, loader, n_classes: int):
    """Mean CE loss, accuracy (percent), probabilities (N, C) and labels (N,) of a (x, y) loader."""
    was_training = classifier.training
    classifier.eval()
    losses, probs, labels = [], [], []
    try:
        for x, y in loader:
            y = y.reshape([-1]).astype("int64")
            if int(y.max()) >= n_classes or int(y.min()) < 0:
                raise ValueError(f"evaluation label {int(y.max())} is outside [0, n_classes={n_classes})")
            logits = classifier(x)
            losses.append(F.cross_entropy(logits, y, reduction="none").reshape([-1]).numpy())
            probs.append(F.softmax(logits, axis=-1).numpy())
            labels.append(y.numpy())
    finally:
        if was_training:
            classifier.train()
    probs_a, labels_a = np.concatenate(probs), np.concatenate(labels)
    acc = 100.0 * float((probs_a.argmax(1) == labels_a).mean())
    return float(np.concatenate(losses).mean()), acc, probs_a, labels_a


def _state_copy(layer) -> dict[str, np.ndarray]:
    return {k: v.numpy().copy() for k, v in layer.state_dict().items()}


def _fit(net, classifier, train_loader, step_loss: Callable, val_loader, test_loader, *, optimizer, scheduler,
         n_epochs: int, n_classes: int, verbose: bool, desc: str, best_path: Path | None) -> dict[str, Any]:
    """Shared loop: train ``net`` with ``step_loss(batch)``, select on val loss of ``classifier``, test it."""
    results: dict[str, Any] = {"train_loss": [], "val_loss": [], "val_accuracy": [], "epoch_seconds": []}
    best_loss, best_state, best_epoch = np.inf, None, -1
    net.train()
    bar = tqdm(range(n_epochs), desc=desc, disable=not verbose, leave=False)
    for epoch in bar:
        start = time.perf_counter()
        total, steps = 0.0, 0
        for batch in train_loader:
            loss = step_loss(batch)
            loss.backward()
            optimizer.step()
            optimizer.clear_grad()
            total += float(loss)
            steps += 1
        if scheduler is not None:
            scheduler.step()
        results["epoch_seconds"].append(time.perf_counter() - start)
        results["train_loss"].append(total / max(steps, 1))
        val_loss, val_acc, _, _ = _evaluate(classifier, val_loader, n_classes)
        results["val_loss"].append(val_loss)
        results["val_accuracy"].append(val_acc)
        # the first epoch always counts (even with a NaN loss); later ones must improve on a finite loss
        if best_state is None or (np.isfinite(val_loss) and not val_loss >= best_loss):
            best_loss, best_epoch, best_state = val_loss, epoch, _state_copy(net)
            if best_path is not None:
                with atomic_path(best_path) as tmp:
                    paddle.save(net.state_dict(), str(tmp))
        bar.set_postfix(train_loss=f"{results['train_loss'][-1]:.4f}", val_loss=f"{val_loss:.4f}",
                        val_acc=f"{val_acc:.1f}")
    bar.close()
    net.set_state_dict(best_state)
    results["best_epoch"] = best_epoch
    if test_loader is not None:
        test_loss, test_acc, probs, labels = _evaluate(classifier, test_loader, n_classes)
        results["test_loss"] = test_loss
        results["test_accuracy"] = test_acc
        results["test_ece"] = expected_calibration_error(probs, labels)
        if n_classes >= 8:
            for avg in ("micro", "macro"):
                for k in (2, 5):
                    results[f"test_{avg}_top{k}"] = _top_k(probs, labels, k, avg == "macro")
    return results


def _write_results(results: dict[str, Any], path: Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(results, indent=3), encoding="utf-8")


# ----------------------------------------------------------------------------------------------- CoNAL
class CoNAL:
    """Learn a classifier from crowd labels with common noise adaptation layers (peerannot-compatible).

    Parameters
    ----------
    tasks_path : path or None
        A peerannot folder: ``train/``, ``val/``, ``test/`` in ImageFolder layout (train files named
        ``<stem>-<task_id>.<ext>``) and ``metadata.json`` (``n_classes``, ``n_workers``). ``None`` to use
        in-memory datasets given as ``train_dataset``, ``val_dataset``, ``test_dataset`` (and
        ``output_dir``) keyword arguments.
    answers : path, mapping or None
        peerannot answers ``{task: {worker: label}}`` (a JSON file or a dict); ``None`` reads
        ``<tasks_path>/answers.json``.
    model : str or paddle.nn.Layer
        A ``paddle.vision.models`` name (built with ``num_classes=n_classes``) or any Layer returning
        logits of shape (B, C). A given Layer is trained in place and left with the best weights.
    n_classes : int
        ``C``.
    optimizer : {'sgd', 'adam'}
        SGD with momentum and weight decay (``momentum``, ``decay``), or Adam (no weight decay), as
        peerannot.
    n_epochs : int
    scale : float, default=1e-5
        Weight of the regulariser that is **subtracted** from the loss, ``scale * sum_j ||pi_j - pi_g||_F``
        (see :func:`~interpretdl_noise.layers.conal.conal_loss`). peerannot's CLI default is 1e-4.
    verbose : bool, default=True
        tqdm progress bar over epochs.
    pretrained : bool, default=False
        Passed to the ``paddle.vision.models`` constructor (its weights download, so this needs network).
    output_name : str, default='conal'
        File name (no folder) of the results JSON and the best model.
    **kwargs
        ``n_workers`` (default ``metadata.json``, else the largest worker id + 1), ``batch_size`` (64),
        ``lr`` (0.1), ``momentum`` (0.9), ``decay`` (5e-4, SGD only), ``scheduler`` (None, 'multistep'
        or 'cosine'), ``milestones`` (epochs; the first is T_0 for 'cosine'), ``lr_decay`` (0.1),
        ``num_workers`` (0, DataLoader processes), ``img_size`` and ``image_mode`` ('RGB' or 'L') for
        folders, ``metadata_path``, ``train_dataset`` / ``val_dataset`` / ``test_dataset`` /
        ``output_dir`` for in-memory data, ``embedding_dim`` (20), ``hidden_dim`` (128),
        ``confusion_input`` ('softmax', see :class:`~interpretdl_noise.layers.conal.CoNALNetwork`),
        ``instance_features``, ``annotator_features``, ``device`` ('cpu'), ``seed`` (0; seeds paddle
        inside setup/run only and restores the caller's generator state afterwards, and seeds the batch
        order). peerannot-only options (``data_augmentation``, ``path_remove``, ``freeze``, ...) are
        ignored with a warning; anything else is an error.

    In-memory datasets
    ------------------
    ``train_dataset`` items are ``(x, task_id)`` (any middle item is ignored), e.g.
    ``ArrayDataset(x_train, np.arange(n_train))`` with answers keyed by those task ids; ``val_dataset`` and
    ``test_dataset`` items are ``(x, true_label)``. A dataset with a ``task_ids`` attribute (such as
    :class:`~interpretdl_noise.crowd.peerannot_io.PeerannotImageFolder`) is not iterated to find them.

    Attributes
    ----------
    network : CoNALNetwork
        Set by :meth:`setup`; after :meth:`run` it holds the best-validation weights.
    label_matrix : ndarray of shape (N_train, J), int64
        Worker labels of the train items used (-1 = none); set by :meth:`setup`.
    worker_ids : ndarray of shape (J,), int64
        The user's worker id of each column of ``label_matrix`` and of each local confusion matrix
        (``0..J-1`` unless the ids were too sparse and got compacted); also written to the results JSON.
    results : dict
        Set by :meth:`run`.
    results_path, best_model_path : Path

    Examples
    --------
    >>> trainer = CoNAL(None, sim.answers, mlp, n_classes=10, optimizer="adam", n_epochs=50, lr=1e-2,
    ...                 train_dataset=train, val_dataset=val, test_dataset=test, output_dir=tmpdir)
    >>> results = trainer.run()

    References
    ----------
    Z. Chu, J. Ma, H. Wang. Learning from Crowds by Modeling Common Confusions. AAAI 2021.
    T. Lefort, B. Charlier, A. Joly, J. Salmon. Peerannot: classification for crowdsourced image datasets
    with Python. Computo, 2024.
    """

    def __init__(self, tasks_path: PathLike | None, answers: PathLike | Mapping | None, model,
                 n_classes: int, optimizer: str, n_epochs: int, scale: float = 1e-5, verbose: bool = True,
                 pretrained: bool = False, output_name: str = "conal", **kwargs):
        self.n_classes = _check_int("n_classes", n_classes, 2)
        self.n_epochs = _check_int("n_epochs", n_epochs, 1)
        if not np.isfinite(scale) or scale < 0:
            raise ValueError(f"scale must be a finite number >= 0, got {scale!r}")
        if not isinstance(output_name, str) or not output_name or Path(output_name).name != output_name:
            raise ValueError(f"output_name must be a plain file name without folders, got {output_name!r}")
        ignored = [k for k in kwargs if k in _PEERANNOT_IGNORED]
        unknown = sorted(k for k in kwargs if k not in _DEFAULTS and k not in _PEERANNOT_IGNORED)
        if unknown:
            raise ValueError(f"unknown keyword argument(s) {unknown}; allowed: {sorted(_DEFAULTS)}")
        if ignored:
            warnings.warn(f"peerannot options {ignored} have no effect in interpretdl_noise's CoNAL", UserWarning,
                          stacklevel=2)
        self.options = {**_DEFAULTS, **{k: v for k, v in kwargs.items() if k in _DEFAULTS}}
        self.optimizer_name = _check_optim_args(optimizer, self.options["scheduler"], self.options["milestones"])
        if self.options["confusion_input"] not in CONFUSION_INPUTS:
            raise ValueError(f"confusion_input must be one of {CONFUSION_INPUTS}, "
                             f"got {self.options['confusion_input']!r}")
        self.device = resolve_device(self.options["device"])
        self.tasks_path = Path(tasks_path) if tasks_path is not None else None
        self.answers = answers
        self.model = model
        self.scale = float(scale)
        self.verbose = bool(verbose)
        self.pretrained = bool(pretrained)
        self.output_name = output_name
        self.network: CoNALNetwork | None = None
        self.results: dict[str, Any] | None = None
        self._is_setup = False

    # -- data ----------------------------------------------------------------------------------------------
    def _datasets(self):
        o = self.options
        in_memory = [o[k] is not None for k in ("train_dataset", "val_dataset", "test_dataset")]
        if self.tasks_path is None:
            if not all(in_memory):
                raise ValueError("with tasks_path=None give train_dataset, val_dataset and test_dataset as keyword "
                                 "arguments (in-memory paddle Datasets)")
            if o["output_dir"] is None:
                raise ValueError("in-memory datasets need output_dir=<folder> for results/ and best_models/ "
                                 "(nothing is written to the working directory)")
            return o["train_dataset"], o["val_dataset"], o["test_dataset"], Path(o["output_dir"]), None
        if any(in_memory):
            raise ValueError("give either tasks_path (a peerannot folder) or in-memory datasets, not both")
        root = self.tasks_path
        if not root.is_dir():
            raise FileNotFoundError(f"tasks_path {root} is not a folder")
        meta_path = Path(o["metadata_path"]) if o["metadata_path"] is not None else root / "metadata.json"
        meta = read_metadata(meta_path) if meta_path.is_file() else None
        if meta is None and o["metadata_path"] is not None:
            raise FileNotFoundError(f"metadata file not found: {meta_path}")
        if meta is not None and meta["n_classes"] != self.n_classes:
            raise ValueError(f"n_classes={self.n_classes} but {meta_path} says n_classes={meta['n_classes']}")
        kw = {"img_size": o["img_size"], "mode": o["image_mode"]}
        train = PeerannotImageFolder(root / "train", with_task_ids=True, **kw)
        val = PeerannotImageFolder(root / "val", **kw)
        test = PeerannotImageFolder(root / "test", **kw)
        for split in (val, test):
            if len(split.classes) > self.n_classes:
                raise ValueError(f"{split.root} has {len(split.classes)} class folders but n_classes={self.n_classes}")
        out = Path(o["output_dir"]) if o["output_dir"] is not None else root
        return train, val, test, out, meta

    @staticmethod
    def _train_task_ids(train) -> np.ndarray:
        ids = getattr(train, "task_ids", None)
        if ids is None:
            ids = [train[i][-1] for i in range(len(train))]
        ids = np.asarray(ids).reshape(-1)
        if ids.size != len(train) or ids.dtype.kind not in "iu":
            raise ValueError("train_dataset items must end with an integer task id: (x, task_id)")
        if np.unique(ids).size != ids.size:
            raise ValueError("train_dataset task ids must be unique")
        return ids.astype(np.int64)

    def setup(self) -> CoNAL:
        """Read the data and answers, build the CoNAL network, the optimizer and the loaders.

        Returns
        -------
        CoNAL
            ``self``.
        """
        o = self.options
        train, val, test, out_dir, meta = self._datasets()
        answers = self.answers
        if answers is None:
            if self.tasks_path is None:
                raise ValueError("answers=None is only allowed with a tasks_path folder holding answers.json")
            answers = self.tasks_path / "answers.json"
        n_workers = o["n_workers"] if o["n_workers"] is not None else (meta["n_workers"] if meta else None)
        if n_workers is not None:
            n_workers = _check_int("n_workers", n_workers)
        task_ids = self._train_task_ids(train)
        clean = load_answers(answers, n_classes=self.n_classes, n_workers=n_workers, task_ids=task_ids.tolist())
        used = np.unique(np.fromiter((w for votes in clean.values() for w in votes), dtype=np.int64))
        worker_ids, column = _worker_columns(used, n_workers)
        n_workers = int(worker_ids.size)
        answered = np.array([t in clean and len(clean[t]) > 0 for t in task_ids.tolist()])
        if not answered.all():
            warnings.warn(f"{int((~answered).sum())} of {answered.size} train tasks have no answer and are skipped",
                          UserWarning, stacklevel=2)
        keep = np.nonzero(answered)[0]
        rows = np.full((keep.size, n_workers), -1, dtype=np.int64)
        for r, i in enumerate(keep.tolist()):
            for w, lab in clean[int(task_ids[i])].items():
                rows[r, column(w)] = lab
        self.n_workers, self.label_matrix, self.train_task_ids = n_workers, rows, task_ids[keep]
        self.worker_ids = worker_ids
        self.output_dir = out_dir
        self.results_path = out_dir / "results" / f"{self.output_name}.json"
        self.best_model_path = out_dir / "best_models" / f"{self.output_name}.pdparams"
        self.train_dataset, self.val_dataset, self.test_dataset = _CrowdTrainSet(train, keep, rows), val, test

        seed = int(o["seed"])
        with device_scope(self.device), paddle_seed(seed):
            classifier = _build_model(self.model, self.n_classes, self.pretrained)
            x0 = np.asarray(train[int(keep[0])][0], dtype=np.float32)
            if o["instance_features"] is not None:
                with paddle.no_grad():
                    x_dim = int(np.prod(o["instance_features"](paddle.to_tensor(x0[None])).shape[1:]))
            else:
                x_dim = int(x0.size)
            self.network = CoNALNetwork(classifier, self.n_classes, n_workers, x_dim,
                                        embedding_dim=o["embedding_dim"], hidden_dim=o["hidden_dim"],
                                        confusion_input=o["confusion_input"],
                                        instance_features=o["instance_features"],
                                        annotator_features=o["annotator_features"])
            self.optimizer, self.scheduler = _build_optimizer(
                self.network.parameters(), self.optimizer_name, lr=o["lr"], momentum=o["momentum"],
                decay=o["decay"], scheduler=o["scheduler"], milestones=o["milestones"], lr_decay=o["lr_decay"])
        bs, nw = _check_int("batch_size", o["batch_size"]), _check_int("num_workers", o["num_workers"], 0)
        self.train_loader = _loader(self.train_dataset, bs, True, seed, nw)
        self.val_loader = _loader(val, bs, False, seed, nw)
        self.test_loader = _loader(test, bs, False, seed, nw)
        self._is_setup = True
        return self

    def run(self) -> dict[str, Any]:
        """Train, keep the best-validation-loss model, evaluate it on the test split and write the outputs.

        Calls :meth:`setup` first if it has not run.

        Returns
        -------
        dict
            The results written to ``results_path`` (see the module docstring for the keys).
        """
        if not self._is_setup:
            self.setup()
        net, nal = self.network, self.network.noise_adaptation_layer

        def step_loss(batch):
            x, labels = batch
            crowd, _ = net(x, return_crowd=True)
            return conal_loss(crowd, labels, nal.global_confusion_matrix, nal.local_confusion_matrices, self.scale)

        with device_scope(self.device), paddle_seed(int(self.options["seed"]) + 1):
            results = _fit(net, net.classifier, self.train_loader, step_loss, self.val_loader, self.test_loader,
                           optimizer=self.optimizer, scheduler=self.scheduler, n_epochs=self.n_epochs,
                           n_classes=self.n_classes, verbose=self.verbose, desc="CoNAL epochs",
                           best_path=self.best_model_path)
        results["worker_ids"] = self.worker_ids.tolist()
        _write_results(results, self.results_path)
        self.results = results
        return results

    def transition_matrices(self):
        """Learned confusions as row-stochastic matrices: ``(global (C, C), local (J, C, C))``.

        See :meth:`~interpretdl_noise.layers.conal.NoiseAdaptationLayer.transition_matrices`.
        """
        if self.network is None:
            raise ValueError("call setup() / run() first")
        return self.network.noise_adaptation_layer.transition_matrices()


# ----------------------------------------------------------------------------------------------- baseline
def train_classifier(model, train_dataset, val_dataset, test_dataset=None, *, n_classes: int, optimizer: str = "adam",
                     n_epochs: int = 50, batch_size: int = 64, lr: float = 1e-3, momentum: float = 0.9,
                     decay: float = 5e-4, scheduler: str | None = None, milestones=(), lr_decay: float = 0.1,
                     num_workers: int = 0, seed: int = 0, device: str = "cpu", verbose: bool = False,
                     output_dir: PathLike | None = None, output_name: str = "classifier") -> dict[str, Any]:
    """Train ``model`` with cross-entropy on one label per sample, with the same loop as :class:`CoNAL`.

    The baseline of learning from crowds: aggregate the answers (``majority_vote``, ``dawid_skene``), then
    train the same backbone on the aggregated labels.

    Parameters
    ----------
    model : paddle.nn.Layer
        Returns logits of shape (B, C); trained in place and left with its best-validation-loss weights.
    train_dataset, val_dataset, test_dataset : paddle.io.Dataset
        Items ``(x, label)`` with labels in ``[0, C)``; ``test_dataset`` is optional.
    n_classes : int
    optimizer, n_epochs, batch_size, lr, momentum, decay, scheduler, milestones, lr_decay, num_workers
        As for :class:`CoNAL`.
    seed : int, default=0
        Batch order and paddle's generator inside the call (restored afterwards).
    device : str, default='cpu'
    verbose : bool, default=False
    output_dir : path, optional
        When given, writes ``results/<output_name>.json`` and ``best_models/<output_name>.pdparams`` there.
    output_name : str, default='classifier'

    Returns
    -------
    dict
        The same keys as :meth:`CoNAL.run` (test keys only with a ``test_dataset``).
    """
    if not isinstance(model, paddle.nn.Layer):
        raise ValueError(f"model must be a paddle.nn.Layer, got {type(model).__name__}")  # noqa: TRY004
    n_classes = _check_int("n_classes", n_classes, 2)
    n_epochs = _check_int("n_epochs", n_epochs, 1)
    name = _check_optim_args(optimizer, scheduler, milestones)
    bs, nw = _check_int("batch_size", batch_size), _check_int("num_workers", num_workers, 0)
    best_path = results_path = None
    if output_dir is not None:
        if not output_name or Path(output_name).name != output_name:
            raise ValueError(f"output_name must be a plain file name without folders, got {output_name!r}")
        best_path = Path(output_dir) / "best_models" / f"{output_name}.pdparams"
        results_path = Path(output_dir) / "results" / f"{output_name}.json"

    def step_loss(batch):
        x, y = batch[0], batch[-1]
        return F.cross_entropy(model(x), y.reshape([-1]).astype("int64"))

    with device_scope(resolve_device(device)), paddle_seed(seed):
        opt, sched = _build_optimizer(model.parameters(), name, lr=lr, momentum=momentum, decay=decay,
                                      scheduler=scheduler, milestones=milestones, lr_decay=lr_decay)
        test_loader = _loader(test_dataset, bs, False, seed, nw) if test_dataset is not None else None
        results = _fit(model, model, _loader(train_dataset, bs, True, seed, nw), step_loss,
                       _loader(val_dataset, bs, False, seed, nw), test_loader, optimizer=opt, scheduler=sched,
                       n_epochs=n_epochs, n_classes=n_classes, verbose=verbose, desc="classifier epochs",
                       best_path=best_path)
    if results_path is not None:
        _write_results(results, results_path)
    return results
