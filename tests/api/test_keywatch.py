"""The master key as a kubelet-mounted Secret: revocation and recovery without a restart, and key
material not left in process memory."""
import base64
import os
import re
import time

from conftest import KubeletSecretVolume, wait_for

# The bound: revocation and recovery must show within 10 s.
BOUND = 10


def ready_status(c):
    return c.request("GET", "/readyz").status


def start_with_volume(cmf_factory, workdir, raw, **kw):
    vol = KubeletSecretVolume(os.path.join(workdir, "keyvol"))
    vol.write({"encryption-key": raw})
    c = cmf_factory(env={"CMF_ENCRYPTION_KEY_FILE": os.path.join(vol.path, "encryption-key")}, **kw).start()
    return vol, c


def test_revocation_drill(cmf_factory, workdir, pg, db):
    raw = os.urandom(32)
    vol, c = start_with_volume(cmf_factory, workdir, raw)
    assert c.create_secret("drill-secret", {"password": "drill-plaintext"}).status == 200
    before = pg.dump(db, audit=False)

    # Remove the key: ..data now points at a directory without it (the symlink dangles).
    vol.write({}, remove_links=False)
    _, took = wait_for(lambda: ready_status(c) == 503, BOUND)
    r = c.request("GET", "/readyz")
    assert "encryption key unavailable" in r.body.decode() and "cannot be read" in r.body.decode(), r
    for resp in (c.get_secret("drill-secret"), c.create_secret("new-one", {"a": "b"}),
                 c.request("GET", "/cmf/api/v1/secrets")):
        assert resp.status == 503, resp
        assert resp.error() == "encryption key unavailable"
        assert b"drill-plaintext" not in resp.body
    assert c.request("GET", "/healthz").status == 200  # alive: do not restart the pod over this
    assert pg.dump(db, audit=False) == before  # nothing stored changed (the audit trail grows)
    # the refused write is in the audit trail with its 503 (listing the trail commits what is queued)
    assert c.request("GET", "/cmf/api/v1/audit-events").status == 200
    assert pg.psql("SELECT outcome, status FROM cmf_audit_events WHERE action = 'secret.create' "
                   "AND resource LIKE '%new-one'", db) == "failure|503"
    print("revoked after %.1f s" % took)

    # Restore the same key: the service resumes by itself.
    vol.write({"encryption-key": raw})
    _, took = wait_for(lambda: ready_status(c) == 200, BOUND)
    r = c.get_secret("drill-secret")
    assert r.status == 200 and r.json()["status"]["version"] == "1"
    assert r.json()["spec"]["data"] == {"password": "****"}
    assert c.create_secret("after-restore", {"a": "b"}).status == 200
    print("restored after %.1f s" % took)
    log = c.log()
    assert re.search(r"WARN  encryption key unavailable: the key file cannot be read", log), log
    assert "encryption key restored" in log
    assert c.proc.poll() is None


def test_another_key_or_garbage_revokes_then_recovers(cmf_factory, workdir):
    raw = os.urandom(32)
    vol, c = start_with_volume(cmf_factory, workdir, raw)
    assert c.create_secret("kept-secret", {"a": "b"}).status == 200

    vol.write({"encryption-key": os.urandom(32)})  # a valid key, but not this database's
    wait_for(lambda: ready_status(c) == 503, BOUND)
    body = c.request("GET", "/readyz").body.decode()
    assert "is not the key this database was initialized with" in body, body
    assert c.get_secret("kept-secret").status == 503

    vol.write({"encryption-key": b"garbage"})
    wait_for(lambda: "no longer holds a valid key" in c.request("GET", "/readyz").body.decode(), BOUND)
    assert c.get_secret("kept-secret").status == 503

    # the right key back, base64-encoded this time (still the same key)
    vol.write({"encryption-key": base64.b64encode(raw) + b"\n"})
    wait_for(lambda: ready_status(c) == 200, BOUND)
    assert c.get_secret("kept-secret").status == 200


def test_same_key_remounted_is_not_a_transition(cmf_factory, workdir):
    raw = os.urandom(16)
    vol, c = start_with_volume(cmf_factory, workdir, raw, )
    for _ in range(3):
        vol.write({"encryption-key": raw})
    time.sleep(3)
    assert ready_status(c) == 200
    assert "encryption key unavailable" not in c.log()


def readable_mappings(pid):
    """Each readable mapping of process `pid` as ((lo, hi), VmFlags from smaps, its bytes)."""
    spans, current = [], None
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            head = line.split()
            if ":" not in head[0] and "-" in head[0]:
                current = [tuple(int(x, 16) for x in head[0].split("-")), head[1], []]
                spans.append(current)
            elif line.startswith("VmFlags:") and current is not None:
                current[2] = line.split()[1:]
    with open("/proc/%d/mem" % pid, "rb", 0) as mem:
        for (lo, hi), perms, vmflags in spans:
            if not perms.startswith("r"):
                continue
            try:
                mem.seek(lo)
                chunk = mem.read(hi - lo)
            except (OSError, ValueError, OverflowError):
                continue
            yield (lo, hi), vmflags, chunk


