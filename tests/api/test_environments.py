"""Environments and their secret mappings over real HTTP: CMF shapes, every documented status, the link
between mappings and Secrets (status.environments, delete refused while mapped), audit events."""
import re

import pytest

from conftest import secret_body

API = "/cmf/api/v1"
ENVS = API + "/environments"
TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def env_body(name, ns="flink-ns", **extra):
    b = {"name": name, "kubernetesNamespace": ns}
    b.update(extra)
    return b


def mapping_body(name, secret, labels=None):
    meta = {"name": name}
    if labels is not None:
        meta["labels"] = labels
    return {"apiVersion": "cmf.confluent.io/v1", "kind": "EnvironmentSecretMapping", "metadata": meta,
            "spec": {"secretName": secret}}


def maps(env):
    return ENVS + "/" + env + "/secret-mappings"


def create_env(cmf, name, ns="flink-ns", **extra):
    r = cmf.request("POST", ENVS, env_body(name, ns, **extra))
    assert r.status == 200, r
    return r.json()


def create_mapping(cmf, env, name, secret):
    r = cmf.request("POST", maps(env), mapping_body(name, secret))
    assert r.status == 200, r
    return r.json()


def audit(cmf, resource_prefix):
    ev = cmf.request("GET", API + "/audit-events?size=100").json()["items"]
    return [(e["action"], e["resource"], e["outcome"], e["status"]) for e in reversed(ev)
            if e["resource"].startswith(resource_prefix)]


def audit_counted(cmf, resource_prefix):
    """Like audit(), with each row's count: identical reads and refusals within a second are one row."""
    ev = cmf.request("GET", API + "/audit-events?size=100").json()["items"]
    return [(e["action"], e["resource"], e["outcome"], e["status"], e["count"]) for e in reversed(ev)
            if e["resource"].startswith(resource_prefix)]


# ---- environments ----------------------------------------------------------------------------------

DEFAULTS = {
    "flinkApplicationDefaults": {"spec": {"flinkConfiguration": {"taskmanager.numberOfTaskSlots": "4"},
                                          "jobManager": {"resource": {"memory": "1024m", "cpu": 1}}}},
    "computePoolDefaults": {"clusterSpec": {"flinkVersion": "v1_19", "image": "confluentinc/cp-flink-sql:1.19"}},
    "statementDefaults": {"detached": {"flinkConfiguration": {"state.backend.type": "hashmap"}},
                          "interactive": {"flinkConfiguration": {"state.backend.type": "hashmap"}}},
}


def test_create_returns_cmf_shape(cmf):
    r = cmf.request("POST", ENVS, env_body("production", "flink-production", **DEFAULTS))
    assert r.status == 200, r
    e = r.json()
    assert e["name"] == "production" and e["kubernetesNamespace"] == "flink-production"
    assert TS.match(e["created_time"]) and TS.match(e["updated_time"])
    for k, v in DEFAULTS.items():
        assert e[k] == v, k
    m = e["metadata"]
    assert m["name"] == "production" and UUID.match(m["uid"])
    assert m["creationTimestamp"] == e["created_time"] and m["updateTimestamp"] == e["updated_time"]
    assert m["labels"] == {} and m["annotations"] == {}
    assert e["secrets"] == {}
    assert r.headers["cache-control"] == "no-store"
    g = cmf.request("GET", ENVS + "/production")
    assert g.status == 200 and g.json() == e


def test_create_with_metadata_name_and_labels(cmf):
    r = cmf.request("POST", ENVS, {"metadata": {"name": "staging", "labels": {"tier": "2"},
                                                "annotations": {"owner": "data"}},
                                   "kubernetesNamespace": "flink-staging"})
    assert r.status == 200, r
    e = r.json()
    assert e["name"] == "staging" and e["metadata"]["labels"] == {"tier": "2"}
    assert e["metadata"]["annotations"] == {"owner": "data"}
    assert "flinkApplicationDefaults" not in e
    # both names given and equal; metadata without a name takes the deprecated one
    assert cmf.request("POST", ENVS, {"name": "staging", "metadata": {"name": "staging"},
                                      "kubernetesNamespace": "x"}).status == 200
    r = cmf.request("POST", ENVS, {"name": "stage-two", "metadata": {"labels": {"a": "b"}},
                                   "kubernetesNamespace": "x"})
    assert r.status == 200 and r.json()["metadata"]["labels"] == {"a": "b"}, r


