"""Authentication and authorization over real HTTP: the endpoint × identity matrix, the tokens API, and
that no token ever reaches a log line or the database in clear."""
import datetime
import json
import re
import subprocess
import time

import pytest

from conftest import CMF, secret_body

API = "/cmf/api/v1"


def token_body(name, role, environments=None, expires_at=None):
    spec = {"role": role}
    if environments is not None:
        spec["environments"] = environments
    if expires_at is not None:
        spec["expiresAt"] = expires_at
    return {"apiVersion": "cmf.confluent.io/v1", "kind": "ApiToken", "metadata": {"name": name}, "spec": spec}


def iso(seconds_from_now):
    t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds_from_now)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def create_token(c, name, role, environments=None, expires_at=None):
    r = c.request("POST", API + "/tokens", token_body(name, role, environments, expires_at))
    assert r.status == 200, r
    return r.json()["status"]["token"]


@pytest.fixture
def identities(cmf):
    """One token of every kind the matrix asks about."""
    ids = {"none": None, "bad": "cmf_0123456789abcdef_" + "A" * 43, "admin": cmf.admin_token}
    ids["reader"] = create_token(cmf, "matrix-reader", "environment-reader", ["prod"])
    ids["revoked"] = create_token(cmf, "matrix-revoked", "admin")
    assert cmf.request("DELETE", API + "/tokens/matrix-revoked").status == 204
    ids["expired"] = create_token(cmf, "matrix-expired", "admin", expires_at=iso(2))
    time.sleep(2.5)
    assert cmf.create_secret("matrix-secret", {"k": "v"}).status == 200
    return ids


MAPPING = {"apiVersion": "cmf.confluent.io/v1", "kind": "EnvironmentSecretMapping", "metadata": {"name": "matrix-conn"},
           "spec": {"secretName": "matrix-secret"}}
CATALOG = {"apiVersion": "cmf.confluent.io/v1", "kind": "KafkaCatalog", "metadata": {"name": "matrix-cat"},
           "spec": {"srInstance": {"connectionConfig": {"schema.registry.url": "https://sr"}}}}
DATABASE = {"apiVersion": "cmf.confluent.io/v1", "kind": "KafkaDatabase", "metadata": {"name": "matrix-db"},
            "spec": {"kafkaCluster": {"connectionConfig": {"bootstrap.servers": "kafka:9092"}}}}

ROLE_BINDING = {"apiVersion": "cmf.confluent.io/v1", "kind": "RoleBinding", "metadata": {"name": "matrix-binding"},
                "spec": {"principal": "cert:matrix", "role": "admin"}}

CSFLE = {"apiVersion": "cmf.confluent.io/v1", "kind": "CsfleConfig", "metadata": {"name": "matrix-csfle"},
         "spec": {"kms": {"type": "local-kms", "keyId": "k"}, "kek": {"name": "kek"}, "latestCacheTtlSec": 60,
                  "rules": [{"name": "r", "tags": ["PII"]}]}}

