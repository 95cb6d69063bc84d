"""The chart's metrics values: metrics.enabled mapped to cmf's setting, and the metrics.serviceMonitor toggle
rendering a Prometheus Operator ServiceMonitor that scrapes /metrics with a metrics-reader token from a
Secret (rendered by the real helm binary, as in test_chart.py); then a pod rendered with it, run and
scraped the way that ServiceMonitor says."""
import os
import subprocess

import pytest
import yaml

from conftest import Cmf
# helm: test_chart's module-scoped fixture, used by the tests below.
from test_chart import (CI_VALUES, CHART, MTLS, NAMESPACE, NO_AUTH, REQUIRED, TLS, accepted_config_keys, cmf_config,
                        helm, kinds, leaf_keys, names_field, notes, one, template, template_fails)
from test_e2e import Pod, chart_values, helm_bin

TOKEN_SECRET = "cmf-metrics-token"
SM = ["--set", "metrics.serviceMonitor.enabled=true", "--set", f"metrics.serviceMonitor.tokenSecret.name={TOKEN_SECRET}"]


def service_monitor(docs):
    sm = one(docs, "ServiceMonitor")
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    return sm


def test_no_service_monitor_and_binary_default_by_default(helm):
    _, docs = template(helm, *REQUIRED)
    assert not kinds(docs, "ServiceMonitor")
    # metrics.enabled=true is the binary's default: the configuration says nothing.
    assert "metrics" not in cmf_config(docs)


def test_metrics_disabled_is_rendered_into_the_config(helm):
    _, docs = template(helm, *REQUIRED, "--set", "metrics.enabled=false")
    config = cmf_config(docs)
    assert config["metrics"] == {"enabled": False}
    assert set(leaf_keys(config)) <= accepted_config_keys()
    assert "metrics.enabled" in accepted_config_keys()


