"""Data-key (DEK) rotation: automatic at encryption.dek.rotateAfterEncryptions, on demand (`cmf rotate dek`,
POST /cmf/api/v1/encryption/rotate), picked up by other processes without a restart; the status endpoint."""
import subprocess
import threading

from conftest import wait_for

THRESHOLD = 16384  # the setting's minimum
ROTATE = "/cmf/api/v1/encryption/rotate"
STATUS = "/cmf/api/v1/encryption"

# The DEK term in a ciphertext's header: format(1) | term(4, big endian) | ...
TERM_SQL = "(get_byte(data, 1) << 24) | (get_byte(data, 2) << 16) | (get_byte(data, 3) << 8) | get_byte(data, 4)"


def term_of(pg, db, name):
    return int(pg.psql("SELECT %s FROM cmf_secrets WHERE name = '%s'" % (TERM_SQL, name), db))


def terms(pg, db):
    return [int(t) for t in pg.psql("SELECT term FROM cmf_deks ORDER BY term", db).split()]


def rotations_audited(pg, db):
    return int(pg.psql("SELECT coalesce(sum(count), 0) FROM cmf_audit_events WHERE action = 'encryption.rotate'", db))


def loaded_term(c):
    r = c.request("GET", STATUS)
    assert r.status == 200, r
    return r.json()["loadedTerm"]


def pair(cmf_factory, **kw):
    env = {"CMF_ENCRYPTION_DEK_ROTATE_AFTER_ENCRYPTIONS": str(THRESHOLD)}
    env.update(kw.pop("env", {}))
    a = cmf_factory(env=env, **kw).start()
    b = cmf_factory(env=env, **kw).start()
    return a, b


