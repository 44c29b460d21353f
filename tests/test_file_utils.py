"""The safe downloader (common/download.py, interpreter/bhdf_weights.py): a local server on 127.0.0.1 only."""
from __future__ import annotations

import hashlib
import io
import os
import socket
import stat
import tarfile
import threading
import time
import warnings
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from interpretdl_noise.common import download as fu
from interpretdl_noise.interpreter import bhdf_weights as bw
from interpretdl_noise.common.file_utils import (
    WEIGHTS_REGISTRY,
    ChecksumMismatchError,
    DownloadError,
    UnsafeArchiveError,
    UnverifiedDownloadWarning,
    WeightsSpec,
    cache_dir,
    download,
    extract_archive,
    resolve_weights,
)

BODY = bytes(range(256)) * 64  # 16 KiB
BODY_SHA = hashlib.sha256(BODY).hexdigest()
FAST = {"retries": 2, "backoff": 0.0, "progress": False, "timeout": (2.0, 2.0)}


# ------------------------------------------------------------------------------------------------ local server


class _Handler(BaseHTTPRequestHandler):
    """Serves ``server.routes[path]``: a list of behaviours consumed in order (the last one repeats)."""

    def log_message(self, *args):  # keep test output quiet
        pass

    def do_GET(self):
        srv = self.server
        with srv.lock:
            srv.requests.append(self.path)
            plan = srv.routes.get(self.path, [("status", 404)])
            kind, *args = plan.pop(0) if len(plan) > 1 else plan[0]
        if kind == "ok":
            (body,) = args
            self._headers(200, len(body))
            self.wfile.write(body)
        elif kind == "status":
            body = b"error"
            self._headers(args[0], len(body))
            self.wfile.write(body)
        elif kind == "truncate":  # announce more bytes than we send, then close
            body, declared = args
            self._headers(200, declared)
            self.wfile.write(body)
        elif kind == "trickle":  # the whole body, one small piece at a time (each well inside the read timeout)
            body, piece, pause = args
            self._headers(200, len(body))
            try:
                for start in range(0, len(body), piece):
                    self.wfile.write(body[start:start + piece])
                    self.wfile.flush()
                    if srv.release.wait(pause):
                        break
            except OSError:
                pass
        elif kind == "endless":  # no Content-Length: stream chunks until the client goes away
            (chunk,) = args
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            try:
                for _ in range(4096):
                    self.wfile.write(chunk)
            except OSError:
                pass
        elif kind == "stall":  # send part of the body, then go silent
            body, partial = args
            self._headers(200, len(body))
            self.wfile.write(body[:partial])
            self.wfile.flush()
            srv.release.wait(10)
        self.close_connection = True

    def _headers(self, code, length):
        self.send_response(code)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(length))
        self.send_header("Connection", "close")
        self.end_headers()


class LocalServer:
    def __init__(self):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.routes = {}
        self.httpd.requests = []
        self.httpd.lock = threading.Lock()
        self.httpd.release = threading.Event()
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, path):
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def route(self, path, *behaviours):
        self.httpd.routes[path] = list(behaviours)
        return self.url(path)

    def count(self, path):
        return self.httpd.requests.count(path)

    def close(self):
        self.httpd.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def server(monkeypatch):
    for var in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    srv = LocalServer()
    yield srv
    srv.close()


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv(fu.CACHE_ENV, str(root))
    return root


def _files(root: Path):
    """All files below ``root`` (including hidden temporary files)."""
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def _zip_bytes(entries):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries:
            zf.writestr(zipfile.ZipInfo(name) if isinstance(name, str) else name, data)
    return buf.getvalue()


# ------------------------------------------------------------------------------------------------ cache dir