# Every route of `cmf routes`: (concrete path, body, status for the admin). The test fails when a route
# exists without a row here, so a new endpoint cannot slip in without its authorization being tested.
MATRIX = {
    "GET /healthz": ("/healthz", None, 200),
    "GET /readyz": ("/readyz", None, 200),
    "GET /cmf/api/v1/secrets": (API + "/secrets", None, 200),
    "POST /cmf/api/v1/secrets": (API + "/secrets", secret_body("matrix-new-secret", {"a": "b"}), 200),
    "GET /cmf/api/v1/secrets/*": (API + "/secrets/matrix-secret", None, 200),
    "PUT /cmf/api/v1/secrets/*": (API + "/secrets/matrix-secret", secret_body("matrix-secret", {"a": "c"}), 200),
    "DELETE /cmf/api/v1/secrets/*": (API + "/secrets/matrix-absent", None, 404),
    "GET /cmf/api/v1/secrets/*/versions": (API + "/secrets/matrix-secret/versions", None, 200),
    "POST /cmf/api/v1/secrets/*/rollback": (API + "/secrets/matrix-absent/rollback", {"version": 1}, 404),
    "GET /cmf/api/v1/tokens": (API + "/tokens", None, 200),
    "POST /cmf/api/v1/tokens": (API + "/tokens", token_body("matrix-new-token", "admin"), 200),
    "GET /cmf/api/v1/tokens/*": (API + "/tokens/matrix-reader", None, 200),
    "DELETE /cmf/api/v1/tokens/*": (API + "/tokens/matrix-absent", None, 404),
    "GET /cmf/api/v1/audit-events": (API + "/audit-events", None, 200),
    "GET /cmf/api/v1/encryption": (API + "/encryption", None, 200),
    "POST /cmf/api/v1/encryption/rotate": (API + "/encryption/rotate", {"target": "dek"}, 200),
    "POST /cmf/api/v1/encryption/rewrap": (API + "/encryption/rewrap", {}, 202),
    "GET /cmf/api/v1/role-bindings": (API + "/role-bindings", None, 200),
    "POST /cmf/api/v1/role-bindings": (API + "/role-bindings", ROLE_BINDING, 200),
    "GET /cmf/api/v1/role-bindings/*": (API + "/role-bindings/matrix-binding", None, 200),
    "PUT /cmf/api/v1/role-bindings/*": (API + "/role-bindings/matrix-binding", ROLE_BINDING, 200),
    "DELETE /cmf/api/v1/role-bindings/*": (API + "/role-bindings/matrix-absent", None, 404),
    # admin or metrics-reader: an environment-reader gets 403 like on any admin route
    "GET /metrics": ("/metrics", None, 200),
    # environment-reader route: the reader's scope is "prod"; nothing is defined there, so past
    # authorization the answer is 404 for both the admin and the reader.
    "GET /cmf/api/v1/environments/*/client-configs/*/*": (API + "/environments/prod/client-configs/main/orders",
                                                            None, 404),
    # Rows run in this order: each create comes before the reads and writes that need it.
    "GET /cmf/api/v1/environments": (API + "/environments", None, 200),
    "POST /cmf/api/v1/environments": (API + "/environments", {"name": "matrix-env", "kubernetesNamespace": "flink"},
                                      200),
    "GET /cmf/api/v1/environments/*": (API + "/environments/matrix-env", None, 200),
    "DELETE /cmf/api/v1/environments/*": (API + "/environments/matrix-absent", None, 404),
    "GET /cmf/api/v1/environments/*/secret-mappings": (API + "/environments/matrix-env/secret-mappings", None, 200),
    "POST /cmf/api/v1/environments/*/secret-mappings": (API + "/environments/matrix-env/secret-mappings",
                                                        MAPPING, 200),
    "GET /cmf/api/v1/environments/*/secret-mappings/*": (API + "/environments/matrix-env/secret-mappings/matrix-conn",
                                                         None, 200),
    "PUT /cmf/api/v1/environments/*/secret-mappings/*": (API + "/environments/matrix-env/secret-mappings/matrix-conn",
                                                         MAPPING, 200),
    "DELETE /cmf/api/v1/environments/*/secret-mappings/*": (
        API + "/environments/matrix-env/secret-mappings/matrix-absent", None, 404),
    "GET /cmf/api/v1/csfle-configs": (API + "/csfle-configs", None, 200),
    "POST /cmf/api/v1/csfle-configs": (API + "/csfle-configs", CSFLE, 200),
    "GET /cmf/api/v1/csfle-configs/*": (API + "/csfle-configs/matrix-csfle", None, 200),
    "PUT /cmf/api/v1/csfle-configs/*": (API + "/csfle-configs/matrix-csfle", CSFLE, 200),
    "DELETE /cmf/api/v1/csfle-configs/*": (API + "/csfle-configs/matrix-absent", None, 404),
    "GET /cmf/api/v1/csfle-configs/*/ruleset": (API + "/csfle-configs/matrix-csfle/ruleset", None, 200),
    "GET /cmf/api/v1/catalogs/kafka": (API + "/catalogs/kafka", None, 200),
    "POST /cmf/api/v1/catalogs/kafka": (API + "/catalogs/kafka", CATALOG, 200),
    "GET /cmf/api/v1/catalogs/kafka/*": (API + "/catalogs/kafka/matrix-cat", None, 200),
    "PUT /cmf/api/v1/catalogs/kafka/*": (API + "/catalogs/kafka/matrix-cat", CATALOG, 200),
    "DELETE /cmf/api/v1/catalogs/kafka/*": (API + "/catalogs/kafka/matrix-absent", None, 404),
    "GET /cmf/api/v1/catalogs/kafka/*/databases": (API + "/catalogs/kafka/matrix-cat/databases", None, 200),
    "POST /cmf/api/v1/catalogs/kafka/*/databases": (API + "/catalogs/kafka/matrix-cat/databases", DATABASE, 200),
    "GET /cmf/api/v1/catalogs/kafka/*/databases/*": (API + "/catalogs/kafka/matrix-cat/databases/matrix-db", None,
                                                     200),
    "PUT /cmf/api/v1/catalogs/kafka/*/databases/*": (API + "/catalogs/kafka/matrix-cat/databases/matrix-db",
                                                     DATABASE, 200),
    "DELETE /cmf/api/v1/catalogs/kafka/*/databases/*": (API + "/catalogs/kafka/matrix-cat/databases/matrix-absent",
                                                        None, 404),
}


