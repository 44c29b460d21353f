"""TrainingDynamics (hand-written loop) and RecordTrainingDynamics (paddle.Model.fit) on tiny models."""
import warnings

import numpy as np
import paddle
import pytest
from conftest import make_mlp
from paddle.static import InputSpec

from interpretdl_noise import (ArrayDataset, DatasetWithIndex, DynamicsRecorder, TrainingDynamics,
                               inject_label_noise, load_training_dynamics)
from interpretdl_noise.callbacks import RecordTrainingDynamics


def _loader(x, y, batch_size, shuffle):
    ds = DatasetWithIndex(ArrayDataset(x, y), index_first=True)
    return paddle.io.DataLoader(ds, batch_size=batch_size, shuffle=shuffle)


@pytest.mark.parametrize("shuffle", [False, True])
def test_every_sample_recorded_every_epoch_including_last_batch(tiny, shuffle):
    x, y = tiny
    net = make_mlp(6, 8, 3)
    opt = paddle.optimizer.SGD(0.1, parameters=net.parameters())
    rec = TrainingDynamics(net).generator(_loader(x, y, 32, shuffle), opt, 4, progress=False)  # 70 = 32+32+6
    assert rec.seen.all()
    assert not np.isnan(rec.probs).any()
    np.testing.assert_allclose(rec.probs.astype(np.float32).sum(-1), 1.0, atol=2e-3)
    np.testing.assert_array_equal(rec.targets, y)


def test_callable_loader_like_interpretdl(tiny):
    x, y = tiny

    def reader():  # InterpretDL passes a callable that yields (indices, x, y) numpy batches
        for start in range(0, 70, 25):
            sl = slice(start, start + 25)
            yield np.arange(70)[sl], x[sl], y[sl]

    net = make_mlp(6, 8, 3)
    rec = TrainingDynamics(net).generator(reader, paddle.optimizer.SGD(0.1, parameters=net.parameters()), 2,
                                          n_samples=70, progress=False)
    assert rec.seen.all()


def test_losses_logits_and_train_mode_probabilities_agree(tiny):
    x, y = tiny
    net = make_mlp(6, 8, 3)
    opt = paddle.optimizer.SGD(0.1, parameters=net.parameters())
    rec = TrainingDynamics(net).generator(_loader(x, y, 16, True), opt, 3, keep_logits=True, keep_losses=True,
                                          progress=False)
    logits = rec.logits.astype(np.float64)
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    np.testing.assert_allclose(rec.probs.astype(np.float64), probs, atol=1e-3)  # same logits as the SGD step
    ce = -np.log(np.take_along_axis(probs, y[:, None, None].repeat(3, 1), axis=2)[..., 0])
    np.testing.assert_allclose(rec.losses, ce, rtol=1e-4, atol=1e-5)


def test_eval_mode_recording_and_mode_restored(tiny):
    x, y = tiny
    paddle.seed(0)
    net = paddle.nn.Sequential(paddle.nn.Linear(6, 16), paddle.nn.Dropout(0.5), paddle.nn.Linear(16, 3))
    net.eval()
    opt = paddle.optimizer.SGD(0.1, parameters=net.parameters())
    rec = TrainingDynamics(net).generator(_loader(x, y, 32, True), opt, 2, record="eval", progress=False)
    assert not net.training  # the caller's mode is restored
    with paddle.no_grad():
        final = paddle.nn.functional.softmax(net(paddle.to_tensor(x)), -1).numpy()
    np.testing.assert_allclose(rec.probs[:, -1].astype(np.float32), final, atol=2e-3)


def test_custom_loss_and_scheduler_are_used(tiny):
    x, y = tiny
    net = make_mlp(6, 8, 3)
    sched = paddle.optimizer.lr.StepDecay(learning_rate=0.1, step_size=1, gamma=0.5)
    opt = paddle.optimizer.SGD(sched, parameters=net.parameters())
    calls = []

    def loss_fn(logits, labels):
        calls.append(int(labels.shape[0]))
        return paddle.nn.functional.cross_entropy(logits, labels, reduction="mean")  # a scalar is fine too

    rec = TrainingDynamics(net).generator(_loader(x, y, 32, False), opt, 3, loss_fn=loss_fn, keep_losses=True,
                                          progress=False)
    assert sum(calls) == 3 * 70
    assert opt.get_lr() == pytest.approx(0.1 * 0.5 ** 3)  # stepped once per epoch without being passed
    assert not np.isnan(rec.losses).any()  # per-sample CE recorded although loss_fn returned a scalar


