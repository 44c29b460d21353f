"""Persistent, resumable recording; never silently wrong (non-finite values, unseen epochs, busy folders)."""
import json
import subprocess
import sys
import warnings

import numpy as np
import paddle
import pytest
from conftest import REPO, make_mlp

from interpretdl_noise import (ArrayDataset, DatasetWithIndex, DynamicsRecorder, TrainingDynamics,
                               load_training_dynamics, transform_dynamics)
from interpretdl_noise.recording import NonFiniteDynamicsError, RecorderInUseError
from interpretdl_noise.recording.distributed import latest_copy_wins
from interpretdl_noise.recording.transform import check_coverage, transform_recorder


def _loader(x, y, batch_size=16):
    return paddle.io.DataLoader(DatasetWithIndex(ArrayDataset(x, y), index_first=True), batch_size=batch_size)


def _filled(n=20, e=4, c=3, directory=None, end=True, seed=0, **kw):
    rng = np.random.default_rng(seed)
    rec = DynamicsRecorder(n, e, c, directory=directory, **kw)
    probs = rng.dirichlet(np.ones(c), size=(n, e)).astype(np.float32)
    for epoch in range(e):
        if end:
            rec.begin_epoch(epoch)
        ids = rng.permutation(n)
        rec.update(epoch, ids, probs[ids, epoch], targets=ids % c)
        if end:
            rec.end_epoch(epoch)
    return rec, probs


# ---------------------------------------------------------------- the folder
def test_folder_holds_everything_and_reopens(tmp_path):
    rec, probs = _filled(directory=tmp_path / "rec", keep_losses=False)
    rec.close()
    names = {p.name for p in (tmp_path / "rec").iterdir()}
    assert {"recording.json", "probs.npy", "seen.npy", "targets.npy", "class_sums.npy"} <= names
    info = json.loads((tmp_path / "rec" / "recording.json").read_text())
    assert info["format_version"] == 1 and info["completed_epochs"] == 4 and info["n_classes"] == 3
    again = DynamicsRecorder.open(tmp_path / "rec")
    assert again.completed_epochs == 4
    np.testing.assert_array_equal(again.probs, probs.astype(np.float16))
    np.testing.assert_array_equal(again.targets, np.arange(20) % 3)
    with pytest.raises(ValueError, match="read-only"):
        again.update(0, [0], probs[:1, 0])


def test_fast_transform_equals_full_mean_path():
    managed, _ = _filled(n=600, e=7, c=5)
    legacy, _ = _filled(n=600, e=7, c=5, end=False)  # same values, never ended: no running sums
    assert managed.running_means() is not None and legacy.running_means() is None
    td_a, lab_a, _, _ = transform_recorder(managed)
    td_b, lab_b, _, _ = transform_recorder(legacy)
    np.testing.assert_array_equal(td_a, td_b)
    np.testing.assert_array_equal(lab_a, lab_b)  # running float32 sums rank exactly as the float16 mean
    # with gaps (unseen cells): the filled values are added to the running sums
    rng = np.random.default_rng(1)
    gappy = DynamicsRecorder(400, 9, 4)
    probs = rng.dirichlet(np.ones(4), size=(400, 9))
    for epoch in range(9):
        gappy.begin_epoch(epoch)
        ids = np.flatnonzero(rng.random(400) > 0.1)
        gappy.update(epoch, ids, probs[ids, epoch], targets=ids % 4)
        gappy.end_epoch(epoch)
    assert not gappy.seen.all(axis=1).all()
    td_g, lab_g, _, _ = transform_recorder(gappy)
    with_nan = np.where(gappy.seen[..., None], gappy.probs, np.nan)
    td_ref, lab_ref = transform_dynamics(with_nan, np.arange(400) % 4)  # the float16-mean path
    np.testing.assert_array_equal(td_g[:, :, 0], td_ref[:, :, 0])
    same = (lab_g == lab_ref).all(axis=1)
    assert same.mean() > 0.99  # only exact near-ties may rank differently
    np.testing.assert_array_equal(td_g[same], td_ref[same])


