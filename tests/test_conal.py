"""CoNAL layers, loss and the peerannot-compatible trainer."""
import json
import warnings
from pathlib import Path

import numpy as np
import paddle
import pytest
from conftest import REPO, make_mlp, run_notebook

from interpretdl_noise import ArrayDataset, load_digits_arrays
from interpretdl_noise.crowd import (
    CoNAL,
    expected_calibration_error,
    majority_vote,
    save_answers,
    save_image_folder,
    simulate_crowd,
    train_classifier,
    write_metadata,
)
from interpretdl_noise.layers import AuxiliaryNetwork, CoNALNetwork, NoiseAdaptationLayer, conal_loss

B, J, K, X, W = 3, 2, 3, 4, 5


def _arr(shape, k):
    """Deterministic, numpy-version-independent fixture values."""
    n = int(np.prod(shape))
    return (np.sin(np.arange(n) * k + 0.3) * 0.8).reshape(shape).astype(np.float32)


# Computed with peerannot 0.0.1.post43 (torch 2.13.0) AuxiliaryNetwork / NoiseAdaptationLayer, the same weights,
# nn.CrossEntropyLoss(ignore_index=-1, reduction="mean") and `loss -= scale * torch.linalg.norm(L_j - G)`.
PEERANNOT_W = [[0.4116412103176117, 0.38738200068473816], [0.31960639357566833, 0.3353714048862457],
               [0.5714532136917114, 0.5839661955833435]]
PEERANNOT_H = [[[0.4874880015850067, 1.2955609560012817, 1.545361042022705],
                [0.526295006275177, 1.37260103225708, 1.547739028930664]],
               [[1.0425809621810913, 0.24581199884414673, -0.8151749968528748],
                [0.9542980194091797, 0.09672500193119049, -0.8051869869232178]],
               [[-1.5857720375061035, -1.5401129722595215, -0.6985899806022644],
                [-1.551077961921692, -1.5006070137023926, -0.7133409976959229]]]
PEERANNOT_H_SOFTMAX = [[[0.48377498984336853, 0.7341150045394897, 0.8133640289306641],
                        [0.4833090007305145, 0.7635160088539124, 0.8289009928703308]],
                       [[1.0490169525146484, 0.7368490099906921, 0.43062999844551086],
                        [0.9843850135803223, 0.7048919796943665, 0.4795989990234375]],
                       [[0.5561959743499756, 0.6388620138168335, 0.9211969971656799],
                        [0.538532018661499, 0.6653559803962708, 0.953702986240387]]]
PEERANNOT_LOSS = 1.0662427  # scale = 0.1


def _fixture_layers():
    aux, nal = AuxiliaryNetwork(X, J, W), NoiseAdaptationLayer(K, J)
    # paddle Linear weights are (in, out): the transpose of torch's
    aux.weight_v1.weight.set_value(_arr((128, X), 0.37).T)
    aux.weight_v1.bias.set_value(_arr((128,), 0.53))
    aux.weight_v2.weight.set_value(_arr((W, 128), 0.29).T)
    aux.weight_v2.bias.set_value(_arr((W,), 0.61))
    aux.weight_u.weight.set_value(_arr((W, J), 0.83).T)
    aux.weight_u.bias.set_value(_arr((W,), 0.47))
    nal.global_confusion_matrix.set_value(2 * np.eye(K, dtype=np.float32) + _arr((K, K), 0.9) * 0.5)
    nal.local_confusion_matrices.set_value(2 * np.eye(K, dtype=np.float32)[None] + _arr((J, K, K), 1.3) * 0.5)
    return aux, nal


def test_layers_match_peerannot():
    aux, nal = _fixture_layers()
    x, f = paddle.to_tensor(_arr((B, X), 1.1)), paddle.to_tensor(_arr((B, K), 0.7))
    w = aux(x, paddle.eye(J))
    np.testing.assert_allclose(w.numpy(), PEERANNOT_W, atol=1e-6)
    h = nal(f, w)
    assert h.shape == [B, J, K]
    np.testing.assert_allclose(h.numpy(), PEERANNOT_H, atol=1e-5)
    np.testing.assert_allclose(nal(paddle.nn.functional.softmax(f), w).numpy(), PEERANNOT_H_SOFTMAX, atol=1e-5)
    labels = np.array([[0, -1], [-1, -1], [2, 1]])
    loss = conal_loss(h, labels, nal.global_confusion_matrix, nal.local_confusion_matrices, scale=0.1)
    np.testing.assert_allclose(float(loss), PEERANNOT_LOSS, atol=1e-5)


