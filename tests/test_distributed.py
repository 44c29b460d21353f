"""Recording under ``paddle.distributed``: 2 CPU processes over gloo on 127.0.0.1 (see distributed_worker.py).

Workers are started with the PADDLE_* variables the launcher would set, on free ports, with a timeout;
they are killed if a test fails. One launch covers scenarios (a)-(c); a second one kills a rank (d).
"""
import os
import socket
import subprocess
import sys
import time
import warnings

import numpy as np
import paddle
import pytest
from conftest import REPO, make_mlp
from paddle.static import InputSpec

from interpretdl_noise import ArrayDataset, DatasetWithIndex, DynamicsRecorder, TrainingDynamics
from interpretdl_noise.callbacks import RecordTrainingDynamics

WORKER = REPO / "tests" / "distributed_worker.py"
TIMEOUT = 90  # seconds for one 2-process launch (start-up is 3-8 s on 2 shared cores)
N, BATCH = 45, 8


def _free_ports(k):
    socks = []
    try:
        for _ in range(k):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def launch(mode, out, world=2, timeout=TIMEOUT):
    """Run ``world`` workers; return [(returncode, stdout, stderr, seconds)] per rank."""
    ports = _free_ports(world)
    endpoints = ",".join(f"127.0.0.1:{p}" for p in ports)
    procs, logs = [], []
    start = time.monotonic()
    try:
        for rank in range(world):
            env = dict(os.environ, PADDLE_DISTRI_BACKEND="gloo", PADDLE_TRAINER_ID=str(rank),
                       PADDLE_TRAINERS_NUM=str(world), PADDLE_TRAINER_ENDPOINTS=endpoints,
                       PADDLE_CURRENT_ENDPOINT=f"127.0.0.1:{ports[rank]}", PADDLE_MASTER=f"127.0.0.1:{ports[0]}",
                       PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
            procs.append(subprocess.Popen([sys.executable, str(WORKER), mode, str(out)], env=env, cwd=out,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        for proc in procs:
            stdout, stderr = proc.communicate(timeout=max(1.0, timeout - (time.monotonic() - start)))
            logs.append((proc.returncode, stdout, stderr, time.monotonic() - start))
    finally:
        for proc in procs:  # on a timeout or any failure: no worker outlives the test
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return logs


def _results(logs):
    return [line for _, out, _, _ in logs for line in out.splitlines() if line.startswith("RESULT")]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    logs = launch("record", out)
    for rank, (code, stdout, stderr, _) in enumerate(logs):
        assert code == 0, f"rank {rank} failed:\n{stdout[-3000:]}\n{stderr[-3000:]}"
    return out, _results(logs)


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, 6)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0)


def test_a_every_sample_epoch_recorded_exactly_once(recorded):
    out, results = recorded
    assert "RESULT rank 0 generator=DynamicsRecorder hapi=DynamicsRecorder completed=3" in results
    assert "RESULT rank 1 generator=RemoteRecording hapi=NoneType completed=3" in results or \
        "RESULT rank 1 generator=RemoteRecording hapi=RemoteRecording completed=3" in results
    rec = DynamicsRecorder.open(out / "shuffled")
    assert rec.completed_epochs == 3 and rec.seen.all()
    np.testing.assert_array_equal(rec.targets, _data()[1])
    # DistributedBatchSampler pads 45 ids to 46 with one repeated id: exactly one duplicate per epoch resolved
    assert rec.duplicates.tolist() == [1, 1, 1]
    assert rec.meta == {"world_size": 2, "gathered_to_rank": 0}
    logits = rec.logits.astype(np.float64)
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    np.testing.assert_allclose(rec.probs.astype(np.float64), probs, atol=1e-3)  # the rows stayed together
    assert not (out / "shuffled" / "rank1").exists()


def test_b_lr0_two_processes_equal_one_process_bit_for_bit(recorded, tmp_path):
    out, _ = recorded
    x, y = _data()
    net = make_mlp(6, 8, 3, seed=1)
    loader = paddle.io.DataLoader(DatasetWithIndex(ArrayDataset(x, y), index_first=True), batch_size=BATCH)
    single = TrainingDynamics(net).generator(loader, paddle.optimizer.SGD(0.0, parameters=net.parameters()), 2,
                                             progress=False)
    two = DynamicsRecorder.open(out / "lr0")
    assert two.probs.dtype == np.float16 and two.seen.all()
    np.testing.assert_array_equal(two.probs, single.probs)
    np.testing.assert_array_equal(two.targets, single.targets)
    resumed = DynamicsRecorder.open(out / "resumed")  # crashed in epoch 1 on both ranks, then resume=True
    assert resumed.completed_epochs == 2
    np.testing.assert_array_equal(resumed.probs, single.probs)
    td_one, labels_one = TrainingDynamics(net).transform(single)
    td_two, labels_two = TrainingDynamics(net).transform(two)
    np.testing.assert_array_equal(td_two, td_one)
    np.testing.assert_array_equal(labels_two, labels_one)


def test_c_hapi_fit_under_two_processes_equals_the_generator(recorded):
    out, _ = recorded
    gen, hapi = DynamicsRecorder.open(out / "gen"), DynamicsRecorder.open(out / "hapi")
    assert hapi.completed_epochs == 2 and hapi.seen.all()
    np.testing.assert_allclose(hapi.probs.astype(np.float32), gen.probs.astype(np.float32), atol=2e-3)
    np.testing.assert_allclose(hapi.losses, gen.losses, rtol=1e-3, atol=1e-4)
    np.testing.assert_array_equal(hapi.targets, gen.targets)
    assert hapi.duplicates.tolist() == [1, 1]


def test_d_a_dying_rank_makes_the_other_fail_clearly(tmp_path):
    """Rank 1 dies after its last batch of epoch 1: rank 0 fails at the gather with our error."""
    logs = launch("die", tmp_path, timeout=TIMEOUT)
    code0, out0, err0, seconds = logs[0]
    assert logs[1][0] == 3  # the rank that died
    assert code0 == 1, f"rank 0 did not fail cleanly:\n{out0[-2000:]}\n{err0[-3000:]}"
    line = [x for x in out0.splitlines() if x.startswith("RESULT rank 0")][0]
    assert "DistributedRecordingError: rank 0 of 2:" in line and "another rank" in line and "epoch 1" in line
    assert seconds < TIMEOUT
    rec = DynamicsRecorder.open(tmp_path / "died")  # rank 0 kept the completed epoch
    assert rec.completed_epochs == 1 and rec.seen[:, 0].all() and not rec.seen[:, 1].any()


def test_d_a_rank_dying_mid_epoch_stops_the_other_fast(tmp_path):
    """Rank 1 dies before its first batch of epoch 1: rank 0 meets it in DataParallel's gradient all-reduce,
    which Paddle turns into an abort (a C++ exception in the backward pass): no hang, the gloo error is printed,
    and the completed epoch stays on disk."""
    logs = launch("die-mid", tmp_path, timeout=TIMEOUT)
    code0, out0, err0, seconds = logs[0]
    assert logs[1][0] == 3
    assert code0 != 0 and seconds < TIMEOUT
    assert "Connection reset by peer" in err0 or "Connection closed by peer" in err0 or "another rank" in out0
    assert DynamicsRecorder.open(tmp_path / "died").completed_epochs == 1


def test_distributed_true_in_a_single_process_records_alone(tmp_path):
    x, y = _data()
    net = make_mlp(6, 8, 3, seed=1)
    loader = paddle.io.DataLoader(DatasetWithIndex(ArrayDataset(x, y), index_first=True), batch_size=BATCH)
    rec = TrainingDynamics(net).generator(loader, paddle.optimizer.SGD(0.1, parameters=net.parameters()), 1,
                                          distributed=True, progress=False)
    assert isinstance(rec, DynamicsRecorder) and rec.seen.all()
    cb = RecordTrainingDynamics(N, distributed=True)
    model = paddle.Model(make_mlp(6, 8, 3), inputs=[InputSpec([None, 6], "float32", "x")],
                         labels=[InputSpec([None, 1], "int64", "y"), InputSpec([None, 1], "int64", "index")])
    model.prepare(paddle.optimizer.SGD(0.1, parameters=model.parameters()),
                  loss=cb.wrap_loss(paddle.nn.CrossEntropyLoss()), metrics=[cb.metric])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(DatasetWithIndex(ArrayDataset(x, y)), epochs=1, batch_size=BATCH, verbose=0, callbacks=[cb])
    assert cb.recorder.seen.all()


def test_a_launch_without_init_parallel_env_is_refused_clearly(monkeypatch):
    # what a script sees when started by the launcher but never calling init_parallel_env()
    monkeypatch.setattr(paddle.distributed, "get_world_size", lambda *a, **k: 2)
    monkeypatch.setattr(paddle.distributed, "get_rank", lambda *a, **k: 0)
    monkeypatch.setattr(paddle.distributed, "is_initialized", lambda: False)
    x, y = _data()
    net = make_mlp(6, 8, 3)
    loader = paddle.io.DataLoader(DatasetWithIndex(ArrayDataset(x, y), index_first=True), batch_size=BATCH)
    with pytest.raises(ValueError, match=r"init_parallel_env\(\).*distributed=False"):
        TrainingDynamics(net).generator(loader, paddle.optimizer.SGD(0.1, parameters=net.parameters()), 1,
                                        progress=False)