def test_second_recorder_on_a_live_folder_is_refused_and_changes_nothing(tmp_path):
    rec, probs = _filled(directory=tmp_path / "rec")
    before = np.array(rec.probs)
    with pytest.raises(RecorderInUseError, match="in use by another live recorder"):
        DynamicsRecorder(20, 4, 3, directory=tmp_path / "rec", overwrite=True)
    with pytest.raises(RecorderInUseError):
        DynamicsRecorder.open(tmp_path / "rec", mode="r+")
    code = ("import sys\nfrom interpretdl_noise import DynamicsRecorder\n"
            "reader = DynamicsRecorder.open(sys.argv[1])\n"
            "print('completed', reader.completed_epochs, float(reader.probs[0, 3, 0]))\n"
            "try:\n    DynamicsRecorder(20, 4, 3, directory=sys.argv[1], overwrite=True)\n"
            "except Exception as exc:\n    print(type(exc).__name__, exc)\n")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "rec")], capture_output=True, text=True,
                         timeout=120, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0 and "RecorderInUseError" in out.stdout, out.stderr[-2000:]
    assert f"completed 4 {float(before[0, 3, 0])}" in out.stdout  # another process reads the live recording
    np.testing.assert_array_equal(rec.probs, before)  # still mapped and unchanged: no SIGBUS, no corruption
    rec.close()
    assert DynamicsRecorder.open(tmp_path / "rec").completed_epochs == 4
    with pytest.raises(FileExistsError, match="already holds a recording"):
        DynamicsRecorder(20, 4, 3, directory=tmp_path / "rec")


def test_stale_running_sums_are_rebuilt_on_reopen(tmp_path):
    rec, _ = _filled(directory=tmp_path / "rec")
    sums = np.array(rec.class_sums)
    rec.close()
    meta = tmp_path / "rec" / "recording.json"
    info = json.loads(meta.read_text())
    info["sums_epochs"] = None  # as if killed while adding the last epoch to the sums
    meta.write_text(json.dumps(info))
    np.asarray(np.load(tmp_path / "rec" / "class_sums.npy", mmap_mode="r+"))[:] += 5.0
    assert DynamicsRecorder.open(tmp_path / "rec").running_means() is None  # read-only: not trusted
    again = DynamicsRecorder.open(tmp_path / "rec", mode="r+")
    np.testing.assert_array_equal(again.class_sums, sums)


# ---------------------------------------------------------------- resume (the README pattern)
class CrashingLoader:
    """Yields (ids, x, y) in a fixed order; raises in ``crash_epoch`` after one batch (a simulated crash)."""

    def __init__(self, x, y, batch_size, crash_epoch=None):
        self.x, self.y, self.bs, self.crash_epoch, self.epoch = x, y, batch_size, crash_epoch, 0
        self.dataset = y

    def __iter__(self):
        epoch, self.epoch = self.epoch, self.epoch + 1
        order = np.random.default_rng(epoch).permutation(len(self.y))
        for k, start in enumerate(range(0, len(order), self.bs)):
            if epoch == self.crash_epoch and k == 1:
                raise RuntimeError("simulated crash")
            ids = order[start:start + self.bs]
            yield ids, self.x[ids], self.y[ids]


def _train(tiny, directory, loader, **kw):
    with paddle.utils.unique_name.guard():  # parameter / accumulator names as in a fresh process
        return _train_in_fresh_names(tiny, directory, loader, **kw)


def _train_in_fresh_names(tiny, directory, loader, *, resume=False, checkpoint=None, restore=None, epochs=4):
    net = make_mlp(6, 8, 3, seed=1)
    sched = paddle.optimizer.lr.StepDecay(0.2, step_size=1, gamma=0.8)
    opt = paddle.optimizer.Momentum(sched, momentum=0.9, parameters=net.parameters())
    if restore is not None:  # the user's own checkpoint
        net.set_state_dict(paddle.load(str(restore / "model.pdparams")))
        opt.set_state_dict(paddle.load(str(restore / "opt.pdopt")))

    def save_checkpoint(epoch):
        paddle.save(net.state_dict(), str(checkpoint / "model.pdparams"))
        paddle.save(opt.state_dict(), str(checkpoint / "opt.pdopt"))

    return TrainingDynamics(net).generator(loader, opt, epochs, directory=directory, resume=resume,
                                           keep_losses=True, on_epoch_end=save_checkpoint if checkpoint else None,
                                           progress=False)


