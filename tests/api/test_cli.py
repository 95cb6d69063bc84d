"""The cmf command line: configuration errors with file and line, init, check, keygen, version."""
import os
import stat
import subprocess

from conftest import CMF


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def run(args, env=None):
    e = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    e.update(env or {})
    return subprocess.run([CMF] + args, env=e, capture_output=True, text=True, timeout=60)


def test_version():
    r = run(["version"])
    assert r.returncode == 0 and r.stdout.startswith("cmf ")


def test_usage_errors():
    assert run([]).returncode == 64
    assert run(["frobnicate"]).returncode == 64
    assert run(["serve", "--bogus"]).returncode == 64


def test_config_unknown_key_names_file_and_line(workdir):
    cfg = write(os.path.join(workdir, "cmf.yaml"),
                "server:\n  listen: 127.0.0.1:0\nencryption:\n  enabled: true\n  key:\n    path: /x\n")
    r = run(["serve", "--config", cfg], {"CMF_DATABASE_URL": "postgresql://x/y"})
    assert r.returncode == 78
    assert "cmf.yaml:6" in r.stderr and "encryption.key.path" in r.stderr, r.stderr


def test_config_wrong_type_and_missing_value(workdir):
    cfg = write(os.path.join(workdir, "cmf.yaml"), "server:\n  threads: many\n")
    r = run(["check", "--config", cfg], {"CMF_DATABASE_URL": "postgresql://x/y"})
    assert r.returncode == 78 and "cmf.yaml:2" in r.stderr and "server.threads" in r.stderr, r.stderr
    r = run(["serve"], {})
    assert r.returncode == 78 and "database.url is required" in r.stderr, r.stderr
    r = run(["serve"], {"CMF_DATABASE_URL": "postgresql://x/y", "CMF_ENCRYPTION_ENABLED": "yes"})
    assert r.returncode == 78 and "CMF_ENCRYPTION_ENABLED" in r.stderr, r.stderr
    r = run(["serve"], {"CMF_DATABASE_URL": "postgresql://x/y"})
    assert r.returncode == 78 and "encryption.key.file is required" in r.stderr, r.stderr


def test_config_file_drives_the_server(cmf_factory, workdir, pg, db):
    key = os.path.join(workdir, "file.key")
    with open(key, "wb") as f:
        f.write(os.urandom(16))
    c = cmf_factory()
    cfg = write(os.path.join(workdir, "cmf.yaml"),
                "server:\n  listen: \"127.0.0.1:%d\"\n  threads: 2\n"
                "database:\n  url: \"%s\"\n"
                "encryption:\n  enabled: true\n  key:\n    file: %s\nlog:\n  level: info\n"
                "auth:\n  adminTokenFile: %s\n"
                % (c.port, pg.url(db), key, c.token_file))
    c.env = {"PATH": os.environ["PATH"]}
    c.config = cfg
    c.start()
    assert "AES-128-GCM" in c.log() and "2 worker threads" in c.log()
    assert c.create_secret("from-config", {"a": "b"}).status == 200


def test_init_then_check(cmf_factory, pg, db):
    c = cmf_factory()
    r = c.run("check")
    assert r.returncode == 0, r.stderr
    assert "not initialized" in r.stdout
    assert pg.psql("SELECT count(*) FROM pg_tables WHERE tablename LIKE 'cmf_%'", db) == "0"  # check wrote nothing
    r = c.run("init")
    assert r.returncode == 0, r.stderr
    assert "initialized the database" in r.stderr
    r = c.run("check")
    assert r.returncode == 0 and "check: OK" in r.stdout and "0 migration(s) pending" in r.stdout, r.stdout
    r = c.run("init")
    assert r.returncode == 0 and "initialized the database" not in r.stderr


def test_database_unreachable_exits_69(cmf_factory):
    c = cmf_factory(env={"CMF_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/nothing",
                         "CMF_DATABASE_STARTUP_TIMEOUT_SECONDS": "1"})
    r = c.run("serve")
    assert r.returncode == 69, r.stderr
    assert "unreachable" in r.stderr


def test_keygen(workdir):
    out = os.path.join(workdir, "new.key")
    r = run(["keygen", "--bits", "256", "--out", out])
    assert r.returncode == 0, r.stderr
    assert os.path.getsize(out) == 32
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    assert "key id" in r.stdout
    first = open(out, "rb").read()
    r = run(["keygen", "--bits", "256", "--out", out])
    assert r.returncode == 73 and "refusing to overwrite" in r.stderr
    assert open(out, "rb").read() == first
    out16 = os.path.join(workdir, "new16.key")
    assert run(["keygen", "--bits", "128", "--out", out16]).returncode == 0
    assert os.path.getsize(out16) == 16
    assert run(["keygen", "--bits", "192", "--out", os.path.join(workdir, "x")]).returncode == 64


def test_sigterm_while_waiting_for_postgres_stops_at_once(cmf_factory):
    import signal
    import time
    c = cmf_factory(env={"CMF_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/nothing",
                         "CMF_DATABASE_STARTUP_TIMEOUT_SECONDS": "60"})
    c.start(wait=False)
    time.sleep(1.5)
    t = time.time()
    c.proc.send_signal(signal.SIGTERM)
    assert c.wait_exit(timeout=10) == 143
    assert time.time() - t < 3
    assert "received SIGTERM while waiting for PostgreSQL" in c.log()