def test_regulariser_is_subtracted_and_masking():
    _, nal = _fixture_layers()
    h = paddle.to_tensor(np.array(PEERANNOT_H, dtype=np.float32))
    labels = np.array([[0, -1], [-1, -1], [2, 1]])
    g, loc = nal.global_confusion_matrix, nal.local_confusion_matrices
    plain = float(conal_loss(h, labels, g, loc, scale=0.0))
    gaps = np.linalg.norm((loc.numpy() - g.numpy()[None]).reshape(J, -1), axis=1).sum()
    np.testing.assert_allclose(float(conal_loss(h, labels, g, loc, scale=0.1)), plain - 0.1 * gaps, rtol=1e-6)
    # cross-entropy is the mean over the 3 given annotations only
    logp = h.numpy() - np.log(np.exp(h.numpy()).sum(-1, keepdims=True))
    np.testing.assert_allclose(plain, -(logp[0, 0, 0] + logp[2, 0, 2] + logp[2, 1, 1]) / 3, rtol=1e-6)
    # a batch without annotations contributes 0, and at init (pi_j == pi_g) gradients stay finite
    fresh = NoiseAdaptationLayer(K, J)
    np.testing.assert_array_equal(fresh.global_confusion_matrix.numpy(), 2 * np.eye(K))
    np.testing.assert_array_equal(fresh.local_confusion_matrices.numpy(), np.repeat(2 * np.eye(K)[None], J, 0))
    out = fresh(paddle.rand([B, K]), paddle.rand([B, J]))
    loss = conal_loss(out, np.full((B, J), -1), fresh.global_confusion_matrix, fresh.local_confusion_matrices)
    assert float(loss) == 0.0
    loss = conal_loss(out, np.zeros((B, J), dtype=np.int64), fresh.global_confusion_matrix,
                      fresh.local_confusion_matrices)
    loss.backward()
    assert np.isfinite(fresh.local_confusion_matrices.grad.numpy()).all()
    with pytest.raises(ValueError, match="labels must have shape"):
        conal_loss(out, np.zeros((B, J + 1)), fresh.global_confusion_matrix, fresh.local_confusion_matrices)


def test_network_modes_and_validation():
    net = CoNALNetwork(make_mlp(), 10, 4, 64)
    x = paddle.rand([5, 64])
    crowd, clean = net(x)  # training mode: crowd predictions too
    assert crowd.shape == [5, 4, 10] and clean.shape == [5, 10]
    net.eval()
    assert net(x).shape == [5, 10]
    assert len(net(x, return_crowd=True)) == 2
    omega = net.common_weights(x).numpy()
    assert omega.shape == (5, 4) and ((omega > 0) & (omega < 1)).all()
    g, loc = net.noise_adaptation_layer.transition_matrices()
    np.testing.assert_allclose(g.sum(1), 1.0, rtol=1e-6)
    assert loc.shape == (4, 10, 10)
    assert not any(k.startswith("annotator_features") for k in net.state_dict())
    with pytest.raises(ValueError, match="confusion_input"):
        CoNALNetwork(make_mlp(), 10, 4, 64, confusion_input="probs")
    with pytest.raises(ValueError, match="annotator_features"):
        CoNALNetwork(make_mlp(), 10, 4, 64, annotator_features=np.eye(3))
    with pytest.raises(ValueError, match="n_workers"):
        NoiseAdaptationLayer(3, 0)


def test_expected_calibration_error_matches_torchmetrics():
    rng = np.random.default_rng(0)
    p = np.exp(rng.normal(size=(500, 10)) * 2)
    p /= p.sum(1, keepdims=True)
    y = np.where(rng.random(500) < 0.6, p.argmax(1), rng.integers(0, 10, 500))
    # torchmetrics 1.x CalibrationError(task="multiclass", n_bins=15, norm="l1") on the same arrays
    assert abs(expected_calibration_error(p, y) - 0.18313269317150116) < 1e-6


