"""CSFLE: CsfleConfig CRUD and its checks over HTTP, databases naming one, the resolution's serializer
settings and KMS credentials in every format, format=connect, the ruleSet, and where credentials may
appear (only in resolution answers)."""
import copy
import json

import pytest

from conftest import secret_body

API = "/cmf/api/v1"
LOCAL_SECRET = "local-kms-s3cr3t-value-0123456789"
AWS_SECRET = "aws-secret-key-Zq9+/very-secret"

AVRO = json.dumps({
    "type": "record", "name": "Order", "namespace": "shop",
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "ssn", "type": "string", "confluent:tags": ["PII"]},
        {"name": "email", "type": ["null", "string"], "default": None, "confluent:tags": ["PII"]},
        {"name": "amount", "type": "double"},
    ]})

SPEC = {
    "kms": {"type": "local-kms", "keyId": "cmf-e2e-key", "credentialsSecretId": "kms-conn"},
    "kek": {"name": "pii-kek"},
    "dek": {"algorithm": "AES256_GCM"},
    "latestCacheTtlSec": 300,
    "rules": [{"name": "encryptPII", "tags": ["PII"], "onFailure": "ERROR,NONE"}],
    "schemas": [{"subject": "orders-value", "schemaType": "AVRO", "schema": AVRO}],
}


UNMAPPED_WARNING = ("spec.kms.credentialsSecretId 'kms-conn' is mapped in no environment: resolutions of the "
                    "databases naming this CsfleConfig get 409 until one maps it")


def spec_warnings(j):
    """status.warnings about the spec itself (not where its credentials are mapped)."""
    return [w for w in j["status"]["warnings"] if w != UNMAPPED_WARNING]


