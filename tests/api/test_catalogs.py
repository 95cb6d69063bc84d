"""Kafka catalogs and databases over real HTTP: CMF shapes, every documented status, public-only
connectionConfig (sensitive keys refused), environmentsWithAccess from secret mappings, audit events."""
import re

import pytest

API = "/cmf/api/v1"
CATS = API + "/catalogs/kafka"
TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
SR = {"schema.registry.url": "https://sr.example.com"}
KAFKA = {"bootstrap.servers": "kafka.example.com:9092", "security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN"}


def catalog_body(name, config=None, secret_id=None, labels=None, **spec_extra):
    inst = {"connectionConfig": dict(SR) if config is None else config}
    if secret_id is not None:
        inst["connectionSecretId"] = secret_id
    meta = {"name": name}
    if labels is not None:
        meta["labels"] = labels
    spec = {"srInstance": inst}
    spec.update(spec_extra)
    return {"apiVersion": "cmf.confluent.io/v1", "kind": "KafkaCatalog", "metadata": meta, "spec": spec}


def database_body(name, config=None, secret_id=None, **spec_extra):
    cl = {"connectionConfig": dict(KAFKA) if config is None else config}
    if secret_id is not None:
        cl["connectionSecretId"] = secret_id
    spec = {"kafkaCluster": cl}
    spec.update(spec_extra)
    return {"apiVersion": "cmf.confluent.io/v1", "kind": "KafkaDatabase", "metadata": {"name": name}, "spec": spec}


def dbs(cat):
    return CATS + "/" + cat + "/databases"


def create_catalog(cmf, name, **kw):
    r = cmf.request("POST", CATS, catalog_body(name, **kw))
    assert r.status == 200, r
    return r.json()


def create_database(cmf, cat, name, **kw):
    r = cmf.request("POST", dbs(cat), database_body(name, **kw))
    assert r.status == 200, r
    return r.json()


def audit(cmf, prefix):
    ev = cmf.request("GET", API + "/audit-events?size=100").json()["items"]
    return [(e["action"], e["resource"], e["outcome"], e["status"]) for e in reversed(ev)
            if e["resource"].startswith(prefix)]


def audit_counted(cmf, prefix):
    """Like audit(), with each row's count: identical failures within a second are one row (issue 11)."""
    ev = cmf.request("GET", API + "/audit-events?size=100").json()["items"]
    return [(e["action"], e["resource"], e["outcome"], e["status"], e["count"]) for e in reversed(ev)
            if e["resource"].startswith(prefix)]


def map_secret(cmf, env, conn_id, secret):
    if cmf.request("GET", API + "/environments/" + env).status == 404:
        assert cmf.request("POST", API + "/environments", {"name": env, "kubernetesNamespace": env}).status == 200
    if cmf.get_secret(secret).status == 404:
        assert cmf.create_secret(secret, {"basic.auth.user.info": "u:p"}).status == 200
    r = cmf.request("POST", API + "/environments/" + env + "/secret-mappings",
                    {"apiVersion": "cmf.confluent.io/v1", "kind": "EnvironmentSecretMapping",
                     "metadata": {"name": conn_id}, "spec": {"secretName": secret}})
    assert r.status == 200, r


# ---- catalogs --------------------------------------------------------------------------------------

