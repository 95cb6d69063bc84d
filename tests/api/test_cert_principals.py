"""Certificate principals (issue 18): with auth.mtls.principal, a verified client certificate and no token
is the principal "cert:<name>", its subject DN mapped by auth.mtls.principalMappingRules (Kafka's
ssl.principal.mapping.rules), with the role of its RoleBinding. Unmapped: 401; unbound: 403; a token still
wins; off: the certificate grants nothing. Every refusal is audited with its reason, never a token."""
import pytest

from test_tls import make_leaf, pki, tls_env  # noqa: F401  (pki is the module's fixture)

API = "/cmf/api/v1"
BINDINGS = API + "/role-bindings"
# CN of the acme organisation, lower-cased; no DEFAULT: any other subject maps to nothing.
RULES = "RULE:^CN=([^,]*),O=acme$/$1/L"


def binding(name, principal, role, environments=None):
    spec = {"principal": principal, "role": role}
    if environments is not None:
        spec["environments"] = environments
    return {"apiVersion": "cmf.confluent.io/v1", "kind": "RoleBinding", "metadata": {"name": name}, "spec": spec}


@pytest.fixture(scope="module")
def certs(pki):  # noqa: F811
    make_leaf(pki.dir, "ops", "ca", "/O=acme/CN=OPS", "extendedKeyUsage=clientAuth\n")
    make_leaf(pki.dir, "reader", "ca", "/O=acme/CN=reader", "extendedKeyUsage=clientAuth\n")
    make_leaf(pki.dir, "stranger", "ca", "/O=elsewhere/CN=ops", "extendedKeyUsage=clientAuth\n")
    return pki


def serve(cmf_factory, pki, principal=True, **env):
    """cmf with mutual TLS; the fixture's admin token still works (sent unless token=None)."""
    e = dict(tls_env(pki, client_ca=True), CMF_AUTH_MTLS_PRINCIPAL_MAPPING_RULES=RULES, **env)
    if principal:
        e["CMF_AUTH_MTLS_PRINCIPAL"] = "true"
    c = cmf_factory(env=e)
    c.ssl_context = pki.context(client="client")  # CN=job-runner,O=flink: maps to nothing
    c.start()
    return c


def as_cert(c, pki, name, method, path, body=None, token=None):
    return c.request(method, path, body, token=token, ssl_context=pki.context(client=name))


def events(c, **query):
    q = "&".join("%s=%s" % kv for kv in query.items())
    return c.request("GET", API + "/audit-events" + ("?" + q if q else "")).json()["items"]


def test_bound_certificate_manages_secrets_without_a_token(cmf_factory, certs):
    c = serve(cmf_factory, certs)
    r = c.request("POST", BINDINGS, binding("ops-admin", "cert:ops", "admin"))
    assert r.status == 200, r
    assert r.json()["spec"] == {"principal": "cert:ops", "role": "admin", "environments": []}
    body = {"apiVersion": "cmf.confluent.io/v1", "kind": "Secret", "metadata": {"name": "by-cert"},
            "spec": {"data": {"password": "s3cr3t"}}}
    assert as_cert(c, certs, "ops", "POST", API + "/secrets", body).status == 200
    r = as_cert(c, certs, "ops", "GET", API + "/secrets/by-cert")
    assert r.status == 200 and r.json()["spec"]["data"] == {"password": "****"}, r
    assert as_cert(c, certs, "ops", "DELETE", API + "/secrets/by-cert").status == 204
    # The audit trail names the mapped principal, with the certificate's subject as the transport identity.
    evs = events(c, principal="cert:ops")
    assert {(e["action"], e["status"]) for e in evs} == {("secret.create", 200), ("secret.read", 200),
                                                       ("secret.delete", 204)}, evs
    assert all(e["clientCertificate"] == "CN=OPS,O=acme" for e in evs), evs


def test_unbound_certificate_is_403_and_audited(cmf_factory, certs):
    c = serve(cmf_factory, certs)
    r = as_cert(c, certs, "ops", "GET", API + "/secrets")
    assert r.status == 403 and "no role binding" in r.error(), r
    assert "www-authenticate" not in r.headers
    evs = events(c, principal="cert:ops")
    assert [(e["action"], e["outcome"], e["status"]) for e in evs] == [("authorize.no-role-binding", "denied", 403)]


