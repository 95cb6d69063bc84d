"""Black-box harness: a throwaway PostgreSQL for the session, a fresh database per test, and the real
build/cmf binary started as a subprocess and spoken to over real HTTP (http.client)."""
import base64
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CMF = os.environ.get("CMF_BIN", os.path.join(ROOT, "build", "cmf"))
PG_SH = os.path.join(ROOT, "tests", "pg.sh")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Postgres:
    def __init__(self, base):
        self.dir = os.path.join(base, "pg")
        self.port = free_port()
        self.bindir = subprocess.check_output(["sh", PG_SH, "bindir", self.dir], text=True).strip()
        self.counter = 0

    def start(self):
        subprocess.run(["sh", PG_SH, "start", self.dir, str(self.port)], check=True)

    def stop(self):
        subprocess.run(["sh", PG_SH, "stop", self.dir], check=True)

    def _as_pg(self, args, **kw):
        if os.getuid() == 0:
            args = ["runuser", "-u", "postgres", "--"] + args
        return subprocess.run(args, capture_output=True, check=True, **kw)

    def psql(self, sql, db="postgres"):
        out = self._as_pg([os.path.join(self.bindir, "psql"), "-h", self.dir, "-p", str(self.port),
                           "-U", "postgres", "-d", db, "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", sql], text=True)
        return out.stdout.strip()

    def createdb(self):
        self.counter += 1
        name = "cmf_test_%d_%d" % (os.getpid(), self.counter)
        self.psql("CREATE DATABASE %s" % name)
        return name

    def url(self, db):
        return "postgresql://postgres@127.0.0.1:%d/%s" % (self.port, db)

    def dump(self, db, audit=True):
        """pg_dump of the whole database as bytes (data and schema). pg_dump 15.14+ brackets its output
        with \\restrict/\\unrestrict lines carrying a random key; they differ on every run, so are dropped."""
        args = [os.path.join(self.bindir, "pg_dump"), "-h", self.dir, "-p", str(self.port), "-U", "postgres",
                "--no-owner", db]
        if not audit:
            # The audit trail grows with every refused request; "nothing stored changed" means the rest.
            args += ["--exclude-table-data=cmf_audit_events"]
        out = self._as_pg(args).stdout
        lines = [l for l in out.split(b"\n") if not l.startswith((b"\\restrict", b"\\unrestrict"))]
        if not audit:
            lines = [l for l in lines if b"cmf_audit_events_id_seq', " not in l]  # its setval moves too
        return b"\n".join(lines)


@pytest.fixture(scope="session")
def pg():
    base = tempfile.mkdtemp(prefix="cmf-pg-")
    os.chmod(base, 0o755)
    p = Postgres(base)
    p.start()
    yield p
    p.stop()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def workdir():
    d = tempfile.mkdtemp(prefix="cmf-test-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def db(pg):
    return pg.createdb()


def write_key(path, raw=None, form="raw"):
    raw = raw if raw is not None else os.urandom(32)
    data = raw if form == "raw" else base64.b64encode(raw) + b"\n"
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, 0o600)
    return raw


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)

    def error(self):
        j = self.json()
        assert list(j.keys()) == ["errors"], j
        assert len(j["errors"]) == 1 and list(j["errors"][0].keys()) == ["message"], j
        return j["errors"][0]["message"]

    def __repr__(self):
        return "<%d %r>" % (self.status, self.body[:300])


