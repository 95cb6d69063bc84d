"""The container image as operators run it: the image `make image` built, started by podman (runc) in the
pod shape `helm template` renders for the Deployment, against the test PostgreSQL over the host network.

From the rendered manifest, not copied by hand: the image, the arguments (no command: the image's
ENTRYPOINT), the environment, the pod's and the container's security context (uid and gid, fsGroup as
a supplementary group, read-only root filesystem, every capability dropped, no privilege escalation,
the runtime's default seccomp profile), every volume mount (read-only, laid out as the kubelet lays out
Secret and ConfigMap volumes: ..data symlinked to a timestamped directory, files root:fsGroup with the
volume's mode), the probes and terminationGracePeriodSeconds.

The one deviation: on the host network the chart's fixed ports (8080 for the API, 8081 for the probes)
could be taken by other processes on the machine, so CMF_LISTEN and CMF_SERVER_PROBE_LISTEN put the two
listeners on free ports of 127.0.0.1 (a port mapping, in effect); the test checks that the rendered
configuration listens on the container ports the manifest declares.

The database role has a password, required by PostgreSQL (scram-sha-256): cmf connects only if it read
the mounted password file.
"""
import http.client
import json
import os
import re
import subprocess
import threading
import time
import uuid

import pytest
import yaml

from conftest import ROOT, KubeletSecretVolume, free_port, secret_body, wait_for

PODMAN = ["sh", os.path.join(ROOT, "tests", "image", "podman.sh")]
API = "/cmf/api/v1"
BOUND = 10  # seconds: revocation and recovery, as the chart end-to-end test (reload interval 2 s + margin)
DB_USER = "cmf_image"


def chart_image():
    """CMF_IMAGE (make image-test passes the image make image built), else cmf:<the chart's appVersion>."""
    if os.environ.get("CMF_IMAGE"):
        return os.environ["CMF_IMAGE"]
    with open(os.path.join(ROOT, "helm", "cmf", "Chart.yaml")) as f:
        return "cmf:" + str(yaml.safe_load(f)["appVersion"])


def podman(*args, check=True, timeout=120):
    r = subprocess.run(PODMAN + list(args), capture_output=True, text=True, timeout=timeout)
    if check:
        assert r.returncode == 0, "podman %s: %s" % (" ".join(args), r.stderr.strip())
    return r


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


def port_of(container, ref):
    """A probe's port (a number, or the name of one of the container's ports) as a number."""
    if isinstance(ref, int):
        return ref
    return next(p["containerPort"] for p in container["ports"] if p["name"] == ref)


