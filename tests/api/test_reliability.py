"""Issue 12's reliability promises that hold at start: no initialization over data whose encryption state
is gone (a partial restore, a mistaken DELETE), and a key pinned by id refused before anything is written
(the real binary against the real PostgreSQL)."""
import os
import re

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
