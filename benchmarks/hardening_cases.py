"""Every hostile or careless input of issue 17, run one by one: what happens, and how much memory it takes.

Each case runs in its own process with an address-space limit (the process's size after import plus
``--limit`` MiB, default 3072), so a memory bomb shows up as ``MemoryError`` instead of taking the machine.
The output is one line per case: ``name | outcome | peak RSS MiB | seconds``. Run it against another
checkout to compare (``PYTHONPATH=/path/to/checkout python benchmarks/hardening_cases.py``).

    python benchmarks/hardening_cases.py            # all cases
    python benchmarks/hardening_cases.py npz_huge_header zip_bomb   # some of them
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np

CASES = {}


def case(fn):
    CASES[fn.__name__] = fn
    return fn


def _npy_header(shape, dtype="<f2") -> bytes:
    header = repr({"descr": dtype, "fortran_order": False, "shape": tuple(shape)}).encode("latin1")
    pad = 64 - (10 + len(header) + 1) % 64
    header = header + b" " * pad + b"\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header


def _recording(tmp: Path, n=40, e=6, c=3, **extra) -> Path:
    from interpretdl_noise import save_training_dynamics

    rng = np.random.default_rng(0)
    td = rng.dirichlet(np.ones(c), size=(n, e)).astype(np.float16)
    labels = np.tile(np.arange(c, dtype=np.int16), (n, 1))
    path = tmp / "rec.npz"
    save_training_dynamics(path, td, labels, label_flip=rng.random(n) < 0.2, **extra)
    return path


def _cli(command, path, *args):
    import contextlib
    import io

    from interpretdl_noise.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main([command, str(path), *args])
    print(f"{command} exit status {rc}; stderr: {err.getvalue().strip()[:200]!r}")
    return rc


def _detect(path, *args):
    return _cli("detect", path, *args)


# ----------------------------------------------------------------------------------------------- memory bombs
@case
def npz_huge_header(tmp):
    path = tmp / "bomb.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("td.npy", _npy_header((10**9, 200, 10)) + b"\x00" * 64)
    print("file bytes:", path.stat().st_size)
    _detect(path, "--method", "aum")


@case
def zip_bomb(tmp):
    """td of (3e6, 10, 10) float16 zeros = 600 MB from a ~0.6 MB file."""
    path = tmp / "bomb.npz"
    shape = (3_000_000, 10, 10)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        with zf.open("td.npy", "w", force_zip64=True) as fh:
            fh.write(_npy_header(shape))
            chunk = bytes(1 << 24)
            left = int(np.prod(shape)) * 2
            while left:
                fh.write(chunk[:min(left, len(chunk))])
                left -= min(left, len(chunk))
    print("file bytes:", path.stat().st_size)
    from interpretdl_noise import load_training_dynamics

    load_training_dynamics(path)


@case
def crowd_task_id_huge(tmp):
    from interpretdl_noise import majority_vote

    print(majority_vote({"200000000": {"0": 1, "1": 1}}, 2))


@case
def crowd_worker_id_huge(tmp):
    from interpretdl_noise import dawid_skene

    print(dawid_skene({"0": {"100000000": 1, "1": 0}, "1": {"1": 1}}, 2).labels)


@case
def crowd_conal_worker_id_huge(tmp):
    from interpretdl_noise import ArrayDataset, CoNAL
    from interpretdl_noise._paddle import paddle

    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 4)).astype(np.float32)
    y = rng.integers(0, 2, 20)
    answers = {str(t): {"0": int(y[t]), "100000000": int(y[t])} for t in range(20)}
    trainer = CoNAL(None, answers, paddle.nn.Linear(4, 2), 2, "adam", 1, verbose=False,
                    train_dataset=ArrayDataset(x, np.arange(20)), val_dataset=ArrayDataset(x, y),
                    test_dataset=ArrayDataset(x, y), output_dir=tmp / "out")
    trainer.setup()
    print("n_workers:", trainer.n_workers)


# ------------------------------------------------------------------------------------------- data loss / wrong
@case
def detect_out_is_input(tmp):
    path = _recording(tmp)
    try:
        _detect(path, "--method", "aum", "--out", str(path))
    finally:
        head = path.read_bytes()[:4]
        print("input still an npz (zip):", head == b"PK\x03\x04")


@case
def compare_out_is_input(tmp):
    path = _recording(tmp)
    try:
        _cli("compare", path, "--out", str(path), "--methods", "aum", "--no-plots", "--quiet")
    finally:
        print("input still an npz (zip):", path.read_bytes()[:4] == b"PK\x03\x04")


@case
def bhdf_nan_weights(tmp):
    from interpretdl_noise import BHDFInterpreter, LSTMDetector
    from interpretdl_noise._paddle import paddle
    from interpretdl_noise.interpreter.bhdf import default_weights_path

    det = LSTMDetector()
    state = {k: v.numpy() for k, v in det.state_dict().items()}
    state[next(iter(state))][:] = np.nan
    path = tmp / "nan.pdparams"
    paddle.save(state, str(path))
    (tmp / "nan.json").write_text(default_weights_path().with_suffix(".json").read_text())
    rng = np.random.default_rng(0)
    td = rng.dirichlet(np.ones(3), size=(40, 8)).astype(np.float16)
    _, scores = BHDFInterpreter(weights=str(path)).interpret(training_dynamics={"td": td})
    print("NaN scores:", int(np.isnan(scores).sum()), "of", scores.size)


@case
def td_rows_all_zero(tmp):
    from interpretdl_noise import AUMInterpreter

    td = np.zeros((30, 5, 3), dtype=np.float16)
    _, scores = AUMInterpreter().interpret(training_dynamics={"td": td})
    print("distinct scores:", np.unique(scores).size)


@case
def td_one_class(tmp):
    from interpretdl_noise import AUMInterpreter

    AUMInterpreter().interpret(training_dynamics={"td": np.ones((30, 5, 1), dtype=np.float16)})


@case
def sample_ids_bad(tmp):
    from interpretdl_noise import save_training_dynamics

    rng = np.random.default_rng(0)
    td = rng.dirichlet(np.ones(3), size=(4, 5)).astype(np.float16)
    labels = np.tile(np.arange(3, dtype=np.int16), (4, 1))
    for ids in ([0, 0, 1, 2], [-1, 0, 1, 2], [0.5, 1, 2, 3]):
        path = tmp / "ids.npz"
        try:
            save_training_dynamics(path, td, labels, sample_ids=np.array(ids))
            _detect(path, "--method", "aum", "--out", str(tmp / "ranked.csv"))
            print(ids, "-> CSV sample_id column:", (tmp / "ranked.csv").read_text().split()[1:3])
        except ValueError as exc:
            print(ids, "-> ValueError:", exc)


@case
def aum_interpreter_inf_logits(tmp):
    from interpretdl_noise import AUMInterpreter

    rng = np.random.default_rng(0)
    td = rng.dirichlet(np.ones(3), size=(10, 4)).astype(np.float16)
    logits = rng.normal(size=(10, 4, 3)).astype(np.float32)
    logits[0, 0, 0] = np.inf
    labels = np.tile(np.arange(3, dtype=np.int16), (10, 1))
    _, scores = AUMInterpreter().interpret(training_dynamics={"td": td, "logits": logits, "labels": labels})
    print("score of the inf row:", scores[0], "finite:", bool(np.isfinite(scores).all()))


@case
def aum_finalize_killed_between_writes(tmp):
    """A kill between the two CSV renames, simulated: the second CSV's os.replace raises."""
    import pandas as pd

    from interpretdl_noise import AUMCalculator

    calc = AUMCalculator(tmp, compressed=False)
    calc.update(np.array([[2.0, 0.0], [0.0, 1.0]]), np.array([0, 0]), np.array([0, 1]))
    calc.finalize()
    calc.update(np.array([[5.0, 0.0], [0.0, 9.0]]), np.array([0, 0]), np.array([0, 1]))
    real, csv_calls = os.replace, []

    def dying(src, dst, *a, **k):
        if str(dst).endswith(".csv"):
            csv_calls.append(dst)
            if len(csv_calls) == 2:
                raise KeyboardInterrupt("killed")
        return real(src, dst, *a, **k)

    os.replace = dying
    try:
        calc.finalize()
    except KeyboardInterrupt:
        pass
    finally:
        os.replace = real

    def state():
        values = pd.read_csv(tmp / "aum_values.csv")
        records = pd.read_csv(tmp / "full_aum_records.csv")
        return (f"aum_values {'new' if values['aum'].max() > 3 else 'old'}, full_aum_records "
                f"{'new' if records['num_measurements'].max() > 1 else 'old'}")

    journal = tmp / ".aum_finalize.json"
    print("right after the kill:", state(), "| journal present:", journal.exists())
    if journal.exists():
        from interpretdl_noise.common.atomic import complete_atomic_group

        complete_atomic_group(journal)
        print("after complete_atomic_group (also run by the next finalize):", state())


