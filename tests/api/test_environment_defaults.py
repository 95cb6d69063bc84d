"""Issue 13 item 9: an Environment's defaults (flinkApplicationDefaults, computePoolDefaults,
statementDefaults) are stored and returned in clear, so their Flink configuration maps refuse credential
keys (the connectionConfig rule) with 422 naming each one; the Kubernetes ways of injecting credentials
(secretKeyRef, secretName, imagePullSecrets, Flink's kubernetes.secrets) stay allowed. Shapes from
CMF's OpenAPI (reference/cmf-openapi-v2.3.1.yaml, createOrUpdateEnvironment)."""
import pytest

API = "/cmf/api/v1"
ENVS = API + "/environments"


def env(name="prod", **defaults):
    return dict({"name": name, "kubernetesNamespace": "flink-prod"}, **defaults)


def refused(cmf, body, *paths):
    """POST body: 422 naming exactly `paths` (each "<map path>[<key>]"); nothing stored."""
    r = cmf.request("POST", ENVS, body)
    assert r.status == 422, r
    msg = r.error()
    for p in paths:
        assert p in msg, (p, msg)
    assert msg.count("[") == len(paths), msg
    assert "Secret" in msg and "kubernetes.secrets" in msg, msg
    for v in _leaf_values(body):
        assert v not in msg, msg  # the values are never echoed
    assert cmf.request("GET", ENVS + "/" + body["name"]).status == 404
    return msg


def _leaf_values(tree):
    if isinstance(tree, dict):
        for v in tree.values():
            yield from _leaf_values(v)
    elif isinstance(tree, list):
        for v in tree:
            yield from _leaf_values(v)
    elif isinstance(tree, str) and len(tree) > 8:
        yield tree


def test_reference_example_is_accepted_and_returned(cmf):
    body = env(flinkApplicationDefaults={"spec": {"flinkConfiguration": {"taskmanager.numberOfTaskSlots": "4",
                                                                         "rest.profiling.enabled": "true"},
                                                  "jobManager": {"resource": {"memory": "1024m", "cpu": 1}},
                                                  "taskManager": {"resource": {"memory": "1024m", "cpu": 1}}}},
               computePoolDefaults={"clusterSpec": {"flinkVersion": "v1_19",
                                                    "image": "confluentinc/cp-flink-sql:1.19-cp5",
                                                    "flinkConfiguration": {"taskmanager.numberOfTaskSlots": "4"}}},
               statementDefaults={"detached": {"flinkConfiguration": {"state.backend.type": "hashmap"}},
                                  "interactive": {"flinkConfiguration": {"state.backend.type": "hashmap"}}})
    r = cmf.request("POST", ENVS, body)
    assert r.status == 200, r
    got = cmf.request("GET", ENVS + "/prod").json()
    for k in ("flinkApplicationDefaults", "computePoolDefaults", "statementDefaults"):
        assert got[k] == body[k]


@pytest.mark.parametrize("field, body, path", [
    ("flinkApplicationDefaults", {"spec": {"flinkConfiguration": {"password": "hunter2-hunter2"}}},
     "flinkApplicationDefaults.spec.flinkConfiguration[password]"),
    ("computePoolDefaults", {"clusterSpec": {"flinkConfiguration": {"s3.secret-key": "AKIAsecretsecret"}}},
     "computePoolDefaults.clusterSpec.flinkConfiguration[s3.secret-key]"),
    ("statementDefaults", {"detached": {"flinkConfiguration": {"properties.sasl.jaas.config": "x required pw"}}},
     "statementDefaults.detached.flinkConfiguration[properties.sasl.jaas.config]"),
    ("statementDefaults", {"interactive": {"flinkConfiguration": {"Security.SSL.Rest.Key-Password": "p4ss-w0rd-x"}}},
     "statementDefaults.interactive.flinkConfiguration[Security.SSL.Rest.Key-Password]"),
    # a KMS rule executor parameter, as in connectionConfig
    ("flinkApplicationDefaults",
     {"spec": {"flinkConfiguration": {"rule.executors._default_.param.access.key.id": "AKIAEXAMPLE123"}}},
     "flinkApplicationDefaults.spec.flinkConfiguration[rule.executors._default_.param.access.key.id]"),
    # a credential in a URL's user information
    ("flinkApplicationDefaults",
     {"spec": {"flinkConfiguration": {"schema.registry.url": "https://user:pa55word@sr.example:8081"}}},
     "flinkApplicationDefaults.spec.flinkConfiguration[schema.registry.url]"),
    # YAML-style nesting is Flink's dotted key
    ("flinkApplicationDefaults", {"spec": {"flinkConfiguration": {"s3": {"secret-key": "nested-secret-value"}}}},
     "flinkApplicationDefaults.spec.flinkConfiguration[s3.secret-key]"),
    # not a string: a key is a credential whatever its value's type
    ("computePoolDefaults", {"clusterSpec": {"flinkConfiguration": {"ssl.truststore.password": 123456789}}},
     "computePoolDefaults.clusterSpec.flinkConfiguration[ssl.truststore.password]"),
])
def test_credential_keys_are_refused_naming_the_key(cmf, field, body, path):
    refused(cmf, env(**{field: body}), path)