def test_crash_then_resume_equals_an_uninterrupted_run(tiny, tmp_path):
    x, y = tiny
    whole = _train(tiny, tmp_path / "whole", CrashingLoader(x, y, 16))
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    with pytest.raises(RuntimeError, match="simulated crash"):
        _train(tiny, tmp_path / "run", CrashingLoader(x, y, 16, crash_epoch=2), checkpoint=ckpt)
    assert DynamicsRecorder.open(tmp_path / "run").completed_epochs == 2  # the cut-short epoch 2 is not kept
    loader = CrashingLoader(x, y, 16)
    loader.epoch = 2  # the user's loader continues where the run stopped
    resumed = _train(tiny, tmp_path / "run", loader, resume=True, restore=ckpt, checkpoint=ckpt)
    assert resumed.completed_epochs == 4 and resumed.seen.all()
    np.testing.assert_array_equal(resumed.probs, whole.probs)
    np.testing.assert_array_equal(resumed.losses, whole.losses)
    np.testing.assert_array_equal(resumed.class_sums, whole.class_sums)


def test_resume_refuses_other_shapes_and_plain_reuse(tiny, tmp_path):
    x, y = tiny
    with pytest.raises(RuntimeError, match="simulated crash"):
        _train(tiny, tmp_path / "rec", CrashingLoader(x, y, 16, crash_epoch=1), epochs=3)
    with pytest.raises(FileExistsError, match="resume=True"):
        _train(tiny, tmp_path / "rec", CrashingLoader(x, y, 16), epochs=3)
    with pytest.raises(ValueError, match="E=3"):
        _train(tiny, tmp_path / "rec", CrashingLoader(x, y, 16), epochs=5, resume=True)
    net = make_mlp(6, 8, 4)  # C=4 against a C=3 recording
    opt = paddle.optimizer.SGD(0.1, parameters=net.parameters())
    with pytest.raises(ValueError, match="C=3"):
        TrainingDynamics(net).generator(CrashingLoader(x, y, 16), opt, 3, directory=tmp_path / "rec", resume=True,
                                        progress=False)
    assert DynamicsRecorder.open(tmp_path / "rec").completed_epochs == 1  # none of the refused runs changed it
    with pytest.raises(ValueError, match="needs directory"):
        _train(tiny, None, CrashingLoader(x, y, 16), resume=True)


# ---------------------------------------------------------------- never silently wrong
class NaNLoader(CrashingLoader):
    """Inputs turn NaN from ``nan_epoch`` on (a diverged run, as far as the recorder can tell)."""

    def __init__(self, x, y, batch_size, nan_epoch):
        super().__init__(x, y, batch_size)
        self.nan_epoch = nan_epoch

    def __iter__(self):
        epoch = self.epoch
        for ids, xb, yb in super().__iter__():
            yield ids, (xb * np.nan if epoch >= self.nan_epoch else xb), yb


def test_non_finite_raises_naming_epoch_and_count(tiny, tmp_path):
    x, y = tiny
    net = paddle.nn.Linear(6, 3)  # no ReLU: paddle's ReLU maps NaN to 0
    td = TrainingDynamics(net)
    with pytest.raises(NonFiniteDynamicsError, match=r"epoch 2: 70 of 70 sample\(s\) have non-finite") as info:
        td.generator(NaNLoader(x, y, 16, 2), paddle.optimizer.SGD(0.1, parameters=net.parameters()), 4,
                     directory=tmp_path / "rec", progress=False)
    assert info.value.epoch == 2 and info.value.count == 70
    kept = DynamicsRecorder.open(tmp_path / "rec")
    assert kept.completed_epochs == 2 and not kept.seen[:, 2:].any()  # never kept as gaps