def routes():
    out = subprocess.run([CMF, "routes"], capture_output=True, text=True, check=True).stdout
    return {" ".join(l.split()[:2]): l.split()[2] for l in out.splitlines()}


def test_every_route_has_a_matrix_row():
    assert set(routes()) == set(MATRIX)


EXPECT = {
    # identity: status for (public, admin-only) routes; None = the row's admin status
    "none": (200, 401),
    "bad": (200, 401),
    "expired": (200, 401),
    "revoked": (200, 401),
    "reader": (200, 403),
    "admin": (200, None),
}


@pytest.mark.parametrize("identity", list(EXPECT))
def test_endpoint_identity_matrix(cmf, identities, identity):
    perms = routes()
    for route, (path, body, admin_status) in MATRIX.items():
        method = route.split()[0]
        public, protected = EXPECT[identity]
        perm = perms[route]
        want = public if perm == "public" else (protected if protected is not None else admin_status)
        if perm == "environment-reader" and identity == "reader":
            want = admin_status  # in scope: authorized like the admin
        r = cmf.request(method, path, body, token=identities[identity])
        assert r.status == want, (identity, route, r)
        if r.status in (401, 403):
            msg = r.error()  # CMF's error body
            if r.status == 401:
                assert r.headers["www-authenticate"].startswith("Bearer"), r.headers
                expected_msg = {"none": "authentication required", "bad": "invalid token",
                                "expired": "the token has expired", "revoked": "the token has been revoked"}
                assert msg.startswith(expected_msg[identity]), msg


def test_tokens_api(cmf):
    r = cmf.request("POST", API + "/tokens", token_body("job-prod", "environment-reader", ["prod", "prod-eu"],
                                                      iso(3600)))
    assert r.status == 200, r
    t = r.json()
    value = t["status"]["token"]
    assert re.match(r"^cmf_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$", value)
    assert t["kind"] == "ApiToken" and t["spec"]["role"] == "environment-reader"
    assert t["spec"]["environments"] == ["prod", "prod-eu"] and "expiresAt" in t["spec"]
    assert t["metadata"]["createdBy"] == "admin"
    assert r.headers["cache-control"] == "no-store"
    # never shown again
    for r in (cmf.request("GET", API + "/tokens"), cmf.request("GET", API + "/tokens/job-prod")):
        assert r.status == 200 and value.encode() not in r.body and b'"token"' not in r.body
    assert cmf.request("GET", API + "/tokens").json()["metadata"]["size"] == 1
    # the reader may not manage anything
    assert cmf.request("GET", API + "/secrets", token=value).status == 403
    assert cmf.request("POST", API + "/tokens", token_body("escalate", "admin"), token=value).status == 403
    # duplicate name, revoke, reuse
    assert cmf.request("POST", API + "/tokens", token_body("job-prod", "admin")).status == 409
    assert cmf.request("DELETE", API + "/tokens/job-prod").status == 204
    assert cmf.request("GET", API + "/secrets", token=value).error() == "the token has been revoked"
    assert cmf.request("GET", API + "/tokens/job-prod").status == 404
    assert cmf.request("DELETE", API + "/tokens/job-prod").status == 404
    assert cmf.request("POST", API + "/tokens", token_body("job-prod", "admin")).status == 200
    # an admin-role API token manages secrets
    admin2 = create_token(cmf, "ops-admin", "admin")
    assert cmf.request("POST", API + "/secrets", secret_body("by-api-token", {"a": "b"}), token=admin2).status == 200