def test_catalog_crud(cmf):
    r = cmf.request("POST", CATS, catalog_body("test-cat", secret_id="sr-secret-id", labels={"env": "prod"}))
    assert r.status == 200, r
    c = r.json()
    assert c["apiVersion"] == "cmf.confluent.io/v1" and c["kind"] == "KafkaCatalog"
    m = c["metadata"]
    assert m["name"] == "test-cat" and UUID.match(m["uid"]) and TS.match(m["creationTimestamp"])
    assert m["labels"] == {"env": "prod"} and m["annotations"] == {}
    assert c["spec"] == {"srInstance": {"connectionConfig": SR, "connectionSecretId": "sr-secret-id"}}
    assert c["status"] == {"environmentsWithAccess": []}
    assert r.headers["cache-control"] == "no-store"
    g = cmf.request("GET", CATS + "/test-cat")
    assert g.status == 200 and g.json() == c
    j = cmf.request("GET", CATS).json()
    assert j["metadata"] == {"size": 1} and j["items"] == [c]
    # duplicate
    r = cmf.request("POST", CATS, catalog_body("test-cat"))
    assert r.status == 409 and r.error() == "catalog 'test-cat' already exists"
    # update: the connection is replaced, connectionSecretId may go
    r = cmf.request("PUT", CATS + "/test-cat", catalog_body("test-cat", config={"schema.registry.url": "https://b"}))
    assert r.status == 200, r
    u = r.json()
    assert u["spec"] == {"srInstance": {"connectionConfig": {"schema.registry.url": "https://b"}}}
    assert u["metadata"]["uid"] == m["uid"] and u["metadata"]["creationTimestamp"] == m["creationTimestamp"]
    assert u["metadata"]["updateTimestamp"] >= m["updateTimestamp"]
    # what GET returns can be PUT back as is
    r = cmf.request("PUT", CATS + "/test-cat", cmf.request("GET", CATS + "/test-cat").json())
    assert r.status == 200, r
    # delete
    r = cmf.request("DELETE", CATS + "/test-cat")
    assert r.status == 204 and r.body == b""
    r = cmf.request("GET", CATS + "/test-cat")
    assert r.status == 404 and r.error() == "catalog 'test-cat' not found"
    assert cmf.request("DELETE", CATS + "/test-cat").status == 404


def test_catalog_404_422_and_paging(cmf):
    r = cmf.request("PUT", CATS + "/nope-cat", catalog_body("nope-cat"))
    assert r.status == 404 and r.error() == "catalog 'nope-cat' not found"
    create_catalog(cmf, "real-cat")
    r = cmf.request("PUT", CATS + "/real-cat", catalog_body("other-cat"))
    assert r.status == 422 and "other-cat" in r.error() and "real-cat" in r.error()
    assert cmf.request("GET", CATS + "/Bad_Name").status == 404
    for n in ("cat-c", "cat-a", "cat-b"):
        create_catalog(cmf, n)
    j = cmf.request("GET", CATS + "?page=1&size=2").json()
    assert j["metadata"]["size"] == 4 and [c["metadata"]["name"] for c in j["items"]] == ["cat-c", "real-cat"]
    assert cmf.request("GET", CATS + "?page=x").status == 400


def test_catalog_yaml_body(cmf):
    body = ("apiVersion: cmf.confluent.io/v1\nkind: KafkaCatalog\nmetadata:\n  name: yaml-cat\n  labels:\n"
            "    environment: staging\nspec:\n  srInstance:\n    connectionConfig:\n"
            "      schema.registry.url: https://sr-staging.example.com\n    connectionSecretId: sr-staging-secret\n")
    r = cmf.request("POST", CATS, body, headers={"Content-Type": "application/yaml"})
    assert r.status == 200, r
    assert r.json()["spec"]["srInstance"] == {"connectionConfig": {"schema.registry.url":
                                                                   "https://sr-staging.example.com"},
                                              "connectionSecretId": "sr-staging-secret"}