def test_non_finite_stop_keeps_completed_epochs_and_saves_them_only(tiny, tmp_path):
    x, y = tiny
    net = paddle.nn.Linear(6, 3)
    td = TrainingDynamics(net)
    with pytest.warns(RuntimeWarning, match="recording stopped"):
        rec = td.generator(NaNLoader(x, y, 16, 3), paddle.optimizer.SGD(0.1, parameters=net.parameters()), 6,
                           on_nonfinite="stop", progress=False)
    assert rec.completed_epochs == 3 and td.stopped_.epoch == 3
    with pytest.warns(UserWarning, match="3 completed epoch"):
        td.save(rec, save_path=tmp_path)
    saved = load_training_dynamics(tmp_path / "training_dynamics.npz")
    assert saved["td"].shape == (70, 3, 3)
    assert saved["meta"]["completed_epochs"] == 3 and saved["meta"]["planned_epochs"] == 6


def test_legacy_update_with_nan_is_refused_not_interpolated():
    rec, probs = _filled(end=False)
    rec.update(1, [4], np.full((1, 3), np.nan))
    with pytest.raises(NonFiniteDynamicsError, match="epoch 1"):
        transform_recorder(rec)


def test_one_ranks_shard_is_refused_with_the_cause(tmp_path):
    rng = np.random.default_rng(0)
    rec = DynamicsRecorder(40, 3, 3)
    for epoch in range(3):
        rec.begin_epoch(epoch)
        ids = np.arange(0, 40, 2)  # one rank's half
        rec.update(epoch, ids, rng.dirichlet(np.ones(3), size=20), targets=ids % 3)
        rec.end_epoch(epoch)
    check_coverage(rec.seen)  # exactly half unseen is not "more than half"
    rec2 = DynamicsRecorder(40, 2, 3)
    for epoch in range(2):
        rec2.begin_epoch(epoch)
        ids = np.arange(0, 40, 3)  # 14 of 40 seen
        rec2.update(epoch, ids, rng.dirichlet(np.ones(3), size=ids.size), targets=ids % 3)
        rec2.end_epoch(epoch)
    with pytest.raises(ValueError, match=r"2 epoch\(s\): 0 \(65% unseen\), 1 \(65% unseen\).*rank's shard"):
        TrainingDynamics(make_mlp(6, 8, 3)).save(rec2, np.arange(40) % 3, save_path=tmp_path)
    assert not list(tmp_path.iterdir())
    with pytest.raises(ValueError, match="26 sample.*have no recorded epoch"):  # past the check: still not invented
        TrainingDynamics(make_mlp(6, 8, 3)).transform(rec2, np.arange(40) % 3, max_unseen=1.0)


def test_loader_layout_errors_point_to_index_first(tiny):
    x, y = tiny
    net = make_mlp(6, 8, 3)
    opt = paddle.optimizer.SGD(0.1, parameters=net.parameters())
    plain = paddle.io.DataLoader(ArrayDataset(x, y), batch_size=16)
    with pytest.raises(ValueError, match=r"batch of 2 items.*DatasetWithIndex\(dataset, index_first=True\)"):
        TrainingDynamics(net).generator(plain, opt, 1, progress=False)
    last = paddle.io.DataLoader(DatasetWithIndex(ArrayDataset(x, y)), batch_size=16)
    with pytest.raises(ValueError, match=r"index_first=False.*index_first=True"):
        TrainingDynamics(net).generator(last, opt, 1, progress=False)

    def reader():  # a callable in (x, y, index) order
        yield x[:16], y[:16], np.arange(16)

    with pytest.raises(ValueError, match=r"must be the sample ids.*float32 of shape \[16, 6\]"):
        TrainingDynamics(net).generator(reader, opt, 1, n_samples=70, progress=False)


def test_scheduler_can_step_per_batch(tiny):
    x, y = tiny
    net = make_mlp(6, 8, 3)
    sched = paddle.optimizer.lr.StepDecay(learning_rate=0.1, step_size=1, gamma=0.5)
    opt = paddle.optimizer.SGD(sched, parameters=net.parameters())
    TrainingDynamics(net).generator(_loader(x, y, 32), opt, 2, scheduler_step="step", progress=False)
    assert opt.get_lr() == pytest.approx(0.1 * 0.5 ** 6)  # 3 batches x 2 epochs


