"""GET /metrics against the real server: who may read it (admin and metrics-reader tokens only), that the
real `promtool check metrics` accepts it, that no secret value, token or key material and no
client-chosen path appears in it, and what it says about the key and the requests served."""
import base64
import os
import re
import shutil
import subprocess
import uuid

import pytest

from conftest import CMF, wait_for

API = "/cmf/api/v1"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def token_body(name, role, environments=None):
    spec = {"role": role}
    if environments is not None:
        spec["environments"] = environments
    return {"apiVersion": "cmf.confluent.io/v1", "kind": "ApiToken", "metadata": {"name": name}, "spec": spec}


def create_token(c, name, role, environments=None):
    r = c.request("POST", API + "/tokens", token_body(name, role, environments))
    assert r.status == 200, r
    return r.json()["status"]["token"]


def scrape(c, token="default"):
    r = c.request("GET", "/metrics", token=token)
    assert r.status == 200, r
    assert r.headers["content-type"] == CONTENT_TYPE
    return r.body.decode("utf-8")


def promtool_check(text):
    """The real promtool (Debian's prometheus package, installed by tests/deps.sh): never skipped."""
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: install Debian's prometheus package (tests/deps.sh does)"
    out = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, "promtool check metrics failed:\n%s%s" % (out.stdout, out.stderr)
    # promtool prints lint problems (and exits 0 for some of them): there must be none.
    assert out.stdout.strip() == "" and out.stderr.strip() == "", out.stdout + out.stderr


SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def samples(text):
    """[(name, {label: value}, float)] of every sample line."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, "not a sample line: %r" % line
        labels = dict(LABEL.findall(m.group(3) or ""))
        out.append((m.group(1), labels, float(m.group(4))))
    return out


def value(text, name, **labels):
    found = [v for n, l, v in samples(text) if n == name and l == labels]
    assert len(found) <= 1, (name, labels)
    return found[0] if found else None


def route_patterns():
    """The route table's patterns, as `cmf routes` prints them: the only route label values allowed."""
    out = subprocess.run([CMF, "routes"], capture_output=True, text=True, check=True).stdout
    return {line.split()[1] for line in out.splitlines()}


def test_metrics_needs_an_admin_or_metrics_reader_token(cmf):
    r = cmf.request("GET", "/metrics", token=None)
    assert r.status == 401 and r.headers["www-authenticate"].startswith("Bearer"), r
    assert cmf.request("GET", "/metrics", token="cmf_0123456789abcdef_" + "A" * 43).status == 401
    reader = create_token(cmf, "job-prod", "environment-reader", ["prod"])
    r = cmf.request("GET", "/metrics", token=reader)
    assert r.status == 403 and r.error() == "this token's role may not do this", r
    text = scrape(cmf)  # the admin
    assert "# TYPE cmf_http_requests_total counter" in text


def test_metrics_reader_token_reads_metrics_and_nothing_else(cmf):
    assert cmf.create_secret("metrics-secret", {"k": "v"}).status == 200
    r = cmf.request("POST", API + "/tokens", token_body("prometheus", "metrics-reader"))
    assert r.status == 200, r
    assert r.json()["spec"]["role"] == "metrics-reader" and r.json()["spec"]["environments"] == []
    token = r.json()["status"]["token"]
    assert cmf.request("GET", API + "/tokens/prometheus").json()["spec"]["role"] == "metrics-reader"
    promtool_check(scrape(cmf, token=token))
    for method, path in (("GET", API + "/secrets"), ("GET", API + "/secrets/metrics-secret"),
                         ("GET", API + "/tokens"), ("GET", API + "/audit-events"), ("GET", API + "/environments"),
                         ("GET", API + "/environments/prod/client-configs/main/orders"),
                         ("POST", API + "/tokens")):
        body = token_body("escalate", "admin") if method == "POST" else None
        r = cmf.request(method, path, body, token=token)
        assert r.status == 403, (method, path, r)
    # Revoked: refused like any other token.
    assert cmf.request("DELETE", API + "/tokens/prometheus").status == 204
    assert cmf.request("GET", "/metrics", token=token).status == 401


