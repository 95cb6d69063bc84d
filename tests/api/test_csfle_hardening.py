"""Issue 13, items 11-15: CsfleConfigs that would write plaintext or break readers. A rule that never runs on
WRITE, a change of keys under databases that use the config, one KEK with two KMS keys (also under concurrent
writes), the KMS credential sets Confluent's drivers read, and booleans with spaces around them."""
import threading

import pytest

from conftest import secret_body
from test_csfle import (API, PATH, SPEC, body, database_body, errors, mapping_body, ok, spec_warnings, with_,
                        world)  # noqa: F401 (world: the fixture)

AWS_KEY = "arn:aws:kms:us-east-1:123456789012:key/abcd-1234"
AWS_SECRET = "aws-secret-key-Zq9+/very-secret"
GCP_KEY = "projects/p1/locations/global/keyRings/r1/cryptoKeys/k1"
GCP_PRIVATE = "-----BEGIN PRIVATE KEY-----gcp-very-secret"


# ---- 11: a rule that does not run on WRITE ---------------------------------------------------------

def test_read_only_rule_warns_and_covers_no_tag(cmf):
    spec = with_(rules=[{"name": "readPII", "tags": ["PII"], "mode": "READ"}])
    j = ok(cmf.request("POST", API + "/csfle-configs", body("read-only", spec))).json()
    warnings = spec_warnings(j)
    assert "spec.rules[0] 'readPII' has mode READ: it does not run when records are written, so its tagged " \
           "fields are written in plaintext (use WRITEREAD)" in warnings, warnings
    # the schema's PII fields are covered by no rule that runs on WRITE
    assert "schema tag 'PII' is used by no enabled rule that runs on WRITE: its fields are written in plaintext" \
        in warnings, warnings
    assert not any("is on no field" in w for w in warnings), warnings
    # GET recomputes the same advice
    assert spec_warnings(ok(cmf.request("GET", API + "/csfle-configs/read-only")).json()) == warnings


def test_write_rule_beside_a_read_rule_covers_the_tag(cmf):
    spec = with_(rules=[{"name": "readPII", "tags": ["PII"], "mode": "READ"},
                        {"name": "writePII", "tags": ["PII"], "mode": "WRITEREAD", "onFailure": "ERROR,NONE"}])
    warnings = spec_warnings(ok(cmf.request("POST", API + "/csfle-configs", body("both", spec))).json())
    assert [w for w in warnings if "readPII" in w] == [
        "spec.rules[0] 'readPII' has mode READ: it does not run when records are written, so its tagged fields "
        "are written in plaintext (use WRITEREAD)"], warnings
    assert not any("schema tag" in w for w in warnings), warnings


def test_read_only_payload_rule_warns(cmf):
    spec = with_(rules=[SPEC["rules"][0], {"name": "payload", "type": "ENCRYPT_PAYLOAD", "mode": "READ"}])
    warnings = spec_warnings(ok(cmf.request("POST", API + "/csfle-configs", body("payload", spec))).json())
    assert "spec.rules[1] 'payload' has mode READ: it does not run when records are written, so payloads are " \
           "written in plaintext (use WRITEREAD)" in warnings, warnings


@pytest.mark.parametrize("mode", ["UPGRADE", "DOWNGRADE", "UPDOWN"])
def test_migration_modes_are_refused(cmf, mode):
    r = cmf.request("POST", API + "/csfle-configs", body("migrate", with_(rules__0__mode=mode)))
    assert r.status == 422
    assert errors(r) == [f"spec.rules[0].mode '{mode}' is a migration rule mode: encryption rules run on WRITE, "
                         "READ or WRITEREAD"]


# ---- 12: changing the keys of a config in use --------------------------------------------------------

CHANGES = [
    ("kek.name", with_(kek={"name": "other-kek"}), "spec.kek.name"),
    ("kms.keyId", with_(kms__keyId="another-key"), "spec.kms.keyId"),
    ("kms.type", with_(kms={"type": "aws-kms", "keyId": AWS_KEY, "credentialsSecretId": "kms-conn"}),
     "spec.kms.keyId, spec.kms.type"),
    ("dek.algorithm", with_(dek={"algorithm": "AES128_GCM"}), "spec.dek.algorithm"),
]