def scan_memory(pid, needles):
    """Search every readable mapping of process `pid` for any of `needles`; return those found."""
    return {n for _, _, chunk in readable_mappings(pid) for n in needles if n in chunk}


def test_master_key_not_left_in_memory(cmf_factory, workdir):
    """The master key is kept for data-key rotation, only in OpenSSL's secure heap (not dumped, locked); every
    other copy (the file's bytes, each re-read by the watch) is wiped."""
    raw = os.urandom(32)
    vol, c = start_with_volume(cmf_factory, workdir, raw)
    assert c.create_secret("mem-secret", {"password": "in-memory-marker-%s" % raw.hex()[:8]}).status == 200
    time.sleep(2.5)  # at least one watch poll
    where = [vmflags for _, vmflags, chunk in readable_mappings(c.proc.pid) if raw in chunk]
    assert where and all("dd" in f and "lo" in f for f in where), where
    assert scan_memory(c.proc.pid, [base64.b64encode(raw)]) == set()
    # Revoked: the kept copy goes with the keyring.
    vol.write({}, remove_links=False)
    wait_for(lambda: ready_status(c) == 503, BOUND)
    assert scan_memory(c.proc.pid, [raw]) == set()
    # the scan can find things: the same process does hold the request's masked output strings
    assert scan_memory(c.proc.pid, [b"mem-secret"]) == {b"mem-secret"}


def test_admin_token_rotation_without_restart(cmf_factory, workdir):
    """The bootstrap token's Secret is rotated by the kubelet: the new token works, the old one stops."""
    def token():
        return base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
    old, new = token(), token()
    vol = KubeletSecretVolume(os.path.join(workdir, "tokenvol"))
    vol.write({"token": (old + "\n").encode()})
    c = cmf_factory(env={"CMF_AUTH_ADMIN_TOKEN_FILE": os.path.join(vol.path, "token")}).start()
    secrets = "/cmf/api/v1/secrets"
    assert c.request("GET", secrets, token=old).status == 200

    vol.write({"token": (new + "\n").encode()})
    wait_for(lambda: c.request("GET", secrets, token=old).status == 401, BOUND)
    assert c.request("GET", secrets, token=new).status == 200
    assert "the new bootstrap admin token is in effect" in c.log()

    vol.write({}, remove_links=False)  # the Secret lost its key: no bootstrap token at all
    wait_for(lambda: c.request("GET", secrets, token=new).status == 401, BOUND)
    assert "bootstrap admin token disabled" in c.log()

    vol.write({"token": b"short\n"})  # back, but not a valid token: still refused
    time.sleep(3)
    assert c.request("GET", secrets, token=new).status == 401
    assert c.request("GET", secrets, token="short").status == 401

    vol.write({"token": (new + "\n").encode()})
    wait_for(lambda: c.request("GET", secrets, token=new).status == 200, BOUND)
    for t in (old, new):
        assert t not in c.log()


def _unwrap_dek(master, term, wrapped):
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    header = wrapped[:17]
    return AESGCM(master).decrypt(header[5:], wrapped[17:], header + ("cmf/keyring/dek/%d" % term).encode())


def test_key_material_only_in_the_secure_heap_and_no_core_dumps(cmf_factory, workdir, pg, db):
    """Process hardening: no core files (RLIMIT_CORE 0), and the data keys held for the process's lifetime
    live only in OpenSSL's secure heap, a mapping excluded from core dumps (VmFlags dd) and locked in RAM
    (lo: the test runs as root, so RLIMIT_MEMLOCK allows it); nowhere else in memory."""
    c = cmf_factory().start()
    assert c.create_secret("hardened", {"password": "p"}).status == 200
    pid = c.proc.pid
    with open("/proc/%d/limits" % pid) as f:
        core = [l for l in f if l.startswith("Max core file size")][0].split()
    assert core[4:6] == ["0", "0"], core
    with open(c.keyfile, "rb") as f:
        master = f.read()
    term, wrapped_hex = pg.psql("SELECT term, encode(wrapped, 'hex') FROM cmf_deks", db).split("|")
    dek = _unwrap_dek(master, int(term), bytes.fromhex(wrapped_hex))
    # Where the data key is: every readable mapping scanned, with its VmFlags from smaps.
    where = [(span, vmflags) for span, vmflags, chunk in readable_mappings(pid) if dek in chunk]
    assert where, "the data key was not found at all (the test would prove nothing)"
    assert all("dd" in f and "lo" in f for _, f in where), where