def test_post_again_updates(cmf):
    first = create_env(cmf, "upsert-env", "ns-one", **DEFAULTS)
    r = cmf.request("POST", ENVS, {"name": "upsert-env", "kubernetesNamespace": "ns-two",
                                   "metadata": {"name": "upsert-env", "labels": {"v": "2"}},
                                   "statementDefaults": {"detached": {}}})
    assert r.status == 200, r
    e = r.json()
    assert e["kubernetesNamespace"] == "ns-two" and e["metadata"]["labels"] == {"v": "2"}
    assert e["statementDefaults"] == {"detached": {}}
    assert "flinkApplicationDefaults" not in e and "computePoolDefaults" not in e  # replaced, not merged
    assert e["metadata"]["uid"] == first["metadata"]["uid"]
    assert e["created_time"] == first["created_time"] and e["updated_time"] >= first["updated_time"]
    assert cmf.request("GET", ENVS).json()["metadata"]["size"] == 1
    # what GET returns can be POSTed back as is (read-only fields are ignored)
    again = cmf.request("POST", ENVS, cmf.request("GET", ENVS + "/upsert-env").json())
    assert again.status == 200, again
    assert again.json()["kubernetesNamespace"] == "ns-two"
    assert audit(cmf, "environment/upsert-env") == [
        ("environment.create", "environment/upsert-env", "success", 200),
        ("environment.update", "environment/upsert-env", "success", 200),
        ("environment.update", "environment/upsert-env", "success", 200),
    ]


def test_yaml_body(cmf):
    body = ("name: yaml-env\nkubernetesNamespace: flink-yaml\nflinkApplicationDefaults:\n"
            "  spec:\n    flinkConfiguration:\n      rest.profiling.enabled: \"true\"\n")
    r = cmf.request("POST", ENVS, body, headers={"Content-Type": "application/yaml"})
    assert r.status == 200, r
    assert r.json()["flinkApplicationDefaults"] == {"spec": {"flinkConfiguration": {"rest.profiling.enabled": "true"}}}


@pytest.mark.parametrize("body,status,message", [
    ({"kubernetesNamespace": "ns"}, 400, "metadata.name is required"),
    (env_body("no-ns", None), 400, "kubernetesNamespace is required"),
    ({"name": "no-ns2"}, 400, "kubernetesNamespace is required"),
    (env_body("bad-ns", "Flink_NS"), 400, "kubernetesNamespace 'Flink_NS' is not valid"),
    (env_body("bad-ns", "a" * 254), 400, "kubernetesNamespace"),
    (env_body("bad-ns", ""), 400, "kubernetesNamespace"),
    (env_body("bad-ns", "a..b"), 400, "kubernetesNamespace"),
    (env_body("bad-ns", "a-.b"), 400, "kubernetesNamespace"),
    (env_body("bad-ns", 7), 400, "kubernetesNamespace must be a string"),
    (env_body("ab"), 400, "name 'ab' must be 4 to 253 characters"),
    (env_body("Bad_Name"), 400, "not a valid name"),
    (env_body(5), 400, "name must be a string"),
    ({"name": "name-one", "metadata": {"name": "name-two"}, "kubernetesNamespace": "x"}, 422,
     "name 'name-one' and metadata.name 'name-two' differ"),
    (env_body("unknown-f", kubernetesNamspace="x"), 400, "kubernetesNamspace: unknown field"),
    (env_body("meta-bad", metadata={"name": "meta-bad", "labels": {"a": 1}}), 400, "metadata.labels.a"),
    (env_body("meta-bad", metadata={"name": "meta-bad", "owner": "x"}), 400, "metadata.owner: unknown field"),
    (env_body("defaults-bad", flinkApplicationDefaults="x"), 400, "flinkApplicationDefaults must be an object"),
    (env_body("cluster-env", kubernetesClusterName="k8s-one"), 422, "kubernetesClusterName is not supported"),
])
def test_environment_validation(cmf, body, status, message):
    r = cmf.request("POST", ENVS, body)
    assert r.status == status, r
    assert message in r.error(), r.error()
    assert cmf.request("GET", ENVS).json()["metadata"]["size"] == 0


def test_single_letter_namespace_is_valid(cmf):
    assert create_env(cmf, "short-ns", "a")["kubernetesNamespace"] == "a"
    assert create_env(cmf, "long-ns", "a" * 253)["kubernetesNamespace"] == "a" * 253
    assert create_env(cmf, "dotted-ns", "a-1.b2")["kubernetesNamespace"] == "a-1.b2"