@pytest.mark.parametrize("what,spec,changed", CHANGES, ids=[c[0] for c in CHANGES])
def test_key_change_under_databases_is_409(world, what, spec, changed):
    before = ok(world.request("GET", API + "/csfle-configs/orders-pii")).json()
    r = world.request("PUT", API + "/csfle-configs/orders-pii", body("orders-pii", spec))
    assert r.status == 409, (what, r)
    assert r.error() == (
        f"CsfleConfig 'orders-pii' is used by database main/orders: changing {changed} leaves the records "
        "written before unreadable (readers use the latest ruleSet, which would no longer name the keys they were "
        "encrypted with); create a new CsfleConfig for new data, or repeat with ?force=true if those records may "
        "be lost")
    assert ok(world.request("GET", API + "/csfle-configs/orders-pii")).json() == before
    # ?force=false is the default
    assert world.request("PUT", API + "/csfle-configs/orders-pii?force=false", body("orders-pii", spec)).status == 409


def test_key_change_names_every_database(world):
    ok(world.request("POST", API + "/catalogs/kafka/main/databases",
                     database_body("payments", {"bootstrap.servers": "b:9092"}, "kafka-conn", "orders-pii")))
    r = world.request("PUT", API + "/csfle-configs/orders-pii", body("orders-pii", with_(kek={"name": "k2"})))
    assert r.status == 409 and "is used by databases main/orders, main/payments: changing spec.kek.name" in r.error()


def test_forced_key_change_is_applied_with_a_warning(world):
    j = ok(world.request("PUT", API + "/csfle-configs/orders-pii?force=true",
                         body("orders-pii", with_(kek={"name": "new-kek"})))).json()
    assert j["spec"]["kek"]["name"] == "new-kek"
    warning = ("spec.kek.name changed with force=true while database main/orders uses this CsfleConfig: records "
               "written before can no longer be read with the latest ruleSet")
    assert warning in j["status"]["warnings"], j["status"]["warnings"]
    # advice of that write only; the ruleSet names the new KEK
    assert warning not in ok(world.request("GET", API + "/csfle-configs/orders-pii")).json()["status"]["warnings"]
    rs = ok(world.request("GET", API + "/csfle-configs/orders-pii/ruleset")).json()
    assert rs["domainRules"][0]["params"]["encrypt.kek.name"] == "new-kek"


def test_other_changes_and_unused_configs_need_no_force(world):
    # rules, TTL, the default algorithm written out: the keys stay
    spec = with_(latestCacheTtlSec=300, dek={"algorithm": "AES256_GCM", "expiryDays": 30},
                 rules=[{"name": "renamed", "tags": ["PII"]}])
    j = ok(world.request("PUT", API + "/csfle-configs/orders-pii", body("orders-pii", spec))).json()
    assert not any("force" in w for w in j["status"]["warnings"])
    # a config no database names may change its keys
    ok(world.request("POST", API + "/csfle-configs", body("spare", with_(kek={"name": "spare-kek"}))))
    ok(world.request("PUT", API + "/csfle-configs/spare", body("spare", with_(kek={"name": "spare-kek-2"}))))
    r = world.request("PUT", API + "/csfle-configs/spare?force=yes", body("spare", SPEC))
    assert r.status == 400 and r.error() == "query parameter force must be true or false"


# ---- 13: one KEK, one KMS key ---------------------------------------------------------------------------

