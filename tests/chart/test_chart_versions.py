"""The chart's secrets.maxVersions and secrets.requireIfMatch (issue 16): rendered into cmf's configuration
only when not the binary's defaults (10, false), checked by the values schema, guarded against extraEnv,
and accepted by the binary (rendered by the real helm binary, as in test_chart.py)."""
import subprocess

import pytest
import yaml

from conftest import CMF
# helm: test_chart's module-scoped fixture, used by the tests below.
from test_chart import REQUIRED, accepted_config_keys, cmf_config, helm, leaf_keys, template, template_fails

assert helm  # the fixture, imported for the tests' parameter


def test_defaults_render_nothing(helm):
    assert "secrets" not in cmf_config(template(helm, *REQUIRED)[1])
    config = cmf_config(template(helm, *REQUIRED, "--set", "secrets.maxVersions=10",
                                 "--set", "secrets.requireIfMatch=false")[1])
    assert "secrets" not in config


@pytest.mark.parametrize("args, want", [
    (["--set", "secrets.maxVersions=25"], {"maxVersions": 25}),
    (["--set", "secrets.maxVersions=1"], {"maxVersions": 1}),
    (["--set", "secrets.requireIfMatch=true"], {"requireIfMatch": True}),
    (["--set", "secrets.maxVersions=3", "--set", "secrets.requireIfMatch=true"],
     {"maxVersions": 3, "requireIfMatch": True}),
])
def test_settings_are_rendered_when_set(helm, args, want):
    config = cmf_config(template(helm, *REQUIRED, *args)[1])
    assert config["secrets"] == want
    assert set(leaf_keys(config)) <= accepted_config_keys()


@pytest.mark.parametrize("how, value", [("--set", "secrets.maxVersions=0"), ("--set", "secrets.maxVersions=1001"),
                                        ("--set", "secrets.maxVersions=2.5"),
                                        ("--set-string", "secrets.maxVersions=10"),
                                        ("--set-string", "secrets.requireIfMatch=yes"),
                                        ("--set", "secrets.maxVersion=3")])
def test_bad_values_are_refused_by_the_schema(helm, how, value):
    err = template_fails(helm, *REQUIRED, how, value)
    assert "secrets" in err or "maxVersion" in err or "requireIfMatch" in err, err


@pytest.mark.parametrize("name, value", [("CMF_SECRETS_MAX_VERSIONS", "secrets.maxVersions"),
                                         ("CMF_SECRETS_REQUIRE_IF_MATCH", "secrets.requireIfMatch")])
def test_extra_env_cannot_override_them(helm, name, value):
    err = template_fails(helm, *REQUIRED, "--set", f"extraEnv[0].name={name}", "--set-string", "extraEnv[0].value=x")
    assert name in err and value in err, err


def test_the_binary_accepts_the_rendered_settings(helm, tmp_path):
    config = cmf_config(template(helm, *REQUIRED, "--set", "secrets.maxVersions=30",
                                 "--set", "secrets.requireIfMatch=true")[1])
    path = tmp_path / "cmf.yaml"
    path.write_text(yaml.safe_dump({"database": {"url": config["database"]["url"], "startupTimeoutSeconds": 0},
                                    "secrets": config["secrets"], "encryption": {"enabled": False},
                                    "auth": {"enabled": False}}))
    out = subprocess.run([CMF, "check", "--config", str(path)], capture_output=True, text=True, timeout=60)
    # The configuration is accepted; what fails is reaching a database that does not exist here.
    assert "unknown key" not in out.stderr and "expected" not in out.stderr, out.stderr
    assert "database" in out.stderr, out.stderr