def test_bad_input_errors(tiny):
    x, y = tiny
    net = make_mlp(6, 8, 3)
    td = TrainingDynamics(net)
    opt = paddle.optimizer.SGD(0.1, parameters=net.parameters())
    with pytest.raises(ValueError, match="record must be one of"):
        td.generator(_loader(x, y, 32, False), opt, 1, record="test")
    with pytest.raises(ValueError, match="n_samples is required"):
        td.generator(lambda: iter(()), opt, 1)
    with pytest.raises(ValueError, match=r"sample ids must lie in \[0, 10\)"):
        td.generator(_loader(x, y, 32, False), opt, 1, n_samples=10, progress=False)
    with pytest.raises(ValueError, match="device"):
        TrainingDynamics(net, device="tpu")


def test_gpu_request_falls_back_to_cpu_with_warning(tiny):
    if paddle.is_compiled_with_cuda():
        pytest.skip("a CUDA build is installed")
    with pytest.warns(UserWarning, match="using 'cpu'"):
        td = TrainingDynamics(make_mlp(6, 8, 3), device="gpu:0")
    assert td.device == "cpu"


def test_save_writes_only_where_asked(tiny, tmp_path):
    x, y = tiny
    net = make_mlp(6, 8, 3)
    td = TrainingDynamics(net)
    rec = td.generator(_loader(x, y, 32, True), paddle.optimizer.SGD(0.1, parameters=net.parameters()), 2,
                       keep_logits=True, progress=False)
    with pytest.raises(ValueError, match="save_path is required"):
        td.save(rec)
    flips = np.zeros(70, bool)
    flips[:5] = True
    assert td.save(rec, label_flip=flips, save_path=tmp_path) is td
    assert td.save_path_ == tmp_path / "training_dynamics.npz"
    loaded = load_training_dynamics(td.save_path_)
    assert loaded["td"].shape == (70, 2, 3) and loaded["logits"].shape == (70, 2, 3)
    np.testing.assert_array_equal(loaded["labels"][:, 0], y)
    np.testing.assert_array_equal(loaded["label_flip"], flips)


def test_hapi_recording_matches_loop_recording(tiny):
    x, y = tiny
    epochs, bs = 3, 16

    net_loop = make_mlp(6, 8, 3, seed=1)
    rec_loop = TrainingDynamics(net_loop).generator(
        _loader(x, y, bs, False), paddle.optimizer.SGD(0.1, parameters=net_loop.parameters()), epochs,
        keep_losses=True, progress=False)

    net_fit = make_mlp(6, 8, 3, seed=1)
    cb = RecordTrainingDynamics(len(y), keep_losses=True)
    model = paddle.Model(net_fit, inputs=[InputSpec([None, 6], "float32", "x")],
                         labels=[InputSpec([None, 1], "int64", "y"), InputSpec([None, 1], "int64", "index")])
    model.prepare(paddle.optimizer.SGD(0.1, parameters=net_fit.parameters()),
                  loss=cb.wrap_loss(paddle.nn.CrossEntropyLoss()), metrics=[cb.metric])
    ds = DatasetWithIndex(ArrayDataset(x, y))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(ds, eval_data=ds, epochs=epochs, batch_size=bs, shuffle=False, verbose=0, callbacks=[cb])
    rec_fit = cb.recorder
    assert rec_fit.seen.all()  # eval batches of fit(eval_data=...) are not recorded as training epochs
    np.testing.assert_allclose(rec_fit.probs.astype(np.float32), rec_loop.probs.astype(np.float32), atol=2e-3)
    np.testing.assert_allclose(rec_fit.losses, rec_loop.losses, rtol=1e-3, atol=1e-4)
    np.testing.assert_array_equal(rec_fit.targets, rec_loop.targets)