@pytest.mark.parametrize("body,status,message", [
    (catalog_body("bad-cat", kafkaClusters=[{"databaseName": "x", "connectionConfig": {}}]), 422,
     "spec.kafkaClusters is not supported: create databases under /cmf/api/v1/catalogs/kafka/bad-cat/databases"),
    (catalog_body("bad-cat", kafkaClusters="x"), 400, "spec.kafkaClusters must be an array"),
    (catalog_body("bad-cat", config={"schema.registry.url": 5}), 400,
     "spec.srInstance.connectionConfig.schema.registry.url must be a string"),
    (catalog_body("bad-cat", config={"a": None}), 400, "spec.srInstance.connectionConfig.a must be a string"),
    (catalog_body("bad-cat", config=["x"]), 400, "spec.srInstance.connectionConfig must be an object"),
    (catalog_body("bad-cat", config={"": "x"}), 400, "keys must not be empty"),
    (catalog_body("bad-cat", secret_id="No_Good"), 400, "spec.srInstance.connectionSecretId 'No_Good' is not a valid name"),
    (catalog_body("bad-cat", secret_id="abc"), 400, "spec.srInstance.connectionSecretId 'abc' must be 4 to 253"),
    (catalog_body("bad-cat", secret_id=7), 400, "spec.srInstance.connectionSecretId must be a string"),
    ({"apiVersion": "cmf.confluent.io/v1", "kind": "KafkaCatalog", "metadata": {"name": "bad-cat"}}, 400,
     "spec is required"),
    ({"apiVersion": "cmf.confluent.io/v1", "kind": "KafkaCatalog", "metadata": {"name": "bad-cat"}, "spec": {}},
     400, "spec.srInstance is required"),
    ({"apiVersion": "cmf.confluent.io/v1", "kind": "KafkaCatalog", "metadata": {"name": "bad-cat"},
      "spec": {"srInstance": {}}}, 400, "spec.srInstance.connectionConfig is required"),
    ({"apiVersion": "cmf.confluent.io/v1", "kind": "KafkaCatalog", "metadata": {"name": "bad-cat"},
      "spec": {"srInstance": {"connectionConfig": {}, "url": "x"}}}, 400, "spec.srInstance.url: unknown field"),
    (catalog_body("bad-cat", sepc={}), 400, "spec.sepc: unknown field"),
    (catalog_body("ab"), 400, "metadata.name 'ab' must be 4 to 253"),
])
def test_catalog_validation(cmf, body, status, message):
    r = cmf.request("POST", CATS, body)
    assert r.status == status, r
    assert message in r.error(), r.error()
    assert cmf.request("GET", CATS).json()["metadata"]["size"] == 0


def test_empty_kafka_clusters_is_accepted(cmf):
    assert cmf.request("POST", CATS, catalog_body("empty-kc", kafkaClusters=[])).status == 200


# ---- sensitive connectionConfig keys ---------------------------------------------------------------

SENSITIVE = ["sasl.jaas.config", "SASL.JAAS.CONFIG", "ssl.truststore.password", "ssl.key.password",
             "ssl.keystore.password", "ssl.keystore.key", "basic.auth.user.info",
             "schema.registry.basic.auth.user.info", "sasl.oauthbearer.client.secret", "bearer.auth.client.secret",
             "bearer.auth.token", "my.Password.field", "properties.sasl.jaas.config", "ssl.key.anything",
             "schema.registry.ssl.keystore.key"]
PUBLIC = ["ssl.keystore.location", "ssl.keystore.type", "ssl.keystore.certificate.chain",
          "ssl.truststore.location", "ssl.truststore.type", "ssl.truststore.certificates", "sasl.mechanism",
          "basic.auth.credentials.source", "security.protocol", "ssl.endpoint.identification.algorithm",
          "sasl.jaas.config.extra", "keystore"]


@pytest.mark.parametrize("key", SENSITIVE)
def test_sensitive_key_refused(cmf, key):
    r = cmf.request("POST", CATS, catalog_body("sens-cat", config={"schema.registry.url": "x", key: "v"}))
    assert r.status == 422, (key, r)
    assert r.error() == ("spec.srInstance.connectionConfig holds sensitive key (%s): put them in a Secret and "
                         "reference it with connectionSecretId" % key)


def test_every_sensitive_key_is_named_at_once(cmf):
    create_catalog(cmf, "sens-cat")
    config = dict(KAFKA, **{"sasl.jaas.config": "x", "ssl.truststore.password": "y", "ssl.key.password": "z"})
    r = cmf.request("POST", dbs("sens-cat"), database_body("sens-db", config=config))
    assert r.status == 422, r
    msg = r.error()
    assert msg.startswith("spec.kafkaCluster.connectionConfig holds sensitive keys ("), msg
    assert msg.endswith("): put them in a Secret and reference it with connectionSecretId"), msg
    for k in ("sasl.jaas.config", "ssl.truststore.password", "ssl.key.password"):
        assert k in msg, k
    assert "bootstrap.servers" not in msg and '"x"' not in msg
    # the same on update
    create_database(cmf, "sens-cat", "sens-db")
    r = cmf.request("PUT", dbs("sens-cat") + "/sens-db", database_body("sens-db", config=config))
    assert r.status == 422 and "holds sensitive keys" in r.error()