# ------------------------------------------------------------------------------------------------ trainer
@pytest.fixture(scope="module")
def crowd_digits():
    x, y = load_digits_arrays()
    rng = np.random.default_rng(0)
    order = rng.permutation(len(y))
    tr, va, te = order[:700], order[700:1000], order[1000:1400]
    sim = simulate_crowd(y[tr], 10, seed=0)
    return x, y, tr, va, te, sim


def _trainer(crowd_digits, out, **kw):
    x, y, tr, va, te, sim = crowd_digits
    opts = {"lr": 1e-2, "batch_size": 64, "seed": 0, "verbose": False, "output_dir": out,
            "train_dataset": ArrayDataset(x[tr], np.arange(len(tr))), "val_dataset": ArrayDataset(x[va], y[va]),
            "test_dataset": ArrayDataset(x[te], y[te])}
    opts.update(kw)
    n_epochs = opts.pop("n_epochs", 2)
    return CoNAL(None, sim.answers, make_mlp(n_hidden=64), 10, "adam", n_epochs, **opts)


def test_conal_learns_the_common_confusion(crowd_digits, tmp_path):
    x, y, tr, _, te, sim = crowd_digits
    trainer = _trainer(crowd_digits, tmp_path, n_epochs=25)  # (make_mlp seeds paddle itself)
    paddle.seed(123)
    expected_next = paddle.rand([3]).numpy()
    paddle.seed(123)
    results = trainer.run()
    np.testing.assert_array_equal(paddle.rand([3]).numpy(), expected_next)  # caller's generator restored
    saved = json.loads((tmp_path / "results" / "conal.json").read_text())
    for key in ("train_loss", "val_loss", "val_accuracy", "test_loss", "test_accuracy", "test_ece",
                "test_micro_top2", "test_macro_top5"):
        assert key in saved
    assert len(saved["val_loss"]) == 25 and saved["best_epoch"] == int(np.argmin(saved["val_loss"]))
    mv = majority_vote(sim.labels, 10)
    assert (mv == y[tr]).mean() < 0.75  # the crowd is hard for majority vote ...
    assert results["test_accuracy"] > 85.0  # ... CoNAL still learns the digits
    g, _ = trainer.transition_matrices()
    tv = 0.5 * np.abs(g - sim.common_confusion).sum(1).mean()
    tv_identity = 0.5 * np.abs(np.eye(10) - sim.common_confusion).sum(1).mean()
    assert tv < 0.6 * tv_identity  # the global matrix moved well towards the shared confusion (0.29 vs 0.60)
    # the saved best model loads into a fresh network and reproduces the test accuracy
    net = CoNALNetwork(make_mlp(n_hidden=64), 10, 30, 64)
    net.set_state_dict(paddle.load(str(tmp_path / "best_models" / "conal.pdparams")))
    net.eval()
    pred = net(paddle.to_tensor(x[te])).numpy().argmax(1)
    assert abs(100 * (pred == y[te]).mean() - results["test_accuracy"]) < 1e-6


