"""Secret versions and check-and-set (issue 16): history up to secrets.maxVersions, a kept version read
masked, the version list, rollback, ETag / If-Match / If-None-Match, secrets.requireIfMatch, resolution of
the current version, versions bound to their own number, every version destroyed with its secret, the
re-seal of kept versions, and the responses checked against CMF's OpenAPI."""
import json
import os
import re
import subprocess
import threading

import pytest
import yaml

from conftest import secret_body, wait_for

API = "/cmf/api/v1"
BASE = API + "/secrets"
TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
OPENAPI = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "reference", "cmf-openapi-v2.3.1.yaml")
if not os.path.exists(OPENAPI):
    OPENAPI = "/work/shared/reference/cmf-openapi-v2.3.1.yaml"


def ok(r, status=200):
    assert r.status == status, r
    return r


def put(c, name, data, etag=None, **kw):
    h = {"If-Match": etag} if etag is not None else None
    return c.request("PUT", BASE + "/" + name, secret_body(name, data), headers=h, **kw)


def resolution_world(c, secret):
    """An environment mapping `secret` as the Kafka credentials of database main/orders: the resolution
    serves the secret's values."""
    ok(c.request("POST", API + "/environments", {"name": "prod", "kubernetesNamespace": "flink"}))
    ok(c.request("POST", API + "/environments/prod/secret-mappings",
                 {"apiVersion": "cmf.confluent.io/v1", "kind": "EnvironmentSecretMapping",
                  "metadata": {"name": "kafka-conn"}, "spec": {"secretName": secret}}))
    ok(c.request("POST", API + "/catalogs/kafka",
                 {"apiVersion": "cmf.confluent.io/v1", "kind": "KafkaCatalog", "metadata": {"name": "main"},
                  "spec": {"srInstance": {"connectionConfig": {"schema.registry.url": "http://sr:8081"}}}}))
    ok(c.request("POST", API + "/catalogs/kafka/main/databases",
                 {"apiVersion": "cmf.confluent.io/v1", "kind": "KafkaDatabase", "metadata": {"name": "orders"},
                  "spec": {"kafkaCluster": {"connectionConfig": {"bootstrap.servers": "b1:9092"},
                                            "connectionSecretId": "kafka-conn"}}}))
    return API + "/environments/prod/client-configs/main/orders"


# ---- A small checker of CMF's OpenAPI schemas (objects, arrays, strings, integers, allOf, $ref) ----

_spec = None


def schema(name):
    global _spec
    if _spec is None:
        with open(OPENAPI) as f:
            _spec = yaml.safe_load(f)
    return _spec["components"]["schemas"][name]


def check(value, s, path="$"):
    if "$ref" in s:
        return check(value, schema(s["$ref"].rsplit("/", 1)[1]), path)
    for sub in s.get("allOf", []):
        check(value, sub, path)
    t = s.get("type")
    if t == "object" or "properties" in s:
        assert isinstance(value, dict), (path, value)
        for req in s.get("required", []):
            assert req in value, (path, req)
        for k, v in value.items():
            if k in s.get("properties", {}):
                check(v, s["properties"][k], path + "." + k)
            elif isinstance(s.get("additionalProperties"), dict):
                check(v, s["additionalProperties"], path + "." + k)
            # other members: additions, allowed
    elif t == "array":
        assert isinstance(value, list), (path, value)
        for i, v in enumerate(value):
            check(v, s.get("items", {}), "%s[%d]" % (path, i))
    elif t == "string":
        assert isinstance(value, str), (path, value)
    elif t == "integer":
        assert isinstance(value, int) and not isinstance(value, bool), (path, value)
    elif t == "boolean":
        assert isinstance(value, bool), (path, value)


def test_the_checker_can_fail():
    with pytest.raises(AssertionError):
        check({"metadata": {"name": "x"}, "spec": {"data": {"k": 1}}}, schema("Secret"))
    with pytest.raises(AssertionError):
        check({"metadata": {"name": "x"}, "spec": {}, "status": {"version": 2}}, schema("Secret"))
    with pytest.raises(AssertionError):
        check({"spec": {}}, schema("Secret"))


# ---- Acceptance ----------------------------------------------------------------------------------