class Pod:
    """The rendered Deployment's pod, run by podman: volumes under `root`, the container named `name`."""

    def __init__(self, docs, root, secrets, name):
        self.name = name
        self.cm = next(d for d in docs if d["kind"] == "ConfigMap")
        dep = next(d for d in docs if d["kind"] == "Deployment")
        self.spec = dep["spec"]["template"]["spec"]
        self.container = next(c for c in self.spec["containers"] if c["name"] == "cmf")
        self.grace = self.spec["terminationGracePeriodSeconds"]
        self.fs_group = self.spec.get("securityContext", {}).get("fsGroup")
        volumes = {v["name"]: v for v in self.spec["volumes"]}
        self.volumes = {}  # volume name -> (KubeletSecretVolume, files)
        self.mounts = []   # (host dir, container path)
        for m in self.container["volumeMounts"]:
            assert m.get("readOnly") is True, m  # every mount is read-only
            assert "subPath" not in m, m  # a subPath mount does not see ..data swaps
            v = volumes[m["name"]]
            host = os.path.join(root, m["name"])
            if "configMap" in v:
                assert v["configMap"]["name"] == self.cm["metadata"]["name"]
                files = {k: val.encode() for k, val in self.cm["data"].items()}
                mode = v["configMap"].get("defaultMode", 0o644)
            else:
                sv = v["secret"]
                data = secrets[sv["secretName"]]
                items = sv.get("items") or [{"key": k, "path": k} for k in data]
                files = {it["path"]: data[it["key"]] for it in items}
                mode = sv.get("defaultMode", 0o644)
            vol = KubeletSecretVolume(host)
            self.volumes[m["name"]] = (vol, files, mode)
            self.write(m["name"], files)
            self.mounts.append((host, m["mountPath"]))
        self.api_port, self.probe_port = free_port(), free_port()

    def write(self, volume, files):
        """(Re)write a volume as the kubelet does: a new ..data directory swapped in, root:fsGroup."""
        vol, _, mode = self.volumes[volume]
        vol.write(files, remove_links=False, mode=mode)
        if self.fs_group is not None:
            for dirpath, dirnames, filenames in os.walk(vol.path):
                for n in dirnames + filenames:
                    os.lchown(os.path.join(dirpath, n), 0, self.fs_group)

    def config(self):
        return yaml.safe_load(self.cm["data"]["cmf.yaml"])

    def security_args(self):
        """podman options for the pod's and the container's securityContext. A field this does not know
        fails the test: a new field in the chart must be carried over here, not silently dropped."""
        args = []
        pod_sc = dict(self.spec.get("securityContext", {}))
        sc = dict(self.container.get("securityContext", {}))
        for key in ("runAsUser", "runAsGroup", "runAsNonRoot"):
            if key in sc:
                pod_sc[key] = sc.pop(key)  # the container's wins
        user, group = pod_sc.pop("runAsUser", None), pod_sc.pop("runAsGroup", None)
        assert user is not None, "the chart sets no runAsUser"
        args += ["--user", "%d:%d" % (user, group if group is not None else user)]
        if pod_sc.pop("runAsNonRoot", False):
            assert user != 0
        if "fsGroup" in pod_sc:
            args += ["--group-add", str(pod_sc.pop("fsGroup"))]  # the kubelet adds it as a supplementary group
        seccomp = pod_sc.pop("seccompProfile", {"type": "RuntimeDefault"})
        assert seccomp == {"type": "RuntimeDefault"}, seccomp  # podman applies its default profile
        assert not pod_sc, "pod securityContext fields this test does not apply: %s" % pod_sc
        if sc.pop("readOnlyRootFilesystem", False):
            args += ["--read-only", "--read-only-tmpfs=false"]  # Kubernetes adds no tmpfs
        if sc.pop("allowPrivilegeEscalation", True) is False:
            args += ["--security-opt", "no-new-privileges"]
        caps = sc.pop("capabilities", {})
        args += ["--cap-drop=" + c for c in caps.pop("drop", [])]
        args += ["--cap-add=" + c for c in caps.pop("add", [])]
        assert not caps and not sc, "container securityContext fields this test does not apply: %s %s" % (caps, sc)
        return args

    def run_args(self, image_override=None):
        c = self.container
        assert c.get("command") is None  # the image's ENTRYPOINT is the binary
        args = ["run", "-d", "--name", self.name, "--pull=never", "--network=host"] + self.security_args()
        for host, path in self.mounts:
            args += ["-v", "%s:%s:ro" % (host, path)]
        for e in c.get("env", []):
            assert set(e) == {"name", "value"}, e
            args += ["-e", "%s=%s" % (e["name"], e["value"])]
        args += ["-e", "CMF_LISTEN=127.0.0.1:%d" % self.api_port,
                 "-e", "CMF_SERVER_PROBE_LISTEN=127.0.0.1:%d" % self.probe_port]
        return args + [image_override or c["image"]] + c["args"]

    def start(self):
        podman(*self.run_args())
        return self

    def host_port(self, container_port):
        ports = {p["name"]: p["containerPort"] for p in self.container["ports"]}
        if container_port == ports.get("probes"):
            return self.probe_port
        assert container_port in (ports.get("http"), ports.get("https")), (container_port, ports)
        return self.api_port

    def pid(self):
        return int(podman("inspect", "-f", "{{.State.Pid}}", self.name).stdout.strip())

    def logs(self):
        r = podman("logs", self.name, check=False)
        return r.stdout + r.stderr

    def remove(self):
        podman("rm", "-f", "-t", "0", self.name, check=False)


class Client:
    def __init__(self, port, token):
        self.port, self.token = port, token

    def request(self, method, path, body=None, token="default", port=None, timeout=30):
        conn = http.client.HTTPConnection("127.0.0.1", port or self.port, timeout=timeout)
        try:
            h = {}
            t = self.token if token == "default" else token
            if t:
                h["Authorization"] = "Bearer " + t
            if body is not None:
                body = json.dumps(body).encode()
                h["Content-Type"] = "application/json"
            conn.request(method, path, body=body, headers=h)
            r = conn.getresponse()
            data = r.read()
            return r.status, data
        finally:
            conn.close()


def ok(res, status=200):
    assert res[0] == status, res
    return res


@pytest.fixture(scope="module")
def image():
    name = chart_image()
    r = podman("image", "exists", name, check=False)
    assert r.returncode == 0, "image %s is not in .cache/podman: run `make image` first" % name
    return name