def test_get_404_and_impossible_names(cmf):
    r = cmf.request("GET", ENVS + "/nowhere")
    assert r.status == 404 and r.error() == "environment 'nowhere' not found"
    assert cmf.request("GET", ENVS + "/No_Such").status == 404
    assert cmf.request("DELETE", ENVS + "/No_Such").status == 404


def test_list_paging(cmf):
    names = ["env-%02d" % i for i in range(5)]
    for n in reversed(names):
        create_env(cmf, n)
    j = cmf.request("GET", ENVS).json()
    assert j["metadata"] == {"size": 5} and j["pageable"]["page"] == 0 and j["pageable"]["size"] == 20
    assert [e["name"] for e in j["items"]] == names
    pages = [[e["name"] for e in cmf.request("GET", ENVS + "?page=%d&size=2" % p).json()["items"]] for p in range(3)]
    assert pages == [names[0:2], names[2:4], names[4:5]]
    assert cmf.request("GET", ENVS + "?size=0").status == 400
    assert cmf.request("GET", ENVS + "?page=-1").status == 400


def test_delete_204_then_404(cmf):
    create_env(cmf, "gone-env")
    r = cmf.request("DELETE", ENVS + "/gone-env")
    assert r.status == 204 and r.body == b""
    assert cmf.request("GET", ENVS + "/gone-env").status == 404
    r = cmf.request("DELETE", ENVS + "/gone-env")
    assert r.status == 404 and r.error() == "environment 'gone-env' not found"
    assert audit(cmf, "environment/gone-env") == [
        ("environment.create", "environment/gone-env", "success", 200),
        ("environment.delete", "environment/gone-env", "success", 204),
        ("environment.delete", "environment/gone-env", "failure", 404),
    ]


# ---- secret mappings -------------------------------------------------------------------------------

def test_mapping_crud(cmf):
    create_env(cmf, "prod")
    assert cmf.create_secret("kafka-creds", {"sasl.jaas.config": "very-secret"}).status == 200
    assert cmf.create_secret("kafka-creds-2", {"sasl.jaas.config": "other"}).status == 200
    r = cmf.request("POST", maps("prod"), mapping_body("kafka-conn", "kafka-creds", labels={"a": "b"}))
    assert r.status == 200, r
    m = r.json()
    assert m["apiVersion"] == "cmf.confluent.io/v1" and m["kind"] == "EnvironmentSecretMapping"
    assert m["metadata"]["name"] == "kafka-conn" and UUID.match(m["metadata"]["uid"])
    assert TS.match(m["metadata"]["creationTimestamp"]) and m["metadata"]["labels"] == {"a": "b"}
    assert m["spec"] == {"secretName": "kafka-creds"}
    assert b"very-secret" not in r.body
    # get one, list
    g = cmf.request("GET", maps("prod") + "/kafka-conn")
    assert g.status == 200 and g.json() == m
    j = cmf.request("GET", maps("prod")).json()
    assert j["metadata"] == {"size": 1} and j["items"] == [m]
    # the environment shows it
    assert cmf.request("GET", ENVS + "/prod").json()["secrets"] == {"kafka-conn": "kafka-creds"}
    assert cmf.request("GET", ENVS).json()["items"][0]["secrets"] == {"kafka-conn": "kafka-creds"}
    # duplicate
    r = cmf.request("POST", maps("prod"), mapping_body("kafka-conn", "kafka-creds-2"))
    assert r.status == 409 and r.error() == "secret mapping 'kafka-conn' already exists in environment 'prod'"
    # update
    r = cmf.request("PUT", maps("prod") + "/kafka-conn", mapping_body("kafka-conn", "kafka-creds-2"))
    assert r.status == 200, r
    u = r.json()
    assert u["spec"]["secretName"] == "kafka-creds-2" and u["metadata"]["uid"] == m["metadata"]["uid"]
    assert u["metadata"]["labels"] == {}
    assert u["metadata"]["creationTimestamp"] == m["metadata"]["creationTimestamp"]
    assert cmf.request("GET", ENVS + "/prod").json()["secrets"] == {"kafka-conn": "kafka-creds-2"}
    # delete
    r = cmf.request("DELETE", maps("prod") + "/kafka-conn")
    assert r.status == 204 and r.body == b""
    r = cmf.request("GET", maps("prod") + "/kafka-conn")
    assert r.status == 404 and r.error() == "secret mapping 'kafka-conn' in environment 'prod' not found"
    assert cmf.request("DELETE", maps("prod") + "/kafka-conn").status == 404
    assert cmf.request("GET", ENVS + "/prod").json()["secrets"] == {}