def test_service_monitor_scrapes_metrics_with_the_token_secret(helm):
    text, docs = template(helm, *REQUIRED, *SM, "--set", "metrics.serviceMonitor.labels.release=kps")
    sm = service_monitor(docs)
    svc = one(docs, "Service")
    assert sm["metadata"]["namespace"] == NAMESPACE and sm["metadata"]["name"] == "cmf"
    assert sm["metadata"]["labels"]["release"] == "kps"
    assert sm["metadata"]["labels"]["app.kubernetes.io/instance"] == "cmf"
    assert sm["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    # It selects the Service (by the Service's labels) and names one of its ports.
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert sm["spec"]["endpoints"] == [{
        "port": "http", "path": "/metrics", "interval": "15s", "scrapeTimeout": "10s",
        "authorization": {"type": "Bearer", "credentials": {"name": TOKEN_SECRET, "key": "token"}},
    }]
    assert sm["spec"]["endpoints"][0]["port"] in [p["name"] for p in svc["spec"]["ports"]]
    # The chart creates no Secret, and the token Secret reaches no pod: only the ServiceMonitor names it.
    assert not kinds(docs, "Secret")
    assert text.count(TOKEN_SECRET) == 1
    assert "secretKeyRef" not in text


def test_service_monitor_values(helm):
    _, docs = template(helm, *REQUIRED, *SM, "--set", "metrics.serviceMonitor.interval=30s",
                       "--set", "metrics.serviceMonitor.scrapeTimeout=5s",
                       "--set", "metrics.serviceMonitor.tokenSecret.key=metrics")
    ep = service_monitor(docs)["spec"]["endpoints"][0]
    assert ep["interval"] == "30s" and ep["scrapeTimeout"] == "5s"
    assert ep["authorization"]["credentials"] == {"name": TOKEN_SECRET, "key": "metrics"}


@pytest.mark.parametrize("extra", [TLS, MTLS], ids=["tls", "mtls"])
def test_service_monitor_with_tls(helm, extra):
    _, docs = template(helm, *REQUIRED, *extra, *SM, "--set", "metrics.serviceMonitor.tlsConfig.serverName=cmf.flink.svc",
                       "--set", "metrics.serviceMonitor.tlsConfig.ca.secret.name=cmf-ca",
                       "--set", "metrics.serviceMonitor.tlsConfig.ca.secret.key=ca.crt")
    ep = service_monitor(docs)["spec"]["endpoints"][0]
    assert ep["port"] == "https" and ep["scheme"] == "https"
    assert ep["tlsConfig"] == {"serverName": "cmf.flink.svc", "ca": {"secret": {"name": "cmf-ca", "key": "ca.crt"}}}
    # Without TLS the tlsConfig is not used.
    _, docs = template(helm, *REQUIRED, *SM, "--set", "metrics.serviceMonitor.tlsConfig.serverName=x")
    ep = service_monitor(docs)["spec"]["endpoints"][0]
    assert "scheme" not in ep and "tlsConfig" not in ep


def test_service_monitor_without_auth_sends_no_token(helm):
    _, docs = template(helm, *NO_AUTH, "--set", "metrics.serviceMonitor.enabled=true")
    assert "authorization" not in service_monitor(docs)["spec"]["endpoints"][0]


def test_service_monitor_needs_the_token_secret(helm):
    err = template_fails(helm, *REQUIRED, "--set", "metrics.serviceMonitor.enabled=true")
    assert ("metrics.serviceMonitor.enabled is true and auth.enabled is true, so "
            "metrics.serviceMonitor.tokenSecret.name must name the Kubernetes Secret holding a metrics-reader "
            "token for Prometheus") in err, err
    assert "kubectl create secret generic cmf-metrics-token --from-file=token=metrics.token" in err


def test_service_monitor_needs_metrics(helm):
    err = template_fails(helm, *REQUIRED, *SM, "--set", "metrics.enabled=false")
    assert "metrics.serviceMonitor.enabled is true but metrics.enabled is false" in err, err


@pytest.mark.parametrize("args, field", [
    (["--set-string", "metrics.enabled=yes"], "metrics.enabled"),
    (["--set-string", "metrics.serviceMonitor.enabled=true"], "metrics.serviceMonitor.enabled"),
    (["--set", "metrics.serviceMonitor.interval=15 seconds"], "metrics.serviceMonitor.interval"),
    (["--set", "metrics.serviceMonitor.scrapeTimeout=10"], "metrics.serviceMonitor.scrapeTimeout"),
    (["--set", "metrics.serviceMonitor.tokenSecret.name=Not_A_Name"], "metrics.serviceMonitor.tokenSecret.name"),
    (["--set", "metrics.serviceMonitor.tokenSecret.key=../token"], "metrics.serviceMonitor.tokenSecret.key"),
    (["--set", "metrics.serviceMonitor.bearerTokenFile=/t"], "bearerTokenFile"),
    (["--set", "metrics.path=/m"], "path"),
])
def test_wrong_metrics_values_are_schema_errors(helm, args, field):
    err = template_fails(helm, *REQUIRED, *args)
    assert "schema" in err, err
    assert names_field(err, field), err


def test_extra_env_cannot_override_metrics_enabled(helm):
    err = template_fails(helm, *REQUIRED, "--set", "extraEnv[0].name=CMF_METRICS_ENABLED",
                         "--set-string", "extraEnv[0].value=false")
    assert "CMF_METRICS_ENABLED" in err and "metrics.enabled" in err, err


def test_lint_strict_passes_with_a_service_monitor(helm):
    out = helm("lint", "--strict", CHART, "-f", CI_VALUES, *SM)
    assert out.returncode == 0, out.stdout + out.stderr


def test_notes_explain_the_metrics_token(helm):
    text = " ".join(notes(helm, *REQUIRED, *SM).split())
    assert "Prometheus metrics are served at /metrics, to admin and metrics-reader tokens only." in text
    assert f'ServiceMonitor cmf has Prometheus scrape them every 15s with the metrics-reader token in Secret "{TOKEN_SECRET}"' in text
    assert '"spec":{"role":"metrics-reader"}' in text
    assert f"kubectl create secret generic {TOKEN_SECRET} --from-file=token=metrics.token -n {NAMESPACE}" in text
    text = " ".join(notes(helm, *REQUIRED).split())
    assert "Prometheus metrics are served at /metrics" in text and "ServiceMonitor" not in text
    text = " ".join(notes(helm, *REQUIRED, "--set", "metrics.enabled=false").split())
    assert "Prometheus metrics are OFF (metrics.enabled=false): /metrics answers 404." in text
    text = " ".join(notes(helm, *NO_AUTH, "--set", "metrics.serviceMonitor.enabled=true").split())
    assert "ServiceMonitor cmf has Prometheus scrape them every 15s." in text


def test_scrape_as_the_service_monitor_says(workdir, pg, db):
    """The rendered pod, run: a metrics-reader token read from the Secret the ServiceMonitor names scrapes
    the endpoint's path; and the same chart with metrics.enabled=false answers 404 there."""
    key = os.urandom(32)
    c = Cmf(workdir, pg, db, key=False, name="chart-metrics")
    args = [helm_bin(), "template", "cmf", CHART, *SM]
    for k, v in chart_values(pg, db).items():
        args += ["--set-string" if isinstance(v, str) else "--set", "%s=%s" % (k, v)]
    out = subprocess.run(args, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    docs = [d for d in yaml.safe_load_all(out.stdout) if d]
    ep = next(d for d in docs if d["kind"] == "ServiceMonitor")["spec"]["endpoints"][0]
    assert ep["authorization"]["credentials"] == {"name": TOKEN_SECRET, "key": "token"}
    pod = Pod(docs, os.path.join(workdir, "root"), {
        "cmf-encryption-key": {"encryption-key": key},
        "cmf-db": {"password": b"not-used-by-trust-auth\n"},
        "cmf-admin-token": {"token": (c.admin_token + "\n").encode()},
    })
    c.env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "CMF_LISTEN": "127.0.0.1:%d" % c.port}
    try:
        c.start(argv=pod.argv())
        r = c.request("POST", "/cmf/api/v1/tokens", {"apiVersion": "cmf.confluent.io/v1", "kind": "ApiToken",
                                                    "metadata": {"name": "prometheus"},
                                                    "spec": {"role": "metrics-reader"}})
        assert r.status == 200, r
        token = r.json()["status"]["token"]  # what the Secret holds; Prometheus sends it as a bearer token
        r = c.request("GET", ep["path"], token=token)
        assert r.status == 200 and r.headers["content-type"].startswith("text/plain; version=0.0.4"), r
        assert b"cmf_http_requests_total" in r.body
        assert c.request("GET", ep["path"], token=None).status == 401
    finally:
        if c.proc and c.proc.poll() is None:
            assert c.stop() == 0
