"""Issue 12's reliability promises: no initialization over data whose encryption state is gone (a partial
restore, a mistaken DELETE), a key pinned by id refused before anything is written, and a frozen database
answered with 503 within the request deadline (the real binary against the real PostgreSQL)."""
import json
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


# ---- ciphertext version 2: the secret's name in the AAD, every row re-sealed, older versions refused ----

def test_ciphertext_given_to_another_secret_with_its_uid_and_version_is_refused(cmf, pg, db):
    """Secret P given the uid, version and data of secret D: version 2 binds the name too, so P's read and
    the resolution that maps P refuse it instead of handing out D's values as P's."""
    from test_hotpath import PATH, build_world
    build_world(cmf)
    # D's uid is unique: free it first, as an attacker with write access to the table would.
    pg.psql("CREATE TEMP TABLE d AS SELECT uid, version, data FROM cmf_secrets WHERE name = 'kafka-creds-2';"
            "UPDATE cmf_secrets SET uid = gen_random_uuid() WHERE name = 'kafka-creds-2';"
            "UPDATE cmf_secrets p SET uid = d.uid, version = d.version, data = d.data FROM d "
            "WHERE p.name = 'kafka-creds'", db)
    assert pg.psql("SELECT get_byte(data, 0) FROM cmf_secrets WHERE name = 'kafka-creds'", db) == "2"
    r = cmf.get_secret("kafka-creds")
    assert r.status == 500 and "integrity" in r.error(), r
    r = cmf.request("GET", PATH)
    assert r.status == 500 and b"jaas-two" not in r.body, r
    assert "secret kafka-creds" in cmf.log() and "does not decrypt" in cmf.log()


def _aesgcm():
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    return AESGCM


def _v1_ciphertext(dek, term, uid, version, values):
    """A ciphertext as releases before schema 6 wrote it (format 1: AAD = header + "secret/<uid>/<version>"),
    built independently of cmf's C code with Python's cryptography package."""
    header = bytes([1]) + term.to_bytes(4, "big") + os.urandom(12)
    aad = header + ("secret/%s/%d" % (uid, version)).encode()
    plaintext = json.dumps(values, separators=(",", ":"), sort_keys=True).encode()
    return header + _aesgcm()(dek).encrypt(header[5:], plaintext, aad)


def _unwrap_dek(master, term, wrapped):
    header = wrapped[:17]
    return _aesgcm()(master).decrypt(header[5:], wrapped[17:], header + ("cmf/keyring/dek/%d" % term).encode())


