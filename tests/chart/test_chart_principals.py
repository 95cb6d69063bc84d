"""The chart's principals beside cmf's tokens (issue 18): auth.mtls (client certificates mapped by Kafka's
rules) and auth.oauth (bearer JWTs checked against the identity provider's JWKS, mounted from a Secret or
ConfigMap), rendered into cmf's configuration and mounts by the real helm binary, as in test_chart.py."""
import os
import subprocess

import pytest

from conftest import CMF
# helm: test_chart's module-scoped fixture, used by the tests below.
from test_chart import (CHART, CI_VALUES, MTLS, NO_AUTH, REQUIRED, accepted_config_keys, cmf_config, container,
                        helm, leaf_keys, mount, names_field, notes, template, template_fails, volume)

assert helm  # the fixture, imported for the tests' parameter

ISSUER = "https://keycloak.example.com/realms/cmf"
OAUTH = ["--set", "auth.oauth.enabled=true", "--set", f"auth.oauth.issuer={ISSUER}",
         "--set", "auth.oauth.audience=cmf", "--set", "auth.oauth.jwks.configMapName=cmf-oidc-jwks"]
RULES = "RULE:^CN=([^,]*),O=acme$/$1/L"
# --set splits at commas: the rules go in a values file.
MTLS_PRINCIPAL = [*MTLS, "--set", "auth.mtls.principal=true"]


def rules_file(tmp_path, rules=RULES):
    p = tmp_path / "rules.yaml"
    p.write_text("auth:\n  mtls:\n    principalMappingRules: '%s'\n" % rules.replace("'", "''"))
    return str(p)


def test_defaults_render_neither(helm):
    _, docs = template(helm, *REQUIRED)
    auth = cmf_config(docs)["auth"]
    assert "mtls" not in auth and "oauth" not in auth, auth
    assert volume(docs, "oauth-jwks") is None and mount(docs, "oauth-jwks") is None
    assert "role binding" not in notes(helm, *REQUIRED)


@pytest.mark.parametrize("source, extra", [
    ("configMap", []),
    ("secret", ["--set", "auth.oauth.jwks.configMapName=", "--set", "auth.oauth.jwks.secretName=cmf-oidc-jwks"]),
])
def test_oauth_is_rendered_with_its_jwks_mounted(helm, source, extra):
    _, docs = template(helm, *REQUIRED, *OAUTH, *extra, "--set", "auth.oauth.principalClaim=preferred_username",
                       "--set", "auth.oauth.clockSkewSeconds=30", "--set", "auth.oauth.jwks.key=keys.json")
    config = cmf_config(docs)
    assert config["auth"]["oauth"] == {"enabled": True, "jwksFile": "/etc/cmf/oauth/keys.json", "issuer": ISSUER,
                                       "audience": "cmf", "principalClaim": "preferred_username",
                                       "clockSkewSeconds": 30}
    assert set(leaf_keys(config)) <= accepted_config_keys()
    v = volume(docs, "oauth-jwks")
    ref = v[source]
    assert (ref.get("secretName") or ref.get("name")) == "cmf-oidc-jwks", v
    assert ref["items"] == [{"key": "keys.json", "path": "keys.json"}] and ref["defaultMode"] == 0o440, v
    assert ref["optional"] is False
    m = mount(docs, "oauth-jwks")
    # A directory mount: with subPath the kubelet's updates would never reach the file cmf re-reads.
    assert m == {"name": "oauth-jwks", "mountPath": "/etc/cmf/oauth", "readOnly": True}, m
    assert not any("OAUTH" in e["name"] for e in container(docs).get("env", []))
    # The configuration is in the pod template's checksum: changing the issuer rolls the pods.
    _, docs2 = template(helm, *REQUIRED, *OAUTH, *extra, "--set", "auth.oauth.issuer=https://other.example.com")
    dep = [d for d in docs if d["kind"] == "Deployment"][0]
    dep2 = [d for d in docs2 if d["kind"] == "Deployment"][0]
    assert (dep["spec"]["template"]["metadata"]["annotations"]["checksum/config"] !=
            dep2["spec"]["template"]["metadata"]["annotations"]["checksum/config"])


