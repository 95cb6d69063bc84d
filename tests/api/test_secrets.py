"""Secrets API over real HTTP: every documented status, CMF shapes, masking, validation."""
import json
import re
import socket
import time

from conftest import secret_body

BASE = "/cmf/api/v1/secrets"
TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def test_create_returns_cmf_shape_with_masked_data(cmf):
    r = cmf.create_secret("kafka-creds", {"sasl.password": "pa55-w0rd!", "user": "alice"},
                          labels={"team": "data"})
    assert r.status == 200, r
    s = r.json()
    assert s["apiVersion"] == "cmf.confluent.io/v1" and s["kind"] == "Secret"
    m = s["metadata"]
    assert m["name"] == "kafka-creds"
    assert UUID.match(m["uid"]), m["uid"]
    assert TS.match(m["creationTimestamp"]) and TS.match(m["updateTimestamp"])
    assert m["labels"] == {"team": "data"} and m["annotations"] == {}
    assert s["spec"] == {"data": {"sasl.password": "****", "user": "****"}}
    assert s["status"] == {"version": "1", "environments": []}
    assert b"pa55-w0rd!" not in r.body and b"alice" not in r.body
    assert r.headers["content-type"] == "application/json"
    assert r.headers["cache-control"] == "no-store"


def test_duplicate_create_is_409(cmf):
    assert cmf.create_secret("dup-secret", {"a": "1"}).status == 200
    r = cmf.create_secret("dup-secret", {"a": "2"})
    assert r.status == 409
    assert "dup-secret" in r.error() and "already exists" in r.error()


def test_get_one_and_404(cmf):
    cmf.create_secret("get-me", {"k": "secret-value-1"})
    r = cmf.get_secret("get-me")
    assert r.status == 200
    assert r.json()["spec"]["data"] == {"k": "****"}
    assert b"secret-value-1" not in r.body
    r = cmf.get_secret("does-not-exist")
    assert r.status == 404
    assert r.error() == "secret 'does-not-exist' not found"


def test_update_bumps_version_and_timestamp(cmf):
    c = cmf.create_secret("upd-me", {"k": "v1"}).json()
    time.sleep(0.01)
    r = cmf.request("PUT", BASE + "/upd-me", secret_body("upd-me", {"k": "v2", "k2": "x"}, labels={"l": "1"}))
    assert r.status == 200, r
    u = r.json()
    assert u["status"]["version"] == "2"
    assert u["metadata"]["uid"] == c["metadata"]["uid"]
    assert u["metadata"]["creationTimestamp"] == c["metadata"]["creationTimestamp"]
    assert u["metadata"]["updateTimestamp"] > c["metadata"]["updateTimestamp"]
    assert u["spec"]["data"] == {"k": "****", "k2": "****"}
    assert u["metadata"]["labels"] == {"l": "1"}
    r = cmf.request("PUT", BASE + "/upd-me", secret_body("upd-me", {"k": "v3"}))
    assert r.json()["status"]["version"] == "3"
    assert cmf.get_secret("upd-me").json()["status"]["version"] == "3"


def test_update_missing_is_404_and_name_mismatch_is_422(cmf):
    r = cmf.request("PUT", BASE + "/nope-nope", secret_body("nope-nope", {"a": "b"}))
    assert r.status == 404 and "nope-nope" in r.error()
    cmf.create_secret("real-one", {"a": "b"})
    r = cmf.request("PUT", BASE + "/real-one", secret_body("other-one", {"a": "b"}))
    assert r.status == 422
    assert "other-one" in r.error() and "real-one" in r.error()


def test_delete_204_then_404(cmf):
    cmf.create_secret("del-me", {"a": "b"})
    r = cmf.request("DELETE", BASE + "/del-me")
    assert r.status == 204 and r.body == b""
    assert cmf.get_secret("del-me").status == 404
    r = cmf.request("DELETE", BASE + "/del-me")
    assert r.status == 404 and "del-me" in r.error()
    # the name is free again
    assert cmf.create_secret("del-me", {"a": "c"}).status == 200