def test_every_offending_key_is_named_at_once(cmf):
    body = env(flinkApplicationDefaults={"spec": {"flinkConfiguration": {"password": "hunter2-hunter2",
                                                                         "parallelism.default": "2"}}},
               computePoolDefaults={"clusterSpec": {"flinkConfiguration": {"fs.s3a.secret.key": "s3-secret-value"}}},
               statementDefaults={"detached": {"flinkConfiguration": {"ssl.keystore.key": "-----BEGIN PRIVATE"}},
                                  "interactive": {"flinkConfiguration": {"basic.auth.user.info": "u:p-secretish"}}})
    msg = refused(cmf, body, "flinkApplicationDefaults.spec.flinkConfiguration[password]",
                  "computePoolDefaults.clusterSpec.flinkConfiguration[fs.s3a.secret.key]",
                  "statementDefaults.detached.flinkConfiguration[ssl.keystore.key]",
                  "statementDefaults.interactive.flinkConfiguration[basic.auth.user.info]")
    assert "parallelism.default" not in msg and "keys (" in msg, msg


def test_update_with_a_credential_is_refused_and_keeps_the_old_defaults(cmf):
    ok = env(flinkApplicationDefaults={"spec": {"flinkConfiguration": {"parallelism.default": "2"}}})
    assert cmf.request("POST", ENVS, ok).status == 200
    bad = env(flinkApplicationDefaults={"spec": {"flinkConfiguration": {"secret": "a-very-secret-value"}}})
    r = cmf.request("POST", ENVS, bad)
    assert r.status == 422 and "flinkApplicationDefaults.spec.flinkConfiguration[secret]" in r.error(), r
    got = cmf.request("GET", ENVS + "/prod").json()
    assert got["flinkApplicationDefaults"] == ok["flinkApplicationDefaults"]


def test_yaml_body_is_checked_too(cmf):
    body = ("name: prod\nkubernetesNamespace: flink-prod\nflinkApplicationDefaults:\n  spec:\n"
            "    flinkConfiguration:\n      ssl.key.password: from-yaml-secret\n")
    r = cmf.request("POST", ENVS, body, headers={"Content-Type": "application/yaml"})
    assert r.status == 422 and "flinkApplicationDefaults.spec.flinkConfiguration[ssl.key.password]" in r.error(), r
    assert "from-yaml-secret" not in r.error()


def test_kubernetes_ways_of_injecting_credentials_are_allowed(cmf):
    pod_template = {"spec": {
        "imagePullSecrets": [{"name": "registry-credentials"}],
        "containers": [{"name": "flink-main-container",
                        "env": [{"name": "DB_PASSWORD",
                                 "valueFrom": {"secretKeyRef": {"name": "db-secret", "key": "password"}}}],
                        "volumeMounts": [{"name": "tls", "mountPath": "/tls"}]}],
        "volumes": [{"name": "tls", "secret": {"secretName": "flink-tls"}}]}}
    body = env(flinkApplicationDefaults={"spec": {
        "flinkConfiguration": {"kubernetes.secrets": "s3-credentials:/opt/flink/secrets",
                               "kubernetes.env.secretKeyRef": "env:S3_SECRET_KEY,secret:s3-credentials,key:secret-key",
                               "security.ssl.rest.keystore": "/tls/keystore.p12",
                               "ssl.keystore.location": "/tls/keystore.p12",
                               "schema.registry.url": "https://sr.example:8081"},
        "podTemplate": pod_template}},
        computePoolDefaults={"clusterSpec": {"podTemplate": pod_template,
                                             "flinkConfiguration": {"kubernetes.secrets": "a:/a"}}})
    r = cmf.request("POST", ENVS, body)
    assert r.status == 200, r
    got = cmf.request("GET", ENVS + "/prod").json()
    assert got["flinkApplicationDefaults"] == body["flinkApplicationDefaults"]
    assert got["computePoolDefaults"] == body["computePoolDefaults"]


def test_outside_flink_configuration_keys_are_not_checked(cmf):
    # Kubernetes structure and other fields: secret-looking names there are references, not values
    body = env(flinkApplicationDefaults={"spec": {"job": {"secretName": "job-creds", "args": ["--password-file",
                                                                                            "/secrets/pw"]}}},
               statementDefaults={"detached": {"flinkConfiguration": {"state.backend.type": "rocksdb"}}})
    assert cmf.request("POST", ENVS, body).status == 200


@pytest.mark.parametrize("key", [
    "fs.azure.account.key.myaccount.blob.core.windows.net",  # Azure storage account key
    "metrics.reporter.dghttp.apikey",                         # Datadog reporter API key
    "metrics.reporter.x.api-key",
    "s3.access-key",                                          # paired with s3.secret-key
    "a" * 250 + ".password",                                  # checked whole, not cut at 256 bytes
])
def test_flink_credential_keys_and_long_keys_are_refused(cmf, key):
    body = env(flinkApplicationDefaults={"spec": {"flinkConfiguration": {key: "value-that-is-secret"}}})
    r = cmf.request("POST", ENVS, body)
    assert r.status == 422 and "flinkApplicationDefaults.spec.flinkConfiguration[" in r.error(), r
    assert "value-that-is-secret" not in r.error()


def test_a_key_too_long_to_check_whole_is_refused_and_ordinary_ones_pass(cmf):
    body = env(flinkApplicationDefaults={"spec": {"flinkConfiguration": {"x" * 1100: "v"}}})
    assert cmf.request("POST", ENVS, body).status == 422
    ok = env(flinkApplicationDefaults={"spec": {"flinkConfiguration": {"security.delegation.tokens.enabled": "false",
                                                                      "s3.endpoint": "http://minio:9000",
                                                                      "state.backend.type": "rocksdb"}}})
    assert cmf.request("POST", ENVS, ok).status == 200
