"""OIDC bearer tokens (issue 18): with auth.oauth.enabled, a bearer JWT signed by a key of the mounted JWKS
(RS256 or ES256), from auth.oauth.issuer, for auth.oauth.audience, in its validity window, is the principal
"oidc:<issuer>#<sub>" with the role of its RoleBinding. Every refusal is a 401 audited with its reason,
never with the token; cmf's own tokens keep working; the JWKS is re-read when the kubelet swaps it."""
import base64
import hashlib
import hmac
import json
import os
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from conftest import KubeletSecretVolume, wait_for

API = "/cmf/api/v1"
BINDINGS = API + "/role-bindings"
ISSUER = "https://idp.example.com/realms/cmf"
AUDIENCE = "cmf"
# The watch polls every second in these tests; a swap is seen within two polls.
BOUND = 10


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def uint(n, size=None):
    return n.to_bytes(size or (n.bit_length() + 7) // 8, "big")


class Keys:
    """Signing keys made here; their public halves as JWKs."""

    def __init__(self):
        self.rsa = {k: rsa.generate_private_key(public_exponent=65537, key_size=2048) for k in ("rsa1", "rsa2", "evil")}
        self.ec = {"ec1": ec.generate_private_key(ec.SECP256R1())}

    def jwk(self, kid, alg=True):
        if kid in self.rsa:
            pub = self.rsa[kid].public_key().public_numbers()
            j = {"kty": "RSA", "kid": kid, "use": "sig", "n": b64u(uint(pub.n)), "e": b64u(uint(pub.e))}
            if alg:
                j["alg"] = "RS256"
        else:
            pub = self.ec[kid].public_key().public_numbers()
            j = {"kty": "EC", "kid": kid, "crv": "P-256", "x": b64u(uint(pub.x, 32)), "y": b64u(uint(pub.y, 32))}
            if alg:
                j["alg"] = "ES256"
        return j

    def jwks(self, *kids):
        return json.dumps({"keys": [self.jwk(k) for k in kids]}).encode()

    def private(self, kid):
        return self.rsa.get(kid) or self.ec[kid]

    def token(self, kid="rsa1", sub="alice", signer=None, headers=None, **claims):
        now = int(time.time())
        c = {"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "iat": now, "exp": now + 300}
        c.update(claims)
        c = {k: v for k, v in c.items() if v is not None}
        alg = "ES256" if kid in self.ec else "RS256"
        h = {"kid": kid} if kid is not None else {}
        h.update(headers or {})
        return jwt.encode(c, self.private(signer or kid), algorithm=alg, headers=h)


@pytest.fixture(scope="module")
def keys():
    return Keys()


def principal(sub):
    return "oidc:%s#%s" % (ISSUER, sub)


def binding(name, p, role, environments=None):
    spec = {"principal": p, "role": role}
    if environments is not None:
        spec["environments"] = environments
    return {"apiVersion": "cmf.confluent.io/v1", "kind": "RoleBinding", "metadata": {"name": name}, "spec": spec}


def serve(cmf_factory, workdir, keys, jwks=None, start=True, **env):
    """cmf with auth.oauth on, the JWKS in a kubelet-style volume (returned as c.jwks_volume)."""
    vol = KubeletSecretVolume(os.path.join(workdir, "jwks"))
    vol.write({"jwks.json": jwks if jwks is not None else keys.jwks("rsa1", "ec1")})
    e = {"CMF_AUTH_OAUTH_ENABLED": "true", "CMF_AUTH_OAUTH_JWKS_FILE": os.path.join(vol.path, "jwks.json"),
         "CMF_AUTH_OAUTH_ISSUER": ISSUER, "CMF_AUTH_OAUTH_AUDIENCE": AUDIENCE,
         "CMF_ENCRYPTION_KEY_RELOAD_INTERVAL_SECONDS": "1"}
    e.update(env)
    c = cmf_factory(env=e)
    c.jwks_volume = vol
    if start:
        c.start()
    return c


def events(c):
    return c.request("GET", API + "/audit-events?size=100").json()["items"]


def secret(name):
    return {"apiVersion": "cmf.confluent.io/v1", "kind": "Secret", "metadata": {"name": name},
            "spec": {"data": {"password": "s3cr3t"}}}


@pytest.mark.parametrize("kid", ["rsa1", "ec1"])
def test_bound_token_manages_secrets(cmf_factory, workdir, keys, kid):
    c = serve(cmf_factory, workdir, keys)
    r = c.request("POST", BINDINGS, binding("alice-admin", principal("alice"), "admin"))
    assert r.status == 200, r
    t = keys.token(kid)
    assert c.request("POST", API + "/secrets", secret("by-oidc"), token=t).status == 200
    r = c.request("GET", API + "/secrets/by-oidc", token=t)
    assert r.status == 200 and r.json()["spec"]["data"] == {"password": "****"}, r
    assert c.request("DELETE", API + "/secrets/by-oidc", token=t).status == 204
    evs = [e for e in events(c) if e["principal"] == principal("alice")]
    assert {(e["action"], e["status"]) for e in evs} == {("secret.create", 200), ("secret.read", 200),
                                                       ("secret.delete", 204)}, evs


def test_audience_array_and_principal_claim(cmf_factory, workdir, keys):
    c = serve(cmf_factory, workdir, keys, CMF_AUTH_OAUTH_PRINCIPAL_CLAIM="preferred_username")
    assert c.request("POST", BINDINGS, binding("bob-metrics", principal("bob@example.com"), "metrics-reader")).status == 200
    t = keys.token(aud=["account", AUDIENCE], preferred_username="bob@example.com")
    assert c.request("GET", "/metrics", token=t).status == 200
    assert c.request("GET", API + "/secrets", token=t).status == 403
    # The configured claim names the principal; without it the token names nobody.
    r = c.request("GET", "/metrics", token=keys.token(aud=["account", AUDIENCE]))
    assert r.status == 401, r


def test_unbound_token_is_403(cmf_factory, workdir, keys):
    c = serve(cmf_factory, workdir, keys)
    r = c.request("GET", API + "/secrets", token=keys.token(sub="mallory"))
    assert r.status == 403 and "no role binding" in r.error(), r
    evs = [e for e in events(c) if e["principal"] == principal("mallory")]
    assert [(e["action"], e["outcome"], e["status"]) for e in evs] == [("authorize.no-role-binding", "denied", 403)]


def forge_hs256(keys):
    """HS256 with the RSA public key's PEM as the HMAC secret: the classic algorithm confusion."""
    pem = keys.rsa["rsa1"].public_key().public_bytes(serialization.Encoding.PEM,
                                                      serialization.PublicFormat.SubjectPublicKeyInfo)
    now = int(time.time())
    h = b64u(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "rsa1"}).encode())
    p = b64u(json.dumps({"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "exp": now + 300}).encode())
    sig = hmac.new(pem, (h + "." + p).encode(), hashlib.sha256).digest()
    return h + "." + p + "." + b64u(sig)


def alg_none(keys):
    now = int(time.time())
    h = b64u(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    p = b64u(json.dumps({"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "exp": now + 300}).encode())
    return h + "." + p + "."


def refusals(keys):
    now = int(time.time())
    good = keys.token()
    h, p, s = good.split(".")
    return {
        "bad-signature": [keys.token(signer="evil"), h + "." + p + "." + b64u(b"\x00" * 256),
                          keys.token("ec1", signer=None)[:-4] + "AAAA"],
        "alg-not-allowed": [alg_none(keys), forge_hs256(keys),
                            # An EC key named by an RS256 token: the alg must be the key's.
                            jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "exp": now + 300},
                                       keys.private("rsa1"), algorithm="RS256", headers={"kid": "ec1"}),
                            jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "exp": now + 300},
                                       keys.private("rsa1"), algorithm="RS384", headers={"kid": "rsa1"})],
        "unknown-kid": [keys.token("rsa2"), keys.token(kid=None, signer="rsa1")],
        "wrong-issuer": [keys.token(iss="https://evil.example.com"), keys.token(iss=None)],
        "wrong-audience": [keys.token(aud="other"), keys.token(aud=["a", "b"]), keys.token(aud=None)],
        "expired": [keys.token(exp=now - 61), keys.token(exp=now - 3600, iat=now - 7200)],
        "not-yet-valid": [keys.token(nbf=now + 300), keys.token(iat=now + 300)],
        "malformed": [keys.token(exp=None), keys.token(sub=None), keys.token(sub=""), keys.token(exp="tomorrow"),
                      jwt.api_jws.encode(b"not json", keys.private("rsa1"), algorithm="RS256",
                                         headers={"kid": "rsa1"}),
                      h + "." + p + ".not*base64", h + ".." + s],
    }


def test_refusals_are_401_audited_with_their_reason_never_the_token(cmf_factory, workdir, keys, pg, db):
    c = serve(cmf_factory, workdir, keys)
    assert c.request("POST", BINDINGS, binding("alice-admin", principal("alice"), "admin")).status == 200
    # Within the skew (60 s): still good on either side.
    now = int(time.time())
    for t in (keys.token(exp=now - 30), keys.token(nbf=now + 30), keys.token()):
        r = c.request("GET", API + "/secrets", token=t)
        assert r.status == 200, r
    cases = refusals(keys)
    sent = []
    for reason, tokens in cases.items():
        for t in tokens:
            r = c.request("GET", API + "/secrets", token=t)
            assert r.status == 401, (reason, t, r)
            assert r.headers["www-authenticate"].startswith("Bearer"), r.headers
            assert t not in r.body.decode(), reason
            sent.append(t)
    evs = events(c)
    got = {}
    for e in evs:
        if e["action"].startswith("authenticate.oidc-"):
            assert e["principal"] == "anonymous" and e["status"] == 401 and e["outcome"] == "denied", e
            got[e["action"][len("authenticate.oidc-"):]] = got.get(e["action"][len("authenticate.oidc-"):], 0) + \
                e.get("count", 1)
    assert set(got) == set(cases), got
    for reason, tokens in cases.items():
        assert got[reason] == len(tokens), (reason, got)
    log = c.log()
    dump = pg.dump(db)
    for t in sent:
        for part in [t] + [x for x in t.split(".")[1:] if len(x) > 16]:
            assert part not in log, part
            assert part.encode() not in dump, part


def test_token_size_is_bounded(cmf_factory, workdir, keys):
    c = serve(cmf_factory, workdir, keys)
    assert c.request("POST", BINDINGS, binding("alice-admin", principal("alice"), "admin")).status == 200
    t = keys.token(pad="x" * 9000)
    assert len(t) > 8192
    r = c.request("GET", API + "/secrets", token=t)
    assert r.status == 401, r


def test_environment_reader_binding_is_scoped_like_a_token(cmf_factory, workdir, keys):
    c = serve(cmf_factory, workdir, keys)
    assert c.request("POST", BINDINGS, binding("job-reader", principal("job"), "environment-reader", ["prod"])).status == 200
    t = keys.token("ec1", sub="job")
    r = c.request("GET", API + "/environments/prod/client-configs/main/orders", token=t)
    assert r.status == 404, r  # past authorization: nothing is defined in prod
    r = c.request("GET", API + "/environments/staging/client-configs/main/orders", token=t)
    assert r.status == 403 and "may not read this environment" in r.error(), r
    for method, path in (("GET", API + "/secrets"), ("GET", BINDINGS), ("GET", "/metrics")):
        assert c.request(method, path, token=t).status == 403, (method, path)


def test_jwks_swapped_by_the_kubelet_is_picked_up(cmf_factory, workdir, keys):
    c = serve(cmf_factory, workdir, keys)
    assert c.request("POST", BINDINGS, binding("alice-admin", principal("alice"), "admin")).status == 200
    path = API + "/secrets"
    assert c.request("GET", path, token=keys.token("rsa1")).status == 200
    assert c.request("GET", path, token=keys.token("rsa2")).status == 401
    # Rotated: rsa2 in, rsa1 out.
    c.jwks_volume.write({"jwks.json": keys.jwks("rsa2", "ec1")})
    wait_for(lambda: c.request("GET", path, token=keys.token("rsa2")).status == 200, BOUND)
    assert c.request("GET", path, token=keys.token("rsa1")).status == 401
    assert c.request("GET", path, token=keys.token("ec1")).status == 200
    assert "its keys are in effect" in c.log()
    # A bad document, then the file gone: the last good keys stay, one line each.
    c.jwks_volume.write({"jwks.json": b'{"keys": [{"kty": "RSA", "kid": "x", "n": "AQAB", "e": "AQAB"}]}'})
    wait_for(lambda: "is not usable" in c.log(), BOUND)
    c.jwks_volume.write({}, remove_links=False)
    wait_for(lambda: "cannot be read" in c.log(), BOUND)
    time.sleep(2.5)
    assert c.request("GET", path, token=keys.token("rsa2")).status == 200
    log = c.log()
    assert log.count("is not usable") == 1, log
    assert log.count("cannot be read") == 1, log
    # Back with a single key and no kids anywhere: a token without kid uses it.
    c.jwks_volume.write({"jwks.json": json.dumps({"keys": [{k: v for k, v in keys.jwk("rsa1").items()
                                                              if k != "kid"}]}).encode()})
    wait_for(lambda: c.request("GET", path, token=keys.token(kid=None, signer="rsa1")).status == 200, BOUND)
    assert c.request("GET", path, token=keys.token("rsa2")).status == 401
    # Emptied on purpose: every key is revoked at once (not kept as an unusable document would be).
    c.jwks_volume.write({"jwks.json": b'{"keys": []}'})
    wait_for(lambda: c.request("GET", path, token=keys.token(kid=None, signer="rsa1")).status == 401, BOUND)
    assert "the JWKS holds no key: every JWT is refused" in c.log()
    assert c.request("GET", path, token=c.admin_token).status == 200


def test_oauth_off_a_jwt_is_an_unknown_token(cmf_factory, keys):
    c = cmf_factory().start()
    assert c.request("POST", BINDINGS, binding("alice-admin", principal("alice"), "admin")).status == 200
    r = c.request("GET", API + "/secrets", token=keys.token())
    assert r.status == 401 and r.error() == "invalid token", r
    assert not [e for e in events(c) if e["action"].startswith("authenticate.oidc")]


def test_cmf_tokens_keep_working_with_oauth_on(cmf_factory, workdir, keys):
    c = serve(cmf_factory, workdir, keys)
    r = c.request("POST", API + "/tokens", {"apiVersion": "cmf.confluent.io/v1", "kind": "ApiToken",
                                            "metadata": {"name": "ops-token"}, "spec": {"role": "admin"}})
    assert r.status == 200, r
    tok = r.json()["status"]["token"]
    assert c.request("GET", API + "/secrets", token=tok).status == 200
    assert c.request("GET", API + "/secrets", token=c.admin_token).status == 200
    r = c.request("GET", API + "/secrets", token="cmf_0123456789abcdef_" + "A" * 43)
    assert r.status == 401 and r.error() == "invalid token", r
    # Three parts that are not a JWT header: cmf's token path, not the JWT one.
    r = c.request("GET", API + "/secrets", token="a.b.c")
    assert r.status == 401 and r.error() == "invalid token", r


@pytest.mark.parametrize("env,want", [
    ({"CMF_AUTH_OAUTH_ISSUER": ""}, "auth.oauth.issuer is required when auth.oauth.enabled is true"),
    ({"CMF_AUTH_OAUTH_AUDIENCE": ""}, "auth.oauth.audience is required"),
    ({"CMF_AUTH_OAUTH_JWKS_FILE": ""}, "auth.oauth.jwksFile is required"),
    ({"CMF_AUTH_OAUTH_CLOCK_SKEW_SECONDS": "301"}, "CMF_AUTH_OAUTH_CLOCK_SKEW_SECONDS: expected an integer from 0 to 300"),
    ({"CMF_AUTH_OAUTH_JWKS_FILE": "/nonexistent/jwks.json"}, "cannot read the JWKS (auth.oauth.jwksFile)"),
])
def test_bad_oauth_configuration_refuses_to_start(cmf_factory, workdir, keys, env, want):
    c = serve(cmf_factory, workdir, keys, start=False, **env)
    r = c.run("serve")
    assert r.returncode == 78 and want in r.stderr, r.stderr


@pytest.mark.parametrize("jwks,want", [
    (b"not json", "not JSON"),
    (b'{"keys": []}', "no usable key"),
    (b'{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}', "no usable key"),
    (b'{"keys": [{"kty": "EC", "crv": "P-256", "kid": "e", "x": "AAAA", "y": "AAAA"}]}', "key 1 (kid e)"),
])
def test_bad_jwks_refuses_to_start(cmf_factory, workdir, keys, jwks, want):
    c = serve(cmf_factory, workdir, keys, jwks=jwks, start=False)
    r = c.run("serve")
    assert r.returncode == 78 and want in r.stderr, r.stderr


# The authorization matrix of test_auth.py, for OIDC principals: every route of `cmf routes`.
OIDC_EXPECT = {
    # identity: (token arguments, its binding or None, status for (public, protected) routes; None = admin's)
    "oidc-admin": ({"sub": "ops"}, binding("matrix-ops", principal("ops"), "admin"), (200, None)),
    "oidc-reader": ({"sub": "reader", "kid": "ec1"},
                    binding("matrix-oidc-reader", principal("reader"), "environment-reader", ["prod"]), (200, 403)),
    "oidc-unbound": ({"sub": "ops"}, None, (200, 403)),
    "oidc-bad-signature": ({"sub": "ops", "signer": "evil"}, binding("matrix-ops", principal("ops"), "admin"),
                           (200, 401)),
}


@pytest.mark.parametrize("identity", list(OIDC_EXPECT))
def test_endpoint_identity_matrix_for_oidc(cmf_factory, workdir, keys, identity):
    from test_auth import MATRIX, routes, token_body
    c = serve(cmf_factory, workdir, keys)
    args, bound, (public, protected) = OIDC_EXPECT[identity]
    assert c.request("POST", API + "/tokens", token_body("matrix-reader", "environment-reader", ["prod"])).status == 200
    assert c.create_secret("matrix-secret", {"k": "v"}).status == 200
    if bound is not None:
        assert c.request("POST", BINDINGS, bound).status == 200
    t = keys.token(**args)
    perms = routes()
    for route, (path, body, admin_status) in MATRIX.items():
        method = route.split()[0]
        perm = perms[route]
        want = public if perm == "public" else (protected if protected is not None else admin_status)
        if perm == "environment-reader" and identity == "oidc-reader":
            want = admin_status  # in scope: authorized like the admin
        r = c.request(method, path, body, token=t)
        assert r.status == want, (identity, route, r)
