"""Hostile and careless inputs (issue 17): each gets a clear error naming the problem, bounded memory, no data loss."""
from __future__ import annotations

import json
import os
import pickle
import stat
import struct
import tracemalloc
import zipfile

import numpy as np
import pandas as pd
import pytest

from interpretdl_noise import (AUMCalculator, AUMInterpreter, BHDFInterpreter, LSTMDetector, Recording, dawid_skene,
                               load_training_dynamics, majority_vote, save_training_dynamics)
from interpretdl_noise.cli import main as cli
from interpretdl_noise.common.atomic import atomic_group, atomic_path, check_output_path, complete_atomic_group
from interpretdl_noise.common.state_dict import load_state_dict
from interpretdl_noise.crowd import answers_to_arrays, answers_to_matrix, load_answers, vote_counts
from interpretdl_noise.interpreter.bhdf import default_weights_path

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "interpretdl")
CALLS: list = []


def _record_call(*args):  # referenced by a forged pickle: must never run
    CALLS.append(args)


def npy_header(shape, dtype="<f2") -> bytes:
    header = repr({"descr": dtype, "fortran_order": False, "shape": tuple(shape)}).encode("latin1")
    header += b" " * (64 - (10 + len(header) + 1) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header


def softmax_td(n=40, e=6, c=3, seed=0):
    return np.random.default_rng(seed).dirichlet(np.ones(c), size=(n, e)).astype(np.float16)


def write_recording(path, n=40, e=6, c=3, **extra):
    td = softmax_td(n, e, c)
    labels = np.tile(np.arange(c, dtype=np.int16), (n, 1))
    return save_training_dynamics(path, td, labels, label_flip=np.arange(n) % 5 == 0, **extra)


# ------------------------------------------------------------------------------------------------ npz memory bombs
def test_header_claiming_a_huge_array_is_refused_before_allocating(tmp_path):
    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("td.npy", npy_header((10**9, 200, 10)) + bytes(64))
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"bomb.npz: key 'td' declares shape \(1000000000, 200, 10\)"):
            load_training_dynamics(path)
        assert tracemalloc.get_traced_memory()[1] < 5 * 2**20
    finally:
        tracemalloc.stop()
    assert cli(["detect", str(path), "--method", "aum"]) == 2  # a clear CLI error, no traceback


def _patch_sizes(path, name, file_size):
    """Forge the uncompressed size of member ``name`` in the local header and the central directory."""
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(name)
    struct.pack_into("<I", raw, info.header_offset + 22, file_size)
    central = raw.rindex(b"PK\x01\x02" + raw[raw.index(b"PK\x01\x02") + 4:raw.index(b"PK\x01\x02") + 6])
    struct.pack_into("<I", raw, central + 24, file_size)
    path.write_bytes(bytes(raw))


def test_impossible_compression_ratio_is_refused(tmp_path):
    path = tmp_path / "forged.npz"
    shape = (500_000,)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("td.npy", npy_header(shape) + bytes(2 * shape[0]))
    with zipfile.ZipFile(path) as zf:
        compressed = zf.getinfo("td.npy").compress_size
    _patch_sizes(path, "td.npy", 5000 * compressed)
    with pytest.raises(ValueError, match="key 'td' claims to inflate .* refusing a zip bomb"):
        load_training_dynamics(path)


