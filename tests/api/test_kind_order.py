"""What every kind's body goes through, in CMF's order (issue 10 regressions): a CsfleConfig PUT naming
another config is refused before its spec is read, token metadata is refused before the spec, and an
Environment's `secrets` map lists its mappings by name."""
from conftest import secret_body

API = "/cmf/api/v1"


def test_csfle_put_names_the_mismatch_before_the_spec(cmf):
    r = cmf.request("PUT", API + "/csfle-configs/cfg-one",
                    {"apiVersion": "cmf.confluent.io/v1", "kind": "CsfleConfig", "metadata": {"name": "cfg-two"}})
    assert r.status == 422, r
    assert r.error() == "metadata.name 'cfg-two' does not match the CsfleConfig name 'cfg-one' in the path"


def test_token_labels_refused_before_the_spec(cmf):
    for spec in (None, {"bogus": 1}):
        b = {"apiVersion": "cmf.confluent.io/v1", "kind": "ApiToken",
             "metadata": {"name": "label-token", "labels": {"a": "b"}}}
        if spec is not None:
            b["spec"] = spec
        r = cmf.request("POST", API + "/tokens", b)
        assert r.status == 400, r
        assert r.error() == "metadata.labels and metadata.annotations are not stored for ApiToken"


def test_environment_secrets_in_name_order(cmf):
    assert cmf.request("POST", API + "/secrets", secret_body("order-secret", {"k": "v"})).status == 200
    assert cmf.request("POST", API + "/environments", {"name": "order-env", "kubernetesNamespace": "ns"}).status == 200
    # jsonb would order these by length first (bbbb, aaaaa, kafka-conn); CMF lists them by name.
    for name in ("kafka-conn", "bbbb", "aaaaa"):
        r = cmf.request("POST", API + "/environments/order-env/secret-mappings",
                        {"apiVersion": "cmf.confluent.io/v1", "kind": "EnvironmentSecretMapping",
                         "metadata": {"name": name}, "spec": {"secretName": "order-secret"}})
        assert r.status == 200, r
    for path in ("/environments/order-env", "/environments"):
        body = cmf.request("GET", API + path).body.decode()
        i = body.index('"secrets"')
        assert body.index('"aaaaa"', i) < body.index('"bbbb"', i) < body.index('"kafka-conn"', i), body
