"""`cmf agent` against the real cmf and PostgreSQL (and, for what the real server cannot be made to do, a
small scripted HTTP server): the bytes written, the file mode, exit codes and messages of --once, the
sidecar's rewrites, atomicity under a reader, keeping the last good file through a 409, recovery,
back-off without tight loops, the fallback for servers without watch requests, and SIGTERM."""
import http.server
import os
import signal
import subprocess
import threading
import time

import pytest

from conftest import CMF, free_port, secret_body, wait_for
from test_resolve import (API, KAFKA_SECRET, PATH, SR_SECRET, catalog_body, database_body, env_body,  # noqa: F401
                          mapping_body, ok, reader, world)
from test_tls import pki, tls_env  # noqa: F401  (pki is the module's fixture)

AGENT_ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
# Names of the world fixture; every secret value it holds, which must never reach the agent's stderr.
NEEDLES = ["pa=ss:w0rd", "sr pass'word", "dev-jaas"]


def token_file(workdir, token, name="job.token"):
    p = os.path.join(workdir, name)
    with open(p, "w") as f:
        f.write(token + "\n")
    os.chmod(p, 0o400)
    return p


def agent_argv(url, tf, out, *extra, env="prod", catalog="main", database="orders"):
    return [CMF, "agent", "--url", url, "--token-file", tf, "--environment", env, "--catalog", catalog,
            "--database", database, "--out", out] + list(extra)


def run_once(argv, timeout=60):
    return subprocess.run(argv + ["--once"], env=AGENT_ENV, capture_output=True, text=True, timeout=timeout)


def url(c):
    return "http://127.0.0.1:%d" % c.port


def error_lines(stderr):
    return [l for l in stderr.splitlines() if " ERROR " in l]


@pytest.mark.parametrize("fmt,mode", [("properties", 0o440), ("json", 0o400), ("flink-sql", 0o644),
                                      ("connect", 0o440)])
def test_once_writes_exactly_the_endpoints_bytes_with_the_mode(world, workdir, fmt, mode):
    job = reader(world, "job-prod", ["prod"])
    tf = token_file(workdir, job)
    out = os.path.join(workdir, "conf", "client." + fmt)
    os.mkdir(os.path.dirname(out))
    r = run_once(agent_argv(url(world), tf, out, "--format", fmt, "--mode", "%o" % mode))
    assert r.returncode == 0, r.stderr
    direct = ok(world.request("GET", PATH + "?format=" + fmt, token=job))
    with open(out, "rb") as f:
        assert f.read() == direct.body
    assert os.stat(out).st_mode & 0o7777 == mode
    assert os.listdir(os.path.dirname(out)) == ["client." + fmt]  # no temporary file left behind
    for n in NEEDLES + [job]:
        assert n not in r.stderr and n not in r.stdout, n
    # a second run with the same bytes leaves the file alone (same inode, no write)
    ino = os.stat(out).st_ino
    r = run_once(agent_argv(url(world), tf, out, "--format", fmt, "--mode", "%o" % mode))
    assert r.returncode == 0 and os.stat(out).st_ino == ino and "wrote" not in r.stderr, r.stderr


