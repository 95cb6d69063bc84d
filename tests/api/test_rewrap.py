"""The rewrap (`cmf rewrap`, POST /cmf/api/v1/encryption/rewrap): every stored ciphertext moved to the newest
data key, resumable after kill -9, never losing a racing write; the retirement of unused data keys
(`cmf retire-deks`): a ciphertext of a retired term, restored from an old backup, is refused, never
decrypted; pg_dump afterwards holds no plaintext and no unwrapped key."""
import base64
import json
import random
import signal
import subprocess
import threading
import time

from conftest import secret_body, wait_for

STATUS = "/cmf/api/v1/encryption"
REWRAP = "/cmf/api/v1/encryption/rewrap"
TERM_SQL = "(get_byte(data, 1) << 24) | (get_byte(data, 2) << 16) | (get_byte(data, 3) << 8) | get_byte(data, 4)"


def rows_by_term(pg, db):
    """{term: count} over every stored ciphertext: the secrets and every kept version."""
    out = {}
    for table, cond in (("cmf_secrets", "sealed"), ("cmf_secret_versions", "sealed AND data IS NOT NULL")):
        for line in pg.psql("SELECT %s, count(*) FROM %s WHERE %s GROUP BY 1" % (TERM_SQL, table, cond), db).split():
            t, n = map(int, line.split("|"))
            out[t] = out.get(t, 0) + n
    return out