@pytest.fixture(scope="module")
def world(pg, image, tmp_path_factory):
    """A database owned by a role that needs its password, the chart rendered for it, and the Secrets."""
    db = pg.createdb()
    password = uuid.uuid4().hex
    pg.psql("CREATE ROLE %s LOGIN PASSWORD '%s'; ALTER DATABASE %s OWNER TO %s" % (DB_USER, password, db, DB_USER))
    hba = os.path.join(pg.dir, "data", "pg_hba.conf")
    with open(hba) as f:
        rules = f.read()
    with open(hba, "w") as f:  # before the cluster's trust rules: first match wins
        f.write("host all %s 127.0.0.1/32 scram-sha-256\n" % DB_USER + rules)
    pg.psql("SELECT pg_reload_conf()")
    repo, _, tag = image.rpartition(":")
    docs = render({
        "image.repository": repo, "image.tag": tag,
        "encryption.key.kubernetesSecretName": "cmf-encryption-key",
        "encryption.key.kubernetesSecretProperty": "encryption-key",
        "database.host": "127.0.0.1", "database.port": pg.port, "database.name": db,
        "database.user": DB_USER, "database.sslmode": "disable",
        "database.passwordSecret.name": "cmf-db", "database.passwordSecret.key": "password",
        "auth.adminTokenSecret.name": "cmf-admin-token",
        "replicas": 1,
    })
    token = uuid.uuid4().hex + uuid.uuid4().hex
    secrets = {
        "cmf-encryption-key": {"encryption-key": os.urandom(32)},
        "cmf-db": {"password": (password + "\n").encode()},
        "cmf-admin-token": {"token": (token + "\n").encode()},
    }
    root = str(tmp_path_factory.mktemp("pod"))
    os.chmod(root, 0o755)
    yield {"docs": docs, "secrets": secrets, "token": token, "root": root, "db": db, "image": image}
    with open(hba, "w") as f:
        f.write(rules)
    pg.psql("SELECT pg_reload_conf()")


def new_pod(world, tag):
    name = "cmf-image-test-%d-%s" % (os.getpid(), tag)
    podman("rm", "-f", "-t", "0", name, check=False)
    return Pod(world["docs"], os.path.join(world["root"], tag), world["secrets"], name)


def wait_ready(pod, client):
    """Until the rendered readiness probe answers 200, within the startup probe's budget."""
    probe = pod.container["readinessProbe"]["httpGet"]
    start = pod.container["startupProbe"]
    budget = start["periodSeconds"] * start["failureThreshold"]
    port = pod.host_port(port_of(pod.container, probe["port"]))

    def ready():
        if podman("inspect", "-f", "{{.State.Running}}", pod.name).stdout.strip() != "true":
            raise AssertionError("the container exited:\n" + pod.logs())
        try:
            return client.request("GET", probe["path"], token=None, port=port, timeout=2)[0] == 200
        except OSError:
            return False
    wait_for(ready, budget)
    return port


@pytest.fixture(scope="module")
def pod(world):
    p = new_pod(world, "main")
    p.start()
    c = Client(p.api_port, world["token"])
    try:
        wait_ready(p, c)
    except AssertionError:
        p.remove()
        raise
    yield p, c
    p.remove()


def test_the_rendered_configuration_listens_on_the_declared_container_ports(world):
    p = Pod(world["docs"], os.path.join(world["root"], "ports"), world["secrets"], "unused")
    ports = {x["name"]: x["containerPort"] for x in p.container["ports"]}
    server = p.config()["server"]
    assert server["listen"] == "0.0.0.0:%d" % ports["http"]
    assert server["probeListen"] == "0.0.0.0:%d" % ports["probes"]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert port_of(p.container, p.container[probe]["httpGet"]["port"]) == ports["probes"], probe
    assert p.config()["database"]["passwordFile"].startswith("/etc/cmf/database/")