def test_once_default_format_is_properties_and_settings_come_from_the_environment(world, workdir):
    tf = token_file(workdir, world.admin_token)
    out = os.path.join(workdir, "client.properties")
    env = dict(AGENT_ENV, CMF_AGENT_URL=url(world), CMF_AGENT_TOKEN_FILE=tf, CMF_AGENT_ENVIRONMENT="prod",
               CMF_AGENT_CATALOG="main", CMF_AGENT_DATABASE="orders", CMF_AGENT_OUT=out, CMF_AGENT_ONCE="true")
    r = subprocess.run([CMF, "agent"], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    with open(out, "rb") as f:
        assert f.read() == ok(world.request("GET", PATH + "?format=properties")).body
    assert os.stat(out).st_mode & 0o7777 == 0o440


def refusal_cases(world):
    prod = reader(world, "job-prod", ["prod"])
    dev = reader(world, "job-dev", ["dev1"])
    ok(world.request("POST", API + "/catalogs/kafka", catalog_body("plain", {"schema.registry.url": "http://sr:8081",
                                                                             "auto.register.schemas": "false"})))
    ok(world.request("POST", API + "/catalogs/kafka/plain/databases",
                     database_body("public", {"bootstrap.servers": "b:9092"})))
    return [
        ("bad token", "not-a-token-" + "x" * 30, {}, 77, 401, None),
        ("reader of another environment", dev, {}, 77, 403, "this token may not read this environment"),
        ("unknown catalog", prod, {"catalog": "nope"}, 65, 404, "Kafka catalog 'nope' not found"),
        ("unknown database", prod, {"database": "nope"}, 65, 404, "database 'nope' not found in Kafka catalog 'main'"),
        ("mapping missing", dev, {"env": "dev1"}, 65, 409,
         "connectionSecretId 'sr-conn' (used by the Schema Registry of catalog 'main') has no secret mapping in "
         "environment 'dev1'"),
        ("format refused", dev, {"env": "dev1", "catalog": "plain", "database": "public", "fmt": "flink-sql"}, 65,
         422, "auto.register.schemas"),
    ]


def test_once_refusals_exit_codes_and_one_line(world, workdir):
    for name, token, where, code, status, message in refusal_cases(world):
        tf = token_file(workdir, token, name=name.replace(" ", "-") + ".token")
        out = os.path.join(workdir, "out-" + name.replace(" ", "-"))
        argv = agent_argv(url(world), tf, out, "--format", where.get("fmt", "properties"),
                          env=where.get("env", "prod"), catalog=where.get("catalog", "main"),
                          database=where.get("database", "orders"))
        t0 = time.time()
        r = run_once(argv)
        assert r.returncode == code, (name, r.returncode, r.stderr)
        assert time.time() - t0 < 5, name  # a refusal is not retried
        lines = error_lines(r.stderr)
        assert len(lines) == 1, (name, r.stderr)
        assert "answered %d: " % status in lines[0], (name, lines[0])
        if message:
            assert message in lines[0], (name, lines[0])
        assert not os.path.exists(out), name
        assert token not in r.stderr, name
        for n in NEEDLES:
            assert n not in r.stderr, (name, n)


class Scripted(http.server.ThreadingHTTPServer):
    """A stand-in for cmf answering from a script: `answer(handler)` -> (status, headers, body)."""
    daemon_threads = True

    def __init__(self, answer):
        self.answer = answer
        self.requests = []  # (monotonic time, path, If-None-Match, Authorization)
        server = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                server.requests.append((time.monotonic(), self.path, self.headers.get("If-None-Match"),
                                        self.headers.get("Authorization")))
                status, headers, body = server.answer(self)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        super().__init__(("127.0.0.1", 0), H)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.server_address[1]


def test_once_unreachable_or_503_gives_69_after_bounded_retries(workdir):
    tf = token_file(workdir, "t0ken-for-an-unreachable-cmf")
    out = os.path.join(workdir, "out")
    t0 = time.time()
    r = run_once(agent_argv("http://127.0.0.1:%d" % free_port(), tf, out, "--retries", "3", "--backoff-ms", "100"))
    assert r.returncode == 69, r.stderr
    assert time.time() - t0 < 10
    assert "gave up after 3 tries" in error_lines(r.stderr)[0] if error_lines(r.stderr) else False, r.stderr
    assert not os.path.exists(out)

    srv = Scripted(lambda h: (503, {"Content-Type": "application/json"},
                              b'{"errors":[{"message":"the database is unavailable"}]}'))
    try:
        r = run_once(agent_argv(srv.url, tf, out, "--retries", "4", "--backoff-ms", "100"))
        assert r.returncode == 69, r.stderr
        assert len(srv.requests) == 4
        gaps = [b[0] - a[0] for a, b in zip(srv.requests, srv.requests[1:])]
        assert gaps[0] >= 0.09 and gaps[1] >= 0.19 and gaps[2] >= 0.39, gaps  # 100 ms doubling
        assert "answered 503: the database is unavailable (gave up after 4 tries)" in r.stderr, r.stderr
        assert "t0ken" not in r.stderr
        assert srv.requests[0][3] == "Bearer t0ken-for-an-unreachable-cmf"
    finally:
        srv.shutdown()


def test_usage_errors_are_64_with_one_line(workdir):
    for argv in (["--url", "http://x"], ["--bogus"], ["--url", "ftp://x", "--token-file", "t", "--environment", "e",
                                                       "--catalog", "c", "--database", "d", "--out", "o"],
                 ["--url", "http://x", "--token-file", "t", "--environment", "E!", "--catalog", "c",
                  "--database", "d", "--out", "o"],
                 ["--url", "http://x", "--token-file", "t", "--environment", "e", "--catalog", "c",
                  "--database", "d", "--out", "o", "--mode", "999"],
                 ["--url", "http://x", "--token-file", "t", "--environment", "e", "--catalog", "c",
                  "--database", "d", "--out", "o", "--format", "yaml"]):
        r = subprocess.run([CMF, "agent"] + argv, env=AGENT_ENV, capture_output=True, text=True, timeout=10)
        assert r.returncode == 64, (argv, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1, (argv, r.stderr)


def percentile(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100.0 * (len(s) - 1))))]


