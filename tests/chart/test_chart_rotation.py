"""The chart's master-key rotation value (issue 14): encryption.key.previousKubernetesSecretProperty renders
encryption.key.previousFile and mounts the whole Secret (the previous property may come and go), is
checked by the schema and the chart, guarded against extraEnv, and accepted by the binary."""
import subprocess

import yaml

from conftest import CMF
from test_chart import REQUIRED, accepted_config_keys, cmf_config, helm, leaf_keys, template, template_fails, volume

assert helm  # the fixture, imported for the tests' parameter


def test_without_it_only_the_key_property_is_mounted(helm):
    docs = template(helm, *REQUIRED)[1]
    assert "previousFile" not in cmf_config(docs)["encryption"]["key"]
    v = volume(docs, "encryption-key")
    assert [i["key"] for i in v["secret"]["items"]] == ["encryption-key"]


def test_previous_property_renders_the_file_and_mounts_the_whole_secret(helm, tmp_path):
    docs = template(helm, *REQUIRED, "--set", "encryption.key.previousKubernetesSecretProperty=previous-key")[1]
    config = cmf_config(docs)
    assert config["encryption"]["key"]["previousFile"] == "/etc/cmf/encryption-key/previous-key"
    assert config["encryption"]["key"]["file"] == "/etc/cmf/encryption-key/encryption-key"
    assert set(leaf_keys(config)) <= accepted_config_keys()
    v = volume(docs, "encryption-key")
    assert "items" not in v["secret"] and v["secret"]["optional"] is False and v["secret"]["defaultMode"] == 0o440
    # The binary accepts the rendered configuration (cmf check stops at the database, not at the config).
    path = tmp_path / "cmf.yaml"
    config["database"]["url"] = "postgresql://127.0.0.1:1/none"
    config["database"]["startupTimeoutSeconds"] = 0
    path.write_text(yaml.safe_dump(config))
    r = subprocess.run([CMF, "check", "--config", str(path)], capture_output=True, text=True, timeout=60)
    assert "configuration refused" not in r.stderr, r.stderr


def test_refusals(helm):
    err = template_fails(helm, *REQUIRED, "--set", "encryption.key.previousKubernetesSecretProperty=encryption-key")
    assert "must differ from encryption.key.kubernetesSecretProperty" in err
    err = template_fails(helm, *REQUIRED, "--set", "encryption.key.previousKubernetesSecretProperty=bad/name")
    assert "previousKubernetesSecretProperty" in err
    err = template_fails(helm, *REQUIRED, "--set", "extraEnv[0].name=CMF_ENCRYPTION_KEY_PREVIOUS_FILE",
                         "--set", "extraEnv[0].value=/x")
    assert "encryption.key.previousKubernetesSecretProperty" in err
