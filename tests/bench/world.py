"""make bench's world: one secret whose JAAS line makes the resolved configuration ~1 KiB, one
environment, its mappings, a catalog and a database; and an environment-reader token, as a job holds.

usage: world.py PORT ADMIN_TOKEN_FILE OUT_READER_TOKEN_FILE
"""
import json
import sys
import urllib.request


def call(method, path, body):
    req = urllib.request.Request("http://127.0.0.1:%s/cmf/api/v1%s" % (port, path), method=method,
                                 data=json.dumps(body).encode(),
                                 headers={"Authorization": "Bearer " + tok, "Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(req))


def meta(kind, name, spec):
    return {"apiVersion": "cmf.confluent.io/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}


def jaas(password):
    return ('org.apache.kafka.common.security.plain.PlainLoginModule required username="orders-svc" '
            'password="%s";' % password)


if __name__ == "__main__":
    port, tokfile, out = sys.argv[1], sys.argv[2], sys.argv[3]
    tok = open(tokfile).read().strip()
    call("POST", "/secrets", meta("Secret", "kafka-creds", {"data": {
        "sasl.jaas.config": jaas("p" * 640), "sasl.mechanism": "PLAIN", "security.protocol": "SASL_SSL"}}))
    call("POST", "/secrets", meta("Secret", "sr-creds", {"data": {
        "basic.auth.credentials.source": "USER_INFO", "basic.auth.user.info": "sr-user:" + "s" * 40}}))
    call("POST", "/environments", {"name": "prod", "kubernetesNamespace": "flink"})
    call("POST", "/environments/prod/secret-mappings",
         meta("EnvironmentSecretMapping", "kafka-conn", {"secretName": "kafka-creds"}))
    call("POST", "/environments/prod/secret-mappings",
         meta("EnvironmentSecretMapping", "sr-conn", {"secretName": "sr-creds"}))
    call("POST", "/catalogs/kafka", meta("KafkaCatalog", "main", {"srInstance": {
        "connectionConfig": {"schema.registry.url": "https://sr.example:8081"}, "connectionSecretId": "sr-conn"}}))
    call("POST", "/catalogs/kafka/main/databases", meta("KafkaDatabase", "orders", {"kafkaCluster": {
        "connectionConfig": {"bootstrap.servers": "b1.example:9092,b2.example:9092,b3.example:9092",
                             "client.dns.lookup": "use_all_dns_ips"},
        "connectionSecretId": "kafka-conn"}}))
    r = call("POST", "/tokens", meta("ApiToken", "orders-job", {"role": "environment-reader",
                                                                "environments": ["prod"]}))
    with open(out, "w") as f:
        f.write(r["status"]["token"])