def test_public_keys_accepted(cmf):
    config = {k: "v" for k in PUBLIC}
    r = cmf.request("POST", CATS, catalog_body("pub-cat", config=config))
    assert r.status == 200, r
    assert r.json()["spec"]["srInstance"]["connectionConfig"] == config


# ---- databases -------------------------------------------------------------------------------------

def test_database_crud(cmf):
    create_catalog(cmf, "main-cat")
    r = cmf.request("POST", dbs("main-cat"), database_body("dev-db", secret_id="dev-secret-id"))
    assert r.status == 200, r
    d = r.json()
    assert d["apiVersion"] == "cmf.confluent.io/v1" and d["kind"] == "KafkaDatabase"
    assert d["metadata"]["name"] == "dev-db" and UUID.match(d["metadata"]["uid"])
    assert d["spec"] == {"kafkaCluster": {"connectionConfig": KAFKA, "connectionSecretId": "dev-secret-id"}}
    assert d["status"] == {"environmentsWithAccess": []}
    g = cmf.request("GET", dbs("main-cat") + "/dev-db")
    assert g.status == 200 and g.json() == d
    j = cmf.request("GET", dbs("main-cat")).json()
    assert j["metadata"] == {"size": 1} and j["items"] == [d]
    r = cmf.request("POST", dbs("main-cat"), database_body("dev-db"))
    assert r.status == 409 and r.error() == "database 'dev-db' in catalog 'main-cat' already exists"
    r = cmf.request("PUT", dbs("main-cat") + "/dev-db", database_body("dev-db", config={"bootstrap.servers": "b:1"}))
    assert r.status == 200, r
    assert r.json()["spec"] == {"kafkaCluster": {"connectionConfig": {"bootstrap.servers": "b:1"}}}
    assert r.json()["metadata"]["uid"] == d["metadata"]["uid"]
    r = cmf.request("PUT", dbs("main-cat") + "/dev-db", database_body("prod-db"))
    assert r.status == 422 and "prod-db" in r.error()
    r = cmf.request("PUT", dbs("main-cat") + "/prod-db", database_body("prod-db"))
    assert r.status == 404 and r.error() == "database 'prod-db' in catalog 'main-cat' not found"
    # the same name in another catalog is another database
    create_catalog(cmf, "other-cat")
    create_database(cmf, "other-cat", "dev-db")
    assert cmf.request("DELETE", dbs("main-cat") + "/dev-db").status == 204
    r = cmf.request("GET", dbs("main-cat") + "/dev-db")
    assert r.status == 404 and r.error() == "database 'dev-db' in catalog 'main-cat' not found"
    assert cmf.request("DELETE", dbs("main-cat") + "/dev-db").status == 404
    assert cmf.request("GET", dbs("other-cat") + "/dev-db").status == 200


def test_database_catalog_missing_is_404(cmf):
    for method, path, body in [("POST", dbs("no-cat"), database_body("some-db")),
                               ("GET", dbs("no-cat"), None),
                               ("GET", dbs("no-cat") + "/some-db", None),
                               ("PUT", dbs("no-cat") + "/some-db", database_body("some-db")),
                               ("DELETE", dbs("no-cat") + "/some-db", None)]:
        r = cmf.request(method, path, body)
        assert r.status == 404, (method, path, r)
        assert r.error() == "catalog 'no-cat' not found", (method, r.error())


