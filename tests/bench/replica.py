"""Two replicas on one PostgreSQL: for each of WRITES secret updates answered by replica A, the time from
A's answer until replica B serves a new ETag for the job's resolution (B polled back to back on one
keep-alive connection, If-None-Match: the ETag it served before). Each wait is capped at CAP seconds.

usage: replica.py PORT_A PORT_B READER_TOKEN_FILE ADMIN_TOKEN_FILE WRITES OUT.json
"""
import http.client
import json
import sys
import time

from world import jaas

port_a, port_b = int(sys.argv[1]), int(sys.argv[2])
reader = open(sys.argv[3]).read().strip()
admin = open(sys.argv[4]).read().strip()
writes, out = int(sys.argv[5]), sys.argv[6]
CAP = 5.0
MAX_TIMEOUTS = 5  # then stop: B does not follow, and 200 waits of 5 s would add a quarter of an hour
RES = "/cmf/api/v1/environments/prod/client-configs/main/orders"
SECRET = "/cmf/api/v1/secrets/kafka-creds"


class Conn:
    def __init__(self, port):
        self.port = port
        self.c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def req(self, method, path, headers, body=None):
        for attempt in (0, 1):
            try:
                self.c.request(method, path, body=body, headers=headers)
                r = self.c.getresponse()
                data = r.read()
                return r.status, r.getheader("ETag"), data
            except (http.client.HTTPException, OSError):
                if attempt:
                    raise
                self.c.close()
                self.c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)


def etag(conn):
    st, tag, _ = conn.req("GET", RES, {"Authorization": "Bearer " + reader})
    if st != 200 or not tag:
        sys.exit("replica.py: resolution on port %d answered %d" % (conn.port, st))
    return tag


a, b = Conn(port_a), Conn(port_b)
rhdr = {"Authorization": "Bearer " + reader}
whdr = {"Authorization": "Bearer " + admin, "Content-Type": "application/json"}
lat, timeouts, unsynced, mismatch, b_errors, polls = [], 0, 0, 0, 0, 0
cur = etag(a)
t_start = time.monotonic()
for i in range(writes):
    # B must serve A's current state before the write (after a timeout it may still lag behind).
    old = etag(b)
    if old != cur:
        deadline = time.monotonic() + CAP
        while old != cur and time.monotonic() < deadline:
            time.sleep(0.01)
            old = etag(b)
        if old != cur:
            unsynced += 1
    doc = {"apiVersion": "cmf.confluent.io/v1", "kind": "Secret", "metadata": {"name": "kafka-creds"},
           "spec": {"data": {"sasl.jaas.config": jaas("p" * 630 + "%010d" % i), "sasl.mechanism": "PLAIN",
                             "security.protocol": "SASL_SSL"}}}
    st, _, body = a.req("PUT", SECRET, whdr, json.dumps(doc).encode())
    t0 = time.monotonic()
    if st != 200:
        sys.exit("replica.py: PUT %s on A answered %d: %s" % (SECRET, st, body[:200]))
    hdr = dict(rhdr, **{"If-None-Match": old})
    seen = None
    while True:
        st, tag, _ = b.req("GET", RES, hdr)
        polls += 1
        if st == 200 and tag and tag != old:
            seen = tag
            lat.append(time.monotonic() - t0)
            break
        if st not in (200, 304):
            b_errors += 1
        if time.monotonic() - t0 >= CAP:
            timeouts += 1
            break
    cur = etag(a)  # read your writes: A serves the write it answered
    if seen is not None and seen != cur:
        mismatch += 1
    if timeouts >= MAX_TIMEOUTS:
        break

json.dump({"writes": i + 1, "planned": writes, "latencies_s": lat, "timeouts": timeouts, "cap_s": CAP,
           "unsynced": unsynced, "etag_mismatch": mismatch, "b_errors": b_errors, "polls": polls,
           "seconds": time.monotonic() - t_start}, open(out, "w"))