def test_sidecar_follows_changes_atomically_keeps_the_file_through_409_and_stops_on_sigterm(world, workdir):
    job = reader(world, "job-prod", ["prod"])
    tf = token_file(workdir, job)
    confdir = os.path.join(workdir, "conf")
    os.mkdir(confdir)
    out = os.path.join(confdir, "client.properties")
    changes = os.path.join(workdir, "changes")
    log = open(os.path.join(workdir, "agent.log"), "wb")
    # The server holds the agent's watch: a change arrives at once. The polling fallback is set to 5 s, so
    # the latency bound below fails if the watch is not held (every change would wait for a poll).
    proc = subprocess.Popen(agent_argv(url(world), tf, out, "--poll-interval-ms", "5000", "--backoff-ms", "100",
                                       "--backoff-max-ms", "400", "--timeout-seconds", "5",
                                       "--on-change", "echo changed >> " + changes),
                            env=AGENT_ENV, stdout=log, stderr=subprocess.STDOUT)
    stop = threading.Event()
    bad, reads = [], [0]

    def agent_log():
        with open(os.path.join(workdir, "agent.log"), "rb") as f:
            return f.read().decode("utf-8", "replace")

    try:
        wait_for(lambda: os.path.exists(out), 15)
        with open(out, "rb") as f:
            first = f.read()
        assert first == ok(world.request("GET", PATH + "?format=properties", token=job)).body

        def read_loop():
            while not stop.is_set():
                try:
                    with open(out, "rb") as f:
                        b = f.read()
                except OSError as e:  # the file must always exist once written
                    bad.append(repr(e))
                    continue
                reads[0] += 1
                if not (b.startswith(b"# cmf client configuration") and b.endswith(b"\n")
                        and b"\nsecurity.protocol=" in b and b"\nbootstrap.servers=" in b):
                    bad.append(b[:80])

        reader_thread = threading.Thread(target=read_loop)
        reader_thread.start()
        latencies = []
        for i in range(50):
            marker = "SASL_SSL_%d" % i
            t0 = time.time()
            ok(world.request("PUT", API + "/secrets/kafka-prod-creds", secret_body(
                "kafka-prod-creds", dict(KAFKA_SECRET, **{"security.protocol": marker}))))

            def arrived():
                with open(out, "rb") as f:
                    return ("security.protocol=%s\n" % marker).encode() in f.read()

            wait_for(arrived, 15, interval=0.005)
            latencies.append(time.time() - t0)
        p99 = percentile(latencies, 99)
        print("\ncmf agent: secret update -> file, over 50 updates: p50 %.3f s, p99 %.3f s, max %.3f s "
              "(%d reads by the reader thread)" % (percentile(latencies, 50), p99, max(latencies), reads[0]))
        # The target is a p99 under 1 s; the bound is that, generous beside the tens of ms measured.
        assert p99 < 1.0, latencies
        stop.set()
        reader_thread.join()
        assert not bad, bad[:5]
        assert reads[0] > 50
        os.stat(out)
        assert sorted(os.listdir(confdir)) == ["client.properties"]
        assert os.stat(out).st_mode & 0o7777 == 0o440
        # --on-change ran after each rewrite of the existing file, not after the first write
        wait_for(lambda: os.path.exists(changes) and open(changes).read().count("changed") == 50, 10)
        assert "the --on-change command exited with status 0" in agent_log()

        # the mapping goes: the agent logs the 409 and keeps the last good file
        with open(out, "rb") as f:
            good = f.read()
        assert world.request("DELETE", API + "/environments/prod/secret-mappings/kafka-conn").status == 204
        wait_for(lambda: "answered 409" in agent_log(), 10)
        time.sleep(1.0)  # several retries (100, 200, 400, 400 ms...)
        with open(out, "rb") as f:
            assert f.read() == good
        l = agent_log()
        assert "connectionSecretId 'kafka-conn'" in l and "keeping " + out + " as it is" in l, l
        retries = l.count("answered 409")
        assert 2 <= retries <= 8, retries  # backing off, not a tight loop
        # it comes back (to another secret): the agent recovers and writes the new content
        ok(world.request("POST", API + "/environments/prod/secret-mappings", mapping_body("kafka-conn",
                                                                                         "kafka-dev-creds")))
        wait_for(lambda: b"security.protocol=SASL_PLAINTEXT\n" in open(out, "rb").read(), 10)
        assert open(out, "rb").read() == ok(world.request("GET", PATH + "?format=properties", token=job)).body
        assert "answered 200 again" in agent_log()

        # SIGTERM: exit 0, promptly
        t0 = time.time()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
        assert time.time() - t0 < 3
        l = agent_log()
        assert job not in l
        for n in NEEDLES + ["SASL_SSL_"]:
            assert n not in l, n
    finally:
        stop.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