# ---------------------------------------------------------------- merging shards
def test_latest_step_rank_copy_wins():
    ids = np.array([5, 5, 5, 2, 7, 7])
    steps = np.array([0, 3, 3, 1, 2, 2])
    ranks = np.array([1, 0, 1, 0, 1, 1])
    keep = latest_copy_wins(ids, steps, ranks)
    assert keep.tolist() == [3, 2, 5]  # id 2; id 5 -> (3, rank 1); id 7 -> the later row of one batch


def test_merge_shard_folders_with_the_tie_rule(tmp_path):
    rng = np.random.default_rng(3)
    n, e, c = 9, 2, 3
    probs = rng.dirichlet(np.ones(c), size=(2, n, e)).astype(np.float32)  # what each rank computed
    shards = []
    for rank in range(2):
        rec = DynamicsRecorder(n, e, c, keep_steps=True, directory=tmp_path / f"rank{rank}", meta={"rank": rank})
        for epoch in range(e):
            rec.begin_epoch(epoch)
            own = np.arange(rank, n, 2)
            rec.update(epoch, own, probs[rank, own, epoch], targets=own % c, step=0)
            rec.update(epoch, [0], probs[rank, [0], epoch], targets=[0], step=1)  # padding copy
            rec.end_epoch(epoch)
        rec.close()
        shards.append(tmp_path / f"rank{rank}")
    merged = DynamicsRecorder.merge(shards[::-1], directory=tmp_path / "merged")
    assert merged.seen.all() and merged.completed_epochs == e
    # sample 0: step 1 on both ranks -> rank 1's copy wins
    np.testing.assert_array_equal(merged.probs[0], probs[1, 0].astype(np.float16))
    np.testing.assert_array_equal(merged.probs[1], probs[1, 1].astype(np.float16))
    np.testing.assert_array_equal(merged.probs[2], probs[0, 2].astype(np.float16))
    # per epoch: rank 0 rewrote its own id 0 (1), and the two ranks' copies of id 0 (1)
    assert merged.duplicates.tolist() == [2, 2]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        td, labels = TrainingDynamics(make_mlp(6, 8, 3)).transform(merged)
    assert td.shape == (n, e, c)


def test_replacing_a_closed_recording_never_breaks_its_readers(tmp_path):
    old, probs = _filled(directory=tmp_path / "rec")
    old.close()  # lock released; old.probs is still a live memory map of the folder's file
    reader = DynamicsRecorder.open(tmp_path / "rec")
    new = DynamicsRecorder(20, 4, 3, directory=tmp_path / "rec", overwrite=True)  # unlinks, never truncates
    new.begin_epoch(0)
    new.update(0, [0], np.eye(3)[:1], targets=[0])
    np.testing.assert_array_equal(old.probs, probs.astype(np.float16))  # no SIGBUS, old data intact
    np.testing.assert_array_equal(reader.probs, probs.astype(np.float16))
    new.close()
    assert DynamicsRecorder.open(tmp_path / "rec").completed_epochs == 0


def test_broken_folders_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="holds no recording"):
        DynamicsRecorder.open(tmp_path)
    rec, _ = _filled(directory=tmp_path / "rec")
    rec.close()
    (tmp_path / "rec" / "seen.npy").write_bytes(b"not an array")
    with pytest.raises(ValueError, match="seen.npy"):
        DynamicsRecorder.open(tmp_path / "rec")
    (tmp_path / "rec" / "recording.json").write_text("{")
    with pytest.raises(ValueError, match="not a readable recording description"):
        DynamicsRecorder.open(tmp_path / "rec")


def test_a_recorder_folder_is_a_recording(tmp_path):
    from interpretdl_noise import Recording

    rec, probs = _filled(directory=tmp_path / "rec")
    rec.close()
    loaded = Recording.coerce(tmp_path / "rec")
    assert loaded.n_epochs == 4 and loaded.n_samples == 20
    np.testing.assert_array_equal(loaded.assigned_labels, np.arange(20) % 3)