@pytest.mark.parametrize("body,status,message", [
    (token_body("t-role", "superuser"), 400, "spec.role must be"),
    (token_body("t-noenv", "environment-reader"), 422, "needs spec.environments"),
    (token_body("t-adminenv", "admin", ["prod"]), 422, "applies to environment-reader"),
    (token_body("t-past", "admin", expires_at="2001-01-01T00:00:00Z"), 422, "in the past"),
    (token_body("t-badtime", "admin", expires_at="tomorrow"), 400, "spec.expiresAt must be"),
    (token_body("t-badenv", "environment-reader", ["Prod_EU"]), 400, "spec.environments[]"),
    (token_body("t-envtype", "environment-reader", "prod"), 400, "must be an array"),
    (token_body("ab", "admin"), 400, "metadata.name"),
])
def test_token_validation(cmf, body, status, message):
    r = cmf.request("POST", API + "/tokens", body)
    assert r.status == status, r
    assert message in r.error()


def test_audit_trail(cmf, pg, db):
    r = cmf.create_secret("audited-secret", {"password": "audit-plaintext"})
    create_rid = r.headers["x-request-id"]
    cmf.request("PUT", API + "/secrets/audited-secret", secret_body("audited-secret", {"password": "v2"}))
    cmf.request("DELETE", API + "/secrets/audited-secret")
    cmf.request("DELETE", API + "/secrets/never-existed")
    cmf.request("GET", API + "/secrets", token="cmf_0123456789abcdef_" + "B" * 43)
    r = cmf.request("POST", API + "/tokens", token_body("audited-token", "environment-reader", ["prod"]))
    value, token_id = r.json()["status"]["token"], r.json()["status"]["tokenId"]
    cmf.request("GET", API + "/secrets", token=value)
    cmf.request("DELETE", API + "/tokens/audited-token")
    cmf.request("GET", API + "/secrets", token=value)  # revoked: refused under its own name

    ev = cmf.request("GET", API + "/audit-events?size=100").json()
    items = ev["items"]
    got = [(e["principal"], e["action"], e["resource"], e["outcome"], e["status"]) for e in reversed(items)]
    assert got == [
        ("admin", "secret.create", "secret/audited-secret", "success", 200),
        ("admin", "secret.update", "secret/audited-secret", "success", 200),
        ("admin", "secret.delete", "secret/audited-secret", "success", 204),
        ("admin", "secret.delete", "secret/never-existed", "failure", 404),
        ("anonymous", "authenticate", API + "/secrets", "denied", 401),
        ("admin", "token.create", "token/audited-token", "success", 200),
        ("token:audited-token/" + token_id, "authorize", API + "/secrets", "denied", 403),
        ("admin", "token.revoke", "token/audited-token", "success", 204),
        ("token:audited-token/" + token_id, "authenticate", API + "/secrets", "denied", 401),
    ], got
    first = items[-1]
    assert first["requestId"] == create_rid and first["clientAddress"] == "127.0.0.1"
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", first["time"])
    assert ev["metadata"]["size"] == 9
    # filters
    f = cmf.request("GET", API + "/audit-events?principal=token:audited-token/" + token_id).json()
    assert [e["action"] for e in f["items"]] == ["authenticate", "authorize"]
    f = cmf.request("GET", API + "/audit-events?resource=secret/audited-secret").json()
    assert len(f["items"]) == 3
    f = cmf.request("GET", API + "/audit-events?since=%s" % iso(3600)).json()
    assert f["items"] == []
    f = cmf.request("GET", API + "/audit-events?until=%s&size=2&page=0" % iso(3600)).json()
    assert len(f["items"]) == 2 and f["metadata"]["size"] == 9  # listing the trail is not itself audited
    assert cmf.request("GET", API + "/audit-events?since=yesterday").status == 400
    # each event is also a structured log line
    lines = [json.loads(l.split(" audit ", 1)[1]) for l in cmf.log().splitlines() if " audit {" in l]
    assert [(x["action"], x["outcome"]) for x in lines][:3] == [("secret.create", "success"),
                                                              ("secret.update", "success"),
                                                              ("secret.delete", "success")]
    # no value or token anywhere: log, database dump
    dump = pg.dump(db)
    # The token's secret part (after "cmf_<id>_"; base64url, so it may hold "_" itself).
    for needle in ["audit-plaintext", value, cmf.admin_token, value.split("_", 2)[2]]:
        assert needle not in cmf.log(), needle
        assert needle.encode() not in dump, needle


