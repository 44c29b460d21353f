"""Property-based fuzzing (hypothesis) of everything a user or an attacker can hand us.

Every generated input must either load and score finite values, or raise one of our documented errors
(``ValueError`` and its subclasses, ``FileNotFoundError``) with a message: never another exception, never
a pickle executed, never more memory than a small bound. The runs are seeded (``derandomize``) and keep no
example database, so they are deterministic and write nothing to the working directory.

``INTERPRETDL_NOISE_FUZZ_EXAMPLES=N`` sets the examples per test (default 40, a few seconds in all); the
``slow``-marked test runs the npz reader with 4x as many.
"""
from __future__ import annotations

import io
import json
import os
import pickle
import struct
import tempfile
import tracemalloc
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from interpretdl_noise import (AUMCalculator, AUMInterpreter, BHDFInterpreter, DataMapsInterpreter,
                               ForgettingEventsInterpreter, LossDynamicsAnalyzer, LossDynamicsInterpreter,
                               dawid_skene, load_training_dynamics, majority_vote)
from interpretdl_noise.crowd import load_answers

EXAMPLES = int(os.environ.get("INTERPRETDL_NOISE_FUZZ_EXAMPLES", "40"))
OURS = (ValueError, FileNotFoundError)
MEMORY_BOUND = 64 * 2**20  # far above anything these small inputs legitimately need
FUZZ = settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
EXECUTED: list = []


def _executed(*args):  # the target of every forged pickle: must never run
    EXECUTED.append(args)


class _Evil:
    def __reduce__(self):
        return (_executed, ("pickle ran",))


def _outcome(fn):
    """Run ``fn``; return its result or our error. Anything else fails the test. Memory is bounded."""
    tracemalloc.start()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                return fn()
            except OURS as exc:
                assert str(exc).strip(), f"{type(exc).__name__} without a message"
                return exc
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < MEMORY_BOUND, f"used {peak / 2**20:.0f} MiB"
        assert EXECUTED == [], "a pickle was executed"


# --------------------------------------------------------------------------------------------------- npz files
KEYS = ["td", "labels", "label_flip", "logits", "losses", "sample_ids", "meta", "extra"]
DTYPES = ["<f2", "<f4", ">f8", "<i2", "<i8", "|u1", "|b1", "<U3", "|S2", "<c8", "<M8[D]"]


def _npy(shape, descr, body: bytes, version=1) -> bytes:
    header = repr({"descr": descr, "fortran_order": False, "shape": tuple(shape)}).encode("latin1")
    header += b" " * (64 - (10 + len(header) + 1) % 64) + b"\n"
    size = struct.pack("<H", len(header)) if version == 1 else struct.pack("<I", len(header))
    return b"\x93NUMPY" + bytes([version, 0]) + size + header + body


@st.composite
def npy_members(draw):
    """One member: a well-formed array, a header that lies about its size, a pickle, or random bytes."""
    name = draw(st.sampled_from(KEYS) | st.text(min_size=0, max_size=12)) + draw(st.sampled_from([".npy"] * 5 + [""]))
    kind = draw(st.sampled_from(["array", "array", "td", "lying", "pickle", "none", "bytes"]))
    if kind == "td":  # a plausible recording, so that many examples reach the validation and the detectors
        n, e, c = draw(st.integers(1, 6)), draw(st.integers(1, 5)), draw(st.integers(1, 4))
        raw = draw(hnp.arrays(np.float16, (n, e, c), elements=st.floats(0, 1, width=16)))
        td = raw / np.maximum(raw.sum(axis=2, keepdims=True), np.float16(1e-3))
        buf = io.BytesIO()
        np.save(buf, td.astype(np.float16))
        return "td.npy", buf.getvalue()
    if kind == "array":
        dtype = np.dtype(draw(st.sampled_from(DTYPES)))
        shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5))
        arr = draw(hnp.arrays(dtype, shape))
        buf = io.BytesIO()
        np.save(buf, arr, allow_pickle=False)
        return name, buf.getvalue()
    if kind == "lying":
        shape = draw(st.lists(st.integers(0, 10**12), min_size=0, max_size=4))
        descr = draw(st.sampled_from(DTYPES + ["|O", "<f", "xx", "|V4", "<f2"]))
        return name, _npy(shape, descr, draw(st.binary(max_size=64)), version=draw(st.sampled_from([1, 2])))
    if kind == "pickle":
        payload = pickle.dumps(np.array(_Evil(), dtype=object), protocol=draw(st.integers(2, 5)))
        return name, _npy((), "|O", payload)
    if kind == "none":  # InterpretDL's label_flip=None
        return "label_flip.npy", _npy((), "|O", pickle.dumps(np.array(None, dtype=object), protocol=2))
    return name, draw(st.binary(max_size=200))