def test_zip_bomb_uses_no_more_than_the_array_itself(tmp_path):
    """A 30 MB td from a ~30 kB file: refused (no probability mass), peak memory about the array's size."""
    path = tmp_path / "bomb.npz"
    shape = (1_500_000, 5, 2)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf, zf.open("td.npy", "w") as fh:
        fh.write(npy_header(shape))
        for _ in range(shape[0] // 100_000):
            fh.write(bytes(100_000 * 10 * 2))
    nbytes = int(np.prod(shape)) * 2
    assert path.stat().st_size < nbytes / 100
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="sum to .almost. 0"):
            load_training_dynamics(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1.25 * nbytes


def test_every_corrupted_byte_gives_our_error(tmp_path):
    path = write_recording(tmp_path / "rec.npz", n=300, e=10, c=5)
    good = path.read_bytes()
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("td.npy")
    extra = struct.unpack_from("<H", good, info.header_offset + 28)[0]
    start = info.header_offset + 30 + len(info.filename) + extra
    for k in range(48):
        raw = bytearray(good)
        raw[start + k * info.compress_size // 48] ^= 0xFF
        path.write_bytes(bytes(raw))
        try:
            load_training_dynamics(path)
        except ValueError as exc:
            assert "rec.npz" in str(exc) and "not a readable npz file" in str(exc)


def test_truncated_file_and_duplicate_members(tmp_path):
    path = write_recording(tmp_path / "rec.npz")
    raw = path.read_bytes()
    (tmp_path / "cut.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="cut.npz is not a readable npz file"):
        load_training_dynamics(tmp_path / "cut.npz")
    twice = tmp_path / "twice.npz"
    with zipfile.ZipFile(twice, "w") as zf, pytest.warns(UserWarning, match="Duplicate name"):
        for _ in range(2):
            zf.writestr("td.npy", npy_header((2, 2, 2)) + softmax_td(2, 2, 2).tobytes())
    with pytest.raises(ValueError, match=r"holds the key\(s\) \['td'\] more than once"):
        load_training_dynamics(twice)


# ------------------------------------------------------------------------------------------------ NpzFile input
@pytest.mark.parametrize("allow_pickle", [False, True])
def test_npzfile_opened_either_way_is_read_without_unpickling(allow_pickle):
    path = os.path.join(FIXTURES, "training_dynamics_flip_none.npz")
    with np.load(path, allow_pickle=allow_pickle) as data:
        rec = Recording.coerce(data)
        _, scores = BHDFInterpreter().interpret(training_dynamics=data)
    assert rec.label_flip is None and rec.source == path
    assert np.isfinite(scores).all() and scores.shape == (rec.n_samples,)


def test_a_malicious_pickle_is_never_executed(tmp_path):
    class Evil:
        def __reduce__(self):
            return (_record_call, ("pwned",))

    path = tmp_path / "evil.npz"
    np.savez(path, td=softmax_td(4, 2, 2), label_flip=np.array(Evil(), dtype=object))
    for opened in (lambda: np.load(path, allow_pickle=True), lambda: np.load(path)):
        with opened() as data, pytest.raises(ValueError, match="refusing to unpickle"):
            Recording.coerce(data)
    with pytest.raises(ValueError, match="refusing to unpickle"):
        load_training_dynamics(path)
    assert CALLS == []
    closed = np.load(path)
    closed.close()
    with pytest.raises(ValueError, match="closed"):
        Recording.coerce(closed)


# ------------------------------------------------------------------------------------------------ recording values
def test_td_rows_without_probability_mass_are_refused_and_off_sums_warned():
    td = softmax_td()
    td[3, 2] = 0
    with pytest.raises(ValueError, match=r"1 \(sample, epoch\) row\(s\) sum to \(almost\) 0, e.g. sample row 3, "
                                         r"epoch 2"):
        Recording.coerce({"td": td})
    td = softmax_td()
    td[5, 1] *= 0.5
    with pytest.warns(UserWarning, match="sample row 5, epoch 1 sums to 0.5"):
        rec = Recording.coerce({"td": td})
    assert rec.n_samples == 40


def test_one_class_is_refused():
    with pytest.raises(ValueError, match="C = 1 class; a recording needs C >= 2"):
        AUMInterpreter().interpret(training_dynamics={"td": np.ones((10, 4, 1), dtype=np.float16)})


@pytest.mark.parametrize("ids, match", [([0, 0, 1, 2], "distinct; 1 id.* e.g. \\[0\\]"),
                                        ([-1, 0, 1, 2], "row 0 holds -1"), ([0.5, 1, 2, 3], "must be integers"),
                                        ([0, np.nan, 2, 3], "must be integers")])
def test_bad_sample_ids_are_refused(tmp_path, ids, match):
    with pytest.raises(ValueError, match=match):
        write_recording(tmp_path / "rec.npz", n=4, sample_ids=np.array(ids))


def test_integral_float_sample_ids_are_accepted_as_integers():
    rec = Recording.coerce({"td": softmax_td(3, 2, 2), "sample_ids": np.array([7.0, 3.0, 9.0])})
    assert rec["sample_ids"].dtype == np.int64 and rec.sample_ids.tolist() == [7, 3, 9]


def test_aum_interpreter_refuses_inf_logits_like_the_calculator():
    td = softmax_td(10, 4, 3)
    logits = np.random.default_rng(0).normal(size=(10, 4, 3)).astype(np.float32)
    labels = np.tile(np.arange(3, dtype=np.int16), (10, 1))
    logits[2, 1, 0] = np.nan  # an unrecorded epoch: fine
    _, scores = AUMInterpreter().interpret(training_dynamics={"td": td, "logits": logits, "labels": labels})
    assert np.isfinite(scores).all()
    logits[4, 0, 1] = -np.inf
    with pytest.raises(ValueError, match=r"logits hold inf for 1 sample\(s\), e.g. rows \[4\]"):
        AUMInterpreter().interpret(training_dynamics={"td": td, "logits": logits, "labels": labels})
    with pytest.raises(ValueError, match="inf"):
        AUMCalculator().update(logits[:, 0], labels[:, 0], np.arange(10))


# ------------------------------------------------------------------------------------------------ no data loss
def _aum_state(folder):
    values = pd.read_csv(folder / "aum_values.csv")
    records = pd.read_csv(folder / "full_aum_records.csv")
    return float(values["aum"].max()), int(records["num_measurements"].max())


def test_finalize_pair_is_all_old_or_all_new(tmp_path, monkeypatch):
    calc = AUMCalculator(tmp_path, compressed=False)
    calc.update(np.array([[2.0, 0.0], [0.0, 1.0]]), np.array([0, 0]), np.array([0, 1]))
    calc.finalize()
    old = _aum_state(tmp_path)
    calc.update(np.array([[5.0, 0.0], [0.0, 9.0]]), np.array([0, 0]), np.array([0, 1]))
    # killed while staging (the second file's content fails): both old, nothing left behind
    real_to_csv = pd.DataFrame.to_csv
    calls = []

    def dying_to_csv(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_to_csv(self, *args, **kwargs)

    with monkeypatch.context() as m, pytest.raises(KeyboardInterrupt):
        m.setattr(pd.DataFrame, "to_csv", dying_to_csv)
        calc.finalize()
    assert _aum_state(tmp_path) == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["aum_values.csv", "full_aum_records.csv"]
    # killed between the two renames: the journal finishes the pair on the next finalize (or explicitly)
    real_replace, renamed = os.replace, []

    def dying_replace(src, dst, *args, **kwargs):
        if str(dst).endswith(".csv"):
            renamed.append(dst)
            if len(renamed) == 2:
                raise KeyboardInterrupt
        return real_replace(src, dst, *args, **kwargs)

    with monkeypatch.context() as m, pytest.raises(KeyboardInterrupt):
        m.setattr(os, "replace", dying_replace)
        calc.finalize()
    assert (tmp_path / ".aum_finalize.json").is_file()
    AUMCalculator(tmp_path, compressed=False)  # reopening the folder finishes the interrupted renames
    assert not (tmp_path / ".aum_finalize.json").exists()
    assert _aum_state(tmp_path) == (3.5, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["aum_values.csv", "full_aum_records.csv"]
    assert complete_atomic_group(tmp_path / ".aum_finalize.json") is False


def test_atomic_group_rolls_forward_on_the_next_write(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    with atomic_group([a, b]) as (ta, tb):
        ta.write_text("a1")
        tb.write_text("b1")
    assert (a.read_text(), b.read_text()) == ("a1", "b1")
    with pytest.raises(ValueError, match="one folder"):
        with atomic_group([a, tmp_path / "sub" / "c.txt"]):
            pass


def test_atomic_writer_keeps_the_replaced_files_mode(tmp_path):
    path = tmp_path / "secret.txt"
    path.write_text("old")
    os.chmod(path, 0o600)
    with atomic_path(path) as tmp:
        tmp.write_text("new")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.read_text() == "new"
    umask = os.umask(0)
    os.umask(umask)
    with atomic_path(tmp_path / "fresh.txt") as tmp:
        tmp.write_text("x")
    assert stat.S_IMODE((tmp_path / "fresh.txt").stat().st_mode) == 0o666 & ~umask


def test_check_output_path(tmp_path):
    rec = write_recording(tmp_path / "rec.npz")
    with pytest.raises(ValueError, match="it is the input"):
        check_output_path(rec, inputs=[rec])
    with pytest.raises(ValueError, match="it is the input"):
        check_output_path(tmp_path / "." / "rec.npz", inputs=[str(rec)], directory=True)
    with pytest.raises(ValueError, match="must end in .csv"):
        check_output_path(rec, inputs=[], allowed_suffixes=(".csv",))
    with pytest.raises(ValueError, match="is a folder"):
        check_output_path(tmp_path, inputs=[rec])
    with pytest.raises(ValueError, match="existing file, not a folder"):
        check_output_path(rec, directory=True)
    (tmp_path / "old.CSV").write_text("x")
    assert check_output_path(tmp_path / "old.CSV", inputs=[rec, None], allowed_suffixes=(".csv",)).name == "old.CSV"
    assert check_output_path(tmp_path / "new.npz", inputs=[rec], allowed_suffixes=(".csv",)).name == "new.npz"
    assert check_output_path(tmp_path, inputs=[rec], directory=True) == tmp_path


def test_detect_and_compare_refuse_to_overwrite_the_recording(tmp_path, capsys):
    rec = write_recording(tmp_path / "rec.npz")
    before = rec.read_bytes()
    assert cli(["detect", str(rec), "--method", "aum", "--out", str(rec)]) == 2
    assert cli(["compare", str(rec), "--out", str(rec), "--methods", "aum", "--no-plots", "--quiet"]) == 2
    assert "it is the input" in capsys.readouterr().err
    assert rec.read_bytes() == before
    (tmp_path / "notes.txt").write_text("mine")
    assert cli(["detect", str(rec), "--method", "aum", "--out", str(tmp_path / "other.npz")]) == 0  # a new file
    assert cli(["detect", str(rec), "--method", "aum", "--out", str(tmp_path / "other.npz")]) == 2  # now existing
    assert cli(["detect", str(rec), "--method", "aum", "--out", str(tmp_path / "r.csv")]) == 0
    assert cli(["detect", str(rec), "--method", "aum", "--out", str(tmp_path / "r.csv")]) == 0  # our own output


# ------------------------------------------------------------------------------------------------ crowd answers
def test_the_same_worker_twice_in_a_task_is_refused(tmp_path):
    with pytest.raises(ValueError, match="worker 0 answers task '0' twice \\(as '0' and '00'\\)"):
        load_answers({"0": {"0": 1, "00": 0}})
    with pytest.raises(ValueError, match="worker 0 answers task '0' twice \\(as 0 and '0'\\)"):
        load_answers({"0": {0: 1, "0": 0}})
    with pytest.raises(ValueError, match="task id 1 appears twice \\(as 1 and '01'\\)"):
        load_answers({1: {"0": 1}, "01": {"1": 0}})
    path = tmp_path / "answers.json"
    path.write_text('{"0": {"1": 1, "1": 0}}')
    with pytest.raises(ValueError, match="answers.json: the JSON object holds the key '1' twice"):
        load_answers(path)


def test_train_file_task_ids_are_ascii_digits():
    from interpretdl_noise.crowd import task_id_from_filename

    assert task_id_from_filename("cat-12.png") == 12
    for name in ("cat-\u0661.png", "cat-+1.png", "cat-" + "9" * 40 + ".png"):
        with pytest.raises(ValueError, match="does not end in -<task_id>"):
            task_id_from_filename(name)


@pytest.mark.parametrize("key", ["\u0661", "\u00b2", "1e3", "0x10", "9" * 5000, "", " ", "-1", "1.0"])
def test_only_ascii_digit_ids_are_numbers(key):
    with pytest.raises(ValueError, match="task id"):
        load_answers({key: {"0": 1}})


def test_huge_ids_and_labels_are_refused_or_compacted():
    with pytest.raises(ValueError, match="outside the int64 range"):
        load_answers({2**70: {"0": 1}})
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="task ids reach 200000000 but only 1 distinct.*compact=True"):
            majority_vote({"200000000": {"0": 1, "1": 1}}, 2)
        with pytest.raises(ValueError, match="worker ids reach 100000000"):
            dawid_skene({"0": {"100000000": 1, "1": 0}, "1": {"1": 1}}, 2)
        with pytest.raises(ValueError, match="labels reach 100000000 but only 1 distinct label.*n_classes"):
            vote_counts({"0": {"0": 10**8}})
        with pytest.raises(ValueError, match="task ids reach"):
            answers_to_matrix({"200000000": {"0": 1}})
        votes, task_ids = majority_vote({"200000000": {"0": 1, "1": 1}, "7": {"3": 0}}, 2, compact=True)
        ds = dawid_skene({"0": {"100000000": 1, "1": 0}, "1": {"1": 1}}, 2, compact=True)
        assert tracemalloc.get_traced_memory()[1] < 20 * 2**20
    finally:
        tracemalloc.stop()
    assert task_ids.tolist() == [7, 200000000] and votes.tolist() == [0, 1]
    assert ds.worker_ids.tolist() == [1, 100000000] and ds.confusions.shape == (2, 2, 2)
    assert ds.task_ids.tolist() == [0, 1]
    flat = answers_to_arrays({"5": {"9": 1}, "2": {"9": 0, "4": 1}})
    assert flat.task_ids.tolist() == [2, 5] and flat.worker_ids.tolist() == [4, 9]
    assert sorted(zip(flat.task_ids[flat.task].tolist(), flat.worker_ids[flat.worker].tolist(),
                      flat.label.tolist())) == [(2, 4, 1), (2, 9, 0), (5, 9, 1)]


def test_dense_ids_keep_their_meaning():
    answers = {"0": {"0": 0, "1": 0, "2": 1}, "1": {"0": 2, "2": 1}, "3": {"0": 1, "1": 1, "2": 1, "3": 0}}
    np.testing.assert_array_equal(majority_vote(answers, 3, ties="first"), [0, 1, -1, 1])
    ds = dawid_skene(answers, 3)
    assert ds.task_ids.tolist() == [0, 1, 2, 3] and ds.worker_ids.tolist() == [0, 1, 2, 3]


def test_conal_compacts_sparse_worker_ids(tmp_path):
    from interpretdl_noise import ArrayDataset, CoNAL
    from interpretdl_noise._paddle import paddle

    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 4)).astype(np.float32)
    y = rng.integers(0, 2, 20)
    answers = {str(t): {"3": int(y[t]), "100000000": int(1 - y[t])} for t in range(20)}
    trainer = CoNAL(None, answers, paddle.nn.Linear(4, 2), 2, "adam", 1, verbose=False,
                    train_dataset=ArrayDataset(x, np.arange(20)), val_dataset=ArrayDataset(x, y),
                    test_dataset=ArrayDataset(x, y), output_dir=tmp_path)
    with pytest.warns(UserWarning, match="worker ids reach 100000000"):
        trainer.setup()
    assert trainer.n_workers == 2 and trainer.worker_ids.tolist() == [3, 100000000]
    np.testing.assert_array_equal(trainer.label_matrix, np.stack([y, 1 - y], 1))
    results = trainer.run()
    assert json.loads(trainer.results_path.read_text())["worker_ids"] == [3, 100000000] == results["worker_ids"]


# ------------------------------------------------------------------------------------------------ weights
def test_nan_detector_weights_are_refused(tmp_path):
    from interpretdl_noise._paddle import paddle

    state = {k: v.numpy() for k, v in LSTMDetector().state_dict().items()}
    state["classifier.bias"][:] = np.nan
    paddle.save(state, str(tmp_path / "nan.pdparams"))
    with pytest.raises(ValueError, match=r"nan.pdparams holds NaN or inf in \['classifier.bias'\]"):
        BHDFInterpreter(weights=str(tmp_path / "nan.pdparams"), grid=32, center=True, context=True)


def test_non_finite_detector_output_is_refused():
    from interpretdl_noise._paddle import paddle

    class Broken(paddle.nn.Layer):
        def forward(self, x):
            return paddle.full([x.shape[0], 2], float("nan"))

    with pytest.raises(ValueError, match="detector returned NaN or inf for 40 of 40 curves"):
        BHDFInterpreter(detector=Broken()).interpret(training_dynamics={"td": softmax_td(40, 8, 3)})


@pytest.mark.parametrize("sidecar, match", [({"grid": 2.7}, "'grid' must be null or an integer"),
                                            ({"grid": 2e6}, "'grid' must be null or an integer"),
                                            ({"grid": 10**7}, "in \\[1, 4096\\]"), ({"grid": True}, "'grid'"),
                                            ({"grid": 32, "center": "no"}, "'center' must be true or false"),
                                            ({"grid": 32, "context": 1}, "'context' must be true or false"),
                                            ([1, 2], "must be a JSON object")])
def test_weights_sidecar_is_validated(tmp_path, sidecar, match):
    (tmp_path / "w.pdparams").write_bytes(default_weights_path().read_bytes())
    (tmp_path / "w.json").write_text(json.dumps(sidecar))
    with pytest.raises(ValueError, match=match):
        BHDFInterpreter(weights=str(tmp_path / "w.pdparams"))


def test_weights_file_claiming_a_huge_array_is_refused(tmp_path):
    path = tmp_path / "huge.pdparams"
    path.write_bytes(b"\x80\x04\x8e" + (2**40).to_bytes(8, "little") + b"abc")
    with pytest.raises(ValueError, match="huge.pdparams is not a Paddle state dict.*1099511627776 bytes"):
        load_state_dict(path)
    arr = pickle.dumps({"w": np.zeros(1, np.float32)}, protocol=2)
    forged = arr.replace(b"K\x01\x85", b"J" + (10**6).to_bytes(4, "little") + b"J" + (10**6).to_bytes(4, "little")
                         + b"\x86", 1)
    path.write_bytes(forged)
    with pytest.raises(ValueError, match="buffer size does not match"):
        load_state_dict(path)
