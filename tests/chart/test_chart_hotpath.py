"""The chart's values for issue 11's settings: database.listen (the LISTEN session past a transaction-pooling
proxy), cache.enabled and audit.queueCapacity, each rendered into cmf's configuration only when it differs
from the binary's default (rendered by the real helm binary, as in test_chart.py)."""
import subprocess

import yaml

from conftest import CMF
# helm: test_chart's module-scoped fixture, used by the tests below.
from test_chart import REQUIRED, accepted_config_keys, cmf_config, helm, leaf_keys, template, template_fails

assert helm  # the fixture, imported for the tests' parameter


def test_defaults_render_nothing_new(helm):
    config = cmf_config(template(helm, *REQUIRED)[1])
    assert "listenUrl" not in config["database"]
    assert "cache" not in config and "audit" not in config


def test_listen_host_renders_the_listen_url(helm):
    config = cmf_config(template(helm, *REQUIRED, "--set", "database.host=pgbouncer.db",
                                 "--set", "database.listen.host=postgres.db", "--set", "database.listen.port=5433")[1])
    url, listen = config["database"]["url"], config["database"]["listenUrl"]
    assert "host=pgbouncer.db" in url and "port=5432" in url
    assert "host=postgres.db" in listen and "port=5433" in listen
    # the same database, user and TLS mode: only where the session connects differs
    assert url.split(" ", 2)[2] == listen.split(" ", 2)[2]
    assert set(leaf_keys(config)) <= accepted_config_keys()


def test_cache_off_and_queue_capacity_are_rendered(helm):
    config = cmf_config(template(helm, *REQUIRED, "--set", "cache.enabled=false",
                                 "--set", "audit.queueCapacity=200000")[1])
    assert config["cache"] == {"enabled": False}
    assert config["audit"] == {"queueCapacity": 200000}
    assert set(leaf_keys(config)) <= accepted_config_keys()


def test_bad_values_are_refused_by_the_schema(helm):
    for args in (["--set", "audit.queueCapacity=100"], ["--set", "audit.queueCapacity=2000000"],
                 ["--set", "database.listen.port=0"], ["--set", "database.listen.host=a b"],
                 ["--set", "cache.enabled=maybe"]):
        err = template_fails(helm, *REQUIRED, *args)
        assert "values don't meet the specifications of the schema" in err or "schema" in err, (args, err)


def test_the_binary_accepts_the_rendered_settings(helm, tmp_path):
    config = cmf_config(template(helm, *REQUIRED, "--set", "database.listen.host=postgres.db",
                                 "--set", "cache.enabled=false", "--set", "audit.queueCapacity=4096")[1])
    path = tmp_path / "cmf.yaml"
    # Only the keys under test, with the files the binary would otherwise look for left out.
    path.write_text(yaml.safe_dump({"database": {"url": config["database"]["url"], "startupTimeoutSeconds": 0,
                                                 "listenUrl": config["database"]["listenUrl"]},
                                    "cache": config["cache"], "audit": config["audit"],
                                    "encryption": {"enabled": False}, "auth": {"enabled": False}}))
    out = subprocess.run([CMF, "check", "--config", str(path)], capture_output=True, text=True, timeout=60)
    # The configuration is accepted; what fails is reaching a database that does not exist here.
    assert "unknown key" not in out.stderr and "expected" not in out.stderr, out.stderr
    assert "database" in out.stderr, out.stderr
