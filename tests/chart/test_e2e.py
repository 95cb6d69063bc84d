"""Chart-driven end-to-end: render helm/cmf with the real helm binary, take the ConfigMap's configuration
and the Deployment's volumes, mounts and arguments from the rendered YAML, lay the volumes out as the
kubelet does (..data symlink to a timestamped directory), run build/cmf with them against the test
PostgreSQL, and drive it over HTTP — including the key revocation drill."""
import os
import subprocess

import yaml

from conftest import CMF, ROOT, Cmf, KubeletSecretVolume, wait_for

BOUND = 10  # seconds: the bound for revocation and recovery


def helm_bin():
    out = subprocess.run(["sh", os.path.join(ROOT, "tests", "helm.sh")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def render(values):
    args = [helm_bin(), "template", "cmf", os.path.join(ROOT, "helm", "cmf")]
    for k, v in values.items():
        args += ["--set-string" if isinstance(v, str) else "--set", "%s=%s" % (k, v)]
    out = subprocess.run(args, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


class Pod:
    """What the kubelet would give the cmf container of the rendered Deployment, under a temp root."""

    def __init__(self, docs, root, secrets):
        self.root = root
        cm = next(d for d in docs if d["kind"] == "ConfigMap")
        dep = next(d for d in docs if d["kind"] == "Deployment")
        spec = dep["spec"]["template"]["spec"]
        self.container = next(c for c in spec["containers"] if c["name"] == "cmf")
        volumes = {v["name"]: v for v in spec["volumes"]}
        self.mounts = {m["mountPath"]: m for m in self.container["volumeMounts"]}
        self.volumes = {}
        for path, m in self.mounts.items():
            assert m.get("readOnly") is True, m  # every mount is read-only
            v = volumes[m["name"]]
            vol = KubeletSecretVolume(self.host_path(path))
            if "configMap" in v:
                assert v["configMap"]["name"] == cm["metadata"]["name"]
                files = {k: self.map_config(val).encode() for k, val in cm["data"].items()}
            else:
                sv = v["secret"]
                assert sv["defaultMode"] == 0o440
                data = secrets[sv["secretName"]]
                items = sv.get("items") or [{"key": k, "path": k} for k in data]
                files = {it["path"]: data[it["key"]] for it in items}
            vol.write(files)
            self.volumes[v["name"]] = (vol, files)

    def host_path(self, container_path):
        """Where a path inside the container lives under the temp root (via the mount that holds it)."""
        for mp in sorted(self.mounts, key=len, reverse=True):
            if container_path == mp or container_path.startswith(mp + "/"):
                return os.path.join(self.root, container_path.lstrip("/"))
        return container_path

    def map_config(self, text):
        """The rendered cmf.yaml with every path that lies in a mount mapped under the temp root."""
        cfg = yaml.safe_load(text)

        def walk(node):
            if isinstance(node, dict):
                return {k: walk(v) for k, v in node.items()}
            if isinstance(node, str) and node.startswith("/"):
                return self.host_path(node)
            return node
        return yaml.safe_dump(walk(cfg))

    def argv(self):
        assert self.container.get("command") is None  # the image's ENTRYPOINT is the binary
        return [CMF] + [self.host_path(a) if a.startswith("/") else a for a in self.container["args"]]


def chart_values(pg, db):
    return {
        "encryption.key.kubernetesSecretName": "cmf-encryption-key",
        "encryption.key.kubernetesSecretProperty": "encryption-key",
        "database.host": "127.0.0.1",
        "database.port": pg.port,
        "database.name": db,
        "database.user": "postgres",
        "database.sslmode": "disable",
        "database.passwordSecret.name": "cmf-db",
        "database.passwordSecret.key": "password",
        "auth.adminTokenSecret.name": "cmf-admin-token",
        "replicas": 1,
    }


def test_chart_rendered_pod_serves_and_survives_key_revocation(workdir, pg, db):
    key = os.urandom(32)
    c = Cmf(workdir, pg, db, key=False, name="chart")  # its admin token goes into the chart's token Secret
    docs = render(chart_values(pg, db))
    pod = Pod(docs, os.path.join(workdir, "root"), {
        "cmf-encryption-key": {"encryption-key": key},
        # the test cluster trusts local connections, so the password is read but not needed
        "cmf-db": {"password": b"not-used-by-trust-auth\n"},
        "cmf-admin-token": {"token": (c.admin_token + "\n").encode()},
    })
    # Only the listen address is the test's: the chart always listens on 0.0.0.0:8080 in its pod.
    c.env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "CMF_LISTEN": "127.0.0.1:%d" % c.port}
    try:
        c.start(argv=pod.argv())
        log = c.log()
        assert "encryption enabled: AES-256-GCM" in log and "watching the encryption key file" in log, log
        r = c.create_secret("chart-secret", {"sasl.jaas.config": "chart-e2e-plaintext"})
        assert r.status == 200, r
        r = c.get_secret("chart-secret")
        assert r.status == 200 and r.json()["spec"]["data"] == {"sasl.jaas.config": "****"}
        assert c.request("GET", "/readyz").status == 200
        assert c.request("GET", "/cmf/api/v1/secrets", token=None).status == 401  # the chart's auth is on

        # The drill: the Secret loses its property (..data swapped to a directory without it).
        vol, files = pod.volumes["encryption-key"]
        before = pg.dump(db, audit=False)
        vol.write({}, remove_links=False)
        wait_for(lambda: c.request("GET", "/readyz").status == 503, BOUND)
        r = c.get_secret("chart-secret")
        assert r.status == 503 and r.error() == "encryption key unavailable"
        assert c.create_secret("chart-secret-2", {"a": "b"}).status == 503
        assert pg.dump(db, audit=False) == before

        vol.write(files)  # restored
        wait_for(lambda: c.request("GET", "/readyz").status == 200, BOUND)
        r = c.get_secret("chart-secret")
        assert r.status == 200 and r.json()["status"]["version"] == "1"
        assert "chart-e2e-plaintext" not in c.log()
    finally:
        if c.proc and c.proc.poll() is None:
            assert c.stop() == 0