@case
def atomic_write_keeps_mode(tmp):
    from interpretdl_noise.common.file_utils import atomic_path

    path = tmp / "secret.txt"
    path.write_text("old")
    os.chmod(path, 0o600)
    with atomic_path(path) as t:
        t.write_text("new")
    print("mode after overwrite:", oct(path.stat().st_mode & 0o777))


@case
def answers_duplicate_worker(tmp):
    from interpretdl_noise.crowd import load_answers

    for raw in ({"0": {"0": 1, "00": 0}}, {"0": {0: 1, "0": 0}}):
        try:
            print(raw, "->", load_answers(raw))
        except ValueError as exc:
            print(raw, "-> ValueError:", exc)
    path = tmp / "answers.json"
    path.write_text('{"0": {"1": 1, "1": 0}}')
    try:
        print("repeated JSON key ->", load_answers(path))
    except ValueError as exc:
        print("repeated JSON key -> ValueError:", exc)


@case
def answers_non_ascii_digits(tmp):
    from interpretdl_noise.crowd import load_answers

    print("'\u0661' ->", load_answers({"\u0661": {"0": 1}}))


@case
def answers_odd_ids(tmp):
    from interpretdl_noise.crowd import load_answers

    for key in ("\u00b2", "9" * 5000, str(2**70)):
        try:
            out = load_answers({key: {"0": 1}})
            from interpretdl_noise import majority_vote

            print(key[:10], "->", list(out)[:1], majority_vote(out, 2)[:1])
        except Exception as exc:  # noqa: BLE001
            print(key[:10], "->", type(exc).__name__ + ":", str(exc)[:100])


