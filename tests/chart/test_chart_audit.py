"""The chart's audit.retentionDays (issue 13): rendered into cmf's configuration only when not 0 (the
binary's default: keep every event), beside audit.queueCapacity, and checked by the values schema
(rendered by the real helm binary, as in test_chart.py)."""
import subprocess

import pytest
import yaml

from conftest import CMF
# helm: test_chart's module-scoped fixture, used by the tests below.
from test_chart import REQUIRED, accepted_config_keys, cmf_config, helm, leaf_keys, template, template_fails

assert helm  # the fixture, imported for the tests' parameter


def test_default_keeps_every_event_and_renders_nothing(helm):
    config = cmf_config(template(helm, *REQUIRED)[1])
    assert "audit" not in config
    config = cmf_config(template(helm, *REQUIRED, "--set", "audit.retentionDays=0")[1])
    assert "audit" not in config


@pytest.mark.parametrize("args, want", [
    (["--set", "audit.retentionDays=400"], {"retentionDays": 400}),
    (["--set", "audit.retentionDays=36500"], {"retentionDays": 36500}),
    (["--set", "audit.retentionDays=30", "--set", "audit.queueCapacity=4096"],
     {"queueCapacity": 4096, "retentionDays": 30}),
    (["--set", "audit.queueCapacity=4096"], {"queueCapacity": 4096}),
])
def test_retention_is_rendered_when_set(helm, args, want):
    config = cmf_config(template(helm, *REQUIRED, *args)[1])
    assert config["audit"] == want
    assert set(leaf_keys(config)) <= accepted_config_keys()


@pytest.mark.parametrize("how, value", [("--set", "-1"), ("--set", "36501"), ("--set", "1.5"),
                                        ("--set-string", "7d"), ("--set-string", "30")])
def test_bad_retention_is_refused_by_the_schema(helm, how, value):
    err = template_fails(helm, *REQUIRED, how, "audit.retentionDays=" + value)
    assert "retentionDays" in err, err


def test_the_binary_accepts_the_rendered_retention(helm, tmp_path):
    config = cmf_config(template(helm, *REQUIRED, "--set", "audit.retentionDays=90")[1])
    path = tmp_path / "cmf.yaml"
    # Only the key under test, with the files the binary would otherwise look for left out.
    path.write_text(yaml.safe_dump({"database": {"url": config["database"]["url"], "startupTimeoutSeconds": 0},
                                    "audit": config["audit"], "encryption": {"enabled": False},
                                    "auth": {"enabled": False}}))
    out = subprocess.run([CMF, "check", "--config", str(path)], capture_output=True, text=True, timeout=60)
    # The configuration is accepted; what fails is reaching a database that does not exist here.
    assert "unknown key" not in out.stderr and "expected" not in out.stderr, out.stderr
    assert "database" in out.stderr, out.stderr