@st.composite
def npz_files(draw):
    members = draw(st.lists(npy_members(), min_size=0, max_size=4))
    if draw(st.booleans()):  # half the files start from a plausible recording
        n, e, c = draw(st.integers(1, 6)), draw(st.integers(2, 5)), draw(st.integers(2, 4))
        td = np.random.default_rng(n * 100 + e * 10 + c).dirichlet(np.ones(c), size=(n, e)).astype(np.float16)
        buf = io.BytesIO()
        np.save(buf, td)
        members.insert(0, ("td.npy", buf.getvalue()))
    buf = io.BytesIO()
    method = draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names are part of the fuzz
        with zipfile.ZipFile(buf, "w", method) as zf:
            for name, data in members:
                try:
                    zf.writestr(name, data)
                except (IndexError, ValueError):  # a name zipfile itself cannot store (e.g. "/" or "..")
                    zf.writestr("x.npy", data)
    raw = bytearray(buf.getvalue())
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 3]))):  # flip bytes anywhere (headers, data, directory)
        if raw:
            raw[draw(st.integers(0, len(raw) - 1))] ^= draw(st.integers(1, 255))
    if draw(st.integers(0, 3)) == 0:
        raw = raw[: draw(st.integers(0, len(raw)))]
    return bytes(raw)


def _load_and_score(path: Path):
    rec = load_training_dynamics(path)
    _, scores = AUMInterpreter().interpret(training_dynamics=rec)
    assert np.isfinite(scores).all() and scores.shape == (rec["td"].shape[0],)
    return rec


def _check_npz(data: bytes):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "fuzz.npz"
        path.write_bytes(data)
        _outcome(lambda: _load_and_score(path))


@FUZZ
@given(npz_files())
def test_npz_reader(data):
    _check_npz(data)


@pytest.mark.slow
@settings(FUZZ, max_examples=4 * EXAMPLES)
@given(npz_files())
def test_npz_reader_more_examples(data):
    _check_npz(data)


# ------------------------------------------------------------------------------------------ in-memory recordings
def _float_arrays(shape):
    values = st.floats(-2, 2, width=16) | st.sampled_from([np.nan, np.inf, -np.inf, 0.0, 1.0])
    return hnp.arrays(st.sampled_from([np.float16, np.float32, np.float64]), shape, elements=values)


@st.composite
def recordings(draw):
    n, e, c = draw(st.integers(0, 8)), draw(st.integers(0, 6)), draw(st.integers(0, 4))
    if draw(st.integers(0, 3)):  # mostly usable sizes, so that the detectors run
        n, e, c = max(n, 1), max(e, 2), max(c, 2)
    if draw(st.booleans()) and min(n, e, c) > 0:  # a valid softmax, perturbed sometimes
        logits = draw(hnp.arrays(np.float32, (n, e, c), elements=st.floats(-20, 20, width=32)))
        td = np.exp(logits - logits.max(axis=2, keepdims=True))
        td = (td / td.sum(axis=2, keepdims=True)).astype(np.float16)
    else:
        td = draw(_float_arrays((n, e, c)))
    record = {"td": td}
    if draw(st.booleans()):
        rows = draw(st.sampled_from([n, max(n - 1, 0), n + 1]))
        record["labels"] = np.stack([np.random.default_rng(i).permutation(max(c, 1)) for i in range(rows)]
                                    ).astype(draw(st.sampled_from([np.int16, np.int64, np.float32]))) \
            if rows else np.zeros((0, c), np.int16)
    if draw(st.booleans()):
        record["label_flip"] = draw(hnp.arrays(st.sampled_from([np.bool_, np.int8, np.float32]), (n,)))
    if draw(st.booleans()):
        record["sample_ids"] = draw(hnp.arrays(st.sampled_from([np.int64, np.uint64, np.float64]), (n,)))
    if draw(st.booleans()):
        record["logits"] = draw(_float_arrays((n, e, c)))
    if draw(st.booleans()):
        record["losses"] = draw(_float_arrays((n, e)))
    if draw(st.booleans()):
        record["meta"] = draw(st.sampled_from(['{"a": 1}', "not json", "[1]", "[" * 3000 + "]" * 3000]))
    return record


DETECTORS = [AUMInterpreter, LossDynamicsInterpreter, ForgettingEventsInterpreter, DataMapsInterpreter]