def test_version_1_rows_are_resealed_at_start_and_older_ciphertexts_refused_after(cmf_factory, pg, db):
    """A database as an older release left it (every secret in ciphertext version 1, the lowest version
    opened still 1): the next start re-seals every row in batches of 64 under the initialization lock and
    leaves a row that does not decrypt as it is (counted); while such a row remains version 1 stays
    accepted (it could still be repaired); once it is gone, version 1 is refused. A version-1 ciphertext
    put back afterwards is refused by the trigger and, past it, by the reader, and no restart launders it."""
    c = cmf_factory().start()
    names = ["old-%03d" % i for i in range(150)]  # three batches
    for n in names:
        assert c.create_secret(n, {"password": "pw-" + n}).status == 200
    assert c.stop() == 0
    with open(c.keyfile, "rb") as f:
        master = f.read()
    term, wrapped_hex = pg.psql("SELECT term, encode(wrapped, 'hex') FROM cmf_deks", db).split("|")
    dek = _unwrap_dek(master, int(term), bytes.fromhex(wrapped_hex))
    rows = [l.split("|") for l in pg.psql("SELECT name, uid, version FROM cmf_secrets", db).splitlines()]
    v1 = {name: _v1_ciphertext(dek, int(term), uid, int(version), {"password": "pw-" + name})
          for name, uid, version in rows}
    v1["old-007"] = v1["old-007"][:-1] + bytes([v1["old-007"][-1] ^ 1])  # one that does not decrypt
    # The trigger refuses writing below the database's version, so the older release is simulated with it off.
    updates = "".join("UPDATE cmf_secrets SET data = '\\x%s' WHERE name = '%s';" % (ct.hex(), n)
                      for n, ct in v1.items())
    pg.psql("ALTER TABLE cmf_secrets DISABLE TRIGGER cmf_secrets_seal_version;" + updates +
            "ALTER TABLE cmf_secrets ENABLE TRIGGER cmf_secrets_seal_version;"
            "UPDATE cmf_encryption_state SET min_open_version = 1", db)
    assert pg.psql("SELECT count(*) FROM cmf_secrets WHERE get_byte(data, 0) = 1", db) == "150"
    before = pg.psql("SELECT string_agg(name || version || updated_at, ',' ORDER BY name) FROM cmf_secrets", db)

    c = cmf_factory().start()
    log = c.log()
    assert "re-sealed 149 ciphertext(s) (secrets and their kept versions) to ciphertext version 2" in log, log
    assert "1 ciphertext(s) (secrets or their kept versions) below ciphertext version 2 cannot be opened" in log, log
    assert "Until they are repaired or deleted, older ciphertext versions are still accepted" in log, log
    assert pg.psql("SELECT count(*) FROM cmf_secrets WHERE get_byte(data, 0) = 2", db) == "149"
    assert pg.psql("SELECT min_open_version || '/' || seal_version FROM cmf_encryption_state", db) == "1/2"
    # Versions and times are the resources' own: a re-seal changes neither.
    assert pg.psql("SELECT string_agg(name || version || updated_at, ',' ORDER BY name) FROM cmf_secrets",
                   db) == before
    for n in ("old-000", "old-063", "old-064", "old-128", "old-149"):
        assert c.get_secret(n).json()["spec"]["data"] == {"password": "****"}
    assert c.get_secret("old-007").status == 500
    # The damaged one deleted, the next start refuses version 1 from then on.
    assert c.request("DELETE", "/cmf/api/v1/secrets/old-007").status == 204
    assert c.stop() == 0
    c = cmf_factory().start()
    assert not re.search(r"re-sealed \d+ ciphertext|cannot be opened", c.log()), c.log()
    assert pg.psql("SELECT min_open_version || '/' || seal_version FROM cmf_encryption_state", db) == "2/2"
    # The plaintext came through: resolution reveals it.
    from test_hotpath import body, catalog, mapping
    api = "/cmf/api/v1"
    resolution = api + "/environments/env-a/client-configs/main/orders"
    assert c.request("POST", api + "/environments", {"name": "env-a", "kubernetesNamespace": "a"}).status == 200
    for conn, sec in (("kafka-conn", "old-100"), ("sr-conn", "old-101")):
        assert c.request("POST", api + "/environments/env-a/secret-mappings", mapping(conn, sec)).status == 200
    assert c.request("POST", api + "/catalogs/kafka", catalog("http://sr:8081")).status == 200
    db_spec = {"kafkaCluster": {"connectionConfig": {"bootstrap.servers": "b:9092"},
                                "connectionSecretId": "kafka-conn"}}
    assert c.request("POST", api + "/catalogs/kafka/main/databases",
                     body("KafkaDatabase", "orders", db_spec)).status == 200
    r = c.request("GET", resolution)
    assert r.status == 200 and r.json()["kafka"]["password"] == "pw-old-100", r

    # A version-1 ciphertext put back: refused by the trigger ...
    put_back = "UPDATE cmf_secrets SET data = '\\x%s' WHERE name = 'old-100'" % v1["old-100"].hex()
    try:
        pg.psql(put_back, db)
        raise AssertionError("the trigger let a version-1 ciphertext in")
    except subprocess.CalledProcessError as e:
        assert "is sealed in ciphertext version 1, below version 2 that this database writes" in e.stderr
    # ... and, with the trigger off (a restore that disables triggers), by every reader.
    pg.psql("ALTER TABLE cmf_secrets DISABLE TRIGGER cmf_secrets_seal_version;" + put_back +
            ";ALTER TABLE cmf_secrets ENABLE TRIGGER cmf_secrets_seal_version", db)
    end = time.monotonic() + 5  # until the change notification has emptied the row cache
    while c.get_secret("old-100").status == 200 and time.monotonic() < end:
        time.sleep(0.05)
    r = c.get_secret("old-100")
    assert r.status == 500 and "integrity" in r.error(), r
    r = c.request("GET", resolution)
    assert r.status == 500 and b"pw-old-100" not in r.body, r
    assert "is sealed in ciphertext version 1, below version 2, the lowest this database accepts" in c.log()
    # A restart does not re-seal it back: the lowest version stays 2.
    assert c.stop() == 0
    c = cmf_factory().start()
    # The put-back row is not laundered into version 2 by the next start's re-seal: it stays refused.
    assert not re.search(r"re-sealed \d+ ciphertext", c.log())
    assert "1 ciphertext(s) (secrets or their kept versions) below ciphertext version 2 cannot be opened" in c.log()
    assert "older ciphertext versions are still accepted" not in c.log()
    assert pg.psql("SELECT get_byte(data, 0) FROM cmf_secrets WHERE name = 'old-100'", db) == "1"
    assert c.get_secret("old-100").status == 500


