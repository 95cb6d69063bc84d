"""Master-key rotation through the Kubernetes Secret: the new key and the previous one as two properties of
the same kubelet-mounted volume, on a running pair of replicas of which one sees the new files seconds
after the other; the keyring wrapped by both keys meanwhile; the previous wrapping destroyed once every
replica has the new key and the previous property is gone. And the offline `cmf rotate master-key`."""
import hashlib
import hmac
import os
import subprocess
import threading
import time

from conftest import KubeletSecretVolume, wait_for

STATUS = "/cmf/api/v1/encryption"


def key_id(raw):
    return hmac.new(raw, b"cmf key id v1", hashlib.sha256).digest()[:8].hex()


def replica(cmf_factory, vol, **kw):
    env = {"CMF_ENCRYPTION_KEY_FILE": os.path.join(vol.path, "encryption-key"),
           "CMF_ENCRYPTION_KEY_PREVIOUS_FILE": os.path.join(vol.path, "previous-encryption-key"),
           "CMF_ENCRYPTION_KEY_RELOAD_INTERVAL_SECONDS": "1"}
    env.update(kw.pop("env", {}))
    return cmf_factory(env=env, **kw)


def state(pg, db):
    return pg.psql("SELECT key_id || '|' || coalesce(previous_key_id, '') FROM cmf_encryption_state", db)


def test_rotation_through_kubelet_volumes_with_a_lagging_replica(cmf_factory, workdir, pg, db):
    old, new = os.urandom(32), os.urandom(32)
    va, vb = KubeletSecretVolume(os.path.join(workdir, "va")), KubeletSecretVolume(os.path.join(workdir, "vb"))
    va.write({"encryption-key": old})
    vb.write({"encryption-key": old})
    a = replica(cmf_factory, va).start()
    b = replica(cmf_factory, vb).start()
    for i in range(20):
        assert a.create_secret("m-%02d" % i, {"password": "master-value-%02d" % i}).status == 200
    assert state(pg, db) == key_id(old) + "|"

    # Traffic on both replicas through the whole rotation: reads that open the keyring and writes.
    stop, bad, counts = threading.Event(), [], [0]

    def traffic(c, tag):
        n = 0
        while not stop.is_set():
            r = c.get_secret("m-%02d" % (n % 20))
            w = c.create_secret("t-%s-%05d" % (tag, n), {"password": "x"})
            for resp in (r, w):
                if resp.status >= 500 or resp.status not in (200,):
                    bad.append((tag, resp.status, resp.body[:200]))
            counts[0] += 2
            n += 1

    ts = [threading.Thread(target=traffic, args=(c, t)) for c, t in ((a, "a"), (b, "b"))]
    for t in ts:
        t.start()
    try:
        time.sleep(1)
        # The kubelet of A's node delivers the new Secret first: both properties swapped at once.
        va.write({"encryption-key": new, "previous-encryption-key": old})
        wait_for(lambda: state(pg, db) == key_id(new) + "|" + key_id(old), 10)
        wait_for(lambda: "master key rotated" in a.log(), 10)
        # B still has only the old key: it loads the keyring through the old key's wrapping and serves.
        # A new data-key term made meanwhile (by A, which has both keys) is wrapped by both: B loads it.
        r = a.request("POST", "/cmf/api/v1/encryption/rotate", {"target": "dek"})
        assert r.status == 200, r
        wait_for(lambda: b.request("GET", STATUS).json()["loadedTerm"] == 2, 10)
        assert pg.psql("SELECT count(*) FROM cmf_deks WHERE wrapped_previous IS NULL", db) == "0"
        time.sleep(3)
        # B's node catches up several seconds later.
        vb.write({"encryption-key": new, "previous-encryption-key": old})
        wait_for(lambda: "followed the rotation" in b.log(), 10)
        time.sleep(1)
        # The operator removes the previous property everywhere: the rotation finishes by itself.
        va.write({"encryption-key": new})
        vb.write({"encryption-key": new})
        wait_for(lambda: state(pg, db) == key_id(new) + "|", 20)
        time.sleep(1)
    finally:
        stop.set()
        for t in ts:
            t.join()
    assert bad == [], bad[:5]
    assert counts[0] > 50
    assert pg.psql("SELECT count(*) FROM cmf_deks WHERE wrapped_previous IS NOT NULL", db) == "0"
    assert "master key rotated" in a.log() + b.log()
    assert "master-key rotation finished" in a.log() + b.log()
    events = pg.psql("SELECT principal || ' ' || resource FROM cmf_audit_events WHERE action = 'encryption.rotate' "
                     "ORDER BY time, id", db).split("\n")
    assert "cmf master-key/%s" % key_id(new) in events, events
    assert "cmf master-key/%s/previous-destroyed" % key_id(old) in events, events
    dump = pg.dump(db)
    for k in (old, new):
        assert k not in dump and k.hex().encode() not in dump
    assert b"master-value" not in dump
    assert a.stop() == 0 and b.stop() == 0

    # A restart with only the new key serves every secret; with only the old key it exits 78.
    vn = KubeletSecretVolume(os.path.join(workdir, "vn"))
    vn.write({"encryption-key": new})
    c = replica(cmf_factory, vn).start()
    for i in range(20):
        assert c.get_secret("m-%02d" % i).status == 200
    assert c.create_secret("after", {"password": "y"}).status == 200
    assert c.stop() == 0
    vo = KubeletSecretVolume(os.path.join(workdir, "vo"))
    vo.write({"encryption-key": old})
    d = replica(cmf_factory, vo)
    r = d.run("serve", timeout=60)
    assert r.returncode == 78, (r.returncode, r.stderr[-500:])
    assert "cannot change the encryption key" in r.stderr