def test_second_config_with_the_kek_and_another_key_is_409(cmf):
    ok(cmf.request("POST", API + "/csfle-configs", body("first", SPEC)))
    # the same KEK with the same key: fine (one KEK shared by two configs)
    ok(cmf.request("POST", API + "/csfle-configs", body("same-key", with_(rules__0__name="other"))))
    r = cmf.request("POST", API + "/csfle-configs", body("second", with_(kms__keyId="another-key")))
    assert r.status == 409
    assert r.error() == (
        "CsfleConfig 'second' names its KEK (spec.kek.name) with another KMS key (spec.kms.type, spec.kms.keyId) "
        "than CsfleConfigs first, same-key: Confluent's clients refuse a KEK whose KMS key differs from the "
        "rule's, so every write would fail; use the same KMS key, or another spec.kek.name")
    assert cmf.request("GET", API + "/csfle-configs/second").status == 404
    # another KMS type with the KEK: the same refusal
    r = cmf.request("POST", API + "/csfle-configs", body("third", with_(
        kms={"type": "aws-kms", "keyId": AWS_KEY, "credentialsSecretId": "kms-conn"})))
    assert r.status == 409 and "than CsfleConfigs first, same-key:" in r.error()
    # an update that moves one onto another key while the other keeps the KEK
    r = cmf.request("PUT", API + "/csfle-configs/same-key", body("same-key", with_(kms__keyId="another-key")))
    assert r.status == 409 and r.error().startswith("CsfleConfig 'same-key' names its KEK") and \
        "than CsfleConfig first:" in r.error()
    # another KEK name with another key: fine
    ok(cmf.request("POST", API + "/csfle-configs", body("second", with_(kek={"name": "k2"}, kms__keyId="another-key"))))


