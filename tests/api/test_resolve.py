"""Client-configuration resolution for Flink jobs: formats compared to exact text, merging, ETags,
environment scoping, missing mappings, audit, and that decrypted values appear nowhere else."""
import json

import pytest

from conftest import secret_body

API = "/cmf/api/v1"

KAFKA_SECRET = {
    "sasl.jaas.config": 'org.apache.kafka.common.security.plain.PlainLoginModule required username="svc" '
                        'password="pa=ss:w0rd é€😀";',
    "security.protocol": "SASL_SSL",
}
SR_SECRET = {"basic.auth.credentials.source": "USER_INFO", "basic.auth.user.info": "sr-user:sr pass'word"}


def env_body(name, ns="flink"):
    return {"name": name, "kubernetesNamespace": ns}


def mapping_body(conn_id, secret):
    return {"apiVersion": "cmf.confluent.io/v1", "kind": "EnvironmentSecretMapping",
            "metadata": {"name": conn_id}, "spec": {"secretName": secret}}


def catalog_body(name, sr_config, sr_secret_id=None):
    sr = {"connectionConfig": sr_config}
    if sr_secret_id:
        sr["connectionSecretId"] = sr_secret_id
    return {"apiVersion": "cmf.confluent.io/v1", "kind": "KafkaCatalog", "metadata": {"name": name},
            "spec": {"srInstance": sr}}


def database_body(name, config, secret_id=None):
    kc = {"connectionConfig": config}
    if secret_id:
        kc["connectionSecretId"] = secret_id
    return {"apiVersion": "cmf.confluent.io/v1", "kind": "KafkaDatabase", "metadata": {"name": name},
            "spec": {"kafkaCluster": kc}}


def ok(r, status=200):
    assert r.status == status, r
    return r


@pytest.fixture
def world(cmf):
    """Two environments; prod maps both connection ids, dev maps only Kafka's."""
    ok(cmf.create_secret("kafka-prod-creds", KAFKA_SECRET))
    ok(cmf.create_secret("sr-prod-creds", SR_SECRET))
    ok(cmf.create_secret("kafka-dev-creds", {"sasl.jaas.config": "dev-jaas", "security.protocol": "SASL_PLAINTEXT"}))
    for e in ("prod", "dev1"):
        ok(cmf.request("POST", API + "/environments", env_body(e)))
    ok(cmf.request("POST", API + "/environments/prod/secret-mappings", mapping_body("kafka-conn", "kafka-prod-creds")))
    ok(cmf.request("POST", API + "/environments/prod/secret-mappings", mapping_body("sr-conn", "sr-prod-creds")))
    ok(cmf.request("POST", API + "/environments/dev1/secret-mappings", mapping_body("kafka-conn", "kafka-dev-creds")))
    ok(cmf.request("POST", API + "/catalogs/kafka", catalog_body("main", {"schema.registry.url": "http://sr:8081"},
                                                                 "sr-conn")))
    ok(cmf.request("POST", API + "/catalogs/kafka/main/databases",
                   database_body("orders", {"bootstrap.servers": "b1:9092,b2:9092", "security.protocol": "PLAINTEXT",
                                            "client.id": "orders app"}, "kafka-conn")))
    return cmf


PATH = API + "/environments/prod/client-configs/main/orders"


def test_json_format_merges_and_secret_wins(world):
    r = ok(world.request("GET", PATH))
    assert r.headers["content-type"] == "application/json"
    assert r.headers["cache-control"] == "no-store"
    assert r.json() == {
        "kafka": {"bootstrap.servers": "b1:9092,b2:9092", "client.id": "orders app",
                  "sasl.jaas.config": KAFKA_SECRET["sasl.jaas.config"], "security.protocol": "SASL_SSL"},
        "schemaRegistry": {"schema.registry.url": "http://sr:8081", "basic.auth.credentials.source": "USER_INFO",
                           "basic.auth.user.info": "sr-user:sr pass'word"}}
    assert ok(world.request("GET", PATH + "?format=json")).body == r.body


def test_properties_format_exact_text(world):
    r = ok(world.request("GET", PATH + "?format=properties"))
    assert r.headers["content-type"] == "text/x-java-properties; charset=ISO-8859-1"
    assert r.body.decode("ascii") == (
        "# cmf client configuration: environment prod, Kafka database main/orders\n"
        "basic.auth.credentials.source=USER_INFO\n"
        "basic.auth.user.info=sr-user\\:sr pass'word\n"
        "bootstrap.servers=b1\\:9092,b2\\:9092\n"
        "client.id=orders app\n"
        "sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username\\=\"svc\" "
        "password\\=\"pa\\=ss\\:w0rd \\u00E9\\u20AC\\uD83D\\uDE00\";\n"
        "schema.registry.url=http\\://sr\\:8081\n"
        "security.protocol=SASL_SSL\n")


