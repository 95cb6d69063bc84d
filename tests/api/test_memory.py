"""Secret values left in the server's memory after use (issue 13 item 3): create, read and resolve cycles
with YAML and with JSON bodies, then every readable mapping of the process is scanned for each value and
for every 16-byte slice of it (a string grown by realloc leaves partial copies behind)."""
import os

from test_hotpath import PATH, build_world
from test_keywatch import scan_memory

CYCLES = 100


def yaml_secret(name, jaas):
    return ("apiVersion: cmf.confluent.io/v1\nkind: Secret\nmetadata:\n  name: %s\nspec:\n  data:\n"
            "    sasl.jaas.config: \"%s\"\n    security.protocol: SASL_SSL\n" % (name, jaas))


def json_secret(name, jaas):
    return {"apiVersion": "cmf.confluent.io/v1", "kind": "Secret", "metadata": {"name": name},
            "spec": {"data": {"sasl.jaas.config": jaas, "security.protocol": "SASL_SSL"}}}


def markers(tag):
    # 96 characters each, unique per cycle: long enough for libyaml's scanner to grow its buffers.
    return ["%s-marker-%03d-%s" % (tag, i, os.urandom(40).hex())[:96] for i in range(CYCLES)]


def left_in_memory(pid, values):
    needles = {}
    for v in values:
        b = v.encode()
        needles[b] = v
        for i in range(0, len(b) - 15, 16):
            needles[b[i:i + 16]] = v
    return {needles[n] for n in scan_memory(pid, list(needles))}


def cycle(c, values, body, content_type):
    for v in values:
        r = c.request("PUT", "/cmf/api/v1/secrets/kafka-creds", body("kafka-creds", v),
                      headers={"Content-Type": content_type} if content_type else None)
        assert r.status == 200, r
        assert c.get_secret("kafka-creds").status == 200
        r = c.request("GET", PATH)
        assert r.status == 200 and r.json()["kafka"]["sasl.jaas.config"] == v, r


def test_yaml_and_json_bodies_leave_no_secret_value_in_memory(cmf_factory):
    c = build_world(cmf_factory().start())
    yaml_values, json_values = markers("yaml"), markers("json")
    cycle(c, yaml_values, yaml_secret, "application/yaml")
    cycle(c, json_values, lambda n, v: json_secret(n, v), None)
    assert left_in_memory(c.proc.pid, yaml_values) == set()
    assert left_in_memory(c.proc.pid, json_values) == set()
    # The scan does find what is there: the names, which are not secret, are in memory.
    assert scan_memory(c.proc.pid, [b"kafka-creds"]) == {b"kafka-creds"}


def test_control_bytes_and_invalid_utf8_in_paths_are_escaped_in_the_log(cmf):
    """Issue 13 item 7: a request path carrying ESC, BEL, a C1 control and invalid UTF-8 (percent-encoded, so
    the server decodes them) is logged with each such byte as \\xNN, never raw."""
    r = cmf.request("GET", "/cmf/api/v1/secrets/x%1b%5b31m%07%c2%9b%ff-end")
    assert r.status in (400, 404), r
    log = open(cmf.logpath, "rb").read()
    line = [l for l in log.split(b"\n") if b"-end" in l]
    assert line, log[-2000:]
    for l in line:
        assert b"\x1b" not in l and b"\x07" not in l and b"\xc2\x9b" not in l and b"\xff" not in l, l
    assert any(b"\\x1b[31m\\x07\\xc2\\x9b\\xff-end" in l for l in line), line