def test_cache_dir_env_override_xdg_and_home(monkeypatch, tmp_path, cache):
    assert cache_dir() == cache
    monkeypatch.delenv(fu.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "interpretdl_noise"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "interpretdl_noise"
    assert not cache_dir().is_relative_to(Path.cwd())


# ------------------------------------------------------------------------------------------------ download


def test_success_then_cache_hit_makes_no_second_request(server, cache):
    url = server.route("/w.bin", ("ok", BODY))
    path = download(url, sha256=BODY_SHA, progress=True, retries=0)
    assert path.read_bytes() == BODY
    assert path.name == "w.bin" and path.is_relative_to(cache)
    again = download(url, sha256=BODY_SHA.upper(), **FAST)
    assert again == path
    assert server.count("/w.bin") == 1
    assert _files(cache) == [path]  # no temporary files left


def test_corrupted_cache_entry_is_downloaded_again(server, cache):
    url = server.route("/w.bin", ("ok", BODY))
    path = download(url, sha256=BODY_SHA, **FAST)
    path.write_bytes(b"garbage")
    assert download(url, sha256=BODY_SHA, **FAST).read_bytes() == BODY
    assert server.count("/w.bin") == 2


def test_404_is_not_retried(server, cache):
    url = server.route("/missing.bin", ("status", 404))
    with pytest.raises(DownloadError, match="HTTP 404") as err:
        download(url, sha256=BODY_SHA, **FAST)
    assert err.value.status == 404 and err.value.url == url
    assert "BHDFInterpreter()" in str(err.value) and "local path" in str(err.value)
    assert server.count("/missing.bin") == 1
    assert _files(cache) == []


def test_500_then_success_is_retried(server):
    url = server.route("/flaky.bin", ("status", 500), ("status", 503), ("ok", BODY))
    path = download(url, sha256=BODY_SHA, **FAST)
    assert path.read_bytes() == BODY
    assert server.count("/flaky.bin") == 3


def test_persistent_500_gives_up_with_exponential_backoff(server, cache, monkeypatch):
    url = server.route("/down.bin", ("status", 500))
    delays = []
    monkeypatch.setattr(fu.time, "sleep", delays.append)
    with pytest.raises(DownloadError, match="after 4 attempt") as err:
        download(url, sha256=BODY_SHA, retries=3, backoff=0.5, progress=False)
    assert err.value.status == 500
    assert delays == [0.5, 1.0, 2.0]
    assert server.count("/down.bin") == 4
    assert _files(cache) == []


def test_truncated_body_is_retried_then_succeeds(server):
    url = server.route("/t.bin", ("truncate", BODY[:1000], len(BODY)), ("ok", BODY))
    assert download(url, sha256=BODY_SHA, **FAST).read_bytes() == BODY
    assert server.count("/t.bin") == 2


def test_always_truncated_body_raises_and_leaves_no_file(server, cache):
    url = server.route("/t.bin", ("truncate", BODY[:1000], len(BODY)))
    with pytest.raises(DownloadError, match="after 3 attempt"):
        download(url, sha256=BODY_SHA, **FAST)
    assert server.count("/t.bin") == 3
    assert _files(cache) == []


def test_wrong_checksum_leaves_cache_untouched(server, cache):
    url = server.route("/w.bin", ("ok", BODY))
    wrong = hashlib.sha256(b"something else").hexdigest()
    # an existing (stale) cache entry at the target must survive a failed verification
    stale = download(server.route("/w.bin", ("ok", b"stale")), sha256=hashlib.sha256(b"stale").hexdigest(), **FAST)
    server.route("/w.bin", ("ok", BODY))
    with pytest.raises(ChecksumMismatchError, match="checksum mismatch"):
        download(url, sha256=wrong, **FAST)
    assert server.count("/w.bin") == 2  # a checksum mismatch is not retried
    assert _files(cache) == [stale] and stale.read_bytes() == b"stale"


@pytest.mark.parametrize("partial", [0, 100], ids=["no-body", "mid-body"])
def test_stalled_server_times_out(server, cache, partial):
    url = server.route("/slow.bin", ("stall", BODY, partial))
    start = time.monotonic()
    with pytest.raises(DownloadError, match="timed out"):
        download(url, sha256=BODY_SHA, timeout=(2.0, 0.5), retries=1, backoff=0.0, progress=False)
    assert time.monotonic() - start < 5
    assert server.count("/slow.bin") == 2
    assert _files(cache) == []


def test_offline_error_says_what_to_do(cache):
    with socket.socket() as s:  # a port on which nothing listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DownloadError) as err:
        download(f"http://127.0.0.1:{port}/w.bin", sha256=BODY_SHA, retries=1, backoff=0.0, progress=False)
    msg = str(err.value)
    assert "after 2 attempt" in msg and "BHDFInterpreter() with no weights argument" in msg and "local path" in msg


def test_unverified_download_requires_opt_in_and_warns(server, cache):
    url = server.route("/u.bin", ("ok", BODY))
    with pytest.raises(ValueError, match="allow_unverified=True"):
        download(url, **FAST)
    assert server.count("/u.bin") == 0
    with pytest.warns(UnverifiedDownloadWarning, match=BODY_SHA):
        path = download(url, allow_unverified=True, **FAST)
    assert path.read_bytes() == BODY


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"url": "ftp://127.0.0.1/x.bin"}, "http"),
        ({"url": "http://127.0.0.1/x.bin", "sha256": "abc"}, "64 hexadecimal"),
        ({"url": "http://127.0.0.1/x.bin", "filename": "../x.bin"}, "plain file name"),
        ({"url": "http://127.0.0.1/", }, "file name"),
        ({"url": "http://127.0.0.1/x.bin", "timeout": (1, 0)}, "timeout"),
        ({"url": "http://127.0.0.1/x.bin", "retries": -1}, "retries"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs, match):
    kwargs.setdefault("sha256", BODY_SHA)
    url = kwargs.pop("url")
    with pytest.raises(ValueError, match=match):
        download(url, progress=False, **kwargs)


