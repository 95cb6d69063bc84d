"""Issue 12's reliability promises: no initialization over data whose encryption state is gone (a partial
restore, a mistaken DELETE), a key pinned by id refused before anything is written, and a frozen database
answered with 503 within the request deadline (the real binary against the real PostgreSQL)."""
import os
import re
import signal
import subprocess
import threading
import time

from conftest import write_key

SECRET_VALUES = {"password": "reliability-plaintext"}


def test_no_reinitialization_over_existing_secrets(cmf_factory, workdir, pg, db):
    c = cmf_factory().start()
    assert c.create_secret("kept", SECRET_VALUES).status == 200
    assert c.stop() == 0
    pg.psql("DELETE FROM cmf_encryption_state; DELETE FROM cmf_deks", db)
    before = pg.dump(db)
    other = os.path.join(workdir, "other.key")
    write_key(other)
    c2 = cmf_factory(env={"CMF_ENCRYPTION_KEY_FILE": other}).start(wait=False)
    assert c2.wait_exit() == 78
    log = c2.log()
    assert "the database holds 1 secret(s) and 0 data key(s) but no encryption state" in log, log
    assert "initialized the database" not in log
    assert pg.dump(db) == before  # nothing written: no state row, no new data key
    # `cmf check` and `cmf init` refuse the same way, with the right key too
    assert c2.run("check").returncode == 78
    assert c2.run("init").returncode == 78
    assert cmf_factory().run("init").returncode == 78
    assert pg.dump(db) == before


def test_state_row_deleted_alone_is_a_configuration_error(cmf_factory, pg, db):
    c = cmf_factory().start()
    assert c.stop() == 0
    pg.psql("DELETE FROM cmf_encryption_state", db)
    before = pg.dump(db)
    c2 = cmf_factory().start(wait=False)
    assert c2.wait_exit() == 78  # not 70 ("already exists"): exit 70 is for bugs
    assert "the database holds 0 secret(s) and 1 data key(s) but no encryption state" in c2.log()
    assert pg.dump(db) == before


def test_an_emptied_database_still_initializes(cmf_factory, workdir, pg, db):
    c = cmf_factory().start()
    assert c.stop() == 0
    pg.psql("DELETE FROM cmf_encryption_state; DELETE FROM cmf_deks", db)
    other = os.path.join(workdir, "fresh.key")
    write_key(other)
    c2 = cmf_factory(env={"CMF_ENCRYPTION_KEY_FILE": other}).start()
    assert "initialized the database" in c2.log()
    assert c2.create_secret("fresh-one", SECRET_VALUES).status == 200
    assert c2.stop() == 0


def test_pinned_key_id_refuses_another_key_before_any_write(cmf_factory, pg, db):
    wrong_pin = "0123456789abcdef"
    c = cmf_factory(env={"CMF_ENCRYPTION_KEY_ID": wrong_pin}).start(wait=False)
    assert c.wait_exit() == 78
    log = c.log()
    m = re.search(r"has key id ([0-9a-f]{16}), but encryption.key.id pins key id %s" % wrong_pin, log)
    assert m, log
    # refused before the database was touched: a fresh database stays uninitialized
    assert pg.psql("SELECT to_regclass('cmf_encryption_state') IS NULL", db) == "t"
    assert c.run("check").returncode == 78 and c.run("init").returncode == 78
    assert pg.psql("SELECT to_regclass('cmf_encryption_state') IS NULL", db) == "t"
    # the key's own id as the pin: it starts and initializes
    good = cmf_factory(env={"CMF_ENCRYPTION_KEY_ID": m.group(1)}).start()
    assert good.create_secret("pinned", SECRET_VALUES).status == 200
    assert good.stop() == 0


def test_malformed_key_id_pin_is_refused(cmf_factory):
    c = cmf_factory(env={"CMF_ENCRYPTION_KEY_ID": "not-a-key-id"}).start(wait=False)
    assert c.wait_exit() == 78
    assert ("environment CMF_ENCRYPTION_KEY_ID: expected the key id `cmf keygen` prints (16 lowercase "
            "hexadecimal digits), found 'not-a-key-id'") in c.log(), c.log()


def _signal_all(pids, sig):
    """A backend may have exited since it was listed: that one needs no signal."""
    for p in pids:
        try:
            os.kill(p, sig)
        except ProcessLookupError:
            pass


def _cluster_pids(pg):
    with open(os.path.join(pg.dir, "data", "postmaster.pid")) as f:
        postmaster = int(f.readline())
    kids = subprocess.run(["pgrep", "-P", str(postmaster)], capture_output=True, text=True).stdout.split()
    return [postmaster] + [int(k) for k in kids]