def test_sidecar_token_file_rotation_is_followed(world, workdir):
    old = reader(world, "job-old", ["prod"])
    tf = token_file(workdir, old)
    out = os.path.join(workdir, "client.properties")
    log = open(os.path.join(workdir, "agent.log"), "wb")
    proc = subprocess.Popen(agent_argv(url(world), tf, out, "--poll-interval-ms", "100", "--backoff-ms", "100",
                                       "--backoff-max-ms", "200"), env=AGENT_ENV, stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: os.path.exists(out), 15)
        new = reader(world, "job-new", ["prod"])
        # a Secret's rotation: the file replaced (new inode), the old token revoked
        tmp = tf + ".new"
        with open(tmp, "w") as f:
            f.write(new + "\n")
        os.chmod(tmp, 0o400)
        os.rename(tmp, tf)
        assert world.request("DELETE", API + "/tokens/job-old").status == 204
        ok(world.request("PUT", API + "/secrets/kafka-prod-creds", secret_body(
            "kafka-prod-creds", dict(KAFKA_SECRET, **{"security.protocol": "ROTATED"}))))
        wait_for(lambda: b"security.protocol=ROTATED\n" in open(out, "rb").read(), 10)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
        with open(os.path.join(workdir, "agent.log"), "rb") as f:
            l = f.read().decode()
        assert " ERROR " not in l and "answered 401:" not in l, l
        assert old not in l and new not in l
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


def test_sidecar_without_watch_support_polls_and_backs_off(workdir):
    """Servers that answer a watch at once (today's cmf), refuse its parameters with 400, or answer 200s
    of unchanged bytes are polled at --poll-interval-ms; 503s are retried with doubling back-off, never
    in a tight loop."""
    tf = token_file(workdir, "scripted-token")
    state = {"mode": "immediate304", "etag": '"e1"', "body": b"a=1\n"}

    def answer(h):
        if state["mode"] == "503":
            return 503, {"Content-Type": "application/json"}, b'{"errors":[{"message":"unavailable"}]}'
        if state["mode"] == "refuse-watch" and "watch=true" in h.path:
            return 400, {"Content-Type": "application/json"}, b'{"errors":[{"message":"unknown parameter watch"}]}'
        if h.headers.get("If-None-Match") == state["etag"] and state["mode"] != "ignore-inm":
            return 304, {"ETag": state["etag"]}, b""
        return 200, {"ETag": state["etag"], "Content-Type": "text/plain"}, state["body"]

    # ignore-inm: something on the way drops If-None-Match, so every answer is a 200 of the same bytes
    for mode in ("immediate304", "refuse-watch", "ignore-inm"):
        srv = Scripted(answer)
        state.update(mode=mode, etag='"e1"', body=b"a=1\n")
        out = os.path.join(workdir, "out-" + mode)
        log = open(os.path.join(workdir, mode + ".log"), "wb")
        proc = subprocess.Popen(agent_argv(srv.url, tf, out, "--poll-interval-ms", "200", "--backoff-ms", "100",
                                           "--backoff-max-ms", "400", "--timeout-seconds", "7"),
                                env=AGENT_ENV, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: os.path.exists(out), 10)
            time.sleep(1.5)
            n = len(srv.requests)
            assert 4 <= n <= 12, (mode, n)  # about one per 200 ms
            watches = [r for r in srv.requests if "watch=true&timeoutSeconds=7" in r[1]]
            assert watches, srv.requests
            assert all(r[2] == '"e1"' for r in srv.requests[1:]), srv.requests
            if mode == "refuse-watch":
                assert len(watches) == 1  # refused once, then plain conditional GETs
            state.update(etag='"e2"', body=b"a=2\n")
            wait_for(lambda: open(out, "rb").read() == b"a=2\n", 5)
            # 503s: doubling back-off up to 400 ms, the file kept
            state["mode"] = "503"
            k = len(srv.requests)
            time.sleep(2.0)
            gaps = [b[0] - a[0] for a, b in zip(srv.requests[k:], srv.requests[k + 1:])]
            assert 3 <= len(gaps) <= 9, gaps
            assert all(g >= 0.09 for g in gaps) and max(gaps) < 0.6, gaps
            assert open(out, "rb").read() == b"a=2\n"
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=5) == 0
            with open(os.path.join(workdir, mode + ".log"), "rb") as f:
                l = f.read().decode()
            assert "answered 503: unavailable; keeping" in l
            assert "scripted-token" not in l and "a=2" not in l
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            log.close()
            srv.shutdown()