def test_runs_with_the_charts_security_context(pod, world):
    p, _ = pod
    user = podman("image", "inspect", "-f", "{{.Config.User}}", world["image"]).stdout.strip()
    assert user.split(":")[0] not in ("", "0", "root"), user  # runAsNonRoot: the kubelet refuses root
    with open("/proc/%d/status" % p.pid()) as f:
        status = dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
    assert status["Uid"].split() == ["10001"] * 4, status["Uid"]
    assert status["Gid"].split() == ["10001"] * 4, status["Gid"]
    assert "10001" in status["Groups"].split(), status["Groups"]  # fsGroup
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(status[cap], 16) == 0, (cap, status[cap])
    assert status["NoNewPrivs"] == "1"
    assert status["Seccomp"] == "2", status["Seccomp"]  # a filter: the runtime's default profile
    with open("/proc/%d/mountinfo" % p.pid()) as f:
        mounts = {line.split()[4]: line.split()[5].split(",") for line in f}
    assert "ro" in mounts["/"], mounts["/"]
    for _, path in p.mounts:
        assert "ro" in mounts[path], (path, mounts[path])
    # and from inside, as the container's own user
    r = podman("exec", p.name, "sh", "-c", ": > /usr/local/bin/written; : > /etc/cmf/auth/written", check=False)
    assert r.returncode != 0 and "Read-only file system" in r.stderr, r


def test_ready_on_the_probe_port_and_the_api_port(pod):
    p, c = pod
    probe = p.container["readinessProbe"]["httpGet"]["path"]
    live = p.container["livenessProbe"]["httpGet"]["path"]
    assert c.request("GET", probe, token=None, port=p.probe_port)[0] == 200
    assert c.request("GET", live, token=None, port=p.probe_port)[0] == 200
    assert c.request("GET", "/readyz", token=None)[0] == 200
    # the probe listener serves the probes only
    assert c.request("GET", API + "/secrets", port=p.probe_port)[0] == 404
    assert c.request("GET", API + "/secrets", token=None)[0] == 401  # the chart's auth is on


def test_create_and_read_a_secret(pod):
    _, c = pod
    ok(c.request("POST", API + "/secrets", secret_body("image-secret", {"sasl.jaas.config": "image-plaintext"})))
    got = json.loads(ok(c.request("GET", API + "/secrets/image-secret"))[1])
    assert got["spec"]["data"] == {"sasl.jaas.config": "****"} and got["status"]["version"] == "1"