def test_twelve_versions_keep_ten_and_rollback_to_5_serves_its_values(cmf):
    """A create and 11 updates (versions 1-12) keep 3-12 readable (masked), 1-2 destroyed; a rollback to 5
    creates version 13, and the resolution then serves version 5's values."""
    ok(cmf.create_secret("kafka-creds", {"sasl.password": "pw-1", "user": "u-1"}))
    path = resolution_world(cmf, "kafka-creds")
    for v in range(2, 13):
        assert ok(put(cmf, "kafka-creds", {"sasl.password": "pw-%d" % v, "user": "u-%d" % v})).json()[
            "status"]["version"] == str(v)
    r = ok(cmf.request("GET", path))
    assert b"pw-12" in r.body and b"pw-5" not in r.body
    for v in range(3, 13):
        r = ok(cmf.request("GET", BASE + "/kafka-creds?version=%d" % v))
        s = r.json()
        assert s["spec"] == {"data": {"sasl.password": "****", "user": "****"}}
        assert s["status"]["version"] == str(v) and s["status"]["currentVersion"] == "12"
        assert b"pw-" not in r.body and b"u-" not in r.body
    for v in (1, 2):
        r = cmf.request("GET", BASE + "/kafka-creds?version=%d" % v)
        assert r.status == 410 and "version %d was destroyed" % v in r.error(), r
    assert cmf.request("GET", BASE + "/kafka-creds?version=13").status == 404
    r = ok(cmf.request("POST", BASE + "/kafka-creds/rollback", {"version": 5}))
    s = r.json()
    assert s["status"]["version"] == "13" and s["spec"]["data"] == {"sasl.password": "****", "user": "****"}
    assert b"pw-" not in r.body
    r = ok(cmf.request("GET", path))
    assert b"pw-5" in r.body and b"u-5" in r.body and b"pw-12" not in r.body, r.body
    # The history only grows: 12 is still readable, 3 is now destroyed (13 - 10).
    ok(cmf.request("GET", BASE + "/kafka-creds?version=12"))
    assert cmf.request("GET", BASE + "/kafka-creds?version=3").status == 410
    assert cmf.get_secret("kafka-creds").json()["status"]["version"] == "13"


def test_two_puts_with_the_same_if_match_one_wins(cmf):
    etag = ok(cmf.create_secret("race-me", {"k": "v0"})).headers["etag"]
    go = threading.Barrier(2)
    got = []

    def writer(i):
        go.wait()
        got.append(put(cmf, "race-me", {"k": "w%d" % i}, etag))

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.status for r in got) == [200, 412], got
    lost = [r for r in got if r.status == 412][0]
    assert "is at version 2" in lost.error(), lost
    assert lost.json() == {"errors": [{"message": lost.error()}]}
    assert cmf.get_secret("race-me").json()["status"]["version"] == "2"


def test_no_lost_update_under_20_writers_with_if_match_retry_loops(cmf):
    ok(cmf.create_secret("contended", {"k": "start"}))
    path = resolution_world(cmf, "contended")
    acked = []  # (version, value) of every 200
    lock = threading.Lock()
    refused = [0]

    def writer(i):
        for seq in range(3):
            value = "w%02d-%d" % (i, seq)
            while True:
                g = ok(cmf.get_secret("contended"))
                r = put(cmf, "contended", {"k": value}, g.headers["etag"])
                if r.status == 200:
                    with lock:
                        acked.append((int(r.json()["status"]["version"]), value))
                    break
                assert r.status == 412, r
                with lock:
                    refused[0] += 1

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    final = int(cmf.get_secret("contended").json()["status"]["version"])
    assert len(acked) == 60
    assert final == 1 + len(acked), (final, len(acked))
    assert sorted(v for v, _ in acked) == list(range(2, final + 1))  # each acknowledged write is a version
    assert refused[0] > 0  # the writers did contend
    last = max(acked)[1]
    body = ok(cmf.request("GET", path)).body
    assert last.encode() in body and sum(v.encode() in body for _, v in acked) == 1, body


def test_a_versions_ciphertext_copied_over_anothers_is_refused(cmf, pg, db):
    ok(cmf.create_secret("swapped", {"k": "one"}))
    ok(put(cmf, "swapped", {"k": "two"}))
    ok(put(cmf, "swapped", {"k": "three"}))
    ok(cmf.request("GET", BASE + "/swapped?version=2"))
    pg.psql("UPDATE cmf_secret_versions SET data = (SELECT data FROM cmf_secret_versions WHERE name = 'swapped' "
            "AND version = 1) WHERE name = 'swapped' AND version = 2", db)
    r = cmf.request("GET", BASE + "/swapped?version=2")
    assert r.status == 500 and "integrity" in r.error(), r
    assert b"one" not in r.body
    assert "does not decrypt" in cmf.log()
    ok(cmf.request("GET", BASE + "/swapped?version=1"))
    # A rollback to it is refused just the same: nothing is written.
    assert cmf.request("POST", BASE + "/swapped/rollback", {"version": 2}).status == 500
    assert cmf.get_secret("swapped").json()["status"]["version"] == "3"
    # And a kept version copied over the current data.
    pg.psql("UPDATE cmf_secrets SET data = (SELECT data FROM cmf_secret_versions WHERE name = 'swapped' "
            "AND version = 1) WHERE name = 'swapped'", db)
    # The row cache drops the row when PostgreSQL's notification of that UPDATE arrives.
    wait_for(lambda: cmf.get_secret("swapped").status == 500, 10)