def test_conal_reads_a_peerannot_folder(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "toy"
    truth = np.array([0, 1, 0, 1, 0, 1])
    images = np.where(truth[:, None, None] == 1, 200, 30) + rng.integers(0, 20, (6, 8, 8))
    save_image_folder(root / "train", images.astype(np.uint8), truth, task_ids=np.arange(6))
    save_image_folder(root / "val", images[:4].astype(np.uint8), truth[:4])
    save_image_folder(root / "test", images[2:].astype(np.uint8), truth[2:])
    write_metadata(root / "metadata.json", name="toy", n_classes=2, n_workers=3)
    save_answers({t: {0: int(truth[t]), 2: int(1 - truth[t])} for t in range(5)}, root / "answers.json")
    model = paddle.nn.Sequential(paddle.nn.Flatten(), paddle.nn.Linear(64, 2))
    with pytest.warns(UserWarning, match="1 of 6 train tasks have no answer"):
        trainer = CoNAL(root, None, model, 2, "sgd", 2, verbose=False, image_mode="L", lr=0.05,
                        scheduler="multistep", milestones=[1]).setup()
    assert trainer.n_workers == 3 and trainer.label_matrix.shape == (5, 3)
    results = trainer.run()
    assert set(results) >= {"train_loss", "val_loss", "val_accuracy", "test_loss", "test_accuracy", "test_ece"}
    assert "test_micro_top2" not in results  # only for C >= 8, as peerannot
    assert (root / "results" / "conal.json").is_file() and (root / "best_models" / "conal.pdparams").is_file()
    assert sorted(p.name for p in (root / "best_models").iterdir()) == ["conal.pdparams"]  # no temp files left

    # bad answers give clear errors
    save_answers({0: {0: 5}}, root / "bad.json")
    with pytest.raises(ValueError, match="outside \\[0, 2\\)"):
        CoNAL(root, root / "bad.json", model, 2, "sgd", 1, verbose=False).setup()
    save_answers({99: {0: 1}}, root / "bad.json")
    with pytest.raises(ValueError, match="not in the train set"):
        CoNAL(root, root / "bad.json", model, 2, "sgd", 1, verbose=False).setup()
    (root / "bad.json").write_text("{\"0\": {")
    with pytest.raises(ValueError, match="not valid JSON"):
        CoNAL(root, root / "bad.json", model, 2, "sgd", 1, verbose=False).setup()
    with pytest.raises(ValueError, match="n_workers=3"):
        CoNAL(root, {0: {7: 1}}, model, 2, "sgd", 1, verbose=False).setup()
    with pytest.raises(ValueError, match="says n_classes=2"):
        CoNAL(root, None, model, 3, "sgd", 1, verbose=False).setup()


def test_trainer_argument_errors(crowd_digits, tmp_path):
    with pytest.raises(ValueError, match="output_dir"):
        _trainer(crowd_digits, None).setup()
    with pytest.raises(ValueError, match="optimizer"):
        CoNAL(None, {0: {0: 1}}, make_mlp(), 10, "rmsprop", 1)
    with pytest.raises(ValueError, match="unknown keyword"):
        CoNAL(None, {0: {0: 1}}, make_mlp(), 10, "adam", 1, batchsize=3)
    x, y, tr, va, te, sim = crowd_digits
    with pytest.raises(ValueError, match="paddle.vision.models name"):
        CoNAL(None, sim.answers, "resnet9000", 10, "adam", 1, verbose=False, output_dir=tmp_path,
              train_dataset=ArrayDataset(x[tr], np.arange(len(tr))), val_dataset=ArrayDataset(x[va], y[va]),
              test_dataset=ArrayDataset(x[te], y[te])).setup()
    with pytest.raises(ValueError, match="plain file name"):
        CoNAL(None, {0: {0: 1}}, make_mlp(), 10, "adam", 1, output_name="../x")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        CoNAL(None, {0: {0: 1}}, make_mlp(), 10, "adam", 1, data_augmentation=False)
    assert any("no effect" in str(w.message) for w in caught)


def test_train_classifier_baseline(crowd_digits, tmp_path):
    x, y, tr, va, te, sim = crowd_digits
    mv = majority_vote(sim.labels, 10)
    model = make_mlp(n_hidden=64)
    results = train_classifier(model, ArrayDataset(x[tr], mv), ArrayDataset(x[va], y[va]), ArrayDataset(x[te], y[te]),
                               n_classes=10, n_epochs=3, lr=1e-2, output_dir=tmp_path, output_name="mv")
    assert len(results["train_loss"]) == 3 and 0 <= results["test_ece"] <= 1
    assert json.loads((tmp_path / "results" / "mv.json").read_text())["test_accuracy"] == results["test_accuracy"]
    assert results["test_accuracy"] > 50.0
    assert model.training  # mode left as the caller had it


def test_tutorial_notebook_runs():
    path = Path(REPO) / "tutorials" / "conal_crowd_labels.ipynb"
    nb = run_notebook(path, timeout=300, INTERPRETDL_NOISE_QUICK=1)
    assert any(o.get("output_type") == "display_data" for c in nb.cells for o in c.get("outputs", []))