# ---------------------------------------------------------------- one recording loop
def _corpus_run_by_hand(spec):
    """The detector corpus's former hand-written loop (which recorded the shipped weights' corpus)."""
    import dataclasses

    from interpretdl_noise.common.device import device_scope
    from interpretdl_noise.common.seeding import paddle_seed
    from interpretdl_noise.detector_training.corpus import _optimizer
    from interpretdl_noise.detector_training.sources import build_model, load_source
    from interpretdl_noise.recording import DynamicsRecorder, transform_dynamics

    source = load_source(spec.source, seed=spec.seed)
    if spec.n_samples is not None and spec.n_samples < source.x.shape[0]:
        keep = np.sort(np.random.default_rng([spec.seed, 1]).choice(source.x.shape[0], spec.n_samples, replace=False))
        source = dataclasses.replace(source, x=source.x[keep], y=source.y[keep])
    noisy, _ = inject_label_noise(source.y, spec.rate, kind=spec.noise, n_classes=source.n_classes, seed=spec.seed)
    n = source.x.shape[0]
    rng = np.random.default_rng(spec.seed)
    recorder = DynamicsRecorder(n, spec.epochs, source.n_classes)
    with device_scope("cpu"), paddle_seed(spec.seed):
        net = build_model(spec.model, source, width=spec.width, depth=spec.depth)
        optimizer, scheduler = _optimizer(spec, net, int(np.ceil(n / spec.batch_size)))
        x_all, y_all = paddle.to_tensor(source.x), paddle.to_tensor(noisy)
        net.train()
        for epoch in range(spec.epochs):
            order = rng.permutation(n)
            for start in range(0, n, spec.batch_size):
                ids = order[start:start + spec.batch_size]
                idx = paddle.to_tensor(ids)
                logits = net(paddle.gather(x_all, idx))
                loss = paddle.nn.functional.cross_entropy(logits, paddle.gather(y_all, idx).reshape([-1, 1]))
                loss.backward()
                optimizer.step()
                optimizer.clear_grad()
                if scheduler is not None:
                    scheduler.step()
                recorder.update(epoch, ids, paddle.nn.functional.softmax(logits.detach(), axis=-1).numpy())
    return transform_dynamics(recorder.probs, noisy)


@pytest.mark.parametrize("settings", [
    dict(source="wine", model="mlp", optimizer="sgd", schedule="step", lr=0.03, weight_decay=5e-4),
    dict(source="iris", model="mlp", optimizer="adam", schedule="cosine", lr=3e-3),
    dict(source="digits", model="cnn", optimizer="sgd", schedule="constant", lr=0.01, n_samples=300, epochs=3),
])
def test_corpus_records_through_the_generator_with_the_same_curves(settings):
    from interpretdl_noise.detector_training.corpus import RunSpec, record_run

    spec = RunSpec(**{"noise": "uniform", "rate": 0.2, "epochs": 6, "seed": 5, "batch_size": 32, **settings})
    td, labels = _corpus_run_by_hand(spec)
    rec = record_run(spec)
    np.testing.assert_array_equal(rec["td"], td)  # bit for bit: the shipped weights' corpus is unchanged
    np.testing.assert_array_equal(rec["labels"], labels)


def test_hapi_nonfinite_stop_ends_fit_and_keeps_completed_epochs(tiny, tmp_path):
    x, y = tiny
    net = paddle.nn.Linear(6, 3)

    class Diverge(paddle.callbacks.Callback):  # the weights blow up at the start of epoch 1
        def on_epoch_begin(self, epoch, logs=None):
            self.epochs_begun = epoch + 1
            if epoch == 1:
                net.weight.set_value(np.full(net.weight.shape, np.nan, dtype=np.float32))

    cb = RecordTrainingDynamics(len(y), on_nonfinite="stop", directory=tmp_path / "rec")
    diverge = Diverge()
    model = paddle.Model(net, inputs=[InputSpec([None, 6], "float32", "x")],
                         labels=[InputSpec([None, 1], "int64", "y"), InputSpec([None, 1], "int64", "index")])
    model.prepare(paddle.optimizer.SGD(0.1, parameters=net.parameters()),
                  loss=cb.wrap_loss(paddle.nn.CrossEntropyLoss()), metrics=[cb.metric])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(DatasetWithIndex(ArrayDataset(x, y)), epochs=4, batch_size=16, verbose=0, callbacks=[diverge, cb])
    assert any("recording stopped" in str(w.message) for w in caught)
    assert diverge.epochs_begun == 2  # fit stopped after the diverged epoch
    assert cb.stopped_.epoch == 1 and cb.recorder.completed_epochs == 1
    kept = DynamicsRecorder.open(tmp_path / "rec")  # on disk: epoch 0 only, never the NaN epoch as a gap
    assert kept.completed_epochs == 1 and kept.seen[:, 0].all() and not kept.seen[:, 1].any()
