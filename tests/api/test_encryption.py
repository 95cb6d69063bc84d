"""Encryption at rest, the mode lock, key refusals and tamper detection, against the real binary and PostgreSQL."""
import base64
import os

import pytest

from conftest import write_key

SECRET_VALUES = {"sasl.jaas.config": "org.apache.kafka.common.security.plain.PlainLoginModule required "
                                     "username=\"svc\" password=\"Pl41nT3xt-M4rker\";",
                 "basic.auth.user.info": "sr-user:Zq9-Another-Marker"}


def forms(value):
    """Ways a plaintext value could show up in a pg_dump: raw, hex (bytea), base64, JSON-escaped."""
    b = value.encode()
    return [b, b.hex().encode(), base64.b64encode(b), value.replace('"', '\\"').encode()]


def test_pg_dump_holds_no_plaintext(cmf, pg, db):
    assert cmf.create_secret("kafka-prod", SECRET_VALUES).status == 200
    dump = pg.dump(db)
    assert b"kafka-prod" in dump  # the dump is of the right database
    for v in SECRET_VALUES.values():
        for f in forms(v):
            assert f not in dump, f[:40]
    # the plaintext is not in the server log either
    for v in SECRET_VALUES.values():
        assert v not in cmf.log()


def test_disabled_mode_stores_plaintext_and_warns(cmf_factory, pg, db):
    """The same dump check finds the value when encryption is disabled: the check above can fail."""
    c = cmf_factory(enabled=False).start()
    assert c.create_secret("kafka-dev", SECRET_VALUES).status == 200
    dump = pg.dump(db)
    assert any(f in dump for f in forms(SECRET_VALUES["basic.auth.user.info"]))
    log = c.log()
    assert "ENCRYPTION DISABLED" in log
    r = c.request("GET", "/readyz").json()
    assert r["encryption"]["enabled"] is False
    assert any("DISABLED" in w for w in r["warnings"])
    # masked on reads in this mode too
    assert c.get_secret("kafka-dev").json()["spec"]["data"] == {k: "****" for k in SECRET_VALUES}


def test_restart_same_key_reads_back(cmf_factory):
    c = cmf_factory().start()
    assert c.create_secret("survives", {"a": "b"}).status == 200
    assert c.stop() == 0
    c2 = cmf_factory().start()
    r = c2.get_secret("survives")
    assert r.status == 200 and r.json()["spec"]["data"] == {"a": "****"}
    assert "initialized the database" not in c2.log()


def test_other_key_refused_exit_78_database_unchanged(cmf_factory, workdir, pg, db):
    c = cmf_factory().start()
    assert c.create_secret("locked-in", SECRET_VALUES).status == 200
    assert c.stop() == 0
    before = pg.dump(db)
    other = os.path.join(workdir, "other.key")
    write_key(other)
    c2 = cmf_factory(env={"CMF_ENCRYPTION_KEY_FILE": other}).start(wait=False)
    assert c2.wait_exit() == 78
    log = c2.log()
    assert "cannot change the encryption key" in log and "key id" in log
    assert pg.dump(db) == before
    # `cmf check` refuses the same way, and `cmf init` too
    assert c2.run("check").returncode == 78
    assert c2.run("init").returncode == 78
    assert pg.dump(db) == before


def test_enabled_to_disabled_refused(cmf_factory, pg, db):
    c = cmf_factory().start()
    assert c.stop() == 0
    before = pg.dump(db)
    c2 = cmf_factory(enabled=False).start(wait=False)
    assert c2.wait_exit() == 78
    assert ("cannot change the encryption mode: the database was initialized with encryption.enabled=true, "
            "the configuration has encryption.enabled=false") in c2.log()
    assert pg.dump(db) == before


def test_disabled_to_enabled_refused(cmf_factory, pg, db):
    c = cmf_factory(enabled=False).start()
    assert c.create_secret("plain-one", {"a": "b"}).status == 200
    assert c.stop() == 0
    before = pg.dump(db)
    c2 = cmf_factory().start(wait=False)
    assert c2.wait_exit() == 78
    assert ("cannot change the encryption mode: the database was initialized with encryption.enabled=false, "
            "the configuration has encryption.enabled=true") in c2.log()
    assert pg.dump(db) == before


@pytest.mark.parametrize("content,expect", [
    (os.urandom(24), "24 bytes"),
    (b"", "empty"),
    (base64.b64encode(os.urandom(24)) + b"\n", "decodes to 24 bytes"),
    (base64.b64encode(base64.b64encode(os.urandom(32))) + b"\n", "twice"),
    (b"not base64 at all !!!", "16 or 32"),
])
def test_bad_keys_refused_with_message(cmf_factory, workdir, content, expect):
    path = os.path.join(workdir, "bad.key")
    with open(path, "wb") as f:
        f.write(content)
    c = cmf_factory(env={"CMF_ENCRYPTION_KEY_FILE": path})
    r = c.run("serve")
    assert r.returncode == 78, r.stderr
    assert expect in r.stderr, r.stderr
    assert "16 or 32" in r.stderr or expect == "empty"
    if content:
        assert content.decode("latin-1").strip() not in r.stderr