def test_flink_sql_format_exact_text(world):
    r = ok(world.request("GET", PATH + "?format=flink-sql"))
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert r.body.decode("utf-8") == (
        "'properties.bootstrap.servers' = 'b1:9092,b2:9092',\n"
        "'properties.client.id' = 'orders app',\n"
        "'properties.sasl.jaas.config' = 'org.apache.kafka.common.security.plain.PlainLoginModule required "
        "username=\"svc\" password=\"pa=ss:w0rd é€😀\";',\n"
        "'properties.security.protocol' = 'SASL_SSL',\n"
        "'value.avro-confluent.basic-auth.credentials-source' = 'USER_INFO',\n"
        "'value.avro-confluent.basic-auth.user-info' = 'sr-user:sr pass''word',\n"
        "'value.avro-confluent.url' = 'http://sr:8081'\n")


def test_bad_format_is_400(world):
    r = world.request("GET", PATH + "?format=yaml")
    assert r.status == 400 and "format must be" in r.error()


def test_missing_mapping_is_409_naming_id_and_environment(world):
    r = world.request("GET", API + "/environments/dev1/client-configs/main/orders")
    assert r.status == 409
    assert r.error() == ("connectionSecretId 'sr-conn' (used by the Schema Registry of catalog 'main') has no secret "
                         "mapping in environment 'dev1': create one with POST "
                         "/cmf/api/v1/environments/dev1/secret-mappings")
    assert b"dev-jaas" not in r.body


def test_unknown_names_are_404(world):
    for path, msg in [(API + "/environments/nope/client-configs/main/orders", "environment 'nope' not found"),
                      (API + "/environments/prod/client-configs/nope/orders", "Kafka catalog 'nope' not found"),
                      (API + "/environments/prod/client-configs/main/nope",
                       "database 'nope' not found in Kafka catalog 'main'")]:
        r = world.request("GET", path)
        assert r.status == 404 and r.error() == msg, (path, r)


def test_etag_and_if_none_match(world):
    r1 = ok(world.request("GET", PATH))
    etag = r1.headers["etag"]
    assert etag.startswith('"') and len(etag) == 34
    r = world.request("GET", PATH, headers={"If-None-Match": etag})
    assert r.status == 304 and r.body == b"" and r.headers["etag"] == etag
    assert world.request("GET", PATH, headers={"If-None-Match": 'W/' + etag}).status == 304
    assert ok(world.request("GET", PATH, headers={"If-None-Match": '"other"'})).body == r1.body
    # each format has its own ETag
    assert ok(world.request("GET", PATH + "?format=properties")).headers["etag"] != etag
    # updating the secret: new ETag and the new value on the next call
    ok(world.request("PUT", API + "/secrets/kafka-prod-creds",
                     secret_body("kafka-prod-creds", dict(KAFKA_SECRET, **{"security.protocol": "SSL"}))))
    r2 = ok(world.request("GET", PATH, headers={"If-None-Match": etag}))
    assert r2.headers["etag"] != etag
    assert r2.json()["kafka"]["security.protocol"] == "SSL"
    # remapping to another secret changes it too
    ok(world.request("PUT", API + "/environments/prod/secret-mappings/kafka-conn",
                     mapping_body("kafka-conn", "kafka-dev-creds")))
    r3 = ok(world.request("GET", PATH, headers={"If-None-Match": r2.headers["etag"]}))
    assert r3.json()["kafka"]["sasl.jaas.config"] == "dev-jaas"


def reader(world, name, envs):
    r = ok(world.request("POST", API + "/tokens", {"apiVersion": "cmf.confluent.io/v1", "kind": "ApiToken",
                                                  "metadata": {"name": name},
                                                  "spec": {"role": "environment-reader", "environments": envs}}))
    return r.json()["status"]["token"]


def test_environment_reader_scope(world):
    prod_job = reader(world, "job-prod", ["prod"])
    assert ok(world.request("GET", PATH, token=prod_job)).json()["kafka"]["security.protocol"] == "SASL_SSL"
    r = world.request("GET", API + "/environments/dev1/client-configs/main/orders", token=prod_job)
    assert r.status == 403 and r.error() == "this token may not read this environment"
    # the reader sees nothing else
    for path in (API + "/secrets", API + "/environments", API + "/catalogs/kafka", API + "/secrets/kafka-prod-creds"):
        assert world.request("GET", path, token=prod_job).status == 403, path
    assert world.request("GET", PATH, token=None).status == 401


def test_every_call_is_audited_without_values(world, pg, db):
    ok(world.request("GET", PATH))
    etag = world.request("GET", PATH).headers["etag"]
    world.request("GET", PATH, headers={"If-None-Match": etag})
    world.request("GET", API + "/environments/dev1/client-configs/main/orders")
    ev = [e for e in world.request("GET", API + "/audit-events?size=100").json()["items"]
          if e["action"] == "client-config.read"]
    got = [(e["resource"], e["outcome"], e["status"]) for e in reversed(ev)]
    assert got == [("client-config/prod/main/orders", "success", 200),
                   ("client-config/prod/main/orders", "success", 200),
                   ("client-config/prod/main/orders", "success", 304),
                   ("client-config/dev1/main/orders", "failure", 409)], got
    # decrypted values: only in resolution responses — not in logs, the database, or any other response
    needles = ["pa=ss:w0rd", "sr pass'word", "dev-jaas"]
    dump = pg.dump(db)
    log = world.log()
    others = b"".join(world.request("GET", p).body for p in (
        API + "/secrets", API + "/secrets/kafka-prod-creds", API + "/environments", API + "/environments/prod",
        API + "/environments/prod/secret-mappings", API + "/catalogs/kafka", API + "/catalogs/kafka/main/databases",
        API + "/audit-events?size=100", API + "/tokens"))
    for n in needles:
        assert n not in log, n
        assert n.encode() not in dump, n
        assert n.encode() not in others, n