def test_kek_clash_holds_under_concurrent_writes(cmf):
    """Twelve creates, each naming the KEK with its own key, all at once: exactly one is stored."""
    n = 12
    barrier = threading.Barrier(n)
    results = [None] * n

    def create(i):
        spec = with_(kek={"name": "race-kek"}, kms__keyId=f"key-{i}")
        barrier.wait()
        results[i] = cmf.request("POST", API + "/csfle-configs", body(f"race-{i}", spec))

    threads = [threading.Thread(target=create, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = sorted(r.status for r in results)
    assert statuses == [200] + [409] * (n - 1), [(r.status, r.body[:200]) for r in results]
    items = ok(cmf.request("GET", API + "/csfle-configs")).json()["items"]
    assert len(items) == 1 and items[0]["spec"]["kek"]["name"] == "race-kek"
    winner = items[0]["metadata"]["name"]
    for r in results:
        if r.status == 409:
            assert "names its KEK (spec.kek.name) with another KMS key" in r.error()
            assert f"than CsfleConfig {winner}:" in r.error()


def test_kek_clash_holds_under_concurrent_updates(cmf):
    """Two configs on two KEKs, each moved at once onto the other's KEK with its own key: at most one wins."""
    for round_ in range(5):
        a, b = f"ua-{round_}", f"ub-{round_}"
        ok(cmf.request("POST", API + "/csfle-configs", body(a, with_(kek={"name": f"ka-{round_}"}, kms__keyId="ka"))))
        ok(cmf.request("POST", API + "/csfle-configs", body(b, with_(kek={"name": f"kb-{round_}"}, kms__keyId="kb"))))
        barrier = threading.Barrier(2)
        results = {}

        def move(name, key):
            barrier.wait()
            results[name] = cmf.request("PUT", API + "/csfle-configs/" + name, body(name, with_(
                kek={"name": f"shared-{round_}"}, kms__keyId=key)))

        threads = [threading.Thread(target=move, args=(a, "ka")), threading.Thread(target=move, args=(b, "kb"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        statuses = sorted(r.status for r in results.values())
        assert statuses == [200, 409], [(k, r.status, r.body[:200]) for k, r in results.items()]
        keks = [ok(cmf.request("GET", API + "/csfle-configs/" + x)).json()["spec"]["kek"]["name"] for x in (a, b)]
        assert keks.count(f"shared-{round_}") == 1, keks


# ---- 14: the credential sets of Confluent's aws and gcp drivers ---------------------------------------

def use_kms(world, kms, data):
    ok(world.request("PUT", API + "/csfle-configs/orders-pii?force=true", body("orders-pii", with_(kms=kms))))
    ok(world.create_secret("kms-other", data))
    ok(world.request("PUT", API + "/environments/prod/secret-mappings/kms-conn", mapping_body("kms-conn", "kms-other")))
    return world.request("GET", PATH)


AWS = {"type": "aws-kms", "keyId": AWS_KEY, "credentialsSecretId": "kms-conn"}
ROLE = "arn:aws:iam::123456789012:role/pii-encrypt"


@pytest.mark.parametrize("data", [
    {"role.arn": ROLE},
    {"role.arn": ROLE, "role.session.name": "cmf-job", "role.external.id": "ext-123"},
    {"profile": "pii"},
    {"profile": "pii", "role.arn": ROLE},
    {"access.key.id": "AKIAEXAMPLE", "secret.access.key": AWS_SECRET, "role.arn": ROLE, "role.external.id": "e"},
], ids=["role", "role+session+external", "profile", "profile+role", "keys+role"])
def test_aws_role_and_profile_credentials_resolve(world, data):
    r = use_kms(world, AWS, data)
    assert r.status == 200, r
    sr = r.json()["schemaRegistry"]
    for k, v in data.items():
        assert sr["rule.executors._default_.param." + k] == v
    assert not any(k.startswith("rule.executors") and k[len("rule.executors._default_.param."):] not in data
                   for k in sr), sr


@pytest.mark.parametrize("data,needle", [
    ({"role.session.name": "s", "role.external.id": "e"},
     "role.session.name and role.external.id are for assuming role.arn, which is not set"),
    ({"access.key.id": "AKIAEXAMPLE", "role.arn": ROLE}, "missing secret.access.key"),
    ({"access.key.id": "AKIAEXAMPLE", "secret.access.key": AWS_SECRET, "profile": "p"},
     "both access.key.id/secret.access.key and profile are set"),
    ({"role_arn": ROLE}, "unknown key 'role_arn'"),
], ids=["role options without role", "partial keys", "keys and profile", "typo"])
def test_aws_partial_credentials_are_422(world, data, needle):
    r = use_kms(world, AWS, data)
    assert r.status == 422, r
    assert any(needle in m for m in errors(r)), errors(r)
    assert AWS_SECRET.encode() not in r.body and ROLE.encode() not in r.body


def test_gcp_account_type_resolves_and_partial_sets_do_not(world):
    gcp = {"type": "gcp-kms", "keyId": GCP_KEY, "credentialsSecretId": "kms-conn"}
    full = {"account.type": "service_account", "client.id": "123", "client.email": "svc@p1.iam.gserviceaccount.com",
            "private.key.id": "kid", "private.key": GCP_PRIVATE}
    r = use_kms(world, gcp, full)
    assert r.status == 200, r
    assert r.json()["schemaRegistry"]["rule.executors._default_.param.account.type"] == "service_account"
    ok(world.request("PUT", API + "/secrets/kms-other", secret_body(
        "kms-other", {"account.type": "service_account", "private.key": GCP_PRIVATE})))
    r = world.request("GET", PATH)
    assert r.status == 422
    assert any("missing client.id, client.email, private.key.id" in m for m in errors(r)), errors(r)
    assert GCP_PRIVATE.encode() not in r.body


# ---- 15: booleans with spaces around them -------------------------------------------------------------

@pytest.mark.parametrize("key,value", [
    ("auto.register.schemas", "true "),
    ("value.converter.auto.register.schemas", " true"),
    ("use.latest.version", "true\t"),
    ("rule.service.loader.enable", " true "),
    ("rule.executors._default_.disabled", "false "),
])
def test_spaced_boolean_in_database_is_422(world, key, value):
    r = world.request("POST", API + "/catalogs/kafka/main/databases",
                      database_body("spaced", {"bootstrap.servers": "b:9092", key: value}, None, "orders-pii"))
    assert r.status == 422, r
    assert errors(r) == [f"kafka: {key} has spaces around its value: Kafka's configuration trims them, "
                         "Boolean.parseBoolean does not, so clients may read it either way; write exactly true or "
                         "false"]


def test_spaced_boolean_from_a_secret_is_422_at_resolution(world):
    assert world.request("GET", PATH).status == 200
    ok(world.request("PUT", API + "/secrets/kafka-creds", secret_body("kafka-creds", {
        "sasl.jaas.config": "jaas-value-kafka", "security.protocol": "SASL_SSL",
        "value.converter.auto.register.schemas": "true "})))
    r = world.request("GET", PATH)
    assert r.status == 422, r
    assert any("value.converter.auto.register.schemas has spaces around its value" in m for m in errors(r)), errors(r)
    # exact values are what they were
    ok(world.request("PUT", API + "/secrets/kafka-creds", secret_body("kafka-creds", {
        "sasl.jaas.config": "jaas-value-kafka", "security.protocol": "SASL_SSL",
        "value.converter.auto.register.schemas": "false"})))
    assert world.request("GET", PATH).status == 200