def test_metrics_reader_takes_no_environments(cmf):
    r = cmf.request("POST", API + "/tokens", token_body("prom-env", "metrics-reader", ["prod"]))
    assert r.status == 422 and "metrics-reader" in r.error(), r
    r = cmf.request("POST", API + "/tokens", token_body("prom-bad", "metrics-writer"))
    assert r.status == 400 and "metrics-reader" in r.error(), r


def resolution_world(c, marker):
    """A secret holding `marker`, mapped and resolved once by a job's token (so values were decrypted)."""
    def ok(r):
        assert r.status == 200, r
        return r
    ok(c.create_secret("kafka-creds", {"sasl.jaas.config": marker, "security.protocol": "SASL_SSL"},
                       labels={"team": "flink"}))
    ok(c.request("POST", API + "/environments", {"name": "prod", "kubernetesNamespace": "flink"}))
    ok(c.request("POST", API + "/environments/prod/secret-mappings",
                 {"apiVersion": "cmf.confluent.io/v1", "kind": "EnvironmentSecretMapping",
                  "metadata": {"name": "kafka-conn"}, "spec": {"secretName": "kafka-creds"}}))
    ok(c.request("POST", API + "/catalogs/kafka",
                 {"apiVersion": "cmf.confluent.io/v1", "kind": "KafkaCatalog", "metadata": {"name": "main"},
                  "spec": {"srInstance": {"connectionConfig": {"schema.registry.url": "http://sr:8081"}}}}))
    ok(c.request("POST", API + "/catalogs/kafka/main/databases",
                 {"apiVersion": "cmf.confluent.io/v1", "kind": "KafkaDatabase", "metadata": {"name": "orders"},
                  "spec": {"kafkaCluster": {"connectionConfig": {"bootstrap.servers": "b1:9092"},
                                            "connectionSecretId": "kafka-conn"}}}))
    job = create_token(c, "job-prod", "environment-reader", ["prod"])
    r = ok(c.request("GET", API + "/environments/prod/client-configs/main/orders", token=job))
    assert marker in r.body.decode()
    return job


def test_promtool_accepts_it_and_no_secret_leaks(cmf):
    marker = "metrics-marker-" + uuid.uuid4().hex
    job = resolution_world(cmf, marker)
    prom = create_token(cmf, "prometheus", "metrics-reader")
    # A client-chosen path (no route has it) and method: neither may become a label value.
    attacker = "attacker-" + uuid.uuid4().hex
    assert cmf.request("GET", "/" + attacker + '"}evil{x="', token=None).status == 404
    assert cmf.request("BREW", "/" + attacker, token=None).status == 404
    assert cmf.request("GET", "/" + attacker, token=prom).status == 404
    text = scrape(cmf, token=prom)
    promtool_check(text)
    with open(cmf.keyfile, "rb") as f:
        raw_key = f.read()
    for leak in (marker, attacker, "BREW", "evil", cmf.admin_token, job, prom, raw_key.hex(),
                 base64.b64encode(raw_key).decode(), base64.urlsafe_b64encode(raw_key).decode().rstrip("=")):
        assert leak not in text, "found in /metrics: %r" % leak
    # Route labels come from the route table only (plus "unmatched"); methods from the fixed list.
    allowed = route_patterns() | {"unmatched"}
    seen_routes = set()
    for name, labels, _ in samples(text):
        if "route" in labels:
            assert labels["route"] in allowed, labels
            seen_routes.add(labels["route"])
        if "method" in labels:
            assert labels["method"] in ("GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS", "other"), labels
        if "status" in labels:
            assert re.fullmatch(r"[1-5]\d\d|other", labels["status"]), labels
    # The requests just made are counted, under their route or as unmatched.
    assert value(text, "cmf_http_requests_total", route="unmatched", method="GET", status="404") == 2
    assert value(text, "cmf_http_requests_total", route="unmatched", method="other", status="404") == 1
    assert value(text, "cmf_http_requests_total", route="/cmf/api/v1/environments/*/client-configs/*/*",
                 method="GET", status="200") == 1
    assert value(text, "cmf_http_requests_total", route="/cmf/api/v1/secrets", method="POST", status="200") == 1
    assert value(text, "cmf_http_request_duration_seconds_count",
                 route="/cmf/api/v1/environments/*/client-configs/*/*") == 1
    # The scrape itself is counted by the next one.
    text = scrape(cmf, token=prom)
    assert value(text, "cmf_http_requests_total", route="/metrics", method="GET", status="200") >= 1