def test_rotation_at_start_with_a_pin_and_the_offline_commands(cmf_factory, workdir, pg, db):
    old, new, newer = os.urandom(32), os.urandom(16), os.urandom(32)
    v = KubeletSecretVolume(os.path.join(workdir, "v"))
    v.write({"encryption-key": old})
    a = replica(cmf_factory, v, env={"CMF_ENCRYPTION_KEY_ID": key_id(old)}).start()
    assert a.create_secret("pin-1", {"password": "pinned-value"}).status == 200
    assert a.stop() == 0

    # A new key alone is refused (another key: 78), pinned or not.
    v.write({"encryption-key": new})
    r = replica(cmf_factory, v).run("serve")
    assert r.returncode == 78 and "cannot change the encryption key" in r.stderr, r.stderr[-400:]
    # The new key with the previous (pinned) one beside it: rotated at start, accepted under the old pin.
    v.write({"encryption-key": new, "previous-encryption-key": old})
    b = replica(cmf_factory, v, env={"CMF_ENCRYPTION_KEY_ID": key_id(old)}).start()
    assert state(pg, db) == key_id(new) + "|" + key_id(old)
    assert b.get_secret("pin-1").status == 200
    assert "master key rotated to key id %s" % key_id(new) in b.log()
    # A pin naming neither key is still refused.
    r = replica(cmf_factory, v, env={"CMF_ENCRYPTION_KEY_ID": key_id(newer)}).run("serve")
    assert r.returncode == 78 and "pins key id" in r.stderr, r.stderr[-400:]
    assert b.stop() == 0

    # Finishing needs the new key configured: with the old one it is refused and changes nothing.
    vo = KubeletSecretVolume(os.path.join(workdir, "vo"))
    vo.write({"encryption-key": old})
    r = subprocess.run(replica(cmf_factory, vo).argv("rotate") + ["finish"], env=replica(cmf_factory, vo).env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 78 and "not the database's current master key" in r.stderr, r
    c = replica(cmf_factory, v)
    r = subprocess.run(c.argv("rotate") + ["finish"], env=c.env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "finished" in r.stdout, r
    assert state(pg, db) == key_id(new) + "|"
    r = subprocess.run(c.argv("rotate") + ["finish"], env=c.env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "nothing to finish" in r.stdout, r

    # Offline: `cmf rotate master-key --new-key FILE` with the current key configured.
    nk = os.path.join(workdir, "newer.key")
    with open(nk, "wb") as f:
        f.write(newer)
    vn = KubeletSecretVolume(os.path.join(workdir, "vn"))
    vn.write({"encryption-key": new})
    c = replica(cmf_factory, vn)
    r = subprocess.run(c.argv("rotate") + ["master-key"], env=c.env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 64, r
    r = subprocess.run(c.argv("rotate") + ["master-key", "--new-key", nk], env=c.env, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and key_id(newer) in r.stdout, r
    assert state(pg, db) == key_id(newer) + "|" + key_id(new)
    # Again: the same rotation is already made (nothing to do).
    r = subprocess.run(c.argv("rotate") + ["master-key", "--new-key", nk], env=c.env, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r
    vn.write({"encryption-key": newer})
    d = replica(cmf_factory, vn).start()
    assert d.get_secret("pin-1").status == 200
    assert d.stop() == 0
    # A second rotation before the first finished is refused, and changes nothing.
    fourth = os.path.join(workdir, "fourth.key")
    with open(fourth, "wb") as f:
        f.write(os.urandom(32))
    os.chmod(fourth, 0o400)
    c = replica(cmf_factory, vn)
    r = subprocess.run(c.argv("rotate") + ["master-key", "--new-key", fourth], env=c.env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 78 and "is not finished" in r.stderr, r
    assert state(pg, db) == key_id(newer) + "|" + key_id(new)