@FUZZ
@given(recordings(), st.sampled_from(range(len(DETECTORS) + 1)))
def test_in_memory_recordings_given_to_interpret(record, which):
    def run():
        detector = DETECTORS[which]() if which < len(DETECTORS) else BHDFInterpreter()
        order, scores = detector.interpret(training_dynamics=record)
        assert np.isfinite(scores).all() and scores.shape == (record["td"].shape[0],)
        assert sorted(order.tolist()) == list(range(scores.size))

    _outcome(run)


# --------------------------------------------------------------------------------------------------- answers
JSON_LEAF = st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=6)
ID = (st.integers(-3, 12) | st.integers(0, 2**64) | st.sampled_from(["0", "00", "+1", " 2", "\u0661", "\u00b2", "-1",
                                                                   "1e3", "9" * 30, "", "x"]))


@st.composite
def answers(draw):
    if draw(st.integers(0, 4)) == 0:  # any JSON at all
        return draw(st.recursive(JSON_LEAF, lambda kids: st.lists(kids, max_size=3) | st.dictionaries(
            st.text(max_size=4), kids, max_size=3), max_leaves=12))
    if draw(st.booleans()):  # plausible answers with small, sometimes sparse, ids
        small = st.integers(0, 6) | st.integers(0, 10**9) | st.sampled_from(["0", "1", "2", "03"])
        return draw(st.dictionaries(small, st.dictionaries(small, st.integers(0, 4), min_size=1, max_size=4),
                                    min_size=1, max_size=6))
    label = st.integers(-1, 4) | st.sampled_from([True, 2.0, "1", None, 10**9, 2**40])
    return draw(st.dictionaries(ID, st.dictionaries(ID, label, max_size=4) | JSON_LEAF, max_size=5))


@FUZZ
@given(answers(), st.booleans(), st.sampled_from([None, 2, 5]), st.booleans())
def test_answers(raw, compact, n_classes, as_file):
    def run():
        with tempfile.TemporaryDirectory() as d:
            if as_file:
                path = Path(d) / "answers.json"
                try:
                    path.write_text(json.dumps(raw))
                except (TypeError, ValueError):  # keys JSON cannot hold: write them as text instead
                    path.write_text(str(raw))
                source = path
            else:
                source = raw
            clean = load_answers(source) if isinstance(source, Path) else (source if isinstance(raw, dict) else
                                                                          load_answers(source))
            votes = majority_vote(clean, n_classes, compact=compact)
            votes = votes[0] if compact else votes
            ds = dawid_skene(clean, n_classes, compact=compact, max_iter=5)
            assert np.isfinite(ds.posteriors).all() and ds.labels.shape == votes.shape
            assert ds.task_ids.shape == votes.shape and ds.confusions.shape[0] == ds.worker_ids.size

    _outcome(run)


# ---------------------------------------------------------------------------------------------- AUM and EMA
@FUZZ
@given(st.data())
def test_aum_calculator_updates(data):
    b, c = data.draw(st.integers(0, 6)), data.draw(st.integers(0, 4))
    logits = data.draw(_float_arrays((b, c)) | hnp.arrays(np.int64, (b, c)))
    targets = data.draw(hnp.arrays(st.sampled_from([np.int64, np.float32]), (data.draw(st.sampled_from([b, b + 1])),),
                                   elements=st.integers(-1, 4)))
    ids = data.draw(hnp.arrays(np.int64, (b,), elements=st.integers(-2, 5)) | st.lists(st.text(max_size=3), min_size=b,
                                                                                         max_size=b))

    def run():
        with tempfile.TemporaryDirectory() as d:
            calc = AUMCalculator(d, compressed=data.draw(st.booleans()))
            calc.update(logits, targets, ids)
            calc.update(logits, targets, ids)
            written = calc.finalize()
            values = np.loadtxt(written["aum_values"], delimiter=",", skiprows=1, usecols=1, ndmin=1)
            assert np.isfinite(values).all()

    _outcome(run)


@FUZZ
@given(st.data())
def test_ema_inputs(data):
    n, s = data.draw(st.integers(0, 6)), data.draw(st.integers(0, 5))
    losses = data.draw(_float_arrays((n, s)))
    labels = data.draw(hnp.arrays(np.int64, (data.draw(st.sampled_from([n, n + 1])),), elements=st.integers(-1, 3)))
    alpha = data.draw(st.sampled_from([0.001, 0.5, 1.0, 0.0, -1.0, float("nan"), 2.0]))

    def run():
        analyzer = LossDynamicsAnalyzer.from_losses(losses, labels, alpha=alpha)
        cands = analyzer.get_top_k_cands(3)
        assert all(np.isfinite(cand.metric) for cand in cands)

    _outcome(run)