@pytest.mark.parametrize("body,status,message", [
    (database_body("bad-db", ddlEnvironments=["production"]), 422, "spec.ddlEnvironments is not supported"),
    (database_body("bad-db", config={"bootstrap.servers": ["a"]}), 400,
     "spec.kafkaCluster.connectionConfig.bootstrap.servers must be a string"),
    (database_body("bad-db", secret_id="X"), 400, "spec.kafkaCluster.connectionSecretId"),
    ({"apiVersion": "cmf.confluent.io/v1", "kind": "KafkaDatabase", "metadata": {"name": "bad-db"},
      "spec": {"srInstance": {"connectionConfig": {}}}}, 400, "spec.srInstance: unknown field"),
    ({"apiVersion": "cmf.confluent.io/v1", "kind": "KafkaDatabase", "metadata": {"name": "bad-db"},
      "spec": {}}, 400, "spec.kafkaCluster is required"),
    (dict(database_body("bad-db"), kind="KafkaCatalog"), 400, "kind must be \"KafkaDatabase\""),
])
def test_database_validation(cmf, body, status, message):
    create_catalog(cmf, "val-cat")
    r = cmf.request("POST", dbs("val-cat"), body)
    assert r.status == status, r
    assert message in r.error(), r.error()
    assert cmf.request("GET", dbs("val-cat")).json()["metadata"]["size"] == 0


def test_database_yaml_and_empty_ddl_environments(cmf):
    create_catalog(cmf, "yaml-cat")
    body = ("apiVersion: cmf.confluent.io/v1\nkind: KafkaDatabase\nmetadata:\n  name: staging\nspec:\n"
            "  kafkaCluster:\n    connectionConfig:\n      bootstrap.servers: kafka-staging.example.com:9092\n"
            "    connectionSecretId: staging-kafka-secret\n  ddlEnvironments: []\n")
    r = cmf.request("POST", dbs("yaml-cat"), body, headers={"Content-Type": "application/yaml"})
    assert r.status == 200, r
    assert r.json()["spec"]["kafkaCluster"]["connectionSecretId"] == "staging-kafka-secret"


def test_catalog_with_databases_cannot_be_deleted(cmf):
    create_catalog(cmf, "busy-cat")
    create_database(cmf, "busy-cat", "db-two")
    create_database(cmf, "busy-cat", "db-one")
    r = cmf.request("DELETE", CATS + "/busy-cat")
    assert r.status == 409, r
    assert r.error() == "catalog 'busy-cat' still has databases db-one, db-two: delete them first"
    assert cmf.request("GET", CATS + "/busy-cat").status == 200
    assert cmf.request("DELETE", dbs("busy-cat") + "/db-one").status == 204
    r = cmf.request("DELETE", CATS + "/busy-cat")
    assert r.status == 409 and r.error() == "catalog 'busy-cat' still has database db-two: delete them first"
    assert cmf.request("DELETE", dbs("busy-cat") + "/db-two").status == 204
    assert cmf.request("DELETE", CATS + "/busy-cat").status == 204
    assert audit_counted(cmf, "catalog/busy-cat") == [
        ("catalog.create", "catalog/busy-cat", "success", 200, 1),
        ("catalog.delete", "catalog/busy-cat", "failure", 409, 2),  # the two refusals, merged
        ("catalog.delete", "catalog/busy-cat", "success", 204, 1),
    ]


def test_environments_with_access(cmf):
    create_catalog(cmf, "acc-cat", secret_id="sr-conn")
    create_catalog(cmf, "no-id-cat")
    create_database(cmf, "acc-cat", "acc-db", secret_id="kafka-conn")
    map_secret(cmf, "prod", "sr-conn", "sr-creds")
    map_secret(cmf, "staging", "sr-conn", "sr-creds")
    map_secret(cmf, "staging", "kafka-conn", "kafka-creds")
    map_secret(cmf, "dev-env", "unrelated", "sr-creds")
    assert cmf.request("GET", CATS + "/acc-cat").json()["status"] == {"environmentsWithAccess": ["prod", "staging"]}
    assert cmf.request("GET", CATS + "/no-id-cat").json()["status"] == {"environmentsWithAccess": []}
    assert cmf.request("GET", dbs("acc-cat") + "/acc-db").json()["status"] == {"environmentsWithAccess": ["staging"]}
    listed = {c["metadata"]["name"]: c["status"]["environmentsWithAccess"]
              for c in cmf.request("GET", CATS).json()["items"]}
    assert listed == {"acc-cat": ["prod", "staging"], "no-id-cat": []}
    assert cmf.request("GET", dbs("acc-cat")).json()["items"][0]["status"]["environmentsWithAccess"] == ["staging"]
    # deleting an environment drops its access
    assert cmf.request("DELETE", API + "/environments/staging").status == 204
    assert cmf.request("GET", CATS + "/acc-cat").json()["status"]["environmentsWithAccess"] == ["prod"]
    assert cmf.request("GET", dbs("acc-cat") + "/acc-db").json()["status"]["environmentsWithAccess"] == []