def test_list_paging(cmf):
    names = ["page-%02d" % i for i in range(5)]
    for n in reversed(names):
        assert cmf.create_secret(n, {"v": n}).status == 200
    r = cmf.request("GET", BASE)
    assert r.status == 200
    j = r.json()
    assert j["metadata"] == {"size": 5}
    assert j["pageable"]["page"] == 0 and j["pageable"]["size"] == 20
    assert [i["metadata"]["name"] for i in j["items"]] == names
    assert all(i["spec"]["data"] == {"v": "****"} for i in j["items"])
    pages = []
    for p in range(3):
        j = cmf.request("GET", BASE + "?page=%d&size=2" % p).json()
        assert j["pageable"]["page"] == p and j["pageable"]["size"] == 2 and j["metadata"]["size"] == 5
        pages.append([i["metadata"]["name"] for i in j["items"]])
    assert pages == [names[0:2], names[2:4], names[4:5]]
    assert cmf.request("GET", BASE + "?page=9&size=2").json()["items"] == []


def test_list_bad_paging_is_400(cmf):
    for q, field in [("page=-1", "page"), ("page=x", "page"), ("size=0", "size"), ("size=101", "size"),
                     ("size=1.5", "size"), ("page=99999999999", "page")]:
        r = cmf.request("GET", BASE + "?" + q)
        assert r.status == 400, q
        assert r.error().startswith(field), (q, r.error())


def test_empty_list(cmf):
    j = cmf.request("GET", BASE).json()
    assert j["items"] == [] and j["metadata"]["size"] == 0


def test_invalid_names_are_400(cmf):
    for name in ["abc", "UPPER-case", "-leading", "trailing-", "has_underscore", "a" * 254, "dots..double",
                 "sp ace", ""]:
        r = cmf.create_secret(name, {"a": "b"})
        assert r.status == 400, name
        assert "metadata.name" in r.error(), r.error()
    longest = "a" * 63 + "." + "b" * 63 + "." + "c" * 63 + "." + "d" * 61
    assert len(longest) == 253
    for name in ["abcd", "a" * 63 + "." + "b" * 63, "with.dots-and-1", longest]:
        assert cmf.create_secret(name, {"a": "b"}).status == 200, name
    assert cmf.create_secret(longest + "d", {"a": "b"}).status == 400
    r = cmf.create_secret("a" * 64 + ".bcd", {"a": "b"})
    assert r.status == 400  # a DNS label is at most 63 characters


def test_malformed_json_is_400_without_echo(cmf):
    r = cmf.request("POST", BASE, b'{"apiVersion":"cmf.confluent.io/v1","kind":"Secret","metadata":{"name":"abcd"},'
                    b'"spec":{"data":{"password":"hunter2-do-not-echo',
                    headers={"Content-Type": "application/json"})
    assert r.status == 400
    assert "malformed JSON" in r.error() and "line 1" in r.error()
    assert b"hunter2" not in r.body
    assert "hunter2" not in cmf.log()


def test_wrong_types_name_the_field(cmf):
    cases = [
        ({"apiVersion": "cmf.confluent.io/v1", "kind": "Secret", "metadata": {"name": "abcd"},
          "spec": {"data": {"port": 9092}}}, "spec.data.port must be a string"),
        ({"apiVersion": "cmf.confluent.io/v1", "kind": "Secret", "metadata": {"name": "abcd", "labels": []},
          "spec": {"data": {}}}, "metadata.labels"),
        ({"apiVersion": "cmf.confluent.io/v1", "kind": "Secret", "metadata": {"name": 5},
          "spec": {"data": {}}}, "metadata.name must be a string"),
        ({"apiVersion": "cmf.confluent.io/v1", "kind": "Secret", "metadata": {"name": "abcd"},
          "spec": {"data": "x"}}, "spec.data must be an object"),
        ({"apiVersion": "cmf.confluent.io/v1", "kind": "Secret", "metadata": {"name": "abcd"}}, "spec is required"),
        ({"apiVersion": "cmf.confluent.io/v1", "kind": "Secret", "spec": {"data": {}}}, "metadata is required"),
        ({"kind": "Secret", "metadata": {"name": "abcd"}, "spec": {"data": {}}}, "apiVersion is required"),
        ({"apiVersion": "v2", "kind": "Secret", "metadata": {"name": "abcd"}, "spec": {"data": {}}}, "apiVersion must be"),
        ({"apiVersion": "cmf.confluent.io/v1", "kind": "Environment", "metadata": {"name": "abcd"},
          "spec": {"data": {}}}, "kind must be \"Secret\""),
        ({"apiVersion": "cmf.confluent.io/v1", "kind": "Secret", "metadata": {"name": "abcd"},
          "sepc": {"data": {}}}, "sepc: unknown field"),
        ({"apiVersion": "cmf.confluent.io/v1", "kind": "Secret", "metadata": {"name": "abcd", "nmae": "x"},
          "spec": {"data": {}}}, "metadata.nmae: unknown field"),
        (["not", "an", "object"], "object"),
    ]
    for body, expect in cases:
        r = cmf.request("POST", BASE, body)
        assert r.status == 400, (body, r)
        assert expect in r.error(), (expect, r.error())