def test_rendered_oauth_config_is_accepted_by_the_binary(helm, tmp_path):
    """The configuration the chart renders, read by cmf itself (`cmf check` stops at the database)."""
    _, docs = template(helm, *REQUIRED, *OAUTH, "--set", "encryption.enabled=false")
    cm = [d for d in docs if d["kind"] == "ConfigMap"][0]["data"]["cmf.yaml"]
    path = tmp_path / "cmf.yaml"
    path.write_text(cm.replace("/etc/cmf/oauth/", str(tmp_path) + "/"))
    r = subprocess.run([CMF, "check", "--config", str(path)], capture_output=True, text=True, timeout=60,
                       env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
    # Past the configuration: the next thing checked is a file the test did not make.
    assert "configuration refused" not in r.stderr, r.stderr


@pytest.mark.parametrize("args, message", [
    (["--set", "auth.oauth.issuer="], "auth.oauth.issuer must be your identity provider's issuer"),
    (["--set", "auth.oauth.audience="], "auth.oauth.audience must be a value the tokens' aud contains"),
    (["--set", "auth.oauth.jwks.configMapName="], "exactly one of auth.oauth.jwks.secretName and"),
    (["--set", "auth.oauth.jwks.secretName=s"], "exactly one of auth.oauth.jwks.secretName and"),
])
def test_oauth_without_what_it_needs_fails(helm, args, message):
    err = template_fails(helm, *REQUIRED, *OAUTH, *args)
    assert message in err, err


def test_oauth_needs_auth(helm):
    err = template_fails(helm, *NO_AUTH, *OAUTH)
    assert "auth.oauth.enabled is true but auth.enabled is false" in err, err


@pytest.mark.parametrize("args, field", [
    (["--set", "auth.oauth.clockSkewSeconds=301"], "auth.oauth.clockSkewSeconds"),
    (["--set", "auth.oauth.clockSkewSeconds=-1"], "auth.oauth.clockSkewSeconds"),
    (["--set-string", "auth.oauth.enabled=true"], "auth.oauth.enabled"),
    (["--set", "auth.oauth.principalClaim="], "auth.oauth.principalClaim"),
    (["--set", "auth.oauth.jwks.secretName=Not_A_Name"], "auth.oauth.jwks.secretName"),
    (["--set", "auth.oauth.jwks.key=../jwks.json"], "auth.oauth.jwks.key"),
    (["--set", "auth.oauth.jwksUrl=https://idp"], "jwksUrl"),
    (["--set-string", "auth.mtls.principal=yes"], "auth.mtls.principal"),
    (["--set", "auth.mtls.principalMappingRules="], "auth.mtls.principalMappingRules"),
])
def test_wrong_values_are_schema_errors(helm, args, field):
    err = template_fails(helm, *REQUIRED, *args)
    assert "schema" in err, err
    assert names_field(err, field), err


@pytest.mark.parametrize("name", ["CMF_AUTH_OAUTH_ENABLED", "CMF_AUTH_OAUTH_JWKS_FILE", "CMF_AUTH_OAUTH_ISSUER",
                                  "CMF_AUTH_OAUTH_AUDIENCE", "CMF_AUTH_OAUTH_PRINCIPAL_CLAIM",
                                  "CMF_AUTH_OAUTH_CLOCK_SKEW_SECONDS", "CMF_AUTH_MTLS_PRINCIPAL",
                                  "CMF_AUTH_MTLS_PRINCIPAL_MAPPING_RULES"])
def test_extra_env_cannot_override_them(helm, name):
    err = template_fails(helm, *REQUIRED, "--set", f"extraEnv[0].name={name}", "--set-string", "extraEnv[0].value=x")
    assert name in err and "auth." in err, err


def test_mtls_principal_is_rendered(helm, tmp_path):
    _, docs = template(helm, *REQUIRED, *MTLS_PRINCIPAL, "-f", rules_file(tmp_path))
    config = cmf_config(docs)
    assert config["auth"]["mtls"] == {"principal": True, "principalMappingRules": RULES}
    assert set(leaf_keys(config)) <= accepted_config_keys()
    # Rules set but not in use yet: rendered all the same (the binary checks them at every start).
    _, docs = template(helm, *REQUIRED, *MTLS, "-f", rules_file(tmp_path))
    assert cmf_config(docs)["auth"]["mtls"] == {"principal": False, "principalMappingRules": RULES}


def test_mtls_principal_needs_client_certificates(helm):
    err = template_fails(helm, *REQUIRED, "--set", "auth.mtls.principal=true")
    assert "auth.mtls.principal is true, but there are no client certificates without mutual TLS" in err, err


def test_notes_explain_role_bindings(helm, tmp_path):
    text = " ".join(notes(helm, *REQUIRED, *OAUTH).split())
    assert "get their role from a role binding" in text, text
    assert f'is "oidc:{ISSUER}#<sub>"' in text, text
    assert 'ConfigMap "cmf-oidc-jwks", property "jwks.json" (mounted at /etc/cmf/oauth/jwks.json' in text, text
    assert f'"principal":"oidc:{ISSUER}#alice"' in text and "/cmf/api/v1/role-bindings" in text, text
    text = " ".join(notes(helm, *REQUIRED, *MTLS_PRINCIPAL, "-f", rules_file(tmp_path)).split())
    assert 'is "cert:<name>", its subject DN mapped by auth.mtls.principalMappingRules' in text, text
    assert '"principal":"cert:ops"' in text and "oidc:" not in text, text


@pytest.mark.parametrize("extra", [OAUTH, MTLS_PRINCIPAL], ids=["oauth", "mtls"])
def test_lint_strict_passes(helm, extra):
    out = helm("lint", "--strict", CHART, "-f", CI_VALUES, *extra)
    assert out.returncode == 0, out.stdout + out.stderr