def test_once_over_mutual_tls(cmf_factory, pki, workdir):  # noqa: F811
    """--ca-file verifies cmf's certificate; --cert-file/--key-file present the client's. Without the
    client certificate cmf answers 401 (77); against another CA the handshake fails (69, no answer)."""
    c = cmf_factory(env=tls_env(pki, client_ca=True))
    c.ssl_context = pki.context(client="client")
    c.start()
    ok(c.create_secret("kafka-prod-creds", KAFKA_SECRET))
    ok(c.create_secret("sr-prod-creds", SR_SECRET))
    ok(c.request("POST", API + "/environments", env_body("prod")))
    ok(c.request("POST", API + "/environments/prod/secret-mappings", mapping_body("kafka-conn", "kafka-prod-creds")))
    ok(c.request("POST", API + "/environments/prod/secret-mappings", mapping_body("sr-conn", "sr-prod-creds")))
    ok(c.request("POST", API + "/catalogs/kafka", catalog_body("main", {"schema.registry.url": "http://sr:8081"},
                                                                "sr-conn")))
    ok(c.request("POST", API + "/catalogs/kafka/main/databases",
                 database_body("orders", {"bootstrap.servers": "b1:9092"}, "kafka-conn")))
    job = reader(c, "job-prod", ["prod"])
    tf = token_file(workdir, job)
    out = os.path.join(workdir, "client.properties")
    base = agent_argv("https://127.0.0.1:%d" % c.port, tf, out, "--retries", "1")
    r = run_once(base + ["--ca-file", pki.path("ca.pem"), "--cert-file", pki.path("client.pem"),
                         "--key-file", pki.path("client.key")])
    assert r.returncode == 0, r.stderr
    with open(out, "rb") as f:
        assert f.read() == ok(c.request("GET", PATH + "?format=properties", token=job)).body
    os.unlink(out)
    r = run_once(base + ["--ca-file", pki.path("ca.pem")])
    assert r.returncode == 77 and "answered 401" in r.stderr, r.stderr
    r = run_once(base + ["--ca-file", pki.path("other-ca.pem"), "--cert-file", pki.path("client.pem"),
                         "--key-file", pki.path("client.key")])
    assert r.returncode == 69 and "no answer" in r.stderr, r.stderr
    assert not os.path.exists(out)
    assert job not in r.stderr


def test_sidecar_sigterm_ends_a_held_watch_promptly(workdir):
    """A watch the server holds (as cmf will, up to timeoutSeconds) does not delay SIGTERM."""
    tf = token_file(workdir, "scripted-token")
    held = threading.Event()

    def answer(h):
        if "watch=true" in h.path:
            held.set()
            time.sleep(20)
            return 304, {"ETag": '"e1"'}, b""
        return 200, {"ETag": '"e1"'}, b"a=1\n"

    srv = Scripted(answer)
    out = os.path.join(workdir, "out")
    proc = subprocess.Popen(agent_argv(srv.url, tf, out, "--timeout-seconds", "30"), env=AGENT_ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert held.wait(10)
        time.sleep(0.3)
        t0 = time.time()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
        assert time.time() - t0 < 2.5
        assert len(srv.requests) == 2 and "watch=true&timeoutSeconds=30" in srv.requests[1][1]
        assert open(out, "rb").read() == b"a=1\n"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        srv.shutdown()
