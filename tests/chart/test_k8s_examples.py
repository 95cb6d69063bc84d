"""k8s/examples/: the FlinkDeployment and the plain Deployment that give a job its configuration with
`cmf agent`. `kubectl --dry-run=client` needs an API server, which the test machines lack, so the
manifests are parsed (python3-yaml) and the fields that matter are checked: the in-memory config volume
mounted read-only into the job's containers, the token from a Secret volume and never from the
environment, the --once init container before the sidecar and the job, the security contexts, and that
the agent's arguments are ones the real binary accepts. The chart's NOTES explain the job token."""
import os
import subprocess

import pytest
import yaml

from test_chart import REQUIRED, helm, notes  # noqa: F401  (helm: the module's fixture)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES = os.path.join(ROOT, "k8s", "examples")
CMF = os.path.join(ROOT, "build", "cmf")
FLINK_UID = 9999


def load(name):
    with open(os.path.join(EXAMPLES, name)) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    assert len(docs) == 1, name
    return docs[0]


def pod_spec(doc):
    if doc["kind"] == "FlinkDeployment":
        assert doc["apiVersion"] == "flink.apache.org/v1beta1"
        # The operator applies the top-level podTemplate to the JobManager and the TaskManagers; a
        # per-role podTemplate would replace parts of it, so the example has none.
        assert "podTemplate" not in doc["spec"].get("jobManager", {})
        assert "podTemplate" not in doc["spec"].get("taskManager", {})
        return doc["spec"]["podTemplate"]["spec"]
    assert doc["kind"] == "Deployment" and doc["apiVersion"] == "apps/v1"
    assert doc["spec"]["selector"]["matchLabels"].items() <= doc["spec"]["template"]["metadata"]["labels"].items()
    return doc["spec"]["template"]["spec"]


def arg(c, flag):
    a = c["args"]
    assert a.count(flag) == 1, (c["name"], flag)
    return a[a.index(flag) + 1]


def is_agent(c):
    return c.get("args", [])[:1] == ["agent"]


def mount_of(c, path):
    """The volume mount of container c under which `path` lies (the longest match)."""
    found = [m for m in c.get("volumeMounts", []) if path.startswith(m["mountPath"].rstrip("/") + "/")]
    assert found, (c["name"], path)
    return max(found, key=lambda m: len(m["mountPath"]))


def volume(spec, name):
    v = [v for v in spec["volumes"] if v["name"] == name]
    assert len(v) == 1, name
    return v[0]


EXAMPLE_FILES = ["flink-deployment.yaml", "deployment.yaml"]


@pytest.fixture(params=EXAMPLE_FILES)
def example(request):
    doc = load(request.param)
    return request.param, doc, pod_spec(doc)


def test_init_container_runs_once_before_the_sidecar_and_the_job(example):
    name, doc, spec = example
    inits = spec["initContainers"]
    agents = [c for c in inits if is_agent(c)]
    assert [c["name"] for c in agents] == [c["name"] for c in inits[:2]], name  # the agents come first
    once, sidecar = agents
    assert "--once" in once["args"] and "restartPolicy" not in once, name
    # the native sidecar: an init container that keeps running, started after the --once one
    assert sidecar.get("restartPolicy") == "Always" and "--once" not in sidecar["args"], name
    assert not any(is_agent(c) for c in spec["containers"]), name
    for c in agents:
        assert c["image"].startswith("cmf:") or "/cmf:" in c["image"]
    if doc["kind"] == "FlinkDeployment":
        assert [c["name"] for c in spec["containers"]] == ["flink-main-container"]


def test_agents_write_into_the_in_memory_volume_the_job_mounts_read_only(example):
    name, doc, spec = example
    agents = [c for c in spec["initContainers"] if is_agent(c)]
    outs = set()
    for c in agents:
        out = arg(c, "--out")
        m = mount_of(c, out)
        assert not m.get("readOnly", False), (name, c["name"])  # the agent writes there
        assert "emptyDir" in volume(spec, m["name"]), name
        assert volume(spec, m["name"])["emptyDir"].get("medium") == "Memory", name
        outs.add((m["name"], os.path.relpath(out, m["mountPath"])))
        mode = arg(c, "--mode") if "--mode" in c["args"] else "0440"
        assert int(mode, 8) == 0o440, (name, mode)
    assert len(outs) == 1, outs  # init container and sidecar write the same file
    config_volume = outs.pop()[0]
    job = [c for c in spec["containers"]]
    for c in job:
        mounts = [m for m in c.get("volumeMounts", []) if m["name"] == config_volume]
        assert len(mounts) == 1 and mounts[0]["readOnly"] is True, (name, c["name"])
        # the job's arguments (if any) point into that mount
        for a in c.get("args", []) + doc["spec"].get("job", {}).get("args", []):
            if a.endswith(".properties"):
                assert a.startswith(mounts[0]["mountPath"] + "/"), a