def test_frozen_database_gets_503_within_the_deadline_and_probes_keep_answering(cmf_factory, pg, db):
    """Every PostgreSQL process stopped (SIGSTOP: a partition, a stuck volume): a write answers 503 within
    database.requestTimeoutSeconds + 1 s instead of hanging, /healthz keeps answering (within the deadline
    + 1 s), and after SIGCONT the service resumes with nothing lost."""
    from conftest import secret_body
    c = cmf_factory(env={"CMF_DATABASE_REQUEST_TIMEOUT_SECONDS": "2"}).start()
    assert c.create_secret("frozen-test", {"k": "v1"}).status == 200
    pids = _cluster_pids(pg)
    results, health = {}, []

    def write():
        t0 = time.monotonic()
        r = c.request("PUT", "/cmf/api/v1/secrets/frozen-test", secret_body("frozen-test", {"k": "v2"}), timeout=30)
        results["write"] = (r.status, time.monotonic() - t0, r.headers.get("retry-after"))

    try:
        _signal_all(pids, signal.SIGSTOP)
        t = threading.Thread(target=write)
        t.start()
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            t0 = time.monotonic()
            r = c.request("GET", "/healthz", token=None, timeout=5)
            health.append((r.status, time.monotonic() - t0))
            time.sleep(0.2)
        t.join(30)
    finally:
        _signal_all(pids, signal.SIGCONT)
    status, took, retry_after = results["write"]
    assert status == 503 and retry_after == "1", results
    assert took < 2 + 1 + 0.5, "the write waited %.1f s for a frozen PostgreSQL (deadline 2 s)" % took
    # /healthz is never hung by the frozen database: on the API port it can at worst share a worker thread
    # with a request waiting out its deadline (server.probeListen, the next test, avoids even that).
    assert health and all(s == 200 and d < 2 + 1 for s, d in health), health
    # Resumed: the next write goes through (within a few seconds of SIGCONT), and nothing was lost.
    end = time.monotonic() + 15
    while True:
        r = c.request("PUT", "/cmf/api/v1/secrets/frozen-test", secret_body("frozen-test", {"k": "v3"}))
        if r.status == 200 or time.monotonic() > end:
            break
        time.sleep(0.2)
    assert r.status == 200, r
    assert c.get_secret("frozen-test").json()["spec"]["data"] == {"k": "****"}


def test_probe_listener_answers_while_every_api_thread_waits_on_a_frozen_database(cmf_factory, pg, db):
    """server.probeListen: /healthz and /readyz on a listener of their own (a thread per connection), so a
    probe never queues behind API worker threads that wait out their deadline on a frozen PostgreSQL."""
    import http.client
    from conftest import free_port, secret_body
    port = free_port()
    c = cmf_factory(env={"CMF_DATABASE_REQUEST_TIMEOUT_SECONDS": "2", "CMF_SERVER_THREADS": "2",
                         "CMF_SERVER_PROBE_LISTEN": "127.0.0.1:%d" % port}).start()
    assert c.create_secret("probe-test", {"k": "v1"}).status == 200

    def probe(path):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        t0 = time.monotonic()
        conn.request("GET", path)
        r = conn.getresponse()
        body = r.read()
        conn.close()
        return r.status, time.monotonic() - t0, body

    assert probe("/healthz")[0] == 200 and probe("/readyz")[0] == 200
    status, _, body = probe("/cmf/api/v1/secrets")
    assert status == 404 and b"probeListen serves /healthz and /readyz only" in body
    pids = _cluster_pids(pg)
    writes, health = [], []

    def write(i):
        r = c.request("PUT", "/cmf/api/v1/secrets/probe-test", secret_body("probe-test", {"k": "w%d" % i}),
                      timeout=30)
        writes.append(r.status)

    try:
        _signal_all(pids, signal.SIGSTOP)
        ts = [threading.Thread(target=write, args=(i,)) for i in range(6)]  # more than the 2 API threads
        for t in ts:
            t.start()
        ready = []
        end = time.monotonic() + 4
        while time.monotonic() < end:
            status, took, _ = probe("/healthz")
            health.append((status, took))
            status, took, body = probe("/readyz")
            ready.append((status, took, body))
            time.sleep(0.1)
        for t in ts:
            t.join(30)
    finally:
        _signal_all(pids, signal.SIGCONT)
    assert health and all(s == 200 and d < 0.5 for s, d in health), health
    assert writes and all(s == 503 for s in writes), writes
    # /readyz answers from what the process last saw, never by asking the frozen database: at once, and
    # "database unavailable" once the deadline (2 s) has passed with no answer.
    assert all(d < 0.5 for _, d, _ in ready), [(s, d) for s, d, _ in ready]
    assert ready[-1][0] == 503 and b"database unavailable" in ready[-1][2], ready[-1]
    # Back after SIGCONT without a request: the background check sees PostgreSQL answer again.
    end = time.monotonic() + 10
    while probe("/readyz")[0] != 200 and time.monotonic() < end:
        time.sleep(0.1)
    assert probe("/readyz")[0] == 200