def test_mapping_404s(cmf):
    cmf.create_secret("some-secret", {"a": "b"})
    # environment missing: every verb
    for method, path, body in [("POST", maps("no-env"), mapping_body("conn-id", "some-secret")),
                               ("GET", maps("no-env"), None),
                               ("GET", maps("no-env") + "/conn-id", None),
                               ("PUT", maps("no-env") + "/conn-id", mapping_body("conn-id", "some-secret")),
                               ("DELETE", maps("no-env") + "/conn-id", None)]:
        r = cmf.request(method, path, body)
        assert r.status == 404, (method, path, r)
        assert r.error() == "environment 'no-env' not found", (method, r.error())
    create_env(cmf, "dev-env")
    # secret missing: named, on create and update
    r = cmf.request("POST", maps("dev-env"), mapping_body("conn-id", "absent-secret"))
    assert r.status == 404 and r.error() == "secret 'absent-secret' not found: create it before mapping it"
    assert cmf.request("GET", maps("dev-env")).json()["metadata"]["size"] == 0
    create_mapping(cmf, "dev-env", "conn-id", "some-secret")
    r = cmf.request("PUT", maps("dev-env") + "/conn-id", mapping_body("conn-id", "absent-secret"))
    assert r.status == 404 and r.error() == "secret 'absent-secret' not found: create it before mapping it"
    assert cmf.request("GET", maps("dev-env") + "/conn-id").json()["spec"]["secretName"] == "some-secret"
    # mapping missing on update
    r = cmf.request("PUT", maps("dev-env") + "/other-id", mapping_body("other-id", "some-secret"))
    assert r.status == 404 and r.error() == "secret mapping 'other-id' in environment 'dev-env' not found"
    # impossible names in the path
    assert cmf.request("GET", maps("dev-env") + "/X_Y").status == 404
    assert cmf.request("GET", maps("No_Env")).status == 404


@pytest.mark.parametrize("body,status,message", [
    (mapping_body("ab", "some-secret"), 400, "metadata.name 'ab' must be 4 to 253"),
    (mapping_body("conn-id", "Bad_Secret"), 400, "spec.secretName 'Bad_Secret' is not a valid name"),
    (mapping_body("conn-id", 5), 400, "spec.secretName must be a string"),
    ({"apiVersion": "cmf.confluent.io/v1", "kind": "EnvironmentSecretMapping", "metadata": {"name": "conn-id"}},
     400, "spec is required"),
    ({"apiVersion": "cmf.confluent.io/v1", "kind": "EnvironmentSecretMapping", "metadata": {"name": "conn-id"},
      "spec": {}}, 400, "spec.secretName is required"),
    ({"apiVersion": "cmf.confluent.io/v1", "kind": "EnvironmentSecretMapping", "metadata": {"name": "conn-id"},
      "spec": {"secretName": "some-secret", "data": {}}}, 400, "spec.data: unknown field"),
    ({"apiVersion": "cmf.confluent.io/v1", "kind": "Secret", "metadata": {"name": "conn-id"},
      "spec": {"secretName": "some-secret"}}, 400, "kind must be \"EnvironmentSecretMapping\""),
])
def test_mapping_validation(cmf, body, status, message):
    create_env(cmf, "val-env")
    cmf.create_secret("some-secret", {"a": "b"})
    r = cmf.request("POST", maps("val-env"), body)
    assert r.status == status, r
    assert message in r.error(), r.error()


def test_mapping_put_name_mismatch_is_422(cmf):
    create_env(cmf, "mm-env")
    cmf.create_secret("some-secret", {"a": "b"})
    create_mapping(cmf, "mm-env", "conn-id", "some-secret")
    r = cmf.request("PUT", maps("mm-env") + "/conn-id", mapping_body("conn-two", "some-secret"))
    assert r.status == 422 and "conn-two" in r.error() and "conn-id" in r.error()


