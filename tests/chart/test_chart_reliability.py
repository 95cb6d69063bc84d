"""The chart's reliability values, rendered by the real helm binary as in test_chart.py: encryption.key.id
(the pinned key id, rendered only when set, checked by the schema, explained by NOTES), and
database.requestTimeoutSeconds and server.probePort (the probe listener the probes use)."""
import subprocess

import yaml

from conftest import CMF
# helm: test_chart's module-scoped fixture, used by the tests below.
from test_chart import REQUIRED, accepted_config_keys, cmf_config, helm, leaf_keys, notes, template, template_fails

assert helm  # the fixture, imported for the tests' parameter

PIN = "0123456789abcdef"


def test_no_pin_by_default_and_notes_recommend_one(helm):
    config = cmf_config(template(helm, *REQUIRED)[1])
    assert "id" not in config["encryption"]["key"]
    text = notes(helm, *REQUIRED)
    assert "The key is not pinned" in text and "encryption.key.id" in text


def test_pin_is_rendered_and_named_in_notes(helm):
    config = cmf_config(template(helm, *REQUIRED, "--set", "encryption.key.id=" + PIN)[1])
    assert config["encryption"]["key"]["id"] == PIN
    assert set(leaf_keys(config)) <= accepted_config_keys()
    assert "pinned to key id %s" % PIN in notes(helm, *REQUIRED, "--set", "encryption.key.id=" + PIN)


def test_malformed_pin_is_refused_by_the_schema(helm):
    for bad in ("0123456789ABCDEF", "0123", "not-a-key-id-at-all"):
        err = template_fails(helm, *REQUIRED, "--set", "encryption.key.id=" + bad)
        assert "schema" in err, (bad, err)


def test_request_timeout_and_probe_port_are_rendered_and_accepted_by_the_binary(helm, tmp_path):
    config = cmf_config(template(helm, *REQUIRED, "--set", "database.requestTimeoutSeconds=2",
                                 "--set", "server.probePort=9090")[1])
    assert config["database"]["requestTimeoutSeconds"] == 2
    assert config["server"]["probeListen"] == "0.0.0.0:9090"
    assert set(leaf_keys(config)) <= accepted_config_keys()
    path = tmp_path / "cmf.yaml"
    # Only the keys under test, with the files the binary would otherwise look for left out.
    path.write_text(yaml.safe_dump({"server": {"probeListen": config["server"]["probeListen"]},
                                    "database": {"url": config["database"]["url"], "startupTimeoutSeconds": 0,
                                                 "requestTimeoutSeconds": 2},
                                    "encryption": {"enabled": False}, "auth": {"enabled": False}}))
    out = subprocess.run([CMF, "check", "--config", str(path)], capture_output=True, text=True, timeout=60)
    # The configuration is accepted (a refused one exits 78); what fails is reaching a database that does
    # not exist here (69).
    assert out.returncode == 69 and "PostgreSQL is unreachable" in out.stderr, (out.returncode, out.stderr)


def test_request_timeout_out_of_range_is_refused_by_the_schema(helm):
    for bad in ("0", "601"):
        err = template_fails(helm, *REQUIRED, "--set", "database.requestTimeoutSeconds=" + bad)
        assert "schema" in err and "requestTimeoutSeconds" in err, (bad, err)
