"""CoNAL layers: common and individual noise adaptation for learning from crowds, in Paddle.

CoNAL (Chu, Ma & Wang, AAAI 2021) models each annotator's label noise as a mix of a **common** confusion
``pi_g`` shared by all annotators and an **individual** confusion ``pi_j``. For instance ``i`` and
annotator ``j`` the crowd prediction is::

    h_i^(j) = softmax( z_i @ (omega_i^(j) * pi_g + (1 - omega_i^(j)) * pi_j) ),
    omega_i^(j) = sigmoid(u_j . v_i),

where ``z_i`` is the classifier output (probabilities or logits, see ``confusion_input``), ``v_i`` an
instance embedding and ``u_j`` an annotator embedding, both L2-normalised. At test time only the
classifier is used.

Shapes: ``B`` batch size, ``C`` classes, ``J`` annotators (workers).

The layer names and signatures follow peerannot (``peerannot/models/agg_deep/CoNAL.py``) so that its users
feel at home; the computations follow both peerannot and the official code (zdchu/CoNAL).

References
----------
Z. Chu, J. Ma, H. Wang. Learning from Crowds by Modeling Common Confusions. AAAI 2021, arXiv:2012.13052.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from .._paddle import paddle

nn = paddle.nn
F = paddle.nn.functional

CONFUSION_INPUTS = ("softmax", "logits")

__all__ = ["CONFUSION_INPUTS", "AuxiliaryNetwork", "CoNALNetwork", "NoiseAdaptationLayer", "conal_loss"]


def _check_positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


class NoiseAdaptationLayer(nn.Layer):
    """Global and per-annotator confusion matrices, mixed per instance by ``omega``.

    Parameters
    ----------
    n_classes : int
        ``C``.
    n_workers : int
        ``J``, the number of annotators.

    Attributes
    ----------
    global_confusion_matrix : Parameter of shape (C, C)
        ``pi_g``, initialised to ``2 * I`` (as the official code and peerannot).
    local_confusion_matrices : Parameter of shape (J, C, C)
        ``pi_j``, each initialised to ``2 * I``.

    Notes
    -----
    Row ``k`` of a matrix holds the crowd *logits* produced when the classifier is certain of class ``k``
    (with ``confusion_input='softmax'``), so ``softmax(pi[k])`` estimates P(annotator answers l | true class
    k). :meth:`transition_matrices` returns these row-softmax estimates.
    """

    def __init__(self, n_classes: int, n_workers: int):
        super().__init__()
        self.n_classes = _check_positive_int("n_classes", n_classes)
        self.n_workers = _check_positive_int("n_workers", n_workers)
        eye2 = 2.0 * np.eye(self.n_classes, dtype=np.float32)
        self.global_confusion_matrix = self.create_parameter(
            [self.n_classes, self.n_classes], dtype="float32",
            default_initializer=nn.initializer.Assign(eye2))
        self.local_confusion_matrices = self.create_parameter(
            [self.n_workers, self.n_classes, self.n_classes], dtype="float32",
            default_initializer=nn.initializer.Assign(np.repeat(eye2[None], self.n_workers, axis=0)))

    def forward(self, f, w):
        """Crowd logits for every annotator.

        Parameters
        ----------
        f : Tensor of shape (B, C)
            Classifier output fed to the confusions (probabilities or logits).
        w : Tensor of shape (B, J)
            ``omega``, the weight of the common confusion, in [0, 1].

        Returns
        -------
        Tensor of shape (B, J, C)
            ``w * (f @ pi_g) + (1 - w) * (f @ pi_j)``; pass it through a softmax for probabilities.
        """
        c, j = self.n_classes, self.n_workers
        global_out = paddle.matmul(f, self.global_confusion_matrix)  # (B, C)
        # f @ pi_j for all j at once: (B, C) @ (C, J*C) -> (B, J, C)
        stacked = self.local_confusion_matrices.transpose([1, 0, 2]).reshape([c, j * c])
        local_out = paddle.matmul(f, stacked).reshape([-1, j, c])
        # w * global + (1 - w) * local, with one op fewer
        return local_out + w.unsqueeze(-1) * (global_out.unsqueeze(1) - local_out)

    def transition_matrices(self) -> tuple[np.ndarray, np.ndarray]:
        """Row-softmax of the confusions: estimated P(answer l | true class k).

        Returns
        -------
        global_transition : ndarray of shape (C, C)
        local_transitions : ndarray of shape (J, C, C)
            Every row sums to 1.
        """
        with paddle.no_grad():
            g = F.softmax(self.global_confusion_matrix, axis=-1).numpy()
            loc = F.softmax(self.local_confusion_matrices, axis=-1).numpy()
        return g, loc


class AuxiliaryNetwork(nn.Layer):
    """Instance and annotator embeddings, giving ``omega = sigmoid(u_j . v_i)``.

    ``v_i = normalize(Linear(hidden_dim, w_dim)(Linear(x_dim, hidden_dim)(x_i)))`` (no nonlinearity, as in
    both references) and ``u_j = normalize(Linear(e_dim, w_dim)(e_j))``.

    Parameters
    ----------
    x_dim : int
        Size of the (flattened) instance features.
    e_dim : int
        Size of the annotator features (``J`` for the default one-hot identity).
    w_dim : int
        Embedding size (peerannot and the official code use 20).
    hidden_dim : int, default=128
    """

    def __init__(self, x_dim: int, e_dim: int, w_dim: int, hidden_dim: int = 128):
        super().__init__()
        self.weight_v1 = nn.Linear(_check_positive_int("x_dim", x_dim), _check_positive_int("hidden_dim", hidden_dim))
        self.weight_v2 = nn.Linear(hidden_dim, _check_positive_int("w_dim", w_dim))
        self.weight_u = nn.Linear(_check_positive_int("e_dim", e_dim), w_dim)

    def forward(self, x, e):
        """Common-confusion weights.

        Parameters
        ----------
        x : Tensor of shape (B, x_dim) or (B, ...)
            Instance features; flattened from axis 1.
        e : Tensor of shape (J, e_dim)
            Annotator features.

        Returns
        -------
        Tensor of shape (B, J)
            ``omega`` in (0, 1).
        """
        x = paddle.flatten(x, start_axis=1) if x.ndim > 2 else x
        v = F.normalize(self.weight_v2(self.weight_v1(x)), axis=1)
        u = F.normalize(self.weight_u(e), axis=1)
        return F.sigmoid(paddle.matmul(v, u, transpose_y=True))


class CoNALNetwork(nn.Layer):
    """A classifier backbone wrapped with CoNAL's auxiliary network and noise adaptation layer.

    Parameters
    ----------
    classifier : paddle.nn.Layer
        Any backbone mapping ``x`` to **logits** of shape (B, C) (no final softmax).
    n_classes : int
        ``C``.
    n_workers : int
        ``J``.
    x_dim : int
        Size of the instance features the auxiliary network reads: the flattened input size (default
        features, as peerannot) or the width of ``instance_features``' output.
    embedding_dim : int, default=20
        Size of the instance / annotator embeddings.
    hidden_dim : int, default=128
        Hidden width of the instance branch of the auxiliary network.
    confusion_input : {'softmax', 'logits'}, default='softmax'
        What the confusion matrices multiply. ``'softmax'`` (default) feeds the classifier's softmax
        probabilities, as the official code does; then ``softmax(pi[k])`` reads as the annotator's
        transition row for true class ``k``. ``'logits'`` feeds the raw logits, as peerannot does.
    instance_features : paddle.nn.Layer or callable, optional
        Maps ``x`` to (B, x_dim) features for the instance embedding, e.g. the backbone's feature trunk.
        Default: the flattened raw input (peerannot).
    annotator_features : array-like of shape (J, e_dim), optional
        Annotator metadata; default the identity ``eye(J)`` (one-hot annotators, both references). Kept
        as a non-persistable buffer (not in ``state_dict``).

    Examples
    --------
    >>> backbone = paddle.nn.Sequential(paddle.nn.Linear(64, 32), paddle.nn.ReLU(), paddle.nn.Linear(32, 10))
    >>> net = CoNALNetwork(backbone, n_classes=10, n_workers=5, x_dim=64)
    >>> crowd, clean = net(paddle.rand([8, 64]), return_crowd=True)   # (8, 5, 10), (8, 10)
    """

    def __init__(self, classifier, n_classes: int, n_workers: int, x_dim: int, *, embedding_dim: int = 20,
                 hidden_dim: int = 128, confusion_input: str = "softmax",
                 instance_features: Callable | None = None, annotator_features=None):
        super().__init__()
        if confusion_input not in CONFUSION_INPUTS:
            raise ValueError(f"confusion_input must be one of {CONFUSION_INPUTS}, got {confusion_input!r}")
        n_workers = _check_positive_int("n_workers", n_workers)
        if annotator_features is None:
            feats = np.eye(n_workers, dtype=np.float32)
        else:
            feats = np.asarray(annotator_features, dtype=np.float32)
            if feats.ndim != 2 or feats.shape[0] != n_workers:
                raise ValueError(f"annotator_features must have shape (n_workers={n_workers}, e_dim), "
                                 f"got {feats.shape}")
        self.n_classes = _check_positive_int("n_classes", n_classes)
        self.n_workers = n_workers
        self.confusion_input = confusion_input
        self.classifier = classifier
        self.instance_features = instance_features
        self.auxiliary_network = AuxiliaryNetwork(x_dim, feats.shape[1], embedding_dim, hidden_dim)
        self.noise_adaptation_layer = NoiseAdaptationLayer(self.n_classes, n_workers)
        self.register_buffer("annotator_features", paddle.to_tensor(feats), persistable=False)

    def forward(self, x, annotator=None, return_crowd: bool | None = None
                ) -> paddle.Tensor | tuple[paddle.Tensor, paddle.Tensor]:
        """Clean prediction, plus the per-annotator predictions when asked (by default in training mode).

        Parameters
        ----------
        x : Tensor of shape (B, ...)
        annotator : Tensor of shape (J, e_dim), optional
            Annotator features; default the stored ones (identity).
        return_crowd : bool, optional
            Default ``self.training`` (and True whenever ``annotator`` is given, as in peerannot).

        Returns
        -------
        clean : Tensor of shape (B, C)
            The classifier's logits (when ``return_crowd`` is False).
        (crowd, clean) : Tensors of shapes (B, J, C) and (B, C)
            ``crowd`` holds per-annotator crowd logits (when ``return_crowd`` is True).
        """
        f = self.classifier(x)
        if return_crowd is None:
            return_crowd = self.training or annotator is not None
        if not return_crowd:
            return f
        w = self.common_weights(x, annotator)
        z = F.softmax(f, axis=-1) if self.confusion_input == "softmax" else f
        return self.noise_adaptation_layer(z, w), f

    def common_weights(self, x, annotator=None):
        """``omega`` of shape (B, J): how much each annotator follows the common confusion on ``x``."""
        feats = self.instance_features(x) if self.instance_features is not None else x
        return self.auxiliary_network(feats, self.annotator_features if annotator is None else annotator)


def conal_loss(crowd_logits, labels, global_confusion, local_confusions, scale: float = 1e-5):
    """CoNAL's training loss: cross-entropy over the given annotations minus the confusion-gap regulariser.

    ``L = mean_{(i, j) annotated} CE(h_i^(j), y_i^(j)) - scale * sum_j ||pi_j - pi_g||_F``.

    The regulariser is **subtracted**, as in the official code (``loss -= 1e-5 * sum(norm(kernel -
    common_kernel))``) and in peerannot (``loss -= scale * torch.linalg.norm(L_j - G)``): it rewards
    individual confusions that differ from the common one. The cross-entropy is averaged over the
    annotated pairs only (Paddle's ``cross_entropy(..., ignore_index=-1, reduction='mean')`` would divide by
    all pairs, unlike torch, so the sum is divided by the number of annotations). A batch without any
    annotation contributes 0 cross-entropy.

    Parameters
    ----------
    crowd_logits : Tensor of shape (B, J, C)
    labels : Tensor or ndarray of shape (B, J), int
        Annotator labels, ``-1`` where annotator ``j`` did not label instance ``i``.
    global_confusion : Tensor of shape (C, C)
    local_confusions : Tensor of shape (J, C, C)
    scale : float, default=1e-5
        ``lambda``; 0 disables the regulariser.

    Returns
    -------
    Tensor, scalar
    """
    labels = paddle.to_tensor(labels) if not isinstance(labels, paddle.Tensor) else labels
    labels = labels.astype("int64")
    if list(labels.shape) != list(crowd_logits.shape[:2]):
        raise ValueError(f"labels must have shape {list(crowd_logits.shape[:2])} (B, J), got {list(labels.shape)}")
    c = crowd_logits.shape[-1]
    total = F.cross_entropy(crowd_logits.reshape([-1, c]), labels.reshape([-1, 1]), ignore_index=-1, reduction="sum")
    loss = total / paddle.clip((labels >= 0).astype(total.dtype).sum(), min=1.0)
    if scale:
        gap = local_confusions - global_confusion.unsqueeze(0)
        loss = loss - float(scale) * paddle.linalg.norm(gap, p="fro", axis=[1, 2]).sum()
    return loss