def test_missing_key_file_refused(cmf_factory, workdir):
    c = cmf_factory(env={"CMF_ENCRYPTION_KEY_FILE": os.path.join(workdir, "absent.key")})
    r = c.run("serve")
    assert r.returncode == 78
    assert "absent.key" in r.stderr and "No such file" in r.stderr


@pytest.mark.parametrize("size,form", [(16, "raw"), (32, "raw"), (16, "base64"), (32, "base64")])
def test_accepted_key_forms(cmf_factory, workdir, size, form):
    path = os.path.join(workdir, "good.key")
    write_key(path, os.urandom(size), form)
    c = cmf_factory(env={"CMF_ENCRYPTION_KEY_FILE": path}).start()
    assert "AES-%d-GCM" % (size * 8) in c.log()
    assert c.create_secret("key-form", {"a": "b"}).status == 200
    assert c.get_secret("key-form").status == 200


def test_key_never_logged(cmf_factory, workdir):
    path = os.path.join(workdir, "b64.key")
    raw = write_key(path, os.urandom(32), "base64")
    c = cmf_factory(env={"CMF_ENCRYPTION_KEY_FILE": path}).start()
    c.create_secret("abcd", {"a": "b"})
    c.stop()
    log = c.log()
    assert base64.b64encode(raw).decode() not in log and raw.hex() not in log


def test_ciphertext_moved_to_another_row_fails(cmf, pg, db):
    assert cmf.create_secret("row-a", {"k": "value-a"}).status == 200
    assert cmf.create_secret("row-b", {"k": "value-b"}).status == 200
    pg.psql("UPDATE cmf_secrets SET data = (SELECT data FROM cmf_secrets WHERE name = 'row-a') "
            "WHERE name = 'row-b'", db)
    r = cmf.get_secret("row-b")
    assert r.status == 500, r
    assert "integrity" in r.error()
    assert b"value-a" not in r.body
    assert "does not decrypt" in cmf.log()
    assert cmf.get_secret("row-a").status == 200


def test_old_version_replayed_fails(cmf, pg, db):
    from conftest import secret_body
    cmf.create_secret("replayed", {"k": "v1"})
    old = pg.psql("SELECT encode(data, 'hex') FROM cmf_secrets WHERE name = 'replayed'", db)
    cmf.request("PUT", "/cmf/api/v1/secrets/replayed", secret_body("replayed", {"k": "v2"}))
    pg.psql("UPDATE cmf_secrets SET data = decode('%s', 'hex') WHERE name = 'replayed'" % old, db)
    assert cmf.get_secret("replayed").status == 500


def test_flipped_bit_in_stored_ciphertext_fails(cmf, pg, db):
    cmf.create_secret("flipped", {"k": "v1"})
    cmf.create_secret("intact", {"k": "v2"})
    pg.psql("UPDATE cmf_secrets SET data = set_byte(data, 30, get_byte(data, 30) # 1) WHERE name = 'flipped'", db)
    assert cmf.get_secret("flipped").status == 500
    # In the list (issue 12, which reversed "the whole page fails closed"): the others are listed, and the
    # bad row is named, never skipped silently: spec {} and the integrity error in its status, logged and
    # audited.
    r = cmf.request("GET", "/cmf/api/v1/secrets")
    assert r.status == 200, r
    items = {i["metadata"]["name"]: i for i in r.json()["items"]}
    assert items["intact"]["spec"] == {"data": {"k": "****"}}
    assert items["flipped"]["spec"] == {}
    assert "integrity check" in items["flipped"]["status"]["error"]
    assert "error" not in items["intact"]["status"]
    assert "'flipped': stored data fails its integrity check" in cmf.log()
    ev = cmf.request("GET", "/cmf/api/v1/audit-events?resource=secret/flipped").json()["items"]
    assert [(e["action"], e["outcome"], e["status"]) for e in ev if e["action"] == "secret.integrity"] == [
        ("secret.integrity", "failure", 500)]


def test_plaintext_row_in_encrypted_database_refused(cmf, pg, db):
    cmf.create_secret("injected", {"k": "v1"})
    pg.psql("UPDATE cmf_secrets SET sealed = false, data = convert_to('{\"k\":\"evil\"}', 'UTF8') "
            "WHERE name = 'injected'", db)
    assert cmf.get_secret("injected").status == 500


def test_keyring_is_wrapped_and_counted(cmf, pg, db):
    for i in range(3):
        cmf.create_secret("counted-%d" % i, {"k": "v"})
    # 17-byte header + 32-byte DEK + 16-byte tag; one block of 1024 encryptions reserved by this process
    rows = pg.psql("SELECT term, length(wrapped), encryptions FROM cmf_deks", db)
    assert rows == "1|65|1024", rows
    state = pg.psql("SELECT enabled, key_id FROM cmf_encryption_state", db)
    ready = cmf.request("GET", "/readyz").json()
    assert state == "t|" + ready["encryption"]["keyId"]
