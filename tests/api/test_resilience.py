"""PostgreSQL outages, concurrent first starts and graceful shutdown, with real processes."""
import json
import socket
import threading
import time

import os

from conftest import ROOT, secret_body


def test_postgres_restart_503_then_recovers(cmf, pg):
    assert cmf.create_secret("before-outage", {"a": "b"}).status == 200
    pg.stop()
    try:
        r = cmf.get_secret("before-outage")
        assert r.status == 503, r
        assert r.error() == "database unavailable"
        assert r.headers.get("retry-after") == "1"
        r = cmf.create_secret("during-outage", {"a": "b"})
        assert r.status == 503
        r = cmf.request("GET", "/readyz")
        assert r.status == 503 and "database unavailable" in r.body.decode()
        assert cmf.request("GET", "/healthz").status == 200
    finally:
        pg.start()
    # the same process recovers by itself: every worker thread reconnects on its next request
    deadline = time.time() + 20
    while time.time() < deadline:
        r = cmf.get_secret("before-outage")
        if r.status == 200:
            break
        time.sleep(0.2)
    assert r.status == 200, r
    for _ in range(12):  # hit every worker thread
        assert cmf.get_secret("before-outage").status == 200
    assert cmf.create_secret("after-outage", {"a": "b"}).status == 200
    assert cmf.request("GET", "/readyz").status == 200
    assert cmf.proc.poll() is None


def test_concurrent_first_start_initializes_once(cmf_factory, pg, db):
    procs = [cmf_factory() for _ in range(3)]
    for p in procs:
        p.start(wait=False)
    for p in procs:
        p.wait_healthy()
    inits = sum(p.log().count("initialized the database") for p in procs)
    assert inits == 1, [p.log() for p in procs]
    assert pg.psql("SELECT count(*) FROM cmf_deks", db) == "1"
    assert pg.psql("SELECT count(*) FROM cmf_encryption_state", db) == "1"
    migrations = len([f for f in os.listdir(os.path.join(ROOT, "db", "migrations")) if f.endswith(".sql")])
    assert pg.psql("SELECT count(*) FROM cmf_schema_migrations", db) == str(migrations)
    # all three serve the same data
    assert procs[0].create_secret("shared-one", {"a": "b"}).status == 200
    for p in procs:
        assert p.get_secret("shared-one").status == 200


def test_sigterm_drains_in_flight_request(cmf):
    """A request whose body is still arriving when SIGTERM lands is completed, then the process exits 0."""
    body = json.dumps(secret_body("drained-one", {"a": "b"})).encode()
    s = socket.create_connection(("127.0.0.1", cmf.port))
    s.sendall(b"POST /cmf/api/v1/secrets HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Authorization: Bearer " + cmf.admin_token.encode() + b"\r\n"
              b"Content-Length: %d\r\n\r\n" % len(body) + body[:10])
    time.sleep(0.3)
    cmf.proc.send_signal(15)
    time.sleep(0.3)
    # new connections are refused while draining
    try:
        socket.create_connection(("127.0.0.1", cmf.port), timeout=1).close()
        refused = False
    except OSError:
        refused = True
    s.sendall(body[10:])
    resp = s.recv(65536)
    s.close()
    assert resp.startswith(b"HTTP/1.1 200"), resp[:200]
    assert cmf.wait_exit(timeout=20) == 0
    assert refused
    log = cmf.log()
    assert "received SIGTERM" in log and "stopped" in log


def test_concurrent_updates_all_apply(cmf):
    """Concurrent writers on one secret: the runner retries serialization failures; every update lands."""
    assert cmf.create_secret("hot-secret", {"n": "0"}).status == 200
    statuses = []

    def worker(i):
        for j in range(5):
            r = cmf.request("PUT", "/cmf/api/v1/secrets/hot-secret", secret_body("hot-secret", {"n": "%d-%d" % (i, j)}))
            statuses.append(r.status)

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert statuses == [200] * 20, statuses
    assert cmf.get_secret("hot-secret").json()["status"]["version"] == "21"


def test_concurrent_creates_of_distinct_secrets_do_not_conflict(cmf_factory, pg, db):
    """Writers on different names (two processes, 16 clients) never contend: no 503, every secret lands."""
    a = cmf_factory(env={"CMF_SERVER_THREADS": "8"}).start()
    b = cmf_factory(env={"CMF_SERVER_THREADS": "8"}).start()
    statuses = []

    def worker(i):
        c = a if i % 2 else b
        for j in range(10):
            statuses.append(c.create_secret("distinct-%d-%d" % (i, j), {"k": "v"}).status)

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert statuses == [200] * 160, sorted(set(statuses))
    assert pg.psql("SELECT count(*) FROM cmf_secrets", db) == "160"
    # two processes, one block each (reservations are per process)
    assert pg.psql("SELECT encryptions FROM cmf_deks", db) == "2048"