@case
def weights_sidecar_loose(tmp):
    import shutil

    from interpretdl_noise import BHDFInterpreter
    from interpretdl_noise.interpreter.bhdf import default_weights_path

    for sidecar in ({"grid": 2.7}, {"grid": 32, "center": "no"}, {"grid": 2e6}):
        shutil.copy(default_weights_path(), tmp / "w.pdparams")
        (tmp / "w.json").write_text(json.dumps(sidecar))
        try:
            b = BHDFInterpreter(weights=str(tmp / "w.pdparams"))
            print(sidecar, "-> grid", b.grid, "center", b.center)
            rng = np.random.default_rng(0)
            td = rng.dirichlet(np.ones(3), size=(40, 8)).astype(np.float16)
            b.interpret(training_dynamics={"td": td})
            print("   scored")
        except Exception as exc:  # noqa: BLE001
            print(sidecar, "->", type(exc).__name__ + ":", str(exc)[:100])


# ---------------------------------------------------------------------------------------- unhelpful errors
@case
def np_load_interpretdl_file(tmp):
    from interpretdl_noise import BHDFInterpreter

    fixture = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "interpretdl"
    path = fixture / "training_dynamics_flip_none.npz"
    with np.load(path) as data:
        BHDFInterpreter().interpret(training_dynamics=data)
    print("scored", path.name)