def test_mapping_yaml_and_paging(cmf):
    create_env(cmf, "yaml-env")
    cmf.create_secret("some-secret", {"a": "b"})
    for i in reversed(range(3)):
        body = ("apiVersion: cmf.confluent.io/v1\nkind: EnvironmentSecretMapping\nmetadata:\n  name: conn-%d\n"
                "spec:\n  secretName: some-secret\n" % i)
        r = cmf.request("POST", maps("yaml-env"), body, headers={"Content-Type": "application/yaml"})
        assert r.status == 200, r
    j = cmf.request("GET", maps("yaml-env") + "?page=1&size=2").json()
    assert j["metadata"]["size"] == 3 and [m["metadata"]["name"] for m in j["items"]] == ["conn-2"]
    assert cmf.request("GET", maps("yaml-env") + "?size=101").status == 400


def test_mappings_are_per_environment(cmf):
    create_env(cmf, "env-a")
    create_env(cmf, "env-b")
    cmf.create_secret("some-secret", {"a": "b"})
    create_mapping(cmf, "env-a", "conn-id", "some-secret")
    create_mapping(cmf, "env-b", "conn-id", "some-secret")  # same id, another environment: no conflict
    assert cmf.request("DELETE", maps("env-a") + "/conn-id").status == 204
    assert cmf.request("GET", maps("env-b") + "/conn-id").status == 200


# ---- mappings and secrets --------------------------------------------------------------------------

def test_secret_status_environments_and_delete_refused_while_mapped(cmf):
    for e in ("staging", "prod", "dev-env"):
        create_env(cmf, e)
    cmf.create_secret("shared-creds", {"k": "v"})
    cmf.create_secret("other-creds", {"k": "v"})
    create_mapping(cmf, "staging", "kafka-conn", "shared-creds")
    create_mapping(cmf, "prod", "kafka-conn", "shared-creds")
    create_mapping(cmf, "dev-env", "kafka-conn", "other-creds")
    s = cmf.get_secret("shared-creds").json()
    assert s["status"]["environments"] == ["prod", "staging"]
    listed = {i["metadata"]["name"]: i["status"]["environments"]
              for i in cmf.request("GET", API + "/secrets").json()["items"]}
    assert listed == {"shared-creds": ["prod", "staging"], "other-creds": ["dev-env"]}
    # an update returns it too
    r = cmf.request("PUT", API + "/secrets/shared-creds", secret_body("shared-creds", {"k": "v2"}))
    assert r.json()["status"]["environments"] == ["prod", "staging"]
    # delete refused, naming both environments; nothing changed
    r = cmf.request("DELETE", API + "/secrets/shared-creds")
    assert r.status == 409, r
    assert r.error() == ("secret 'shared-creds' is mapped in environments prod, staging: "
                         "delete those secret mappings first")
    assert cmf.get_secret("shared-creds").status == 200
    # after unmapping one, the message names the other; after both, the delete works
    assert cmf.request("DELETE", maps("prod") + "/kafka-conn").status == 204
    r = cmf.request("DELETE", API + "/secrets/shared-creds")
    assert r.status == 409 and "is mapped in environment staging:" in r.error(), r.error()
    assert cmf.request("DELETE", maps("staging") + "/kafka-conn").status == 204
    assert cmf.get_secret("shared-creds").json()["status"]["environments"] == []
    assert cmf.request("DELETE", API + "/secrets/shared-creds").status == 204
    # The masked reads and the refused deletes are each merged into one row (within one second), at
    # the time of the first; writes are rows of their own.
    assert audit_counted(cmf, "secret/shared-creds") == [
        ("secret.create", "secret/shared-creds", "success", 200, 1),
        ("secret.read", "secret/shared-creds", "success", 200, 3),
        ("secret.update", "secret/shared-creds", "success", 200, 1),
        ("secret.delete", "secret/shared-creds", "failure", 409, 2),
        ("secret.delete", "secret/shared-creds", "success", 204, 1),
    ]


def test_deleting_an_environment_removes_its_mappings(cmf, pg, db):
    create_env(cmf, "env-one")
    create_env(cmf, "env-two")
    cmf.create_secret("shared-creds", {"k": "v"})
    create_mapping(cmf, "env-one", "conn-a", "shared-creds")
    create_mapping(cmf, "env-one", "conn-b", "shared-creds")
    create_mapping(cmf, "env-two", "conn-a", "shared-creds")
    assert cmf.get_secret("shared-creds").json()["status"]["environments"] == ["env-one", "env-two"]
    assert cmf.request("DELETE", ENVS + "/env-one").status == 204
    assert cmf.get_secret("shared-creds").json()["status"]["environments"] == ["env-two"]
    assert pg.psql("SELECT count(*) FROM cmf_secret_mappings WHERE environment = 'env-one'", db) == "0"
    # a new environment of that name starts without mappings
    assert create_env(cmf, "env-one")["secrets"] == {}
    assert cmf.request("GET", maps("env-one")).json()["metadata"]["size"] == 0