# ------------------------------------------------------------------------------------------------ extraction


def test_extract_zip_and_tar(tmp_path):
    z = tmp_path / "a.zip"
    z.write_bytes(_zip_bytes([("d/", b""), ("d/w.pdparams", b"w"), ("readme.txt", b"r")]))
    out = extract_archive(z, tmp_path / "zout")
    assert out == [tmp_path / "zout" / "d" / "w.pdparams", tmp_path / "zout" / "readme.txt"]
    assert out[0].read_bytes() == b"w"

    t = tmp_path / "a.tar.gz"
    with tarfile.open(t, "w:gz") as tf:
        for name, data in [("d/w.pdparams", b"w")]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("alias")
        link.type, link.linkname = tarfile.SYMTYPE, "d/w.pdparams"
        tf.addfile(link)
    out = extract_archive(t, tmp_path / "tout")
    assert [p.relative_to(tmp_path / "tout").as_posix() for p in out] == ["d/w.pdparams", "alias"]
    assert (tmp_path / "tout" / "alias").read_bytes() == b"w"


@pytest.mark.parametrize("bad", ["../evil.txt", "d/../../evil.txt", "/tmp/evil.txt", "..\\evil.txt"])
def test_zip_with_traversal_is_refused_and_writes_nothing(tmp_path, bad):
    z = tmp_path / "bad.zip"
    z.write_bytes(_zip_bytes([("good.txt", b"ok"), (bad, b"pwned")]))
    dest = tmp_path / "deep" / "dest"
    with pytest.raises(UnsafeArchiveError, match="refusing to extract"):
        extract_archive(z, dest)
    assert not dest.exists()
    assert not (tmp_path / "deep" / "evil.txt").exists() and not (tmp_path / "evil.txt").exists()