@case
def npz_corrupt_compressed_byte(tmp):
    """Flip one byte at 64 places inside td's compressed data; count what each load raises."""
    from collections import Counter

    from interpretdl_noise import load_training_dynamics

    path = _recording(tmp, n=400, e=10, c=5)
    good = path.read_bytes()
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("td.npy")
    local_extra = int.from_bytes(good[info.header_offset + 28:info.header_offset + 30], "little")
    start = info.header_offset + 30 + len(info.filename.encode()) + local_extra
    seen = Counter()
    for k in range(64):
        raw = bytearray(good)
        raw[start + k * info.compress_size // 64] ^= 0xFF
        path.write_bytes(bytes(raw))
        try:
            load_training_dynamics(path)
            seen["loaded"] += 1
        except ValueError as exc:
            seen["ValueError: " + str(exc).split(": ", 1)[1][:40]] += 1
        except Exception as exc:  # noqa: BLE001
            seen[f"{type(exc).__module__}.{type(exc).__name__}"] += 1
    print(dict(seen))
    bare = sum(v for k, v in seen.items() if not k.startswith(("ValueError", "loaded")))
    if bare:
        raise RuntimeError(f"{bare} of 64 corruptions raised something other than our ValueError")


@case
def weights_claiming_huge_array(tmp):
    """A .pdparams pickle whose byte string claims 1 TiB (the file is 14 bytes)."""
    from interpretdl_noise.common.state_dict import load_state_dict

    path = tmp / "huge.pdparams"
    path.write_bytes(b"\x80\x04\x8e" + (2**40).to_bytes(8, "little") + b"abc")
    print(load_state_dict(path))


@case
def cache_env_is_a_file(tmp):
    from interpretdl_noise.common.file_utils import download

    def ok(h):
        h.send_response(200)
        h.send_header("Content-Length", "3")
        h.end_headers()
        h.wfile.write(b"abc")

    srv = _serve(ok)
    blocker = tmp / "cachefile"
    blocker.write_text("x")
    os.environ["INTERPRETDL_NOISE_CACHE"] = str(blocker)
    try:
        download(f"http://127.0.0.1:{srv.server_port}/x.bin", allow_unverified=True, retries=0, progress=False)
    finally:
        srv.shutdown()


# ------------------------------------------------------------------------------------------------ downloader
def _serve(handler_body):
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class H(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            handler_body(self)

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


@case
def download_slow_server(tmp):
    from interpretdl_noise.common.file_utils import download

    body = b"x" * 11

    def slow(h):
        h.send_response(200)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        for b in body:
            h.wfile.write(bytes([b]))
            h.wfile.flush()
            time.sleep(1.0)

    import inspect

    srv = _serve(slow)
    try:
        for extra in ({}, {"deadline": 5.0}):
            if extra and "deadline" not in inspect.signature(download).parameters:
                continue
            start = time.perf_counter()
            try:
                download(f"http://127.0.0.1:{srv.server_port}/slow.bin", cache=tmp / str(len(extra)),
                         allow_unverified=True, retries=0, progress=False, timeout=(2.0, 2.0), **extra)
                print(f"{extra or 'defaults'}: accepted after {time.perf_counter() - start:.1f} s")
            except Exception as exc:  # noqa: BLE001
                print(f"{extra or 'defaults'}: {type(exc).__name__} after {time.perf_counter() - start:.1f} s: "
                      f"{str(exc)[:90]}")
    finally:
        srv.shutdown()


@case
def download_huge_body(tmp):
    from interpretdl_noise.common.file_utils import download

    chunk = b"y" * (1 << 20)

    def huge(h):
        h.send_response(200)
        h.end_headers()
        try:
            for _ in range(64):
                h.wfile.write(chunk)
        except OSError:
            pass

    srv = _serve(huge)
    seen = []
    import interpretdl_noise.common.file_utils as fu

    real_open = open

    class Counting:
        def __init__(self, f):
            self.f, self.n = f, 0

        def write(self, b):
            self.n += len(b)
            seen.append(self.n)
            return self.f.write(b)

        def __enter__(self):
            return self

        def __exit__(self, *a):
            return self.f.__exit__(*a)

    def counting_open(p, mode="r", *a, **k):
        f = real_open(p, mode, *a, **k)
        return Counting(f) if "w" in mode and str(p).endswith(".tmp") else f

    for mod in {fu, sys.modules.get("interpretdl_noise.common.download")} - {None}:
        mod.open = counting_open
    import inspect

    try:
        for extra in ({}, {"max_bytes": 1 << 20}):
            if extra and "max_bytes" not in inspect.signature(download).parameters:
                continue
            seen.clear()
            try:
                download(f"http://127.0.0.1:{srv.server_port}/big.bin", sha256="0" * 64, cache=tmp / str(len(extra)),
                         retries=0, progress=False, timeout=(2.0, 5.0), **extra)
            except Exception as exc:  # noqa: BLE001
                print(f"{extra or 'defaults'}: {max(seen) if seen else 0} bytes written, then {type(exc).__name__}: "
                      f"{str(exc)[:80]}")
    finally:
        srv.shutdown()


# ----------------------------------------------------------------------------------------------------- driver
def _child(name: str, limit_mib: int) -> None:
    warnings.simplefilter("ignore")
    import interpretdl_noise  # noqa: F401  (import first, so the limit counts only the case's own memory)
    import interpretdl_noise.cli  # noqa: F401

    with open("/proc/self/statm") as fh:
        vm = int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    resource.setrlimit(resource.RLIMIT_AS, (vm + limit_mib * 2**20, resource.RLIM_INFINITY))
    with tempfile.TemporaryDirectory() as d:
        start = time.perf_counter()
        try:
            CASES[name](Path(d))
            outcome = "no error"
        except SystemExit as exc:
            outcome = f"SystemExit({exc.code})"
        except BaseException as exc:  # noqa: BLE001  (the point is to see what escapes)
            outcome = f"{type(exc).__module__}.{type(exc).__name__}: {str(exc)[:220]}"
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"RESULT {name} | {outcome} | peak RSS {peak:.0f} MiB | {time.perf_counter() - start:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="*", help=f"default all: {', '.join(CASES)}")
    parser.add_argument("--limit", type=int, default=3072, help="extra address space per case, MiB")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.limit)
        return
    for name in args.cases or list(CASES):
        proc = subprocess.run([sys.executable, __file__, "--child", name, "--limit", str(args.limit)],
                              capture_output=True, text=True, timeout=300, cwd=tempfile.gettempdir())
        lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
        for ln in lines:
            print(ln if ln.startswith("RESULT") else f"    {ln}")
        if proc.returncode and not any(ln.startswith("RESULT") for ln in lines):
            print(f"RESULT {name} | process died (rc {proc.returncode}): {proc.stderr.strip()[-300:]}")


if __name__ == "__main__":
    main()