def test_the_foreign_key_is_the_backstop(cmf, pg, db):
    """If a mapping slipped past the check, PostgreSQL's RESTRICT still refuses the delete: 409, not 500."""
    create_env(cmf, "fk-env")
    cmf.create_secret("fk-secret", {"k": "v"})
    create_mapping(cmf, "fk-env", "conn-id", "fk-secret")
    # hide the mapping from the check's SELECT (a view in the table's place), not from the foreign key
    pg.psql("ALTER TABLE cmf_secret_mappings RENAME TO cmf_secret_mappings_real; "
            "CREATE VIEW cmf_secret_mappings AS SELECT * FROM cmf_secret_mappings_real WHERE false", db)
    try:
        r = cmf.request("DELETE", API + "/secrets/fk-secret")
    finally:
        pg.psql("DROP VIEW cmf_secret_mappings; "
                "ALTER TABLE cmf_secret_mappings_real RENAME TO cmf_secret_mappings", db)
    assert r.status == 409, r
    assert r.error() == "secret 'fk-secret' is mapped in an environment: delete those secret mappings first"
    assert cmf.get_secret("fk-secret").status == 200


def test_mapping_writes_are_audited(cmf):
    create_env(cmf, "aud-env")
    cmf.create_secret("aud-secret", {"k": "v"})
    create_mapping(cmf, "aud-env", "conn-id", "aud-secret")
    cmf.request("POST", maps("aud-env"), mapping_body("conn-id", "aud-secret"))           # 409
    cmf.request("POST", maps("aud-env"), mapping_body("conn-two", "missing-secret"))      # 404
    cmf.request("PUT", maps("aud-env") + "/conn-id", mapping_body("conn-id", "aud-secret"))
    cmf.request("GET", maps("aud-env") + "/conn-id")                                       # not audited
    cmf.request("DELETE", maps("aud-env") + "/conn-id")
    cmf.request("DELETE", maps("aud-env") + "/conn-id")                                    # 404
    cmf.request("POST", maps("aud-env"), {"apiVersion": "x"})                              # 400
    assert audit(cmf, "secret-mapping/") + audit(cmf, API + "/environments/aud-env") == [
        ("secret-mapping.create", "secret-mapping/aud-env/conn-id", "success", 200),
        ("secret-mapping.create", "secret-mapping/aud-env/conn-id", "failure", 409),
        ("secret-mapping.create", "secret-mapping/aud-env/conn-two", "failure", 404),
        ("secret-mapping.update", "secret-mapping/aud-env/conn-id", "success", 200),
        ("secret-mapping.delete", "secret-mapping/aud-env/conn-id", "success", 204),
        ("secret-mapping.delete", "secret-mapping/aud-env/conn-id", "failure", 404),
        ("secret-mapping.create", API + "/environments/aud-env/secret-mappings", "failure", 400),
    ]


def test_environment_reader_gets_403_everywhere(cmf):
    r = cmf.request("POST", API + "/tokens", {"apiVersion": "cmf.confluent.io/v1", "kind": "ApiToken",
                                             "metadata": {"name": "job-prod"},
                                             "spec": {"role": "environment-reader", "environments": ["prod"]}})
    token = r.json()["status"]["token"]
    create_env(cmf, "prod")
    cmf.create_secret("some-secret", {"a": "b"})
    create_mapping(cmf, "prod", "conn-id", "some-secret")
    for method, path, body in [("GET", ENVS, None), ("POST", ENVS, env_body("prod")),
                               ("GET", ENVS + "/prod", None), ("DELETE", ENVS + "/prod", None),
                               ("GET", maps("prod"), None), ("POST", maps("prod"), mapping_body("x-id", "some-secret")),
                               ("GET", maps("prod") + "/conn-id", None),
                               ("PUT", maps("prod") + "/conn-id", mapping_body("conn-id", "some-secret")),
                               ("DELETE", maps("prod") + "/conn-id", None)]:
        r = cmf.request(method, path, body, token=token)
        assert r.status == 403, (method, path, r)
        r.error()
    assert cmf.request("GET", maps("prod") + "/conn-id").status == 200