def test_responses_are_valid_against_cmf_openapi(cmf):
    secret = schema("Secret")
    r = ok(cmf.create_secret("shaped", {"a": "1"}, labels={"t": "x"}))
    check(r.json(), secret)
    check(ok(put(cmf, "shaped", {"a": "2"}, r.headers["etag"])).json(), secret)
    check(ok(cmf.get_secret("shaped")).json(), secret)
    check(ok(cmf.request("GET", BASE + "/shaped?version=1")).json(), secret)
    check(ok(cmf.request("POST", BASE + "/shaped/rollback", {"version": 1})).json(), secret)
    check(ok(cmf.request("GET", BASE)).json(), schema("SecretsPage"))
    page = ok(cmf.request("GET", BASE + "/shaped/versions")).json()
    check(page, schema("PaginationResponse"))


# ---- API details -----------------------------------------------------------------------------------

def test_etag_is_from_uid_and_version_and_names_the_current(cmf):
    r = ok(cmf.create_secret("tagged", {"a": "1"}))
    uid = r.json()["metadata"]["uid"]
    assert r.headers["etag"] == '"%s.1"' % uid
    assert ok(cmf.get_secret("tagged")).headers["etag"] == '"%s.1"' % uid
    r = ok(put(cmf, "tagged", {"a": "2"}, '"%s.1"' % uid))
    assert r.headers["etag"] == '"%s.2"' % uid
    # A kept version's read carries the current ETag: what a PUT after it must name.
    assert ok(cmf.request("GET", BASE + "/tagged?version=1")).headers["etag"] == '"%s.2"' % uid
    r = put(cmf, "tagged", {"a": "3"}, '"%s.1"' % uid)
    assert r.status == 412 and r.error().startswith("secret 'tagged' is at version 2"), r
    # The same version of another incarnation (deleted, created again) does not match.
    ok(cmf.request("DELETE", BASE + "/tagged"), 204)
    r2 = ok(cmf.create_secret("tagged", {"a": "1"}))
    assert r2.headers["etag"] != '"%s.1"' % uid
    assert put(cmf, "tagged", {"a": "x"}, '"%s.1"' % uid).status == 412
    assert ok(put(cmf, "tagged", {"a": "x"}, "*")).json()["status"]["version"] == "2"
    assert put(cmf, "tagged", {"a": "y"}, r2.headers["etag"] + ", " + r2.headers["etag"]).status == 400
    assert put(cmf, "gone-one", {"a": "y"}, "*").status == 404


def test_delete_honours_if_match_and_post_if_none_match(cmf):
    etag = ok(cmf.create_secret("cond-del", {"a": "1"})).headers["etag"]
    ok(put(cmf, "cond-del", {"a": "2"}))
    r = cmf.request("DELETE", BASE + "/cond-del", headers={"If-Match": etag})
    assert r.status == 412 and "is at version 2" in r.error()
    ok(cmf.get_secret("cond-del"))
    ok(cmf.request("DELETE", BASE + "/cond-del", headers={"If-Match": cmf.get_secret("cond-del").headers["etag"]}),
       204)
    r = cmf.request("POST", BASE, secret_body("only-once", {"a": "1"}), headers={"If-None-Match": "*"})
    assert r.status == 200
    r = cmf.request("POST", BASE, secret_body("only-once", {"a": "2"}), headers={"If-None-Match": "*"})
    assert r.status == 412 and "already exists" in r.error(), r
    assert cmf.request("POST", BASE, secret_body("only-once", {"a": "2"})).status == 409


