"""Issue 13 item 16: `make run` with its port taken says so in one line (naming the port and suggesting
`make run PORT=...`), prints no banner and exits non-zero; on a free PORT the banner comes once cmf
answers /readyz, and Ctrl-C stops cmf and PostgreSQL. `cmf serve` on a taken port exits non-zero with
its own line naming the address, and none saying "port 0"."""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request

import pytest

from conftest import ROOT, free_port

BANNER = "Try, in another shell"


@pytest.fixture
def devdir():
    d = tempfile.mkdtemp(prefix="cmf-make-run-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def make_env(devdir):
    # a PostgreSQL of its own on a free port, under a temporary directory (not the tree's .run/)
    return dict(os.environ, CMF_DEV_DIR=devdir, CMF_DEV_PGPORT=str(free_port()))


def occupied():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    return s


def test_taken_port_is_one_clear_line_and_a_failure(devdir):
    with occupied() as s:
        port = s.getsockname()[1]
        r = subprocess.run(["make", "run", "PORT=%d" % port], cwd=ROOT, env=make_env(devdir),
                           capture_output=True, text=True, timeout=120)
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    # make's own lines aside ("make[1]: Nothing to be done", "make: *** [...] Error 1"): one line, ours
    ours = [l for l in out.splitlines() if l.strip() and not l.startswith("make:") and not l.startswith("make[")]
    assert len(ours) == 1, out
    line = ours[0]
    assert str(port) in line and "already in use" in line and "make run PORT=" in line, line
    suggested = int(line.rsplit("PORT=", 1)[1])
    assert suggested != port
    assert BANNER not in out and "libmicrohttpd" not in out and "port 0" not in out, out
    # refused before anything was started: no PostgreSQL cluster was made
    assert not os.path.exists(os.path.join(devdir, "pg")), os.listdir(devdir)


@pytest.mark.parametrize("port", ["http", "0", "65536"])
def test_a_port_that_is_no_port_is_refused(devdir, port):
    r = subprocess.run(["make", "run", "PORT=" + port], cwd=ROOT, env=make_env(devdir), capture_output=True,
                       text=True, timeout=120)
    assert r.returncode != 0 and "PORT must be a TCP port number" in r.stderr, r.stderr
    assert BANNER not in r.stdout + r.stderr


def test_free_port_prints_the_banner_once_ready_and_ctrl_c_stops_everything(devdir):
    port = free_port()
    env = make_env(devdir)
    # its own session, as a terminal's foreground job: Ctrl-C is SIGINT to the whole process group
    p = subprocess.Popen(["make", "run", "PORT=%d" % port], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines = []
    # A silent hang must fail the test, not block it: a watchdog ends the run past the deadline.
    watchdog = threading.Timer(120, lambda: os.killpg(p.pid, signal.SIGKILL))
    watchdog.start()
    try:
        deadline = time.monotonic() + 120
        ready_at_banner = None
        for line in p.stdout:
            lines.append(line)
            if BANNER in line:
                # the banner is printed only once cmf answers /readyz
                with urllib.request.urlopen("http://127.0.0.1:%d/readyz" % port, timeout=5) as r:
                    ready_at_banner = r.status
            if "Ctrl-C stops" in line or time.monotonic() > deadline:
                break
        out = "".join(lines)
        assert ready_at_banner == 200, out
        assert out.count(BANNER) == 1, out
        # cmf's own lines come first: it listened and answered /readyz before the banner
        assert out.index("listening on 127.0.0.1:%d" % port) < out.index(BANNER), out
        assert out.index("GET /readyz 200") < out.index(BANNER), out
        assert "http://127.0.0.1:%d/cmf/api/v1/secrets" % port in out, out
        assert "8080" not in out.replace("127.0.0.1:%d" % port, ""), out
    finally:
        watchdog.cancel()
        try:
            os.killpg(p.pid, signal.SIGINT)
        except ProcessLookupError:
            pass
        rest = p.communicate(timeout=60)[0]
    out = "".join(lines) + rest
    assert "stopped" in rest, out
    # cmf is gone (nothing listens on the port: SO_REUSEADDR, as a server binds, passes TIME_WAIT) and so is
    # PostgreSQL
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
    assert not os.path.exists(os.path.join(devdir, "pg", "data", "postmaster.pid")), out


def test_cmf_serve_on_a_taken_port_exits_non_zero_naming_the_address(cmf_factory):
    with occupied() as s:
        port = s.getsockname()[1]
        c = cmf_factory(env={"CMF_LISTEN": "127.0.0.1:%d" % port})
        c.start(wait=False)
        rc = c.wait_exit(60)
    log = c.log()
    assert rc == 78, (rc, log)
    assert "cannot listen on 127.0.0.1:%d: Address already in use" % port in log, log
    assert "port 0" not in log and "Failed to bind" not in log, log