class Cmf:
    """One cmf process. env: CMF_* settings; log goes to a file read by .log()."""

    def __init__(self, workdir, pg, db, key=True, enabled=True, env=None, config=None, name="cmf", auth=True):
        self.workdir = workdir
        self.port = free_port()
        # The bootstrap admin token: 32 random bytes, base64url, in a 0600 file (as a mounted Secret).
        self.token_file = os.path.join(workdir, "admin.token")
        if not os.path.exists(self.token_file):
            with open(self.token_file, "w") as f:
                f.write(base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=") + "\n")
            os.chmod(self.token_file, 0o600)
        with open(self.token_file) as f:
            self.admin_token = f.read().strip()
        self.token = self.admin_token if auth else None  # sent by request() unless told otherwise
        self.ssl_context = None  # set to an ssl.SSLContext to speak HTTPS
        self.logpath = os.path.join(workdir, name + ".log")
        self.keyfile = os.path.join(workdir, "master.key")
        if enabled and key is True and not os.path.exists(self.keyfile):
            write_key(self.keyfile)
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "CMF_LISTEN": "127.0.0.1:%d" % self.port,
            "CMF_DATABASE_URL": pg.url(db),
            "CMF_ENCRYPTION_ENABLED": "true" if enabled else "false",
            "CMF_SERVER_THREADS": "4",
            "CMF_DATABASE_STARTUP_TIMEOUT_SECONDS": "10",
        }
        if enabled:
            self.env["CMF_ENCRYPTION_KEY_FILE"] = self.keyfile
        if auth:
            self.env["CMF_AUTH_ADMIN_TOKEN_FILE"] = self.token_file
        else:
            self.env["CMF_AUTH_ENABLED"] = "false"
        self.env.update(env or {})
        self.config = config
        self.proc = None

    def argv(self, cmd):
        a = [CMF, cmd]
        if self.config:
            a += ["--config", self.config]
        return a

    def run(self, cmd, timeout=60):
        """Run a one-shot subcommand (init, check) to completion."""
        return subprocess.run(self.argv(cmd), env=self.env, capture_output=True, text=True, timeout=timeout)

    def start(self, wait=True, argv=None):
        """Start `cmf serve` (or exactly `argv`, e.g. the arguments a rendered Deployment gives)."""
        self.log_f = open(self.logpath, "ab")
        self.proc = subprocess.Popen(argv or self.argv("serve"), env=self.env, stdout=self.log_f,
                                     stderr=subprocess.STDOUT)
        if wait:
            self.wait_healthy()
        return self

    def wait_healthy(self, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("cmf exited with %d:\n%s" % (self.proc.returncode, self.log()))
            try:
                if self.request("GET", "/healthz", token=None).status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError("cmf did not become healthy:\n" + self.log())

    def wait_exit(self, timeout=30):
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self.log_f.close()

    def stop(self, timeout=30):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        rc = self.wait_exit(timeout)
        return rc

    def log(self):
        with open(self.logpath, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def request(self, method, path, body=None, headers=None, timeout=30, token="default", ssl_context=None):
        """One request on a new connection. `token`: "default" sends self.token (the admin token unless
        changed), None sends no Authorization header, any other string is sent as the bearer token."""
        ctx = ssl_context or self.ssl_context
        if ctx is not None:
            conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout, context=ctx)
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            h = dict(headers or {})
            t = self.token if token == "default" else token
            if t is not None:
                h.setdefault("Authorization", "Bearer " + t)
            if isinstance(body, (dict, list)):
                body = json.dumps(body).encode()
                h.setdefault("Content-Type", "application/json")
            elif isinstance(body, str):
                body = body.encode()
            conn.request(method, path, body=body, headers=h)
            r = conn.getresponse()
            return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
        finally:
            conn.close()

    # Secrets API shortcuts
    def create_secret(self, name, data, labels=None, **kw):
        return self.request("POST", "/cmf/api/v1/secrets", secret_body(name, data, labels), **kw)

    def get_secret(self, name):
        return self.request("GET", "/cmf/api/v1/secrets/" + name)


def secret_body(name, data, labels=None, annotations=None):
    meta = {"name": name}
    if labels is not None:
        meta["labels"] = labels
    if annotations is not None:
        meta["annotations"] = annotations
    return {"apiVersion": "cmf.confluent.io/v1", "kind": "Secret", "metadata": meta, "spec": {"data": data}}


@pytest.fixture
def cmf_factory(workdir, pg, db):
    started = []

    def make(**kw):
        kw.setdefault("name", "cmf%d" % len(started))
        c = Cmf(workdir, pg, kw.pop("db", db), **kw)
        started.append(c)
        return c

    yield make
    for c in started:
        if c.proc and c.proc.poll() is None:
            c.proc.kill()
            c.proc.wait()


@pytest.fixture
def cmf(cmf_factory):
    return cmf_factory().start()


class KubeletSecretVolume:
    """A directory laid out as the kubelet's atomic writer lays out a Secret volume:
    ..<timestamp>/<file> holds the payload, ..data -> ..<timestamp> is swapped by rename(2), and each
    user-visible <file> is a symlink to ..data/<file>."""

    def __init__(self, path):
        self.path = path
        os.makedirs(path, exist_ok=True)
        self.n = 0

    def write(self, files, remove_links=True, mode=0o440):
        self.n += 1
        ts = "..%s_%d" % (time.strftime("%Y_%m_%d_%H_%M_%S"), self.n)
        tsdir = os.path.join(self.path, ts)
        os.mkdir(tsdir)
        for name, content in files.items():
            p = os.path.join(tsdir, name)
            with open(p, "wb") as f:
                f.write(content)
            os.chmod(p, mode)
        data = os.path.join(self.path, "..data")
        old = os.readlink(data) if os.path.islink(data) else None
        tmp = os.path.join(self.path, "..data_tmp")
        os.symlink(ts, tmp)
        os.rename(tmp, data)  # the atomic swap
        for name in files:
            link = os.path.join(self.path, name)
            if not os.path.islink(link):
                os.symlink(os.path.join("..data", name), link)
        if remove_links:
            for name in os.listdir(self.path):
                link = os.path.join(self.path, name)
                if not name.startswith("..") and name not in files and os.path.islink(link):
                    os.unlink(link)
        if old:
            shutil.rmtree(os.path.join(self.path, old))


def wait_for(fn, timeout, interval=0.1):
    """Poll fn() until it returns a truthy value; return (value, seconds waited) or raise on timeout."""
    start = time.time()
    while True:
        v = fn()
        if v:
            return v, time.time() - start
        if time.time() - start > timeout:
            raise AssertionError("condition not met within %.1f s" % timeout)
        time.sleep(interval)