def test_unmapped_certificate_is_401_and_audited(cmf_factory, certs):
    c = serve(cmf_factory, certs)
    # Bound under the name a DEFAULT rule would give: the rules, not the binding, decide who it is.
    assert c.request("POST", BINDINGS, binding("by-dn", "cert:CN=ops,O=elsewhere", "admin")).status == 200
    r = as_cert(c, certs, "stranger", "GET", API + "/secrets")
    assert r.status == 401 and "maps to no principal" in r.error(), r
    assert r.headers["www-authenticate"].startswith("Bearer")
    evs = [e for e in events(c) if e["action"] == "authenticate.unmapped-certificate"]
    assert [(e["principal"], e["status"], e["clientCertificate"]) for e in evs] == [
        ("anonymous", 401, "CN=ops,O=elsewhere")], evs


def test_principal_off_grants_nothing(cmf_factory, certs):
    c = serve(cmf_factory, certs, principal=False)
    assert c.request("POST", BINDINGS, binding("ops-admin", "cert:ops", "admin")).status == 200
    r = as_cert(c, certs, "ops", "GET", API + "/secrets")
    assert r.status == 401 and r.error().startswith("authentication required"), r
    assert events(c, principal="cert:ops") == []


def test_a_token_wins_over_the_certificate(cmf_factory, certs):
    c = serve(cmf_factory, certs)
    assert c.request("POST", BINDINGS, binding("ops-admin", "cert:ops", "admin")).status == 200
    # A bound admin certificate with a wrong token is the wrong token: 401, not admin.
    r = as_cert(c, certs, "ops", "GET", API + "/secrets", token="cmf_0123456789abcdef_" + "A" * 43)
    assert r.status == 401 and r.error().startswith("invalid token"), r
    # With the admin token, the token is the principal and the certificate is recorded beside it.
    assert as_cert(c, certs, "ops", "GET", API + "/audit-events", token=c.admin_token).status == 200
    assert as_cert(c, certs, "ops", "POST", API + "/secrets", {
        "apiVersion": "cmf.confluent.io/v1", "kind": "Secret", "metadata": {"name": "by-token"},
        "spec": {"data": {"a": "b"}}}, token=c.admin_token).status == 200
    evs = [e for e in events(c, principal="admin") if e["action"] == "secret.create"]
    assert [e["clientCertificate"] for e in evs] == ["CN=OPS,O=acme"], evs


def test_environment_reader_binding_is_scoped_like_a_token(cmf_factory, certs):
    c = serve(cmf_factory, certs)
    assert c.request("POST", BINDINGS, binding("reader", "cert:reader", "environment-reader", ["prod"])).status == 200
    # In scope: past authorization (nothing is defined in prod, so 404, as for a token).
    r = as_cert(c, certs, "reader", "GET", API + "/environments/prod/client-configs/main/orders")
    assert r.status == 404, r
    r = as_cert(c, certs, "reader", "GET", API + "/environments/staging/client-configs/main/orders")
    assert r.status == 403 and "may not read this environment" in r.error(), r
    for method, path in (("GET", API + "/secrets"), ("GET", BINDINGS), ("GET", "/metrics")):
        assert as_cert(c, certs, "reader", method, path).status == 403, (method, path)
    # A binding's scope is checked as a token's.
    for body, status, msg in (
            (binding("rb-r2", "cert:r2", "environment-reader"), 422, "needs spec.environments"),
            (binding("rb-r3", "cert:r3", "admin", ["prod"]), 422, "environment-reader role only"),
            (binding("rb-r4", "ops", "admin"), 400, "spec.principal must be"),
            (binding("rb-r5", "cert:r5", "owner"), 400, "spec.role must be"),
            (binding("rb-r6", "cert:reader", "admin"), 409, "principal 'cert:reader' already has role binding 'reader'")):
        r = c.request("POST", BINDINGS, body)
        assert r.status == status and msg in r.error(), (body, r)