def test_read_only_fields_are_accepted_and_ignored(cmf):
    got = cmf.create_secret("round-trip", {"a": "b"}).json()
    got["spec"]["data"] = {"a": "c"}
    got["metadata"]["uid"] = "00000000-0000-4000-8000-000000000000"
    r = cmf.request("PUT", BASE + "/round-trip", got)
    assert r.status == 200, r
    assert r.json()["metadata"]["uid"] != "00000000-0000-4000-8000-000000000000"


def test_yaml_bodies(cmf):
    body = ("apiVersion: cmf.confluent.io/v1\nkind: Secret\nmetadata:\n  name: yaml-secret\n"
            "  labels:\n    env: dev\nspec:\n  data:\n    user: \"bob\"\n    pass: 's3cr3t: yes'\n")
    r = cmf.request("POST", BASE, body, headers={"Content-Type": "application/yaml"})
    assert r.status == 200, r
    assert r.json()["spec"]["data"] == {"user": "****", "pass": "****"}
    assert r.json()["metadata"]["labels"] == {"env": "dev"}
    r = cmf.request("POST", BASE, "apiVersion: [unclosed\n", headers={"Content-Type": "application/yaml"})
    assert r.status == 400 and "malformed YAML" in r.error()


def test_unsupported_content_type_is_415(cmf):
    r = cmf.request("POST", BASE, b"name=x", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status == 415 and "Content-Type" in r.error()


def test_empty_body_is_400(cmf):
    r = cmf.request("POST", BASE, b"", headers={"Content-Type": "application/json"})
    assert r.status == 400 and "empty" in r.error()


def test_body_over_limit_is_413(cmf_factory):
    c = cmf_factory(env={"CMF_SERVER_MAX_BODY_BYTES": "2048"}).start()
    big = secret_body("big-one", {"k": "x" * 4096})
    r = c.request("POST", BASE, big)
    assert r.status == 413 and "2048" in r.error()
    # a chunked upload (no Content-Length) is refused before its body: 411 (tests/api/test_front_door.py)
    s = socket.create_connection(("127.0.0.1", c.port))
    payload = json.dumps(big).encode()
    req = b"POST " + BASE.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" \
          b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    for i in range(0, len(payload), 1000):
        part = payload[i:i + 1000]
        req += b"%x\r\n" % len(part) + part + b"\r\n"
    s.sendall(req + b"0\r\n\r\n")
    resp = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        resp += d
    s.close()
    assert resp.startswith(b"HTTP/1.1 411"), resp[:100]
    assert c.create_secret("small-one", {"k": "v"}).status == 200


def test_unknown_path_404_and_wrong_method_405(cmf):
    r = cmf.request("GET", "/cmf/api/v1/nothing-here")
    assert r.status == 404 and "nothing-here" in r.error()
    r = cmf.request("GET", "/cmf/api/v1/secrets/a/b")
    assert r.status == 404
    r = cmf.request("PATCH", BASE + "/abcd", {"a": 1})
    assert r.status == 405
    assert r.headers["allow"] == "GET, PUT, DELETE"
    r = cmf.request("DELETE", BASE)
    assert r.status == 405 and r.headers["allow"] == "GET, POST"


def test_health_and_ready(cmf):
    r = cmf.request("GET", "/healthz")
    assert r.status == 200 and r.json() == {"status": "alive"}
    r = cmf.request("GET", "/readyz")
    assert r.status == 200, r
    j = r.json()
    assert j["status"] == "ready" and j["encryption"]["enabled"] is True
    assert re.match(r"^[0-9a-f]{16}$", j["encryption"]["keyId"])
    assert j["warnings"] == []


def test_access_log_lines(cmf):
    cmf.create_secret("logged-one", {"k": "log-secret-value"})
    cmf.get_secret("logged-one")
    cmf.get_secret("missing-one")
    log = cmf.log()
    assert re.search(r"INFO  POST /cmf/api/v1/secrets 200 [0-9.]+ms id=[0-9a-f]{32}", log), log
    assert re.search(r"GET /cmf/api/v1/secrets/missing-one 404 [0-9.]+ms", log), log
    assert "log-secret-value" not in log
    r = cmf.get_secret("logged-one")
    assert re.match(r"^[0-9a-f]{32}$", r.headers["x-request-id"])


def raw_request(port, request_bytes):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(request_bytes)
    resp = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        resp += d
    s.close()
    head, _, body = resp.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


def test_non_utf8_and_truncated_names_in_messages_are_not_500(cmf):
    # invalid UTF-8 in the path
    status, body = raw_request(cmf.port, b"GET /cmf/api/v1/%ff HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status == 404, body
    json.loads(body)
    # a multi-byte character cut by the message's length limit
    r = cmf.request("GET", BASE + "/" + "a" * 252 + "%C3%A9")
    assert r.status == 404 and r.error().endswith("not found")
    # an unknown field whose name is cut mid-character in the message
    body = secret_body("utf8-field", {"a": "b"})
    body["x" * 63 + "é"] = 1
    r = cmf.request("POST", BASE, body)
    assert r.status == 400 and "unknown field" in r.error()
    # a Content-Type header with a Latin-1 byte
    status, body = raw_request(cmf.port, b"POST " + BASE.encode() + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                               b"Authorization: Bearer " + cmf.admin_token.encode() + b"\r\n"
                               b"Content-Type: text/caf\xe9\r\nContent-Length: 2\r\n\r\n{}")
    assert status == 415, body
    assert "ERROR" not in cmf.log()


def test_path_names_are_checked_before_the_database(cmf):
    assert cmf.create_secret("abcd", {"a": "b"}).status == 200
    # %00 must not cut "abcd%00junk" down to "abcd"
    r = cmf.request("DELETE", BASE + "/abcd%00junk")
    assert r.status == 404, r
    assert cmf.get_secret("abcd").status == 200
    for path in ["/abcd%00junk", "/%ff%fe-name", "/UPPER", "/abc"]:
        for method in ("GET", "DELETE"):
            r = cmf.request(method, BASE + path)
            assert r.status == 404, (method, path, r)
    r = cmf.request("PUT", BASE + "/%ff%fe-name", secret_body("abcd", {"a": "b"}))
    assert r.status == 404
    assert cmf.request("GET", BASE + "?page=1%00").status == 400
    log = cmf.log()
    assert "ERROR" not in log and "SQLSTATE" not in log, log


def test_data_too_large_once_serialized_is_413(cmf_factory):
    """A YAML body under the limit whose data grows past the 16 MiB seal limit as JSON: 413, not 500."""
    c = cmf_factory(env={"CMF_SERVER_MAX_BODY_BYTES": "16777216"}).start()
    # "\x01" is 4 bytes of YAML and 6 bytes of JSON ("\u0001"): 12 MiB of YAML → 18 MiB of JSON.
    yaml = ("apiVersion: cmf.confluent.io/v1\nkind: Secret\nmetadata:\n  name: too-big\nspec:\n  data:\n"
            "    k: \"" + "\\x01" * (3 * 1024 * 1024) + "\"\n")
    r = c.request("POST", BASE, yaml, headers={"Content-Type": "application/yaml"}, timeout=120)
    assert r.status == 413, r
    assert "larger than 16777216 bytes once serialized" in r.error()