def stored_values(pg, db, keyfile):
    """{name: data} of every secret, decrypted from the database independently of cmf's C code (Python's
    cryptography package): the DEKs unwrapped with the master key, each row opened with its identity."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    with open(keyfile, "rb") as f:
        master = f.read()
    deks = {}
    for line in pg.psql("SELECT term, encode(wrapped, 'hex') FROM cmf_deks", db).split():
        term, wrapped = line.split("|")
        w = bytes.fromhex(wrapped)
        deks[int(term)] = AESGCM(master).decrypt(w[5:17], w[17:], w[:17] + ("cmf/keyring/dek/%s" % term).encode())
    out = {}
    for line in pg.psql("SELECT name, uid, version, encode(data, 'hex') FROM cmf_secrets", db).split():
        name, uid, version, data = line.split("|")
        ct = bytes.fromhex(data)
        assert ct[0] == 2
        pt = AESGCM(deks[int.from_bytes(ct[1:5], "big")]).decrypt(
            ct[5:17], ct[17:], ct[:17] + ("secret/%s/%s/%s" % (name, uid, version)).encode())
        out[name] = json.loads(pt)
    return out


def run(c, *args, timeout=120):
    return subprocess.run(c.argv(args[0]) + list(args[1:]), env=c.env, capture_output=True, text=True,
                          timeout=timeout)


def make_secrets(c, n, prefix="s", threads=4):
    failures = []

    def w(k):
        for i in range(k, n, threads):
            r = c.create_secret("%s-%04d" % (prefix, i), {"password": "%s-value-%04d" % (prefix, i)})
            if r.status != 200:
                failures.append((i, r.status))

    ts = [threading.Thread(target=w, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert failures == []


def audit_actions(pg, db, prefix):
    return pg.psql("SELECT action || ' ' || outcome || ' ' || principal || ' ' || resource FROM cmf_audit_events "
                   "WHERE action LIKE '%s%%' ORDER BY time, id" % prefix, db).split("\n")


def test_rewrap_and_retire_cli_then_an_old_backup_row_is_refused(cmf_factory, pg, db):
    a = cmf_factory().start()
    make_secrets(a, 40)
    for i in range(10):  # kept versions too
        r = a.request("PUT", "/cmf/api/v1/secrets/s-%04d" % i, secret_body("s-%04d" % i, {"password": "updated-%04d" % i}))
        assert r.status == 200, r
    old = pg.psql("SELECT encode(data, 'hex') FROM cmf_secrets WHERE name = 's-0020'", db)
    assert rows_by_term(pg, db) == {1: 90}
    r = run(a, "rotate", "dek")
    assert r.returncode == 0, r.stderr
    assert wait_for(lambda: a.request("GET", STATUS).json()["loadedTerm"] == 2, 10)
    assert a.create_secret("new-under-2", {"password": "two"}).status == 200

    r = run(a, "rewrap")
    assert r.returncode == 0, r.stderr
    assert "rewrap: 90 ciphertext(s) moved to data key term 2" in r.stdout
    # Not a terminal: one plain progress line per batch (and one at the start).
    assert "rewrap: 90/90 ciphertexts (100.0%)" in r.stderr, r.stderr
    assert rows_by_term(pg, db) == {2: 92}
    st = a.request("GET", STATUS).json()
    assert st["rewrap"]["state"] == "done" and st["rewrap"]["done"] == 90 and st["rewrap"]["total"] == 90
    assert [d["term"] for d in st["deks"]] == [1, 2] and st["deks"][0]["secrets"] == 0
    values = stored_values(pg, db, a.keyfile)
    for i in range(40):
        assert a.get_secret("s-%04d" % i).status == 200
        want = ("updated-%04d" if i < 10 else "s-value-%04d") % i
        assert values["s-%04d" % i] == {"password": want}
    assert a.request("GET", "/cmf/api/v1/secrets/s-0003/versions").status == 200

    r = run(a, "retire-deks")
    assert r.returncode == 0, r.stderr
    assert "1 data key term(s) destroyed; the lowest term held is 2" in r.stdout
    assert pg.psql("SELECT term FROM cmf_deks", db) == "2"
    assert pg.psql("SELECT min_dek_term FROM cmf_encryption_state", db) == "2"
    assert wait_for(lambda: a.request("GET", STATUS).json()["minDecryptionTerm"] == 2, 5)
    # Nothing left to retire: a second run destroys nothing.
    r = run(a, "retire-deks")
    assert r.returncode == 0 and "0 data key term(s) destroyed" in r.stdout, r

    # An old backup's row (term 1) put back: the write guard refuses it ...
    try:
        pg.psql("UPDATE cmf_secrets SET data = decode('%s', 'hex') WHERE name = 's-0020'" % old, db)
        raise AssertionError("the write guard let a retired term's ciphertext in")
    except subprocess.CalledProcessError as e:
        assert "sealed under data key term 1, retired" in e.stderr, e.stderr
    # ... and restored around it (the write guard disabled, as a restore may), every reader refuses it, naming why.
    pg.psql("ALTER TABLE cmf_secrets DISABLE TRIGGER cmf_secrets_seal_version; "
            "UPDATE cmf_secrets SET data = decode('%s', 'hex') WHERE name = 's-0020'; "
            "ALTER TABLE cmf_secrets ENABLE TRIGGER cmf_secrets_seal_version" % old, db)
    for c in (a, cmf_factory().start()):
        r = c.get_secret("s-0020")
        assert r.status == 500 and "retired data key" in r.error(), r
        assert b"s-value-0020" not in r.body
        lst = c.request("GET", "/cmf/api/v1/secrets?size=100")
        assert lst.status == 200 and b"s-value-0020" not in lst.body
        assert "retired data key" in lst.body.decode()
    assert "sealed under data key term 1, which was retired" in a.log()
    assert "s-value-0020" not in a.log()

    acts = audit_actions(pg, db, "encryption.re")
    assert acts[0].startswith("encryption.rewrap.start success cmf rewrap rewrap/term-2/rows-90"), acts
    assert acts[1].startswith("encryption.rewrap.end success cmf rewrap rewrap/term-2/rewrapped-90/unreadable-0"), acts
    assert audit_actions(pg, db, "encryption.retire") == ["encryption.retire success cmf retire-deks dek/1"]

    # pg_dump: no value in plaintext and no key material (the master key raw, hex or base64; DEKs are only
    # ever stored wrapped, and the retired one is gone).
    dump = pg.dump(db)
    with open(a.keyfile, "rb") as f:
        key = f.read()
    for needle in (b"s-value-00", b"updated-00", b'"two"', key, key.hex().encode(), base64.b64encode(key)):
        assert needle not in dump, needle


def test_rewrap_killed_at_a_random_batch_is_run_again_and_completes(cmf_factory, pg, db):
    a = cmf_factory().start()
    make_secrets(a, 1300)
    assert run(a, "rotate", "dek").returncode == 0
    # kill -9 after a random number of committed batches (of 256 ciphertexts; 2,600 in all).
    p = subprocess.Popen(a.argv("rewrap"), env=a.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stop_after = random.randint(2, 6)
    seen = 0
    for line in p.stderr:
        if line.startswith("rewrap: ") and "ciphertexts" in line:
            seen += 1
            if seen == stop_after:
                p.send_signal(signal.SIGKILL)
                break
    p.wait(30)
    assert p.returncode == -signal.SIGKILL, (p.returncode, seen)
    by = rows_by_term(pg, db)
    assert by.get(1, 0) > 0 and by.get(2, 0) > 0, by
    st = a.request("GET", STATUS).json()["rewrap"]
    assert st["state"] == "interrupted" and 0 < st["done"] < st["total"] == 2600, st
    # Nothing is unreadable in between.
    for i in range(0, 1300, 37):
        assert a.get_secret("s-%04d" % i).status == 200
    # The lock died with the process: the rerun starts at once and finishes.
    r = run(a, "rewrap", "--retire")
    assert r.returncode == 0, r.stderr
    assert rows_by_term(pg, db) == {2: 2600}
    assert "1 data key term(s) destroyed" in r.stdout
    values = stored_values(pg, db, a.keyfile)
    assert values == {"s-%04d" % i: {"password": "s-value-%04d" % i} for i in range(1300)}
    for i in range(0, 1300, 13):
        assert a.get_secret("s-%04d" % i).status == 200


def test_rewrap_endpoint_runs_beside_racing_writes_and_one_at_a_time(cmf_factory, pg, db):
    a = cmf_factory().start()
    b = cmf_factory().start()
    make_secrets(a, 1500)
    assert a.request("POST", "/cmf/api/v1/encryption/rotate", {"target": "dek"}).status == 200
    wait_for(lambda: b.request("GET", STATUS).json()["loadedTerm"] == 2, 10)

    # Another session holds the rewrap's lock: a second rewrap is refused with 409.
    holder = threading.Thread(target=pg.psql, args=("SELECT pg_advisory_lock(6516071), pg_sleep(3)", db))
    holder.start()
    try:
        assert wait_for(lambda: pg.psql("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND "
                                        "objid = 6516071 AND granted", db) == "1", 5)
        r = b.request("POST", REWRAP, {})
        assert r.status == 409 and "already running" in r.error(), r
    finally:
        holder.join(10)

    assert a.request("POST", REWRAP, {"retire": "yes"}).status == 400
    assert a.request("POST", REWRAP, {"what": 1}).status == 400
    last = {}
    stop = threading.Event()
    errors = []

    def writer(k):
        n = 0
        while not stop.is_set():
            i = random.randrange(k, 1500, 4)
            name = "s-%04d" % i
            value = "raced-%d-%d" % (k, n)
            r = b.request("PUT", "/cmf/api/v1/secrets/" + name, secret_body(name, {"password": value}))
            if r.status == 200:
                last[name] = value
            else:
                errors.append((name, r.status, r.body[:200]))
            n += 1

    ts = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in ts:
        t.start()
    try:
        r = a.request("POST", REWRAP, {})
        assert r.status == 202, r
        assert r.json()["state"] == "running" and r.json()["targetTerm"] == 2
        assert r.json()["progress"] == STATUS
        # While it runs (or once done), a second one is refused or finds nothing left.
        wait_for(lambda: a.request("GET", STATUS).json()["rewrap"]["state"] == "done", 60)
    finally:
        stop.set()
        for t in ts:
            t.join()
    assert errors == []
    assert len(last) > 0
    st = a.request("GET", STATUS).json()
    assert st["rewrap"]["startedBy"] == "admin" and st["rewrap"]["unreadable"] == 0
    assert set(rows_by_term(pg, db)) == {2}
    values = stored_values(pg, db, a.keyfile)
    for i in range(1500):
        name = "s-%04d" % i
        assert values[name] == {"password": last.get(name, "s-value-%04d" % i)}, name
    # The request's own event is queued (merged for up to a second); the rewrap's are written with it.
    wait_for(lambda: any(x.startswith("encryption.rewrap success admin rewrap/term-2")
                         for x in audit_actions(pg, db, "encryption.rewrap")), 10)
    acts = audit_actions(pg, db, "encryption.rewrap")
    assert any(x.startswith("encryption.rewrap.start success admin rewrap/term-2/rows-") for x in acts), acts
    assert any(x.startswith("encryption.rewrap.end success admin rewrap/term-2/rewrapped-") for x in acts), acts


def test_rewrap_refuses_an_uninitialized_or_unmigrated_database(cmf_factory, pg):
    c = cmf_factory()
    r = run(c, "rewrap")
    assert r.returncode == 78 and "has not been initialized" in r.stderr, r
    r = run(c, "retire-deks")
    assert r.returncode == 78 and "has not been initialized" in r.stderr, r
    r = run(c, "rewrap", "--bogus")
    assert r.returncode == 64, r


def test_retire_keeps_an_unused_term_above_one_still_used(cmf_factory, pg, db):
    """Terms 1 (used), 2 (unused), 3 (current): nothing below the lowest used term (1) exists, so nothing is
    retired, and term 2 stays (a replica may still seal under it) until term 1's rows are rewrapped."""
    a = cmf_factory().start()
    make_secrets(a, 5)
    for term in (2, 3):
        assert run(a, "rotate", "dek").returncode == 0
        wait_for(lambda: a.request("GET", STATUS).json()["loadedTerm"] == term, 10)
    r = run(a, "retire-deks")
    assert r.returncode == 0 and "0 data key term(s) destroyed; the lowest term held is 1" in r.stdout, r
    assert pg.psql("SELECT string_agg(term::text, ',' ORDER BY term) FROM cmf_deks", db) == "1,2,3"
    r = run(a, "rewrap", "--retire")
    assert r.returncode == 0 and "2 data key term(s) destroyed; the lowest term held is 3" in r.stdout, r
    assert pg.psql("SELECT string_agg(term::text, ',' ORDER BY term) FROM cmf_deks", db) == "3"
    # A wrapped DEK put back below the minimum (an old backup of cmf_deks) is never loaded again.
    assert a.stop() == 0
    wrapped = pg.psql("SELECT encode(wrapped, 'hex') FROM cmf_deks WHERE term = 3", db)
    pg.psql("INSERT INTO cmf_deks (term, wrapped) VALUES (1, decode('%s', 'hex'))" % wrapped, db)
    b = cmf_factory().start()
    assert b.request("GET", STATUS).json()["loadedTerm"] == 3
    assert "data key term 1" not in b.log() or "retired" in b.log()
    for i in range(5):
        assert b.get_secret("s-%04d" % i).status == 200