def test_disabled_auth_never_serves_decrypted(cmf_factory):
    c = cmf_factory(auth=False).start()
    r = c.request("GET", API + "/environments/prod/client-configs/main/orders", token=None)
    assert r.status == 403
    assert "authentication is disabled" in r.error()


def test_database_without_secret_id_and_flink_unmappable_sr_key(world):
    ok(world.request("POST", API + "/catalogs/kafka", catalog_body("plain", {"schema.registry.url": "http://sr:8081",
                                                                             "auto.register.schemas": "false"})))
    ok(world.request("POST", API + "/catalogs/kafka/plain/databases",
                     database_body("public", {"bootstrap.servers": "b:9092"})))
    p = API + "/environments/dev1/client-configs/plain/public"
    assert ok(world.request("GET", p)).json() == {
        "kafka": {"bootstrap.servers": "b:9092"},
        "schemaRegistry": {"schema.registry.url": "http://sr:8081", "auto.register.schemas": "false"}}
    r = world.request("GET", p + "?format=flink-sql")
    assert r.status == 422 and "auto.register.schemas" in r.error()


def test_credentials_hidden_in_public_config_are_refused(world):
    r = world.request("POST", API + "/catalogs/kafka", catalog_body(
        "url-creds", {"schema.registry.url": "https://u:hunter2@sr:8081", "basic.auth.credentials.source": "URL"}))
    assert r.status == 422 and "schema.registry.url" in r.error() and "hunter2" not in r.error()
    r = world.request("POST", API + "/catalogs/kafka/main/databases", database_body(
        "passphrase", {"bootstrap.servers": "b:9092", "sasl.oauthbearer.assertion.private.key.passphrase": "x"}))
    assert r.status == 422 and "passphrase" in r.error()
    # a URL without credentials is fine
    assert world.request("POST", API + "/catalogs/kafka", catalog_body(
        "url-plain", {"schema.registry.url": "https://sr.example:8081/path@x"})).status == 200


def test_unmapped_message_keeps_the_environment_with_long_names(world):
    # 191-character names (three 63-character DNS labels)
    env, cat, dbn, conn = (".".join([ch * 63] * 3) for ch in "ecdk")
    ok(world.request("POST", API + "/environments", env_body(env)))
    ok(world.request("POST", API + "/catalogs/kafka", catalog_body(cat, {"schema.registry.url": "http://sr"})))
    ok(world.request("POST", API + "/catalogs/kafka/%s/databases" % cat,
                     database_body(dbn, {"bootstrap.servers": "b:9092"}, conn)))
    r = world.request("GET", API + "/environments/%s/client-configs/%s/%s" % (env, cat, dbn))
    assert r.status == 409
    assert r.error().endswith("create one with POST /cmf/api/v1/environments/%s/secret-mappings" % env)
    assert "in environment '%s'" % env in r.error()


def test_if_none_match_lists_tabs_and_repeated_lines(world):
    import http.client
    etag = ok(world.request("GET", PATH)).headers["etag"]
    assert world.request("GET", PATH, headers={"If-None-Match": '"a",\t' + etag}).status == 304
    conn = http.client.HTTPConnection("127.0.0.1", world.port, timeout=10)
    conn.putrequest("GET", PATH)
    conn.putheader("Authorization", "Bearer " + world.admin_token)
    conn.putheader("If-None-Match", '"zzz"')
    conn.putheader("If-None-Match", etag)
    conn.endheaders()
    r = conn.getresponse()
    r.read()
    conn.close()
    assert r.status == 304


def test_connection_lost_during_the_audit_insert_answers_once_without_data(world, pg, db):
    """The backend dies inside the audit INSERT: the answer is not released, not replayed, not doubled."""
    pg.psql("CREATE SEQUENCE kill_once; CREATE FUNCTION kill_once() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN IF nextval('kill_once') = 1 AND NEW.action = 'client-config.read' THEN "
            "PERFORM pg_terminate_backend(pg_backend_pid()); END IF; RETURN NEW; END $$; "
            "CREATE TRIGGER kill_once BEFORE INSERT ON cmf_audit_events FOR EACH ROW EXECUTE FUNCTION kill_once()",
            db)
    r = world.request("GET", PATH)
    assert r.status == 503, r
    assert r.error() == "database unavailable"
    assert "etag" not in r.headers
    assert b"pa=ss" not in r.body
    rows = pg.psql("SELECT count(*) FROM cmf_audit_events WHERE action = 'client-config.read'", db)
    assert rows in ("0", "1")
    # the next call reconnects and is answered (and audited) normally
    assert ok(world.request("GET", PATH)).json()["kafka"]["security.protocol"] == "SASL_SSL"