def build_world(c):
    def body(kind, name, spec):
        return {"apiVersion": "cmf.confluent.io/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}
    ok(c.request("POST", API + "/secrets", secret_body("kafka-creds", {"sasl.jaas.config": "jaas-image"})))
    ok(c.request("POST", API + "/environments", {"name": "prod", "kubernetesNamespace": "flink"}))
    ok(c.request("POST", API + "/environments/prod/secret-mappings",
                 body("EnvironmentSecretMapping", "kafka-conn", {"secretName": "kafka-creds"})))
    ok(c.request("POST", API + "/secrets", secret_body("sr-creds", {"basic.auth.user.info": "sr-user:sr-pass"})))
    ok(c.request("POST", API + "/environments/prod/secret-mappings",
                 body("EnvironmentSecretMapping", "sr-conn", {"secretName": "sr-creds"})))
    ok(c.request("POST", API + "/catalogs/kafka", body("KafkaCatalog", "main", {"srInstance": {
        "connectionConfig": {"schema.registry.url": "http://sr:8081"}, "connectionSecretId": "sr-conn"}})))
    ok(c.request("POST", API + "/catalogs/kafka/main/databases", body("KafkaDatabase", "orders", {"kafkaCluster": {
        "connectionConfig": {"bootstrap.servers": "b:9092"}, "connectionSecretId": "kafka-conn"}})))


RESOLVE = API + "/environments/prod/client-configs/main/orders"


def test_resolve_a_client_configuration(pod):
    _, c = pod
    build_world(c)
    got = json.loads(ok(c.request("GET", RESOLVE))[1])
    assert got["kafka"] == {"bootstrap.servers": "b:9092", "sasl.jaas.config": "jaas-image"}, got
    assert got["schemaRegistry"]["basic.auth.user.info"] == "sr-user:sr-pass", got


def example_security_args(spec, container):
    """podman options for k8s/examples/deployment.yaml's pod and container securityContext (as Pod does
    for the chart's); a field this does not know fails the test."""
    pod_sc, sc = dict(spec["securityContext"]), dict(container["securityContext"])
    for key in ("runAsUser", "runAsGroup", "runAsNonRoot"):
        if key in sc:
            pod_sc[key] = sc.pop(key)
    user, group = pod_sc.pop("runAsUser"), pod_sc.pop("runAsGroup", None)
    assert user != 0 and pod_sc.pop("runAsNonRoot") is True
    args = ["--user", "%d:%d" % (user, group if group is not None else user),
            "--group-add", str(pod_sc.pop("fsGroup"))]
    assert pod_sc.pop("seccompProfile") == {"type": "RuntimeDefault"}
    assert not pod_sc, pod_sc
    assert sc.pop("readOnlyRootFilesystem") is True and sc.pop("allowPrivilegeEscalation") is False
    args += ["--read-only", "--read-only-tmpfs=false", "--security-opt", "no-new-privileges"]
    caps = sc.pop("capabilities")
    args += ["--cap-drop=" + c for c in caps.pop("drop")]
    assert not caps and not sc, (caps, sc)
    return args, user, spec["securityContext"]["fsGroup"]


def test_agent_once_in_the_examples_pod_shape(pod, world, tmp_path):
    """k8s/examples/deployment.yaml's `cmf agent --once` init container, run from the image as Flink's
    uid 9999 with the example's security context, the token as a Secret volume and the config volume
    group-owned by the fsGroup (as the kubelet prepares an emptyDir): the file it writes holds the
    resolution's bytes, mode 0440, group fsGroup, so the job's containers (same fsGroup) can read it."""
    p, c = pod
    if c.request("GET", RESOLVE)[0] != 200:
        build_world(c)
    token = json.loads(ok(c.request("POST", API + "/tokens", {
        "apiVersion": "cmf.confluent.io/v1", "kind": "ApiToken", "metadata": {"name": "image-agent"},
        "spec": {"role": "environment-reader", "environments": ["prod"]}}))[1])["status"]["token"]
    with open(os.path.join(ROOT, "k8s", "examples", "deployment.yaml")) as f:
        spec = yaml.safe_load(f)["spec"]["template"]["spec"]
    init = next(x for x in spec["initContainers"] if x["name"] == "cmf-agent-init")
    args, uid, fs_group = example_security_args(spec, init)
    mounts = {m["name"]: m for m in init["volumeMounts"]}
    token_dir = KubeletSecretVolume(str(tmp_path / "token"))
    token_dir.write({"token": (token + "\n").encode()}, mode=0o440)
    for dirpath, dirnames, filenames in os.walk(token_dir.path):
        for n in dirnames + filenames:
            os.lchown(os.path.join(dirpath, n), 0, fs_group)
    conf = tmp_path / "conf"
    conf.mkdir()
    os.chown(conf, 0, fs_group)
    os.chmod(conf, 0o2777)  # an emptyDir: world-writable, setgid to the fsGroup
    a = list(init["args"])
    a[a.index("--url") + 1] = "http://127.0.0.1:%d" % p.api_port
    i = a.index("--ca-file")  # cmf's plain-HTTP test pod: no CA to give
    del a[i:i + 2]
    r = podman("run", "--rm", "--pull=never", "--network=host", *args,
               "-v", "%s:%s:ro" % (token_dir.path, mounts["cmf-job-token"]["mountPath"]),
               "-v", "%s:%s" % (conf, mounts["cmf-config"]["mountPath"]), world["image"], *a, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    out = conf / os.path.relpath(a[a.index("--out") + 1], mounts["cmf-config"]["mountPath"])
    st = os.stat(out)
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (uid, fs_group, 0o440), st
    fmt = a[a.index("--format") + 1]
    assert out.read_bytes() == ok(c.request("GET", RESOLVE + "?format=" + fmt, token=token))[1]
    assert token not in r.stdout + r.stderr and b"jaas-image" not in (r.stdout + r.stderr).encode()


def test_key_revocation_and_restore_through_the_mounted_directory(pod, pg, world):
    p, c = pod
    _, files, _ = p.volumes["encryption-key"]
    before = pg.dump(world["db"], audit=False)
    p.write("encryption-key", {})  # the Secret lost its property: ..data swapped to a directory without it
    wait_for(lambda: c.request("GET", "/readyz", token=None, port=p.probe_port)[0] == 503, BOUND)
    assert c.request("GET", "/readyz", token=None)[0] == 503
    st, body = c.request("GET", API + "/secrets/image-secret")
    assert st == 503 and b"encryption key unavailable" in body, (st, body)
    assert c.request("GET", RESOLVE)[0] == 503
    assert pg.dump(world["db"], audit=False) == before
    assert c.request("GET", "/healthz", token=None, port=p.probe_port)[0] == 200  # not restarted

    p.write("encryption-key", files)  # restored
    wait_for(lambda: c.request("GET", "/readyz", token=None, port=p.probe_port)[0] == 200, BOUND)
    ok(c.request("GET", API + "/secrets/image-secret"))
    ok(c.request("GET", RESOLVE))
    log = p.logs()
    assert "encryption key unavailable" in log and "encryption key restored" in log, log[-3000:]
    assert "image-plaintext" not in log and "jaas-image" not in log


SLOW_AUDIT = """
CREATE FUNCTION test_slow_audit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('test.slept', true) IS DISTINCT FROM 'yes' THEN
        PERFORM set_config('test.slept', 'yes', true);
        PERFORM pg_sleep(2);
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER test_slow BEFORE INSERT ON cmf_audit_events FOR EACH ROW
    WHEN (NEW.action = 'client-config.read') EXECUTE FUNCTION test_slow_audit();
"""


def test_sigterm_drains_and_exits_0_within_the_grace_period(pod, pg, world):
    """What the kubelet does at a pod's deletion: SIGTERM to the container's PID 1 (cmf itself), SIGKILL
    after terminationGracePeriodSeconds. A resolution in flight (its audit row held back 2 s by a slow
    trigger) is answered in full, and cmf exits 0 well before the SIGKILL."""
    p, c = pod
    pg.psql(SLOW_AUDIT, world["db"])
    out = {}

    def resolve():
        try:
            out["r"] = c.request("GET", RESOLVE, timeout=p.grace)
        except Exception as e:  # noqa: BLE001
            out["r"] = e
    t = threading.Thread(target=resolve)
    t.start()
    # In flight for sure before SIGTERM: its audit batch is inside the slow trigger's pg_sleep.
    end = time.monotonic() + 10
    while pg.psql("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND "
                  "query LIKE '%%cmf_audit_events%%' AND wait_event = 'PgSleep'", world["db"]) == "0":
        assert time.monotonic() < end, "the resolution's audit row never reached the slow trigger"
        time.sleep(0.05)
    assert "r" not in out, "the resolution was answered before its audit row was committed"
    t0 = time.monotonic()
    stop = podman("stop", "-t", str(p.grace), p.name, timeout=p.grace + 30)
    took = time.monotonic() - t0
    t.join(timeout=p.grace)
    pg.psql("DROP TRIGGER test_slow ON cmf_audit_events; DROP FUNCTION test_slow_audit()", world["db"])
    code = podman("inspect", "-f", "{{.State.ExitCode}}", p.name).stdout.strip()
    assert code == "0", "exit status %s after SIGTERM (%s):\n%s" % (code, stop.stderr, p.logs()[-3000:])
    assert took < p.grace, "SIGTERM took %.1f s, the grace period is %d s" % (took, p.grace)
    assert not isinstance(out["r"], Exception), out["r"]
    assert out["r"][0] == 200 and b"jaas-image" in out["r"][1], out["r"]


def debian_upstream(version):
    """'1:3.0.22-1~deb12u2' -> '3.0.22'; '0.2.5-1' -> '0.2.5'."""
    v = version.split(":", 1)[-1].rsplit("-", 1)[0]
    return re.split(r"[+~]", v)[0]


def test_cmf_version_names_the_debian_packages_in_the_image(image):
    line = podman("run", "--rm", "--pull=never", "--network=none", image, "version").stdout.strip()
    m = re.fullmatch(r"cmf (\S+) \(OpenSSL (\S+), libpq (\d+), libmicrohttpd (\S+), jansson (\S+)\)", line)
    assert m, line
    with open(os.path.join(ROOT, "helm", "cmf", "Chart.yaml")) as f:
        assert m.group(1) == str(yaml.safe_load(f)["appVersion"]), line  # the chart's default image tag
    pkgs = {"libssl3": m.group(2), "libpq5": None, "libmicrohttpd12": m.group(4), "libjansson4": m.group(5)}
    q = podman("run", "--rm", "--pull=never", "--network=none", "--entrypoint", "dpkg-query", image,
               "-W", "-f", "${Package} ${Version}\\n", *pkgs).stdout
    installed = dict(line.split(" ", 1) for line in q.strip().splitlines())
    assert set(installed) == set(pkgs), q
    libpq = int(m.group(3))  # PQlibVersion: major * 10000 + minor
    pkgs["libpq5"] = "%d.%d" % (libpq // 10000, libpq % 10000)
    for pkg, shown in pkgs.items():
        assert debian_upstream(installed[pkg]) == shown, (pkg, installed[pkg], line)


def test_debian_upstream():
    assert debian_upstream("3.0.22-1~deb12u2") == "3.0.22"
    assert debian_upstream("15.20-0+deb12u1") == "15.20"
    assert debian_upstream("1:2.14-2") == "2.14"
    assert debian_upstream("0.9.75-6") == "0.9.75"
