"""Issue 13 item 2, black-box: a flood of refused requests costs the audit trail a few merged rows (whose
counts add up to the requests sent), and audit.retentionDays prunes old events in batches, in the
background, while GET /audit-events says how far back the trail goes."""
import http.client
import threading
import time

API = "/cmf/api/v1"
BAD_TOKEN = "cmf_0123456789abcdef_" + "A" * 43  # well formed, no such token
FLOOD_SECONDS = 3.0


def ok(r, status=200):
    assert r.status == status, r
    return r


def rows(pg, db, sql):
    out = pg.psql(sql, db)
    return [line.split("|") for line in out.splitlines() if line]


def flood(port, token, method, path, seconds, sent, errors):
    """One keep-alive connection sending `method path` until `seconds` pass; counts statuses into sent."""
    h = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Authorization": "Bearer " + token} if token is not None else {}
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            try:
                h.request(method, path, headers=headers)
                r = h.getresponse()
                r.read()
            except (http.client.HTTPException, OSError) as e:
                # the server may close a kept-alive connection: a new one, the request not counted
                errors.append(repr(e))
                h.close()
                h = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                continue
            sent[r.status] = sent.get(r.status, 0) + 1
            if (r.getheader("Connection") or "").lower() == "close":
                h.close()
                h = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    finally:
        h.close()


def test_refusal_flood_adds_a_few_merged_rows_counting_every_request(cmf_factory, pg, db):
    c = cmf_factory().start()
    # a real environment-reader token: refused (403) on the admin routes
    j = ok(c.request("POST", API + "/tokens", {"apiVersion": "cmf.confluent.io/v1", "kind": "ApiToken",
                                              "metadata": {"name": "reader"},
                                              "spec": {"role": "environment-reader", "environments": ["prod"]}}))
    reader = j.json()["status"]["token"]
    mark = int(pg.psql("SELECT coalesce(max(id), 0) FROM cmf_audit_events", db))
    # six keep-alive connections at once, two per kind of refusal, plus unrouted 404 and 405 (never audited)
    plan = [(None, "GET", API + "/secrets"), (None, "GET", API + "/secrets"),
            (BAD_TOKEN, "GET", API + "/secrets/x"), (BAD_TOKEN, "DELETE", API + "/secrets/y"),
            (reader, "GET", API + "/secrets"), (reader, "GET", API + "/tokens"),
            (None, "GET", API + "/no-such-thing"), (None, "PATCH", API + "/secrets")]
    sent = [dict() for _ in plan]
    errors = []
    threads = [threading.Thread(target=flood, args=(c.port, tok, m, p, FLOOD_SECONDS, sent[i], errors))
               for i, (tok, m, p) in enumerate(plan)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # SIGTERM drains the queue: every merge window is closed and stored before the process exits
    assert c.stop() == 0, c.log()
    total = {}
    for s in sent:
        for st, n in s.items():
            total[st] = total.get(st, 0) + n
    assert set(total) == {401, 403, 404, 405}, (total, errors)
    assert total[401] > 300 and total[403] > 100, total  # a flood, not a trickle
    got = rows(pg, db, "SELECT status, action, outcome, principal, count FROM cmf_audit_events WHERE id > %d "
                       "ORDER BY id" % mark)
    stored = {}
    for st, action, outcome, principal, n in got:
        stored[int(st)] = stored.get(int(st), 0) + int(n)
        assert outcome == "denied", got
        if st == "401":
            assert (action, principal) == ("authenticate", "anonymous"), got
        else:
            assert principal.startswith("token:reader/"), got
    # every refusal counted exactly once; unrouted requests (404, 405) are not audit events
    assert stored == {401: total[401], 403: total[403]}, (stored, total)
    # merged per (address, principal, action, route, status) and second: at most a few dozen rows
    assert len(got) <= 40, (len(got), total)


def test_retention_prunes_old_events_in_batches_and_metadata_shows_oldest(cmf_factory, pg, db):
    # default 0: a start with old events deletes none
    c = cmf_factory().start()
    pg.psql("INSERT INTO cmf_audit_events (time, principal, action, resource, outcome, status, request_id) "
            "SELECT now() - interval '10 days' - g * interval '1 second', 'old', 'secret.read', 'secret/x', "
            "'success', 200, 'old-' || g FROM generate_series(1, 2500) g", db)
    pg.psql("INSERT INTO cmf_audit_events (time, principal, action, resource, outcome, status, request_id) "
            "SELECT now() - interval '6 days' - g * interval '1 second', 'recent', 'secret.read', 'secret/x', "
            "'success', 200, 'recent-' || g FROM generate_series(1, 3) g", db)
    oldest_all = pg.psql("SELECT to_char(min(time) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') "
                         "FROM cmf_audit_events", db)
    meta = ok(c.request("GET", API + "/audit-events?size=1")).json()["metadata"]
    assert meta["oldestTime"] == oldest_all and meta["retentionDays"] == 0, meta
    assert c.stop() == 0
    c2 = cmf_factory().start()
    time.sleep(1.0)
    assert pg.psql("SELECT count(*) FROM cmf_audit_events WHERE principal = 'old'", db) == "2500"
    assert "audit retention" not in c2.log()
    assert c2.stop() == 0

    # 7 days: the 10-day-old events go (three batches of at most 1000), the 6-day-old ones stay
    c3 = cmf_factory(env={"CMF_AUDIT_RETENTION_DAYS": "7"}).start()
    start = time.monotonic()
    while pg.psql("SELECT count(*) FROM cmf_audit_events WHERE principal = 'old'", db) != "0":
        assert time.monotonic() - start < 10, "old events still stored after 10 s"
        time.sleep(0.1)
    assert pg.psql("SELECT count(*) FROM cmf_audit_events WHERE principal = 'recent'", db) == "3"
    # one line for the pass, with the count
    start = time.monotonic()
    while "audit retention: deleted" not in c3.log():
        assert time.monotonic() - start < 5, c3.log()
        time.sleep(0.05)
    lines = [l for l in c3.log().splitlines() if "audit retention" in l]
    assert len(lines) == 1 and "deleted 2500 event(s) older than 7 days" in lines[0], lines
    oldest_kept = pg.psql("SELECT to_char(min(time) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') "
                          "FROM cmf_audit_events", db)
    assert oldest_kept > oldest_all
    meta = ok(c3.request("GET", API + "/audit-events?size=1&principal=nobody")).json()["metadata"]
    # the oldest event kept, whatever the filters match
    assert meta == {"size": 0, "oldestTime": oldest_kept, "retentionDays": 7}, meta
    assert c3.stop() == 0


def test_oldest_time_is_null_when_the_trail_is_empty(cmf_factory, pg, db):
    c = cmf_factory(env={"CMF_AUDIT_RETENTION_DAYS": "36500"}).start()
    pg.psql("DELETE FROM cmf_audit_events", db)
    meta = ok(c.request("GET", API + "/audit-events")).json()["metadata"]
    assert meta == {"size": 0, "oldestTime": None, "retentionDays": 36500}, meta


def test_retention_out_of_range_is_refused_at_start(cmf_factory):
    c = cmf_factory(env={"CMF_AUDIT_RETENTION_DAYS": "36501"})
    r = c.run("serve", timeout=30)
    assert r.returncode == 78, (r.returncode, r.stderr)
    assert "CMF_AUDIT_RETENTION_DAYS: expected an integer from 0 to 36500, found '36501'" in r.stdout + r.stderr