def test_admin_token_file_checked_at_start(cmf_factory, workdir):
    import os
    short = os.path.join(workdir, "short.token")
    with open(short, "w") as f:
        f.write("too-short\n")
    c = cmf_factory(env={"CMF_AUTH_ADMIN_TOKEN_FILE": short})
    r = c.run("serve")
    assert r.returncode == 78 and "9 characters; use at least 43" in r.stderr, r.stderr
    assert "too-short" not in r.stderr
    c = cmf_factory(env={"CMF_AUTH_ADMIN_TOKEN_FILE": os.path.join(workdir, "absent.token")})
    r = c.run("serve")
    assert r.returncode == 78 and "absent.token" in r.stderr


def test_auth_disabled_is_explicit_and_loud(cmf_factory):
    c = cmf_factory(auth=False).start()
    assert "AUTHENTICATION DISABLED" in c.log()
    assert c.request("GET", API + "/secrets", token=None).status == 200
    assert c.create_secret("open-secret", {"a": "b"}, ).status == 200
    ev = c.request("GET", API + "/audit-events").json()["items"]
    assert ev[0]["principal"] == "anonymous" and ev[0]["action"] == "secret.create"


def test_secret_reads_are_audited(cmf):
    assert cmf.create_secret("read-me", {"k": "v"}).status == 200
    assert cmf.get_secret("read-me").status == 200
    assert cmf.get_secret("not-there").status == 404
    assert cmf.request("GET", API + "/secrets").status == 200
    ev = cmf.request("GET", API + "/audit-events").json()["items"]
    got = [(e["action"], e["resource"], e["outcome"], e["status"]) for e in reversed(ev)]
    assert got == [("secret.create", "secret/read-me", "success", 200),
                   ("secret.read", "secret/read-me", "success", 200),
                   ("secret.read", "secret/not-there", "failure", 404),
                   ("secret.list", API + "/secrets", "success", 200)], got


def test_repeated_authorization_headers_are_refused(cmf):
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", cmf.port, timeout=10)
    conn.putrequest("GET", API + "/secrets")
    conn.putheader("Authorization", "Bearer " + cmf.admin_token)
    conn.putheader("Authorization", "Bearer junk")
    conn.endheaders()
    r = conn.getresponse()
    body = json.loads(r.read())
    conn.close()
    assert r.status == 400 and body["errors"][0]["message"] == "send exactly one Authorization header"


def test_environment_named_null_stays_a_string(cmf):
    r = cmf.request("POST", API + "/tokens", token_body("null-env", "environment-reader", ["null", "prod"]))
    assert r.status == 200, r
    assert r.json()["spec"]["environments"] == ["null", "prod"]
    assert cmf.request("GET", API + "/tokens/null-env").json()["spec"]["environments"] == ["null", "prod"]


def test_reader_outside_its_scope_is_403(cmf, identities):
    r = cmf.request("GET", API + "/environments/staging/client-configs/main/orders", token=identities["reader"])
    assert r.status == 403 and r.error() == "this token may not read this environment"