def test_token_comes_from_a_secret_volume_never_the_environment(example):
    name, doc, spec = example
    token_volumes = set()
    for c in spec["initContainers"]:
        if not is_agent(c):
            continue
        m = mount_of(c, arg(c, "--token-file"))
        assert m["readOnly"] is True, (name, c["name"])
        v = volume(spec, m["name"])
        assert "secret" in v and v["secret"]["secretName"], name
        assert v["secret"].get("defaultMode", 0o644) & 0o007 == 0, name  # not world-readable
        token_volumes.add(m["name"])
    assert len(token_volumes) == 1
    for c in spec["initContainers"] + spec["containers"]:
        assert "envFrom" not in c, (name, c["name"])
        for e in c.get("env", []):
            assert "valueFrom" not in e and "token" not in e["name"].lower(), (name, c["name"], e)
        if not is_agent(c):  # the job itself never sees the token
            assert not any(m["name"] in token_volumes for m in c.get("volumeMounts", [])), (name, c["name"])


def test_security_contexts(example):
    name, doc, spec = example
    psc = spec["securityContext"]
    assert psc["runAsNonRoot"] is True and psc["runAsUser"] == FLINK_UID and psc["fsGroup"] == FLINK_UID, name
    assert psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", name
    for c in spec["initContainers"] + spec["containers"]:
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False, (name, c["name"])
        assert sc["readOnlyRootFilesystem"] is True, (name, c["name"])
        assert sc["capabilities"]["drop"] == ["ALL"] and "add" not in sc["capabilities"], (name, c["name"])
        assert sc.get("runAsNonRoot", psc["runAsNonRoot"]) is True
        assert sc.get("runAsUser", psc["runAsUser"]) == FLINK_UID, (name, c["name"])
        assert "privileged" not in sc or sc["privileged"] is False


def test_agent_arguments_are_accepted_by_the_binary(example, tmp_path):
    """Each agent's arguments, with the URL, token and output pointed at this machine, get past option
    parsing (exit 69: nothing listens; a usage error would be 64)."""
    import socket
    name, doc, spec = example
    assert os.access(CMF, os.X_OK), "build/cmf is missing: run make"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = tmp_path / "token"
    token.write_text("t" * 43)
    token.chmod(0o400)
    for c in spec["initContainers"]:
        if not is_agent(c):
            continue
        a = list(c["args"])
        a[a.index("--url") + 1] = "http://127.0.0.1:%d" % port
        a[a.index("--token-file") + 1] = str(token)
        a[a.index("--out") + 1] = str(tmp_path / "out")
        if "--ca-file" in a:
            a[a.index("--ca-file") + 1] = str(tmp_path / "ca.crt")
        if "--once" not in a:
            a.append("--once")
        r = subprocess.run([CMF] + a + ["--retries", "1"], capture_output=True, text=True, timeout=30,
                           env={"PATH": "/usr/bin:/bin"})
        assert r.returncode == 69, (name, c["name"], r.returncode, r.stderr)


def test_notes_explain_the_job_token(helm):  # noqa: F811
    text = " ".join(notes(helm, *REQUIRED).split())
    assert '"spec":{"role":"environment-reader","environments":["<environment>"]}' in text, text
    assert "/cmf/api/v1/tokens" in text
    assert "kubectl create secret generic <job>-cmf-token --from-file=token=job.token" in text
    assert "k8s/examples/" in text
    assert "--url http://cmf.cmf-test.svc:8080." in text


def test_notes_job_token_over_tls_and_without_auth(helm):  # noqa: F811
    from test_chart import MTLS, NO_AUTH
    text = " ".join(notes(helm, *REQUIRED, *MTLS).split())
    assert "--url https://cmf.cmf-test.svc:8080 with --ca-file <CA of the server certificate>, and --cert-file and " \
           "--key-file (mutual TLS)." in text, text
    assert "--connect-to ::127.0.0.1:8080 https://<a DNS name of the certificate>:8080/cmf/api/v1/tokens" in text
    # without authentication cmf serves no decrypted configuration at all: no job token to create
    assert "environment-reader" not in notes(helm, *NO_AUTH)