def test_binding_changes_apply_to_the_next_request(cmf_factory, certs):
    c = serve(cmf_factory, certs)
    assert c.request("POST", BINDINGS, binding("ops-admin", "cert:ops", "admin")).status == 200
    assert as_cert(c, certs, "ops", "GET", API + "/secrets").status == 200
    # Demoted: the very next request has the new role.
    r = c.request("PUT", BINDINGS + "/ops-admin", binding("ops-admin", "cert:ops", "metrics-reader"))
    assert r.status == 200, r
    assert as_cert(c, certs, "ops", "GET", API + "/secrets").status == 403
    assert as_cert(c, certs, "ops", "GET", "/metrics").status == 200
    # Deleted: 403 at once (the cache reloads the bindings before the delete is answered).
    assert c.request("DELETE", BINDINGS + "/ops-admin").status == 204
    r = as_cert(c, certs, "ops", "GET", "/metrics")
    assert r.status == 403 and "no role binding" in r.error(), r
    # The binding's writes are audited under the admin.
    evs = events(c, principal="admin")
    assert {"role-binding.create", "role-binding.update", "role-binding.delete"} <= {e["action"] for e in evs}


def test_binding_deleted_elsewhere_is_noticed(cmf_factory, certs, pg, db):
    """A delete this process did not make (another replica's) reaches it by PostgreSQL's notification."""
    c = serve(cmf_factory, certs)
    assert c.request("POST", BINDINGS, binding("ops-admin", "cert:ops", "admin")).status == 200
    assert as_cert(c, certs, "ops", "GET", API + "/secrets").status == 200
    other = serve(cmf_factory, certs)
    assert other.request("DELETE", BINDINGS + "/ops-admin").status == 204
    import time
    deadline = time.time() + 10
    while time.time() < deadline:
        if as_cert(c, certs, "ops", "GET", API + "/secrets").status == 403:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the deleted binding still grants on the other process")


@pytest.mark.parametrize("rules,env,want", [
    ("RULE:^CN=(.*?),.*$/$1/", {}, "rule 1 `RULE:^CN=(.*?),.*$/$1/`: the pattern has a lazy quantifier"),
    ("DEFAULT, RULE:^CN=([a-z/$1/", {}, "rule 2"),
    ("DEFAULT/L", {}, "unexpected text after the rule"),
    ("DEFAULT", {"CMF_SERVER_TLS_CLIENT_CA_FILE": ""}, "auth.mtls.principal needs mutual TLS"),
])
def test_bad_rules_refuse_to_start(cmf_factory, certs, rules, env, want):
    e = dict(tls_env(certs, client_ca=True), CMF_AUTH_MTLS_PRINCIPAL="true",
             CMF_AUTH_MTLS_PRINCIPAL_MAPPING_RULES=rules)
    e.update(env)
    c = cmf_factory(env=e)
    r = c.run("serve")
    assert r.returncode == 78 and want in r.stderr, r.stderr


# The authorization matrix of test_auth.py, for certificate principals: every route of `cmf routes`.
CERT_EXPECT = {
    # identity: (certificate, its binding or None, status for (public, protected) routes; None = admin's)
    "cert-admin": ("ops", binding("matrix-ops", "cert:ops", "admin"), (200, None)),
    "cert-reader": ("reader", binding("matrix-reader", "cert:reader", "environment-reader", ["prod"]), (200, 403)),
    "cert-unbound": ("ops", None, (200, 403)),
    "cert-unmapped": ("stranger", None, (200, 401)),
}


@pytest.mark.parametrize("identity", list(CERT_EXPECT))
def test_endpoint_identity_matrix_for_certificates(cmf_factory, certs, identity):
    from test_auth import MATRIX, routes, token_body
    c = serve(cmf_factory, certs)
    cert, bound, (public, protected) = CERT_EXPECT[identity]
    # What the matrix's admin rows read (test_auth.py's identities fixture makes the same).
    assert c.request("POST", API + "/tokens", token_body("matrix-reader", "environment-reader", ["prod"])).status == 200
    assert c.create_secret("matrix-secret", {"k": "v"}).status == 200
    if bound is not None:
        assert c.request("POST", BINDINGS, bound).status == 200
    perms = routes()
    for route, (path, body, admin_status) in MATRIX.items():
        method = route.split()[0]
        perm = perms[route]
        want = public if perm == "public" else (protected if protected is not None else admin_status)
        if perm == "environment-reader" and identity == "cert-reader":
            want = admin_status  # in scope: authorized like the admin
        r = as_cert(c, certs, cert, method, path, body)
        assert r.status == want, (identity, route, r)