def test_writes_are_audited(cmf):
    create_catalog(cmf, "aud-cat")
    cmf.request("POST", CATS, catalog_body("aud-cat"))                                          # 409
    cmf.request("PUT", CATS + "/aud-cat", catalog_body("aud-cat"))
    cmf.request("GET", CATS + "/aud-cat")                                                       # not audited
    create_database(cmf, "aud-cat", "aud-db")
    cmf.request("POST", dbs("aud-cat"), database_body("aud-db"))                                # 409
    cmf.request("PUT", dbs("aud-cat") + "/aud-db", database_body("aud-db"))
    cmf.request("PUT", dbs("aud-cat") + "/aud-db", database_body("aud-db", config={"sasl.jaas.config": "x"}))  # 422
    cmf.request("DELETE", dbs("aud-cat") + "/aud-db")
    cmf.request("DELETE", dbs("aud-cat") + "/aud-db")                                           # 404
    cmf.request("POST", dbs("gone-cat"), database_body("aud-db"))                               # 404
    cmf.request("DELETE", CATS + "/aud-cat")
    assert audit(cmf, "catalog/") + audit(cmf, "database/") + audit(cmf, CATS) == [
        ("catalog.create", "catalog/aud-cat", "success", 200),
        ("catalog.create", "catalog/aud-cat", "failure", 409),
        ("catalog.update", "catalog/aud-cat", "success", 200),
        ("catalog.delete", "catalog/aud-cat", "success", 204),
        ("database.create", "database/aud-cat/aud-db", "success", 200),
        ("database.create", "database/aud-cat/aud-db", "failure", 409),
        ("database.update", "database/aud-cat/aud-db", "success", 200),
        ("database.delete", "database/aud-cat/aud-db", "success", 204),
        ("database.delete", "database/aud-cat/aud-db", "failure", 404),
        ("database.create", "database/gone-cat/aud-db", "failure", 404),
        ("database.update", CATS + "/aud-cat/databases/aud-db", "failure", 422),
    ]
    # exactly one event per write: 11 writes above
    ev = cmf.request("GET", API + "/audit-events?size=100").json()
    assert ev["metadata"]["size"] == 11


def test_environment_reader_gets_403_everywhere(cmf):
    r = cmf.request("POST", API + "/tokens", {"apiVersion": "cmf.confluent.io/v1", "kind": "ApiToken",
                                             "metadata": {"name": "job-prod"},
                                             "spec": {"role": "environment-reader", "environments": ["prod"]}})
    token = r.json()["status"]["token"]
    create_catalog(cmf, "ro-cat")
    create_database(cmf, "ro-cat", "ro-db")
    for method, path, body in [("GET", CATS, None), ("POST", CATS, catalog_body("new-cat")),
                               ("GET", CATS + "/ro-cat", None), ("PUT", CATS + "/ro-cat", catalog_body("ro-cat")),
                               ("DELETE", CATS + "/ro-cat", None),
                               ("GET", dbs("ro-cat"), None), ("POST", dbs("ro-cat"), database_body("new-db")),
                               ("GET", dbs("ro-cat") + "/ro-db", None),
                               ("PUT", dbs("ro-cat") + "/ro-db", database_body("ro-db")),
                               ("DELETE", dbs("ro-cat") + "/ro-db", None)]:
        r = cmf.request(method, path, body, token=token)
        assert r.status == 403, (method, path, r)
        r.error()
    assert cmf.request("GET", dbs("ro-cat") + "/ro-db").status == 200