def test_versions_list_is_paged_metadata_only_and_keeps_destroyed_ones(cmf_factory):
    c = cmf_factory(env={"CMF_SECRETS_MAX_VERSIONS": "3"}).start()
    ok(c.create_secret("listed", {"k": "value-1"}))
    for v in range(2, 8):
        ok(put(c, "listed", {"k": "value-%d" % v}))
    r = ok(c.request("GET", BASE + "/listed/versions?size=3"))
    page = r.json()
    assert page["metadata"]["size"] == 7 and page["pageable"]["size"] == 3
    assert b"value-" not in r.body
    assert [i["version"] for i in page["items"]] == [7, 6, 5]
    assert all(not i["destroyed"] and i["destroyTimestamp"] is None for i in page["items"])
    assert all(i["createdBy"] == "admin" and TS.match(i["creationTimestamp"]) for i in page["items"])
    rest = ok(c.request("GET", BASE + "/listed/versions?size=3&page=1")).json()["items"] + \
        ok(c.request("GET", BASE + "/listed/versions?size=3&page=2")).json()["items"]
    assert [i["version"] for i in rest] == [4, 3, 2, 1]
    assert all(i["destroyed"] and TS.match(i["destroyTimestamp"]) for i in rest)
    assert ok(c.request("GET", BASE + "/listed/versions?page=3&size=3")).json()["items"] == []
    r = c.request("GET", BASE + "/nothing-here/versions")
    assert r.status == 404 and r.error() == "secret 'nothing-here' not found"
    assert c.request("GET", BASE + "/listed?version=4").status == 410
    assert c.request("GET", BASE + "/listed?version=0").status == 400
    assert c.request("GET", BASE + "/listed?version=x").status == 400
    r = c.request("POST", BASE + "/listed/rollback", {"version": 2})
    assert r.status == 410 and "destroyed" in r.error()
    assert c.request("POST", BASE + "/listed/rollback", {"version": 99}).status == 404
    assert c.request("POST", BASE + "/listed/rollback", {"version": "5"}).status == 400
    assert c.request("POST", BASE + "/listed/rollback", {"version": 5, "x": 1}).status == 400


def test_delete_destroys_every_version_and_the_audit_trail_keeps_the_events(cmf, pg, db):
    ok(cmf.create_secret("short-lived", {"k": "a"}))
    ok(put(cmf, "short-lived", {"k": "b"}))
    ok(put(cmf, "short-lived", {"k": "c"}))
    assert pg.psql("SELECT count(*) FROM cmf_secret_versions WHERE name = 'short-lived' AND data IS NOT NULL",
                   db) == "3"
    ok(cmf.request("DELETE", BASE + "/short-lived"), 204)
    assert pg.psql("SELECT count(*) FROM cmf_secret_versions WHERE name = 'short-lived'", db) == "0"
    ev = ok(cmf.request("GET", API + "/audit-events?resource=secret/short-lived")).json()["items"]
    assert [e["action"] for e in reversed(ev)] == ["secret.create", "secret.update", "secret.update",
                                                    "secret.delete"]


def test_rollback_is_audited_with_both_numbers(cmf):
    ok(cmf.create_secret("rolled", {"k": "a"}))
    for v in "bcd":
        ok(put(cmf, "rolled", {"k": v}))
    ok(cmf.request("POST", BASE + "/rolled/rollback", {"version": 2}))

    def events():
        return ok(cmf.request("GET", API + "/audit-events?resource=secret/rolled/versions/2->5")).json()["items"]

    ev = events()
    assert [(e["action"], e["outcome"], e["status"]) for e in ev] == [("secret.rollback", "success", 200)], ev
    assert "secret rolled rolled back to version 2 as version 5" in cmf.log()
    # A kept version's read is audited naming that version (reads are queued: wait for the writer).
    ok(cmf.request("GET", BASE + "/rolled?version=3"))
    assert wait_for(lambda: ok(cmf.request("GET", API + "/audit-events?resource=secret/rolled/versions/3")).json()[
        "items"], 10)[0][0]["action"] == "secret.read"


def test_versions_in_a_database_without_encryption(cmf_factory, pg, db):
    c = cmf_factory(enabled=False).start()
    ok(c.create_secret("plain-one", {"k": "first"}))
    ok(put(c, "plain-one", {"k": "second"}))
    assert ok(c.request("GET", BASE + "/plain-one?version=1")).json()["spec"]["data"] == {"k": "****"}
    assert ok(c.request("POST", BASE + "/plain-one/rollback", {"version": 1})).json()["status"]["version"] == "3"
    assert pg.psql("SELECT string_agg(convert_from(data, 'UTF8'), ',' ORDER BY version) FROM cmf_secret_versions",
                   db) == '{"k":"first"},{"k":"second"},{"k":"first"}'