def test_key_state_and_process_series(cmf):
    key_id = cmf.request("GET", "/readyz").json()["encryption"]["keyId"]
    assert re.fullmatch(r"[0-9a-f]{16}", key_id), key_id
    text = scrape(cmf)
    assert value(text, "cmf_encryption_enabled") == 1
    assert value(text, "cmf_key_loaded") == 1
    assert value(text, "cmf_key_info", key_id=key_id) == 1
    assert value(text, "cmf_dek_term") >= 1
    # Not known in memory: left out rather than made up.
    assert value(text, "cmf_dek_encryptions") is None
    assert value(text, "cmf_process_resident_memory_bytes") > 1 << 20
    assert value(text, "cmf_process_start_time_seconds") > 1.6e9
    for name in ("cmf_http_open_connections", "cmf_http_suspended_connections", "cmf_audit_queue_depth",
                 "cmf_listener_up", "cmf_cache_enabled", "cmf_token_cache_hits_total",
                 "cmf_snapshot_cache_misses_total", "cmf_audit_merged_events_total", "cmf_postgres_errors_total",
                 "cmf_audit_batch_rows_count", "cmf_audit_commit_duration_seconds_count"):
        assert value(text, name) is not None, name


def test_revoked_key_is_shown(cmf_factory):
    c = cmf_factory(env={"CMF_ENCRYPTION_KEY_RELOAD_INTERVAL_SECONDS": "1"}).start()
    key_id = c.request("GET", "/readyz").json()["encryption"]["keyId"]
    os.remove(c.keyfile)
    wait_for(lambda: c.request("GET", "/readyz").status == 503, 10)
    text = scrape(c)
    promtool_check(text)
    assert value(text, "cmf_key_loaded") == 0
    assert value(text, "cmf_key_info", key_id=key_id) == 1  # still the locked key's id
    assert value(text, "cmf_dek_term") is None


def test_encryption_disabled_has_no_key_series(cmf_factory):
    c = cmf_factory(enabled=False).start()
    text = scrape(c)
    promtool_check(text)
    assert value(text, "cmf_encryption_enabled") == 0 and value(text, "cmf_key_loaded") == 0
    assert "cmf_key_info" not in text and "cmf_dek_term" not in text


def test_metrics_disabled_is_404(cmf_factory):
    c = cmf_factory(env={"CMF_METRICS_ENABLED": "false"}).start()
    r = c.request("GET", "/metrics")
    assert r.status == 404 and r.error() == "no such resource: /metrics", r


def test_scrapes_are_not_audited(cmf):
    for _ in range(3):
        scrape(cmf)
    items = cmf.request("GET", API + "/audit-events?size=100").json()["items"]
    assert not [e for e in items if e["resource"] == "/metrics"], items
    # A refused scrape is a refusal like any other: audited.
    assert cmf.request("GET", "/metrics", token=None).status == 401
    items = cmf.request("GET", API + "/audit-events?size=100").json()["items"]
    assert [e for e in items if e["resource"] == "/metrics" and e["status"] == 401], items