def test_zip_symlink_entry_is_refused(tmp_path):
    info = zipfile.ZipInfo("link")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    z = tmp_path / "link.zip"
    z.write_bytes(_zip_bytes([(info, b"/etc/passwd")]))
    with pytest.raises(UnsafeArchiveError, match="symbolic link"):
        extract_archive(z, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


def test_existing_symlink_in_dest_cannot_be_used_to_escape(tmp_path):
    dest, outside = tmp_path / "dest", tmp_path / "outside"
    dest.mkdir()
    outside.mkdir()
    os.symlink(outside, dest / "out")
    z = tmp_path / "a.zip"
    z.write_bytes(_zip_bytes([("out/x.txt", b"pwned")]))
    with pytest.raises(UnsafeArchiveError, match="existing symbolic link"):
        extract_archive(z, dest)
    assert list(outside.iterdir()) == []


def _tar(path, members):
    with tarfile.open(path, "w") as tf:
        for name, kind, arg in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(arg)
                tf.addfile(info, io.BytesIO(arg))
            else:
                info.type = tarfile.SYMTYPE if kind == "sym" else tarfile.LNKTYPE
                info.linkname = arg
                tf.addfile(info)
    return path


@pytest.mark.parametrize(
    "members",
    [
        [("../evil.txt", "file", b"x")],
        [("/tmp/evil.txt", "file", b"x")],
        [("link", "sym", "../../etc")],
        [("link", "sym", "/etc")],
        [("hard", "hard", "../evil.txt")],
        # a link that looks harmless on its own but escapes through another archive link
        [("l1", "sym", "."), ("l1/l2", "sym", ".."), ("l1/l2/evil.txt", "file", b"x")],
        [("l1", "sym", "."), ("l2", "sym", "l1/.."), ("l2/evil.txt", "file", b"x")],
    ],
    ids=["dotdot", "absolute", "sym-dotdot", "sym-absolute", "hardlink", "sym-chain", "sym-through-sym"],
)
def test_tar_with_traversal_is_refused_and_writes_nothing(tmp_path, members):
    t = _tar(tmp_path / "bad.tar", [("good.txt", "file", b"ok"), *members])
    dest = tmp_path / "a" / "dest"
    with pytest.raises(UnsafeArchiveError, match="refusing to extract"):
        extract_archive(t, dest)
    assert not dest.exists()
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["bad.tar"]


def test_extract_rejects_non_archives(tmp_path):
    f = tmp_path / "plain.bin"
    f.write_bytes(b"not an archive")
    with pytest.raises(ValueError, match="not a supported archive"):
        extract_archive(f, tmp_path / "d")


# ------------------------------------------------------------------------------------------------ resolve_weights


def test_interpretdl_weights_are_registered_and_need_opt_in(monkeypatch):
    spec = WEIGHTS_REGISTRY["interpretdl-0.8"]
    assert spec.url == "https://github.com/PaddlePaddle/InterpretDL/files/9120427/noise_detector_trained.pdparams.zip"
    assert spec.sha256 is None and spec.needs_opt_in and spec.member == "noise_detector_trained.pdparams"

    def no_network(*a, **k):
        raise AssertionError("the network must not be contacted")

    monkeypatch.setattr(fu.requests, "Session", no_network)
    with pytest.raises(ValueError, match="allow_unverified=True"):
        resolve_weights("interpretdl-0.8")


def test_registry_name_resolution_with_opt_in_warning(server, cache, monkeypatch):
    archive = _zip_bytes([("noise_detector_trained.pdparams", BODY)])
    url = server.route("/files/1/noise_detector_trained.pdparams.zip", ("ok", archive))
    spec = WeightsSpec(url=url, sha256=None, filename="noise_detector_trained.pdparams.zip",
                       member="noise_detector_trained.pdparams", needs_opt_in=True)
    monkeypatch.setitem(WEIGHTS_REGISTRY, "test-unverified", spec)

    with pytest.raises(ValueError, match="no published sha256"):
        resolve_weights("test-unverified", progress=False)
    assert server.httpd.requests == []

    with pytest.warns(UnverifiedDownloadWarning, match=hashlib.sha256(archive).hexdigest()):
        path = resolve_weights("test-unverified", allow_unverified=True, progress=False)
    assert path.name == "noise_detector_trained.pdparams" and path.read_bytes() == BODY
    assert path.is_relative_to(cache)
    with pytest.warns(UnverifiedDownloadWarning):
        assert resolve_weights("test-unverified", allow_unverified=True, progress=False) == path
    assert len(server.httpd.requests) == 1  # cache hit
    assert not any(p.name.startswith(".") for p in _files(cache))  # no staging leftovers

    # pinning the checksum turns the same entry into a verified one: no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_weights("test-unverified", sha256=hashlib.sha256(archive).hexdigest(), progress=False) == path


def test_verified_registry_entry_and_url(server, cache, monkeypatch):
    url = server.route("/v.pdparams", ("ok", BODY))
    monkeypatch.setitem(WEIGHTS_REGISTRY, "test-verified", WeightsSpec(url=url, sha256=BODY_SHA, filename="v.pdparams"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        path = resolve_weights("test-verified", progress=False)
    assert path.read_bytes() == BODY
    with pytest.raises(ValueError, match="contradicts"):
        resolve_weights("test-verified", sha256="0" * 64)

    with pytest.raises(ValueError, match="without a sha256"):
        resolve_weights(url, progress=False)
    assert resolve_weights(url, sha256=BODY_SHA, progress=False) == path
    assert server.count("/v.pdparams") == 1


def test_local_paths(tmp_path, cache):
    local = tmp_path / "mine.pdparams"
    local.write_bytes(BODY)
    assert resolve_weights(local) == local
    assert resolve_weights(str(local), sha256=BODY_SHA) == local
    with pytest.raises(ChecksumMismatchError):
        resolve_weights(local, sha256="0" * 64)

    z = tmp_path / "mine.zip"
    z.write_bytes(_zip_bytes([("sub/model.pdparams", BODY), ("notes.txt", b"n")]))
    member = resolve_weights(z)
    assert member.read_bytes() == BODY and member.is_relative_to(cache)

    with pytest.raises(ValueError, match="interpretdl-0.8"):
        resolve_weights("no-such-weights")


def test_tar_archives_local_and_from_a_spec(server, tmp_path, cache):
    t = tmp_path / "w.tar.gz"
    with tarfile.open(t, "w:gz") as tf:
        info = tarfile.TarInfo("sub/noise_detector_trained.pdparams")
        info.size = len(BODY)
        info.mtime = 0  # an old member mtime must not defeat re-use of the extracted file
        tf.addfile(info, io.BytesIO(BODY))
    local = resolve_weights(t)  # the single .pdparams member is found without a name
    assert local.read_bytes() == BODY and local.is_relative_to(cache)

    data = t.read_bytes()
    spec = WeightsSpec(url=server.route("/w.tar.gz", ("ok", data)), sha256=hashlib.sha256(data).hexdigest(),
                       filename="w.tar.gz", member="sub/noise_detector_trained.pdparams")
    first = resolve_weights(spec, progress=False)
    assert first.read_bytes() == BODY
    inode = first.stat().st_ino
    assert resolve_weights(spec, progress=False) == first
    assert first.stat().st_ino == inode  # neither downloaded nor extracted again
    assert server.count("/w.tar.gz") == 1

    bad = WeightsSpec(url=spec.url, sha256=spec.sha256, filename="w.tar.gz", member="other.pdparams")
    with pytest.raises(ValueError, match="no member 'other.pdparams'"):
        resolve_weights(bad, progress=False)


def test_weights_spec_and_register_weights_validate(monkeypatch):
    url = "http://127.0.0.1/w.zip"
    assert WeightsSpec(url=url, sha256=None, filename="w.zip").needs_opt_in  # no checksum -> opt-in
    assert WeightsSpec(url=url, sha256=BODY_SHA.upper(), filename="w.zip").sha256 == BODY_SHA
    with pytest.raises(ValueError, match="member"):
        WeightsSpec(url=url, sha256=None, filename="w.zip", member="../w.pdparams")
    with pytest.raises(ValueError, match="64 hexadecimal"):
        WeightsSpec(url=url, sha256="123", filename="w.zip")
    monkeypatch.setattr(bw, "WEIGHTS_REGISTRY", dict(WEIGHTS_REGISTRY))
    spec = WeightsSpec(url=url, sha256=BODY_SHA, filename="w.zip")
    bw.register_weights("mine", spec)
    assert bw.WEIGHTS_REGISTRY["mine"] is spec
    with pytest.raises(ValueError, match="already registered"):
        bw.register_weights("mine", spec)
    bw.register_weights("mine", spec, overwrite=True)


# ------------------------------------------------------------------------------------------------ limits
def test_overall_deadline_stops_a_trickling_server(server, cache):
    # 64 bytes, 8 at a time every 0.3 s: each read is well inside the 2 s read timeout, the whole takes 2.4 s
    url = server.route("/trickle.bin", ("trickle", BODY[:64], 8, 0.3))
    start = time.monotonic()
    with pytest.raises(DownloadError, match="deadline of 0.8 s"):
        download(url, sha256=hashlib.sha256(BODY[:64]).hexdigest(), deadline=0.8, **FAST)
    assert time.monotonic() - start < 2.0
    assert server.count("/trickle.bin") == 1  # a missed deadline is not retried
    assert _files(cache) == []


def test_automatic_deadline_scales_with_the_expected_size():
    assert fu.download_deadline(None, (1.0, 2.0)) == 5.0
    assert fu.download_deadline(10 * fu.MIN_RATE, (1.0, 2.0)) == pytest.approx(15.0)
    assert fu.download_deadline(fu.DEFAULT_MAX_BYTES) > fu.download_deadline(1 << 20)


def test_announced_size_over_the_limit_is_refused_before_reading(server, cache):
    url = server.route("/big.bin", ("ok", BODY))
    with pytest.raises(DownloadError, match=f"announces {len(BODY)} bytes, more than the limit of 1000"):
        download(url, sha256=BODY_SHA, max_bytes=1000, **FAST)
    assert server.count("/big.bin") == 1
    assert _files(cache) == []


def test_body_without_length_is_cut_at_the_limit(server, cache, monkeypatch):
    written = []
    real_open = open

    def tracking_open(path, mode="r", *args, **kwargs):
        fh = real_open(path, mode, *args, **kwargs)
        if "w" in mode:
            real_write = fh.write
            fh.write = lambda b: written.append(len(b)) or real_write(b)
        return fh

    monkeypatch.setattr(fu, "open", tracking_open, raising=False)
    url = server.route("/endless.bin", ("endless", b"z" * 65536))
    with pytest.raises(DownloadError, match="exceeds the limit of 200000 bytes"):
        download(url, sha256="0" * 64, max_bytes=200_000, **FAST)
    assert 0 < sum(written) <= 200_000
    assert _files(cache) == []


def test_registry_size_is_the_download_limit(server, cache, monkeypatch):
    url = server.route("/sized.bin", ("ok", BODY))
    monkeypatch.setitem(WEIGHTS_REGISTRY, "test-sized",
                        WeightsSpec(url=url, sha256=BODY_SHA, filename="s.pdparams", size=len(BODY) - 1))
    with pytest.raises(DownloadError, match="limit"):
        resolve_weights("test-sized", cache=cache, progress=False)
    with pytest.raises(ValueError, match="size"):
        WeightsSpec(url=url, sha256=BODY_SHA, filename="s.pdparams", size=0)


@pytest.mark.parametrize("kwargs, match", [({"max_bytes": 0}, "max_bytes"), ({"deadline": -1}, "deadline"),
                                           ({"max_bytes": 2.5}, "max_bytes")])
def test_limit_arguments_are_checked(kwargs, match):
    with pytest.raises(ValueError, match=match):
        download("http://127.0.0.1:9/x.bin", sha256=BODY_SHA, **kwargs)


def test_cache_that_is_a_file_is_named(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    monkeypatch.setenv(fu.CACHE_ENV, str(blocker))
    with pytest.raises(ValueError, match=r"not-a-folder \(\$INTERPRETDL_NOISE_CACHE\) is an existing file"):
        download("http://127.0.0.1:9/x.bin", sha256=BODY_SHA, progress=False)
    with pytest.raises(ValueError, match="cache=.* is an existing file"):
        resolve_weights("http://127.0.0.1:9/x.bin", sha256=BODY_SHA, cache=blocker, progress=False)


def test_file_utils_still_exports_the_old_names():
    from interpretdl_noise.common import file_utils

    for name in file_utils.__all__:
        assert getattr(file_utils, name) is not None
    assert file_utils.resolve_weights is resolve_weights and file_utils.atomic_path is not None


def test_archive_that_inflates_too_far_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(fu, "_MAX_EXTRACT_BYTES", 10_000)
    zpath = tmp_path / "bomb.zip"
    with zipfile.ZipFile(zpath, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("w.pdparams", bytes(20_000))
    tpath = tmp_path / "bomb.tar.gz"
    with tarfile.open(tpath, "w:gz") as tf:
        info = tarfile.TarInfo("w.pdparams")
        info.size = 20_000
        tf.addfile(info, io.BytesIO(bytes(20_000)))
    for path in (zpath, tpath):
        with pytest.raises(UnsafeArchiveError, match="add up to 20000 bytes"):
            extract_archive(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()