def test_frozen_database_what_memory_answers_and_what_gets_503(cmf_factory, pg, db):
    """While every PostgreSQL process is stopped: a 200 resolution (its audit row cannot commit) gets 503
    within the deadline + 1 s. Once the process knows (/readyz 503), a 304 and a refusal are answered from
    what memory kept, at once, also after the listener has given up its session; anything that would serve
    kept data (a 200, an admin read) gets 503 within the deadline + 1 s. After SIGCONT the 200 is back, nothing lost."""
    from test_hotpath import BAD_TOKEN, PATH, build_world
    c = build_world(cmf_factory(env={"CMF_DATABASE_REQUEST_TIMEOUT_SECONDS": "2"}).start())
    etag = c.request("GET", PATH).headers["etag"]
    pids = _cluster_pids(pg)
    first, later = None, []

    def timed(*args, **kw):
        t0 = time.monotonic()
        r = c.request(*args, timeout=10, **kw)
        return r.status, time.monotonic() - t0, r.headers.get("retry-after"), r.body

    try:
        _signal_all(pids, signal.SIGSTOP)
        first = timed("GET", PATH)
        end = time.monotonic() + 5
        while c.request("GET", "/readyz", token=None, timeout=10).status != 503 and time.monotonic() < end:
            time.sleep(0.1)
        # The listener gives up its session (2 s heartbeat deadline): from now on only what it kept answers.
        end = time.monotonic() + 5
        while "change listener: lost its database session" not in c.log() and time.monotonic() < end:
            time.sleep(0.1)
        assert "change listener: lost its database session" in c.log()
        for _ in range(2):
            later.append(("304", timed("GET", PATH, headers={"If-None-Match": etag})))
            later.append(("401", timed("GET", PATH, token=BAD_TOKEN)))
            later.append(("503", timed("GET", PATH)))
            later.append(("503", timed("GET", "/cmf/api/v1/secrets/kafka-creds")))
            time.sleep(0.2)
    finally:
        _signal_all(pids, signal.SIGCONT)
    status, took, retry_after, body = first
    assert status == 503 and retry_after == "1" and took < 2 + 1 + 0.5, first
    assert b"jaas-one" not in body
    # From memory: at once. Needing the database: 503 within the deadline + 1 s.
    assert later and all(int(want) == got[0] and got[1] < (0.5 if want != "503" else 2 + 1 + 0.5)
                         for want, got in later), later
    assert all(b"jaas-one" not in got[3] for _, got in later)
    end = time.monotonic() + 15
    while c.request("GET", PATH).status != 200 and time.monotonic() < end:
        time.sleep(0.2)
    r = c.request("GET", PATH)
    assert r.status == 200 and r.json()["kafka"]["sasl.jaas.config"] == "jaas-one", r
    for name in ("kafka-creds", "kafka-creds-2", "sr-creds", "kms-local"):
        assert c.get_secret(name).status == 200


def test_probe_listener_cannot_be_held_by_one_client(cmf_factory):
    """The probe listener is reachable from the pod network: one address holding idle connections gets at
    most 8 of its 32 slots, and they are dropped after 2 s, so the kubelet's probes keep answering."""
    import http.client
    import socket
    from conftest import free_port
    port = free_port()
    c = cmf_factory(env={"CMF_SERVER_PROBE_LISTEN": "127.0.0.1:%d" % port}).start()
    held = []
    for _ in range(20):
        s = socket.socket()
        s.bind(("127.0.0.2", 0))  # another address on the loopback: another client
        s.settimeout(5)
        s.connect(("127.0.0.1", port))
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never finished
        held.append(s)
    try:
        time.sleep(1)  # every refused one closed (at accept), none yet past the 2 s idle timeout
        open_ones = 0
        for s in held:
            try:
                s.settimeout(0.05)
                if s.recv(1) != b"":  # anything but end-of-stream: an answer, so served
                    open_ones += 1
            except socket.timeout:
                open_ones += 1  # still held open, waiting for the rest of the request
            except OSError:
                pass  # reset: refused
        assert open_ones <= 8, open_ones
        t0 = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/healthz")
        assert conn.getresponse().status == 200 and time.monotonic() - t0 < 0.5
        conn.close()
        # Idle ones are dropped after the probes' own timeout (2 s).
        time.sleep(3)
        for s in held:
            s.settimeout(0.5)
            try:
                assert s.recv(1) == b""
            except (ConnectionResetError, BrokenPipeError):
                pass
    finally:
        for s in held:
            s.close()