def test_require_if_match_makes_it_mandatory(cmf_factory):
    c = cmf_factory(env={"CMF_SECRETS_REQUIRE_IF_MATCH": "true"}).start()
    etag = ok(c.create_secret("strict", {"k": "a"})).headers["etag"]
    r = put(c, "strict", {"k": "b"})
    assert r.status == 428 and "If-Match with the ETag of the version read is required" in r.error(), r
    assert c.request("DELETE", BASE + "/strict").status == 428
    # "*" matches any version: it does not show the writer has seen the one it changes.
    assert put(c, "strict", {"k": "b"}, "*").status == 428
    assert c.request("DELETE", BASE + "/strict", headers={"If-Match": "*"}).status == 428
    assert c.request("POST", BASE + "/strict/rollback", {"version": 1}).status == 428
    etag = ok(put(c, "strict", {"k": "b"}, etag)).headers["etag"]
    assert put(c, "strict", {"k": "c"}, '"not-it"').status == 412
    ok(c.request("POST", BASE + "/strict/rollback", {"version": 1}, headers={"If-Match": etag}))
    # Optional whitespace around the ETag is not part of it (RFC 9110 §5.5).
    ok(c.request("DELETE", BASE + "/strict", headers={"If-Match": " %s " % etag_of(c, "strict")}), 204)


def etag_of(c, name):
    return ok(c.get_secret(name)).headers["etag"]


def test_if_none_match_star_on_a_change_wants_no_secret(cmf):
    """RFC 9110 §13.1.2: If-None-Match: * on PUT, DELETE or rollback of an existing secret is 412."""
    ok(cmf.create_secret("exists", {"k": "a"}))
    star = {"If-None-Match": "*"}
    r = cmf.request("PUT", BASE + "/exists", secret_body("exists", {"k": "b"}), headers=star)
    assert r.status == 412 and "exists (version 1): If-None-Match: * wants none" in r.error(), r
    assert cmf.request("DELETE", BASE + "/exists", headers=star).status == 412
    assert cmf.request("POST", BASE + "/exists/rollback", {"version": 1}, headers=star).status == 412
    assert str(ok(cmf.get_secret("exists")).json()["status"]["version"]) == "1"
    # On a secret that does not exist, the PUT is the usual 404.
    assert cmf.request("PUT", BASE + "/absent", secret_body("absent", {"k": "b"}), headers=star).status == 404


def test_kept_versions_are_resealed_at_start(cmf_factory, pg, db):
    """Kept versions in ciphertext version 1 (as an older release would have left them) are re-sealed at
    start like the current data, and read back afterwards."""
    from test_reliability import _unwrap_dek, _v1_ciphertext

    c = cmf_factory().start()
    ok(c.create_secret("history", {"password": "p1"}))
    ok(put(c, "history", {"password": "p2"}))
    assert c.stop() == 0
    with open(c.keyfile, "rb") as f:
        master = f.read()
    term, wrapped_hex = pg.psql("SELECT term, encode(wrapped, 'hex') FROM cmf_deks", db).split("|")
    dek = _unwrap_dek(master, int(term), bytes.fromhex(wrapped_hex))
    uid = pg.psql("SELECT uid FROM cmf_secrets WHERE name = 'history'", db)
    ct = _v1_ciphertext(dek, int(term), uid, 1, {"password": "p1"})
    pg.psql("ALTER TABLE cmf_secret_versions DISABLE TRIGGER cmf_secret_versions_seal_version;"
            "UPDATE cmf_secret_versions SET data = '\\x%s' WHERE name = 'history' AND version = 1;"
            "ALTER TABLE cmf_secret_versions ENABLE TRIGGER cmf_secret_versions_seal_version;"
            "UPDATE cmf_encryption_state SET min_open_version = 1" % ct.hex(), db)
    assert pg.psql("SELECT get_byte(data, 0) FROM cmf_secret_versions WHERE name = 'history' AND version = 1",
                   db) == "1"
    c = cmf_factory().start()
    assert "re-sealed 1 ciphertext(s)" in c.log(), c.log()
    assert pg.psql("SELECT get_byte(data, 0) FROM cmf_secret_versions WHERE name = 'history' AND version = 1",
                   db) == "2"
    assert pg.psql("SELECT min_open_version FROM cmf_encryption_state", db) == "2"
    ok(c.request("GET", BASE + "/history?version=1"))
    # Rolled back to, it serves the right values.
    ok(c.request("POST", BASE + "/history/rollback", {"version": 1}))
    path = resolution_world(c, "history")
    assert b"p1" in ok(c.request("GET", path)).body


def test_a_version_1_ciphertext_put_back_into_a_kept_version_is_refused(cmf, pg, db):
    ok(cmf.create_secret("no-downgrade", {"k": "a"}))
    with pytest.raises(subprocess.CalledProcessError) as e:
        pg.psql("UPDATE cmf_secret_versions SET data = '\\x01'::bytea || substring(data from 2) "
                "WHERE name = 'no-downgrade'", db)
    assert "below version 2" in e.value.stderr
    ok(cmf.request("GET", BASE + "/no-downgrade?version=1"))