def test_threshold_crossed_by_two_processes_makes_exactly_one_term(cmf_factory, pg, db):
    a, b = pair(cmf_factory)
    assert terms(pg, db) == [1]
    # Fast-forward the counter to one block below the threshold (no writer holds a reservation yet), so the
    # first reservation of each process reaches it: both cross it together, from their first writes on.
    pg.psql("UPDATE cmf_deks SET encryptions = %d WHERE term = 1" % (THRESHOLD - 1024), db)
    failures, names = [], []
    lock = threading.Lock()

    def writer(c, tag):
        for i in range(40):
            name = "s-%s-%d" % (tag, i)
            r = c.create_secret(name, {"v": name})
            with lock:
                names.append(name)
                if r.status != 200:
                    failures.append((name, r.status, r.body[:200]))

    threads = [threading.Thread(target=writer, args=(c, "%s%d" % (n, t)))
               for c, n in ((a, "a"), (b, "b")) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert terms(pg, db) == [1, 2]
    assert rotations_audited(pg, db) == 1
    assert int(pg.psql("SELECT encryptions FROM cmf_deks WHERE term = 1", db)) >= THRESHOLD
    # New writes went under the new term once it was made; both processes load it.
    wait_for(lambda: loaded_term(a) == 2 and loaded_term(b) == 2, 10)
    by_term = dict(tuple(map(int, l.split("|"))) for l in
                   pg.psql("SELECT %s, count(*) FROM cmf_secrets GROUP BY 1" % TERM_SQL, db).split())
    assert by_term.get(2, 0) > 0, by_term
    assert sum(by_term.values()) == len(names) == 320
    for c in (a, b):
        for name in names:
            r = c.get_secret(name)
            assert r.status == 200, (name, r)
    assert "reached encryption.dek.rotateAfterEncryptions" in a.log() + b.log()


def test_rotate_cli_and_post_each_make_one_term_picked_up_without_restart(cmf_factory, pg, db):
    a, b = pair(cmf_factory)
    assert a.create_secret("before", {"v": "1"}).status == 200
    assert b.create_secret("before-b", {"v": "1"}).status == 200
    assert term_of(pg, db, "before") == 1

    r = subprocess.run(a.argv("rotate") + ["dek"], env=a.env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "data key term 2 created" in r.stdout
    assert terms(pg, db) == [1, 2]
    # b has an unused reservation under term 1; it loads term 2 from the notification and seals under it.
    wait_for(lambda: loaded_term(b) == 2, 10)
    assert b.create_secret("after-cli", {"v": "2"}).status == 200
    assert term_of(pg, db, "after-cli") == 2

    r = b.request("POST", ROTATE, {"target": "master-key"})
    assert r.status == 400 and '"dek"' in r.error(), r
    assert b.request("POST", ROTATE, {}).status == 400
    assert terms(pg, db) == [1, 2]
    r = b.request("POST", ROTATE, {"target": "dek"})
    assert r.status == 200, r
    assert r.json() == {"target": "dek", "term": 3}
    assert terms(pg, db) == [1, 2, 3]
    wait_for(lambda: loaded_term(a) == 3, 10)
    assert a.create_secret("after-post", {"v": "3"}).status == 200
    assert term_of(pg, db, "after-post") == 3
    for c in (a, b):
        for name, v in (("before", "1"), ("before-b", "1"), ("after-cli", "2"), ("after-post", "3")):
            assert c.get_secret(name).status == 200
    assert rotations_audited(pg, db) == 2
    assert pg.psql("SELECT principal || ' ' || resource FROM cmf_audit_events WHERE action = 'encryption.rotate' "
                   "ORDER BY time", db).split("\n") == ["cmf rotate dek/2", "admin dek/3"]


def test_new_term_ciphertext_loads_the_keyring_instead_of_failing(cmf_factory, pg, db):
    """A process without the change listener (cache off) reads a secret sealed under a term it does not hold
    yet: it loads the keyring on demand."""
    a = cmf_factory().start()
    b = cmf_factory(env={"CMF_CACHE_ENABLED": "false"}).start()
    assert b.create_secret("old-one", {"v": "1"}).status == 200
    assert a.request("POST", ROTATE, {"target": "dek"}).status == 200
    assert loaded_term(b) == 1  # no listener: it cannot know yet
    assert a.create_secret("new-one", {"v": "2"}).status == 200
    assert a.create_secret("new-two", {"v": "2"}).status == 200
    assert term_of(pg, db, "new-one") == 2 and term_of(pg, db, "new-two") == 2
    # One request meets both: the first loads the keyring, the second opens with what was loaded.
    r = b.request("GET", "/cmf/api/v1/secrets")
    assert r.status == 200, r
    items = {i["metadata"]["name"]: i for i in r.json()["items"]}
    assert sorted(items) == ["new-one", "new-two", "old-one"]
    assert all("error" not in i.get("status", {}) for i in items.values()), items
    assert all(list(i["spec"]["data"]) == ["v"] for i in items.values()), items
    assert loaded_term(b) == 2
    assert b.request("GET", "/cmf/api/v1/secrets/new-one").status == 200
    # ... and from then on it seals under the new term too.
    assert b.create_secret("newer", {"v": "3"}).status == 200
    assert term_of(pg, db, "newer") == 2


def test_status_matches_sql_and_check_prints_it(cmf_factory, pg, db):
    a = cmf_factory().start()
    for i in range(3):
        assert a.create_secret("st-%d" % i, {"v": str(i)}).status == 200
    assert a.request("POST", ROTATE, {"target": "dek"}).status == 200
    wait_for(lambda: loaded_term(a) == 2, 10)
    assert a.create_secret("st-new", {"v": "x"}).status == 200
    assert a.request("PUT", "/cmf/api/v1/secrets/st-0", {
        "apiVersion": "cmf.confluent.io/v1", "kind": "Secret", "metadata": {"name": "st-0"},
        "spec": {"data": {"v": "changed"}}}).status == 200

    s = a.request("GET", STATUS).json()
    assert s["enabled"] is True and s["currentTerm"] == 2 and s["loadedTerm"] == 2
    assert s["keyId"] == pg.psql("SELECT key_id FROM cmf_encryption_state", db)
    assert s["rotateAfterEncryptions"] == 1000000000
    rows = pg.psql("SELECT d.term, d.encryptions, "
                   "(SELECT count(*) FROM cmf_secrets WHERE %s = d.term), "
                   "(SELECT count(*) FROM cmf_secret_versions WHERE data IS NOT NULL AND %s = d.term) "
                   "FROM cmf_deks d ORDER BY term" % (TERM_SQL, TERM_SQL), db).split()
    want = [dict(zip(("term", "encryptions", "secrets", "versions"), map(int, r.split("|")))) for r in rows]
    got = [{k: d[k] for k in ("term", "encryptions", "secrets", "versions")} for d in s["deks"]]
    assert got == want
    # the numbers are not trivially equal: 3 secrets on term 1 (one also on 2 as its new version), 2 on term 2
    assert [(d["secrets"], d["versions"]) for d in got] == [(2, 3), (2, 2)]
    assert all(d["createdAt"].endswith("Z") for d in s["deks"])
    assert a.request("GET", STATUS, token=None).status == 401

    r = a.run("check")
    assert r.returncode == 0, r.stderr
    assert "current data key term 2" in r.stdout
    assert "data key term 1: created" in r.stdout and "2 secret(s), 3 version(s)" in r.stdout


def test_metrics_show_the_current_term_and_reservations_per_term(cmf_factory, pg, db):
    a = cmf_factory().start()
    assert a.create_secret("m-one", {"v": "1"}).status == 200
    assert a.request("POST", ROTATE, {"target": "dek"}).status == 200
    wait_for(lambda: loaded_term(a) == 2, 10)
    assert a.create_secret("m-two", {"v": "2"}).status == 200
    text = a.request("GET", "/metrics").body.decode()
    lines = dict(l.rsplit(" ", 1) for l in text.splitlines() if l.startswith("cmf_dek_"))
    want = dict(tuple(map(int, l.split("|"))) for l in pg.psql("SELECT term, encryptions FROM cmf_deks", db).split())
    assert want == {1: 1024, 2: 1024}  # one process: one block each (the SQL side is not trivially zero)
    assert float(lines["cmf_dek_term"]) == 2
    for term, n in want.items():
        assert float(lines['cmf_dek_reserved_encryptions{term="%d"}' % term]) == n


def test_rotate_after_bounds_and_rotate_usage(cmf_factory):
    c = cmf_factory(env={"CMF_ENCRYPTION_DEK_ROTATE_AFTER_ENCRYPTIONS": "16383"})
    r = c.run("check")
    assert r.returncode == 78 and "CMF_ENCRYPTION_DEK_ROTATE_AFTER_ENCRYPTIONS" in r.stderr, r
    c.env["CMF_ENCRYPTION_DEK_ROTATE_AFTER_ENCRYPTIONS"] = "1500000001"
    assert c.run("check").returncode == 78
    c.env["CMF_ENCRYPTION_DEK_ROTATE_AFTER_ENCRYPTIONS"] = "16384"
    r = subprocess.run(c.argv("rotate") + ["everything"], env=c.env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 64 and "'dek', 'master-key' or 'finish'" in r.stderr
    r = subprocess.run(c.argv("rotate") + ["master-key"], env=c.env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 64 and "--new-key FILE is required" in r.stderr
    # not initialized yet: refused as a configuration problem, nothing created
    r = subprocess.run(c.argv("rotate") + ["dek"], env=c.env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 78, r