def body(name, spec, kind="CsfleConfig"):
    return {"apiVersion": "cmf.confluent.io/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}


def ok(r, status=200):
    assert r.status == status, r
    return r


def errors(r):
    return [e["message"] for e in r.json()["errors"]]


def with_(spec=None, **changes):
    s = copy.deepcopy(SPEC if spec is None else spec)
    for path, v in changes.items():
        cur = s
        keys = path.split("__")
        for k in keys[:-1]:
            cur = cur[int(k)] if isinstance(cur, list) else cur[k]
        last = keys[-1]
        if isinstance(cur, list):
            cur[int(last)] = v
        elif v is KeyError:
            cur.pop(last, None)
        else:
            cur[last] = v
    return s


def database_body(name, config, secret_id=None, csfle=None):
    kc = {"connectionConfig": config}
    if secret_id:
        kc["connectionSecretId"] = secret_id
    spec = {"kafkaCluster": kc}
    if csfle is not None:
        spec["csfleConfig"] = csfle
    return body(name, spec, "KafkaDatabase")


def mapping_body(conn_id, secret):
    return body(conn_id, {"secretName": secret}, "EnvironmentSecretMapping")


# ---- the resource ----------------------------------------------------------------------------------

def test_crud(cmf):
    r = ok(cmf.request("POST", API + "/csfle-configs", body("orders-pii", SPEC)))
    j = r.json()
    assert j["kind"] == "CsfleConfig" and j["apiVersion"] == "cmf.confluent.io/v1"
    assert j["metadata"]["name"] == "orders-pii" and len(j["metadata"]["uid"]) == 36
    assert j["spec"] == SPEC
    # no environment maps its credentials yet: said once, as advice
    assert j["status"] == {"warnings": [UNMAPPED_WARNING], "databases": [], "environmentsWithAccess": []}
    assert ok(cmf.request("GET", API + "/csfle-configs/orders-pii")).json() == j
    lst = ok(cmf.request("GET", API + "/csfle-configs")).json()
    assert [i["metadata"]["name"] for i in lst["items"]] == ["orders-pii"]
    r = cmf.request("POST", API + "/csfle-configs", body("orders-pii", SPEC))
    assert r.status == 409 and r.error() == "CsfleConfig 'orders-pii' already exists"
    spec2 = with_(latestCacheTtlSec=60)
    j2 = ok(cmf.request("PUT", API + "/csfle-configs/orders-pii", body("orders-pii", spec2))).json()
    assert j2["spec"]["latestCacheTtlSec"] == 60 and j2["metadata"]["uid"] == j["metadata"]["uid"]
    r = cmf.request("PUT", API + "/csfle-configs/orders-pii", body("other-name", spec2))
    assert r.status == 422 and "does not match" in r.error()
    r = cmf.request("PUT", API + "/csfle-configs/absent-one", body("absent-one", spec2))
    assert r.status == 404 and r.error() == "CsfleConfig 'absent-one' not found"
    ok(cmf.request("DELETE", API + "/csfle-configs/orders-pii"), 204)
    assert cmf.request("GET", API + "/csfle-configs/orders-pii").status == 404
    assert cmf.request("DELETE", API + "/csfle-configs/orders-pii").status == 404
    r = cmf.request("POST", API + "/csfle-configs", body("x" * 300, SPEC))
    assert r.status == 400
    r = cmf.request("POST", API + "/csfle-configs", body("wrong-kind", SPEC, kind="KafkaCatalog"))
    assert r.status in (400, 422) and "CsfleConfig" in r.error()


def test_all_problems_at_once(cmf):
    spec = with_(kms={"type": "aws", "keyId": "my-key"}, kek={"name": "9bad name"},
                 dek={"algorithm": "AES512", "expiryDays": -1},
                 rules=[{"name": "r1", "tags": [], "mode": "READWRITE", "onFailure": "error"},
                        {"name": "r1", "type": "ENCRYPT_PAYLOAD", "tags": ["PII"], "mode": "WRITE",
                         "onFailure": "ERROR,NONE"}])
    r = cmf.request("POST", API + "/csfle-configs", body("bad-one", spec))
    assert r.status == 422
    msgs = errors(r)
    joined = "\n".join(msgs)
    # (the key id is checked against the KMS type's form only once the type is known)
    for needle in ("spec.kms.type", "spec.kek.name", "spec.dek.algorithm", "spec.dek.expiryDays",
                   "spec.rules[0].tags", "spec.rules[0].mode", "spec.rules[0].onFailure", "spec.rules[1].name",
                   "takes no tags", "spec.rules[1].onFailure"):
        assert needle in joined, (needle, msgs)
    assert len(msgs) >= 10, msgs
    assert cmf.request("GET", API + "/csfle-configs/bad-one").status == 404


# Each check: a spec that trips it (problem text expected) — the clean SPEC trips none (test_crud).
TRIPS = [
    ("domain rule without tags", with_(rules__0__tags=[]), "spec.rules[0].tags"),
    ("payload rule with tags", with_(rules__0__type="ENCRYPT_PAYLOAD"), "takes no tags"),
    ("kind other than TRANSFORM", with_(rules__0__kind="CONDITION"), "spec.rules[0].kind"),
    ("READWRITE is no mode", with_(rules__0__mode="READWRITE"), "spec.rules[0].mode"),
    ("actions are case-sensitive", with_(rules__0__onFailure="error"), "spec.rules[0].onFailure"),
    ("no space in two-value action", with_(rules__0__onFailure="ERROR, NONE"), "spec.rules[0].onFailure"),
    ("two values only with WRITEREAD", with_(rules__0__mode="WRITE"), "spec.rules[0].onFailure"),
    ("kek name pattern", with_(kek={"name": "-starts-with-dash"}), "spec.kek.name"),
    ("kek name length", with_(kek={"name": "k" * 257}), "spec.kek.name"),
    ("kms type canonical", with_(kms={"type": "AWS-KMS", "keyId": "arn:aws:kms:us-east-1:123456789012:key/abc"}),
     "spec.kms.type"),
    ("aws key id form", with_(kms={"type": "aws-kms", "keyId": "alias/x"}), "spec.kms.keyId"),
    ("azure key id form", with_(kms={"type": "azure-kms", "keyId": "https://example.com/k"}), "spec.kms.keyId"),
    ("gcp key id form", with_(kms={"type": "gcp-kms", "keyId": "projects/p/keyRings/r"}), "spec.kms.keyId"),
    ("vault key id form", with_(kms={"type": "hcvault", "keyId": "vault://x"}), "spec.kms.keyId"),
    ("dek algorithm", with_(dek={"algorithm": "AES256_CBC"}), "spec.dek.algorithm"),
    ("expiry integer", with_(dek={"expiryDays": "30"}), "spec.dek.expiryDays"),
    ("expiry >= 0", with_(dek={"expiryDays": -1}), "spec.dek.expiryDays"),
    ("rule names unique", with_(rules=[SPEC["rules"][0], SPEC["rules"][0]]), "spec.rules[1].name"),
    ("unknown key", with_(kms__credentialSecretId="typo"), "credentialSecretId"),
    ("credentialsSecretId is a mapping name", with_(kms__credentialsSecretId="Not_A_Name"),
     "spec.kms.credentialsSecretId"),
    ("tagged int field", with_(schemas__0__schema=json.dumps(
        {"type": "record", "name": "R", "fields": [{"name": "age", "type": "int", "confluent:tags": ["PII"]}]})),
     "age"),
    ("tagged nullable long", with_(schemas__0__schema=json.dumps(
        {"type": "record", "name": "R", "fields": [{"name": "n", "type": ["null", "long"], "confluent:tags": ["PII"]}]})),
     "long"),
    ("JSON Schema tagged integer", with_(schemas__0={"subject": "s-value", "schemaType": "JSON", "schema": json.dumps(
        {"type": "object", "properties": {"age": {"type": "integer", "confluent:tags": ["PII"]}}})}), "age"),
]


@pytest.mark.parametrize("what,spec,needle", TRIPS, ids=[t[0] for t in TRIPS])
def test_each_check_trips(cmf, what, spec, needle):
    r = cmf.request("POST", API + "/csfle-configs", body("trip", spec))
    assert r.status == 422, (what, r)
    assert any(needle in m for m in errors(r)), (what, errors(r))


PASSES = [
    ("aws arn", with_(kms={"type": "aws-kms", "keyId": "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab", "credentialsSecretId": "kms-conn"})),
    ("aws alias", with_(kms={"type": "aws-kms", "keyId": "arn:aws:kms:eu-west-1:123456789012:alias/pii", "credentialsSecretId": "kms-conn"})),
    ("azure", with_(kms={"type": "azure-kms", "keyId": "https://myvault.vault.azure.net/keys/pii/0123abcd", "credentialsSecretId": "kms-conn"})),
    ("gcp", with_(kms={"type": "gcp-kms", "keyId": "projects/p1/locations/global/keyRings/r1/cryptoKeys/k1", "credentialsSecretId": "kms-conn"})),
    ("vault", with_(kms={"type": "hcvault", "keyId": "https://vault.example:8200/transit/keys/pii", "credentialsSecretId": "kms-conn"})),
    ("payload rule", with_(rules=[SPEC["rules"][0], {"name": "payload", "type": "ENCRYPT_PAYLOAD"}])),
    ("two-value WRITEREAD", with_(rules__0__mode="WRITEREAD", rules__0__onFailure="ERROR,ERROR")),
    ("SIV + expiry 0", with_(dek={"algorithm": "AES256_SIV", "expiryDays": 0})),
    ("JSON Schema nullable string", with_(schemas__0={"subject": "s-value", "schemaType": "JSON", "schema": json.dumps(
        {"type": "object", "properties": {"ssn": {"type": ["string", "null"], "confluent:tags": ["PII"]}}})})),
    ("KEK name of 256 characters, explicit kind", with_(kek={"name": "k" * 256}, rules__0__kind="TRANSFORM")),
    ("tagged bytes and nullable bytes", with_(schemas__0__schema=json.dumps(
        {"type": "record", "name": "R", "fields": [{"name": "b", "type": "bytes", "confluent:tags": ["PII"]},
                                                   {"name": "n", "type": ["null", "bytes"], "confluent:tags": ["PII"]}]}))),
    ("shared KEK without credentials", with_(kms={"type": "local-kms", "keyId": "k"}, kek={"name": "kek", "shared": True})),
]


@pytest.mark.parametrize("what,spec", PASSES, ids=[t[0] for t in PASSES])
def test_valid_forms_pass_without_warnings(cmf, what, spec):
    r = ok(cmf.request("POST", API + "/csfle-configs", body("pass", spec)))
    assert spec_warnings(r.json()) == [], (what, r.json()["status"])


WARNS = [
    ("onFailure NONE writes plaintext", with_(rules__0__onFailure="NONE"), "NONE"),
    ("DLQ with CSFLE", with_(rules__0__onFailure="DLQ"), "DLQ"),
    ("strict after lenient", with_(rules=[{"name": "lenient", "tags": ["PII"], "onFailure": "NONE"},
                                          {"name": "strict", "tags": ["PII"]}]), "spec.rules[1]"),
    ("expiry exhausts the DEK limit", with_(dek={"expiryDays": 1}, schemas=[
        {"subject": "s%d-value" % i, "schemaType": "AVRO", "schema": AVRO} for i in range(28)]), "limit of 10000 retained DEKs"),
    ("cache TTL unset", with_(latestCacheTtlSec=KeyError), "latestCacheTtlSec"),
    ("cache TTL -1", with_(latestCacheTtlSec=-1), "latestCacheTtlSec"),
    ("rule tag on no field", with_(rules__0__tags=["PII", "PHI"]), "PHI"),
    ("field tag used by no rule", with_(rules=[SPEC["rules"][0], {"name": "p", "type": "ENCRYPT_PAYLOAD"}],
                                        schemas__0__schema=AVRO.replace('"confluent:tags": ["PII"]}, {"name": "amount"',
                                                                        '"confluent:tags": ["PII"]}, {"name": "amount", '
                                                                        '"confluent:tags": ["SECRET"]')),
     "SECRET"),
]


@pytest.mark.parametrize("what,spec,needle", WARNS, ids=[w[0] for w in WARNS])
def test_each_warning(cmf, what, spec, needle):
    r = ok(cmf.request("POST", API + "/csfle-configs", body("warn", spec)))
    warnings = r.json()["status"]["warnings"]
    assert any(needle in w for w in warnings), (what, warnings)
    # a warning is advice: the declaration is stored and served
    assert ok(cmf.request("GET", API + "/csfle-configs/warn")).json()["status"]["warnings"] == warnings


def test_ruleset_is_exact(cmf):
    spec = with_(dek={"algorithm": "AES256_SIV", "expiryDays": 90}, preserveSourceFields=True,
                 rules=[{"name": "encryptSSN", "tags": ["PII"], "mode": "WRITEREAD", "onFailure": "ERROR,NONE"},
                        {"name": "payload", "type": "ENCRYPT_PAYLOAD", "mode": "WRITE", "onFailure": "ERROR"},
                        {"name": "later", "tags": ["PII"], "disabled": True}])
    ok(cmf.request("POST", API + "/csfle-configs", body("ruleset-one", spec)))
    r = ok(cmf.request("GET", API + "/csfle-configs/ruleset-one/ruleset"))
    params = {"encrypt.kek.name": "pii-kek", "encrypt.kms.key.id": "cmf-e2e-key", "encrypt.kms.type": "local-kms",
              "encrypt.dek.algorithm": "AES256_SIV", "encrypt.dek.expiry.days": "90", "preserve.source.fields": "true"}
    assert r.json() == {
        "domainRules": [
            {"name": "encryptSSN", "kind": "TRANSFORM", "mode": "WRITEREAD", "type": "ENCRYPT", "tags": ["PII"],
             "params": params, "onFailure": "ERROR,NONE", "disabled": False},
            {"name": "later", "kind": "TRANSFORM", "mode": "WRITEREAD", "type": "ENCRYPT", "tags": ["PII"],
             "params": params, "disabled": True}],
        "encodingRules": [
            {"name": "payload", "kind": "TRANSFORM", "mode": "WRITE", "type": "ENCRYPT_PAYLOAD", "params": params,
             "onFailure": "ERROR", "disabled": False}]}
    # declared order is kept (domain rules)
    assert [x["name"] for x in r.json()["domainRules"]] == ["encryptSSN", "later"]
    assert cmf.request("GET", API + "/csfle-configs/absent/ruleset").status == 404


# ---- databases and resolution ------------------------------------------------------------------------

@pytest.fixture
def world(cmf):
    ok(cmf.create_secret("kafka-creds", {"sasl.jaas.config": "jaas-value-kafka", "security.protocol": "SASL_SSL"}))
    ok(cmf.create_secret("sr-creds", {"basic.auth.credentials.source": "USER_INFO",
                                      "basic.auth.user.info": "sr-user:sr-pass"}))
    ok(cmf.create_secret("kms-local", {"secret": LOCAL_SECRET}))
    ok(cmf.request("POST", API + "/environments", {"name": "prod", "kubernetesNamespace": "flink"}))
    for conn, sec in (("kafka-conn", "kafka-creds"), ("sr-conn", "sr-creds"), ("kms-conn", "kms-local")):
        ok(cmf.request("POST", API + "/environments/prod/secret-mappings", mapping_body(conn, sec)))
    ok(cmf.request("POST", API + "/catalogs/kafka", body("main", {"srInstance": {
        "connectionConfig": {"schema.registry.url": "http://sr:8081"}, "connectionSecretId": "sr-conn"}},
        "KafkaCatalog")))
    ok(cmf.request("POST", API + "/csfle-configs", body("orders-pii", SPEC)))
    ok(cmf.request("POST", API + "/catalogs/kafka/main/databases",
                   database_body("orders", {"bootstrap.servers": "b:9092"}, "kafka-conn", "orders-pii")))
    return cmf


PATH = API + "/environments/prod/client-configs/main/orders"


def test_database_names_its_csfle_config(world):
    d = ok(world.request("GET", API + "/catalogs/kafka/main/databases/orders")).json()
    assert d["spec"]["csfleConfig"] == "orders-pii"
    f = ok(world.request("GET", API + "/csfle-configs/orders-pii")).json()
    assert f["status"]["databases"] == ["main/orders"]
    assert f["status"]["environmentsWithAccess"] == ["prod"]
    r = world.request("DELETE", API + "/csfle-configs/orders-pii")
    assert r.status == 409
    assert r.error() == ("CsfleConfig 'orders-pii' is used by database main/orders: remove spec.csfleConfig from "
                         "them first")
    r = world.request("POST", API + "/catalogs/kafka/main/databases",
                      database_body("other", {"bootstrap.servers": "b:9092"}, None, "no-such-config"))
    assert r.status == 404
    assert r.error() == "CsfleConfig 'no-such-config' not found: create it before naming it in spec.csfleConfig"
    r = world.request("POST", API + "/catalogs/kafka/main/databases",
                      database_body("other", {"bootstrap.servers": "b:9092"}, None, 42))
    assert r.status == 400 and "spec.csfleConfig" in r.error()
    # removing the reference (explicitly: null) frees the config
    unref = database_body("orders", {"bootstrap.servers": "b:9092"}, "kafka-conn")
    unref["spec"]["csfleConfig"] = None
    ok(world.request("PUT", API + "/catalogs/kafka/main/databases/orders", unref))
    assert "csfleConfig" not in ok(world.request("GET", API + "/catalogs/kafka/main/databases/orders")).json()["spec"]
    ok(world.request("DELETE", API + "/csfle-configs/orders-pii"), 204)


def test_database_write_checks_public_config(world):
    r = world.request("POST", API + "/catalogs/kafka/main/databases",
                      database_body("bad-db", {"bootstrap.servers": "b:9092", "auto.register.schemas": "true",
                                            "rule.service.loader.enable": "false"}, None, "orders-pii"))
    assert r.status == 422
    msgs = errors(r)
    assert len(msgs) == 2 and any("auto.register.schemas" in m for m in msgs) and \
        any("rule.service.loader.enable" in m for m in msgs), msgs
    # the same config without CSFLE is fine
    ok(world.request("POST", API + "/catalogs/kafka/main/databases",
                     database_body("bad-db", {"bootstrap.servers": "b:9092", "auto.register.schemas": "true"})))
    r = ok(world.request("POST", API + "/catalogs/kafka/main/databases",
                         database_body("dlq-db", {"bootstrap.servers": "b:9092",
                                               "errors.deadletterqueue.topic.name": "orders-dlq"}, None, "orders-pii")))
    assert any("errors.deadletterqueue.topic.name" in w for w in r.json()["status"]["warnings"])


def test_kms_credentials_never_in_connection_config(world):
    r = world.request("POST", API + "/catalogs/kafka/main/databases", database_body(
        "leaky", {"bootstrap.servers": "b:9092", "rule.executors._default_.param.access.key.id": "AKIA"}))
    assert r.status == 422 and "rule.executors._default_.param.access.key.id" in r.error()
    assert "AKIA" not in r.error()


def resolved_sr(extra=None):
    sr = {"schema.registry.url": "http://sr:8081", "basic.auth.credentials.source": "USER_INFO",
          "basic.auth.user.info": "sr-user:sr-pass", "auto.register.schemas": "false", "use.latest.version": "true",
          "latest.cache.ttl.sec": "300", "rule.executors._default_.param.secret": LOCAL_SECRET}
    sr.update(extra or {})
    return sr


def test_resolution_json(world):
    r = ok(world.request("GET", PATH))
    assert r.json() == {"kafka": {"bootstrap.servers": "b:9092", "sasl.jaas.config": "jaas-value-kafka",
                                  "security.protocol": "SASL_SSL"},
                        "schemaRegistry": resolved_sr()}


def test_resolution_properties_exact(world):
    r = ok(world.request("GET", PATH + "?format=properties"))
    assert r.body.decode("ascii") == (
        "# cmf client configuration: environment prod, Kafka database main/orders, CSFLE\n"
        "auto.register.schemas=false\n"
        "basic.auth.credentials.source=USER_INFO\n"
        "basic.auth.user.info=sr-user\\:sr-pass\n"
        "bootstrap.servers=b\\:9092\n"
        "latest.cache.ttl.sec=300\n"
        "rule.executors._default_.param.secret=" + LOCAL_SECRET + "\n"
        "sasl.jaas.config=jaas-value-kafka\n"
        "schema.registry.url=http\\://sr\\:8081\n"
        "security.protocol=SASL_SSL\n"
        "use.latest.version=true\n")


def test_resolution_connect_exact(world):
    r = ok(world.request("GET", PATH + "?format=connect"))
    assert r.headers["content-type"] == "text/x-java-properties; charset=ISO-8859-1"
    lines = ["# cmf client configuration: environment prod, Kafka database main/orders, CSFLE", "csfle.enabled=true"]
    for p in ("key.converter.", "value.converter."):
        lines += [p + "auto.register.schemas=false", p + "basic.auth.credentials.source=USER_INFO",
                  p + "basic.auth.user.info=sr-user\\:sr-pass", p + "latest.cache.ttl.sec=300",
                  p + "rule.executors._default_.param.secret=" + LOCAL_SECRET,
                  p + "schema.registry.url=http\\://sr\\:8081", p + "use.latest.version=true"]
    lines.append("rule.executors._default_.param.secret=" + LOCAL_SECRET)
    header, rest = lines[0], sorted(lines[1:])
    assert r.body.decode("ascii") == "\n".join([header] + rest) + "\n"
    # the Kafka connection is the worker's: not part of a connector's properties
    assert b"jaas-value-kafka" not in r.body


def test_connect_without_csfle(world):
    unref = database_body("orders", {"bootstrap.servers": "b:9092"}, "kafka-conn")
    unref["spec"]["csfleConfig"] = None
    ok(world.request("PUT", API + "/catalogs/kafka/main/databases/orders", unref))
    text = ok(world.request("GET", PATH + "?format=connect")).body.decode("ascii")
    assert "csfle.enabled" not in text and "rule.executors" not in text
    assert "value.converter.schema.registry.url=http\\://sr\\:8081\n" in text


def test_flink_sql_is_refused_with_csfle(world):
    r = world.request("GET", PATH + "?format=flink-sql")
    assert r.status == 422
    assert "avro-confluent format does not run Schema Registry encryption rules" in r.error()
    assert "format=properties" in r.error()
    assert LOCAL_SECRET.encode() not in r.body


def put_secret(world, name, data):
    ok(world.request("PUT", API + "/secrets/" + name, secret_body(name, data)))


@pytest.mark.parametrize("data,needles", [
    ({}, ["incomplete", "secret"]),
    ({"secret": LOCAL_SECRET, "secrte": "x"}, ["unknown key 'secrte'"]),
])
def test_resolution_checks_local_credentials(world, data, needles):
    put_secret(world, "kms-local", data)
    r = world.request("GET", PATH)
    assert r.status == 422, r
    text = "\n".join(errors(r))
    for n in needles:
        assert n in text, (n, text)
    assert LOCAL_SECRET not in text


AWS_SPEC = with_(kms={"type": "aws-kms", "keyId": "arn:aws:kms:us-east-1:123456789012:key/abcd-1234",
                      "credentialsSecretId": "kms-conn"})


@pytest.mark.parametrize("data,status,needle", [
    ({"access.key.id": "AKIAEXAMPLE"}, 422, "missing secret.access.key"),
    ({"access.key,id": "AKIAEXAMPLE", "secret.access.key": AWS_SECRET}, 422, "unknown key 'access.key,id'"),
    ({"access.key.id": "AKIAEXAMPLE", "secret.access.key": AWS_SECRET}, 200, None),
])
def test_resolution_checks_aws_credentials(world, data, status, needle):
    # a KMS change while orders uses the config: forced (no records written; test_csfle_hardening covers the 409)
    ok(world.request("PUT", API + "/csfle-configs/orders-pii?force=true", body("orders-pii", AWS_SPEC)))
    ok(world.create_secret("kms-aws", data))
    ok(world.request("PUT", API + "/environments/prod/secret-mappings/kms-conn", mapping_body("kms-conn", "kms-aws")))
    r = world.request("GET", PATH)
    assert r.status == status, r
    if needle:
        assert any(needle in m for m in errors(r)), errors(r)
        assert AWS_SECRET.encode() not in r.body
    else:
        sr = r.json()["schemaRegistry"]
        assert sr["rule.executors._default_.param.access.key.id"] == "AKIAEXAMPLE"
        assert sr["rule.executors._default_.param.secret.access.key"] == AWS_SECRET


def test_unmapped_kms_credentials_is_409(world):
    ok(world.request("POST", API + "/environments", {"name": "dev1", "kubernetesNamespace": "flink"}))
    for conn, sec in (("kafka-conn", "kafka-creds"), ("sr-conn", "sr-creds")):
        ok(world.request("POST", API + "/environments/dev1/secret-mappings", mapping_body(conn, sec)))
    r = world.request("GET", API + "/environments/dev1/client-configs/main/orders")
    assert r.status == 409
    assert r.error() == ("connectionSecretId 'kms-conn' (used by the KMS credentials of CsfleConfig 'orders-pii') has "
                         "no secret mapping in environment 'dev1': create one with POST "
                         "/cmf/api/v1/environments/dev1/secret-mappings")


@pytest.mark.parametrize("extra,needle", [
    ({"auto.register.schemas": "true"}, "auto.register.schemas"),
    ({"use.latest.version": "false"}, "use.latest.version"),
    ({"rule.executors.encrypt.disabled": "TRUE"}, "rule.executors.encrypt.disabled"),
    ({"rule.executors._default_.onFailure": "NONE"}, "rule.executors._default_.onFailure"),
    ({"rule.service.loader.enable": "false"}, "rule.service.loader.enable"),
    ({"latest.cache.ttl.sec": "-1"}, "latestCacheTtlSec"),
    ({"rule.executors._default_.param.secret": "other"}, "rule.executors._default_.param.secret"),
])
def test_resolution_refuses_protection_off_from_secrets(world, extra, needle):
    # A connection secret (not checked when written) switching protection off is caught when resolving.
    put_secret(world, "sr-creds", dict({"basic.auth.credentials.source": "USER_INFO",
                                        "basic.auth.user.info": "sr-user:sr-pass"}, **extra))
    r = world.request("GET", PATH)
    assert r.status == 422, r
    assert any(needle in m for m in errors(r)), errors(r)
    assert LOCAL_SECRET.encode() not in r.body and b"sr-pass" not in r.body


def test_resolution_refuses_missing_registry_url(world):
    ok(world.request("PUT", API + "/catalogs/kafka/main", body("main", {"srInstance": {
        "connectionConfig": {"basic.auth.credentials.source": "USER_INFO"}, "connectionSecretId": "sr-conn"}},
        "KafkaCatalog")))
    r = world.request("GET", PATH)
    assert r.status == 422 and any("schema.registry.url" in m for m in errors(r)), r


def test_resolution_warnings_travel_with_the_config(world):
    put_secret(world, "kafka-creds", {"sasl.jaas.config": "jaas-value-kafka", "security.protocol": "SASL_SSL",
                                      "reporter.error.topic.name": "errors"})
    j = ok(world.request("GET", PATH)).json()
    assert len(j["warnings"]) == 1 and "reporter.error.topic.name" in j["warnings"][0]
    text = ok(world.request("GET", PATH + "?format=properties")).body.decode("ascii")
    assert text.splitlines()[1].startswith("# WARNING: kafka: 'reporter.error.topic.name'") or \
        text.splitlines()[1].startswith("# WARNING: kafka: reporter.error.topic.name"), text
    assert "reporter.error.topic.name" in world.log()


def test_etag_follows_csfle_config_and_credentials(world):
    e1 = ok(world.request("GET", PATH)).headers["etag"]
    assert world.request("GET", PATH, headers={"If-None-Match": e1}).status == 304
    ok(world.request("PUT", API + "/csfle-configs/orders-pii", body("orders-pii", with_(latestCacheTtlSec=60))))
    r = ok(world.request("GET", PATH, headers={"If-None-Match": e1}))
    e2 = r.headers["etag"]
    assert e2 != e1 and r.json()["schemaRegistry"]["latest.cache.ttl.sec"] == "60"
    put_secret(world, "kms-local", {"secret": "rotated-local-secret-value"})
    r = ok(world.request("GET", PATH, headers={"If-None-Match": e2}))
    assert r.json()["schemaRegistry"]["rule.executors._default_.param.secret"] == "rotated-local-secret-value"


def test_credentials_only_in_resolution_answers(world, pg, db):
    ok(world.request("GET", PATH))
    ok(world.request("GET", PATH + "?format=properties"))
    world.request("GET", PATH + "?format=flink-sql")
    put_secret(world, "kms-local", {"secret": LOCAL_SECRET, "typo.key": "x"})
    world.request("GET", PATH)
    log = world.log()
    dump = pg.dump(db)
    others = b"".join(world.request("GET", p).body for p in (
        API + "/csfle-configs", API + "/csfle-configs/orders-pii", API + "/csfle-configs/orders-pii/ruleset",
        API + "/secrets", API + "/secrets/kms-local", API + "/catalogs/kafka/main/databases",
        API + "/environments/prod/secret-mappings", API + "/audit-events?size=100"))
    for n in (LOCAL_SECRET, "jaas-value-kafka", "sr-pass"):
        assert n not in log, n
        assert n.encode() not in dump, n
        assert n.encode() not in others, n
    events = [e for e in world.request("GET", API + "/audit-events?size=100").json()["items"]
              if e["resource"].startswith("csfle-config/")]
    assert [e["action"] for e in events] == ["csfle-config.create"]


# ---- end to end with Confluent's CSFLE client ---------------------------------------------------------

ROOT = __import__("os").path.dirname(__import__("os").path.dirname(__import__("os").path.dirname(
    __import__("os").path.abspath(__file__))))


@pytest.fixture(scope="module")
def csfle_npm():
    """@confluentinc/schemaregistry, pinned by tests/csfle_e2e/package-lock.json (tests/csfle-npm.sh)."""
    import subprocess
    out = subprocess.run(["sh", ROOT + "/tests/csfle-npm.sh"], cwd=ROOT, capture_output=True, text=True,
                         timeout=900)
    assert out.returncode == 0, f"tests/csfle-npm.sh failed:\n{out.stderr}"
    return out.stdout.strip().splitlines()[-1]


def roundtrip(npm_dir, inp):
    import os
    import subprocess
    env = dict(os.environ, CSFLE_NPM_DIR=npm_dir)
    env.pop("LOCAL_SECRET", None)
    p = subprocess.run(["node", ROOT + "/tests/csfle_e2e/roundtrip.mjs"], input=json.dumps(inp), env=env,
                       capture_output=True, text=True, timeout=120)
    return p.returncode, (json.loads(p.stdout) if p.returncode == 0 else None), p.stderr


def test_end_to_end_with_confluent_js_client(world, csfle_npm):
    """The config and ruleSet cmf renders, used as is by Confluent's JavaScript CSFLE client (its mock
    registry stands in for Schema Registry, local-kms for the KMS): the tagged field is ciphertext on the
    wire and decrypts back; without the rule executor parameters it cannot be read, or written."""
    # The catalog points at the client's in-memory registry, so nothing in cmf's output is edited.
    ok(world.request("PUT", API + "/catalogs/kafka/main", body("main", {"srInstance": {
        "connectionConfig": {"schema.registry.url": "mock://cmf-e2e"}}}, "KafkaCatalog")))
    cfg = ok(world.request("GET", PATH)).json()
    props = dict(cfg["kafka"], **cfg["schemaRegistry"])
    ruleset = ok(world.request("GET", API + "/csfle-configs/orders-pii/ruleset")).json()
    record = {"id": "order-0001-visible", "ssn": "123-45-6789", "email": None, "amount": 42.5}
    inp = {"properties": props, "ruleSet": ruleset, "subject": "orders-value", "schema": AVRO, "record": record,
           "taggedField": "ssn", "topic": "orders"}
    rc, out, err = roundtrip(csfle_npm, inp)
    assert rc == 0, err
    wire = bytes.fromhex(out["wireHex"])
    assert wire[0] == 0  # Confluent wire format: magic byte, schema id
    assert out["plaintextOnWire"] is False and b"123-45-6789" not in wire
    assert out["otherFieldOnWire"] is True and b"order-0001-visible" in wire
    assert out["decoded"] == record
    # a reader without the rule executor parameters gets ciphertext (the rule's read action is NONE)
    assert out["withoutParamsError"] is not None or out["decodedWithoutParams"]["ssn"] != "123-45-6789"
    assert "cannot load secret" in (out["withoutParamsRuleError"] or out["withoutParamsError"] or "")
    # a writer without them refuses to write (onFailure ERROR on write): no plaintext goes out
    props.pop("rule.executors._default_.param.secret")
    rc, out, err = roundtrip(csfle_npm, dict(inp, properties=props))
    assert rc == 3 and "cannot load secret" in err, (rc, err)


def test_kms_key_id_with_credentials_is_refused(cmf):
    r = cmf.request("POST", API + "/csfle-configs", body("vault-url", with_(
        kms={"type": "hcvault", "keyId": "https://hvs.SECRETTOKEN@vault:8200/transit/keys/pii"})))
    assert r.status == 422 and any("spec.kms.keyId holds credentials" in m for m in errors(r)), r
    assert b"SECRETTOKEN" not in r.body


def test_ambient_credentials_warning(cmf):
    r = ok(cmf.request("POST", API + "/csfle-configs", body("ambient", with_(kms={"type": "local-kms", "keyId": "k"}))))
    assert any("ambient KMS credentials" in w for w in r.json()["status"]["warnings"]), r.json()


def test_no_warning_once_credentials_are_mapped(world):
    assert ok(world.request("GET", API + "/csfle-configs/orders-pii")).json()["status"]["warnings"] == []


def test_put_without_csfle_config_keeps_it_null_removes_it(world):
    path = API + "/catalogs/kafka/main/databases/orders"
    plain = database_body("orders", {"bootstrap.servers": "b2:9092"}, "kafka-conn")
    # a client speaking only CMF's fields does not switch encryption off
    assert ok(world.request("PUT", path, plain)).json()["spec"]["csfleConfig"] == "orders-pii"
    assert "rule.executors._default_.param.secret" in ok(world.request("GET", PATH)).json()["schemaRegistry"]
    # an explicit null does
    plain["spec"]["csfleConfig"] = None
    assert "csfleConfig" not in ok(world.request("PUT", path, plain)).json()["spec"]
    assert "rule.executors._default_.param.secret" not in ok(world.request("GET", PATH)).json()["schemaRegistry"]


def test_database_write_checks_ttl_against_the_config(world):
    r = world.request("POST", API + "/catalogs/kafka/main/databases",
                      database_body("ttl-db", {"bootstrap.servers": "b:9092", "latest.cache.ttl.sec": "60"}, None,
                                    "orders-pii"))
    assert r.status == 422 and any("latestCacheTtlSec (300)" in m for m in errors(r)), r


def test_refusals_carry_no_etag_and_never_earn_a_304(world):
    r = world.request("GET", PATH + "?format=flink-sql")
    assert r.status == 422 and "etag" not in r.headers
    etag = ok(world.request("GET", PATH)).headers["etag"]
    # the flink-sql refusal holds for a poller too, whatever it sends
    for inm in (etag, "*"):
        r = world.request("GET", PATH + "?format=flink-sql", headers={"If-None-Match": inm})
        assert r.status == 422, (inm, r)
    # "*" is not an ETag cmf gave: the answer is rendered (and checked)
    assert ok(world.request("GET", PATH, headers={"If-None-Match": "*"})).headers["etag"] == etag
    put_secret(world, "kms-local", {})
    r = world.request("GET", PATH, headers={"If-None-Match": etag})
    assert r.status == 422 and "etag" not in r.headers


def test_config_without_credentials_secret(world):
    ok(world.request("PUT", API + "/csfle-configs/orders-pii", body("orders-pii", with_(
        kms={"type": "local-kms", "keyId": "cmf-e2e-key"}, kek={"name": "pii-kek", "shared": True}))))
    sr = ok(world.request("GET", PATH)).json()["schemaRegistry"]
    assert sr["auto.register.schemas"] == "false" and sr["use.latest.version"] == "true"
    assert not any(k.startswith("rule.executors") for k in sr), sr
