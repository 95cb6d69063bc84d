"""make bench's arithmetic: parses the saved wrk/pgbench outputs of every run, prints the table of
medians, the ratios against issue 11's targets, peak RSS, the audit accounting and the replica test.

usage: report.py requests W   -> "REQUESTS SLACK" of the audited cmf runs (for the audit poll)
       report.py report W     -> the report
W holds runs.txt (one "name connections round file" line per run), the run files, facts.txt
(key=value lines), audit-before.txt / audit-after.txt ("action|sum" lines) and replica.json.
"""
import json
import math
import os
import re
import statistics
import sys

PATHS = [  # name, label, tool
    ("nginx", "nginx static (same bytes)", "wrk"),
    ("pgbench", "pgbench select 1 KiB row", "pgbench"),
    ("anchor", "audit-ingest anchor rows/s", "pgbench"),
    ("healthz", "cmf /healthz", "wrk"),
    ("r200", "cmf resolution 200", "wrk"),
    ("r304", "cmf resolution 304", "wrk"),
    ("secret", "cmf admin GET secret", "wrk"),
]
AUDITED = {"r200": "client-config.read", "r304": "client-config.read", "rss": "client-config.read",
           "secret": "secret.read"}
ANCHOR_ROWS = 64
TIME_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
SIZE_UNITS = {"B": 1, "KB": 1024, "MB": 1024 ** 2, "GB": 1024 ** 3, "TB": 1024 ** 4}


def seconds(text):
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m|h)", text)
    if not m:
        raise ValueError("unparsable time %r" % text)
    return float(m.group(1)) * TIME_UNITS[m.group(2)]


def parse_wrk(text):
    r = {}
    m = re.search(r"^Requests/sec:\s+([0-9.]+)", text, re.M)
    n = re.search(r"^\s*(\d+) requests in ([0-9.]+\w+), ([0-9.]+)(\w+) read", text, re.M)
    if not m or not n:
        raise ValueError("not a wrk --latency output")
    r["rate"] = float(m.group(1))
    r["requests"] = int(n.group(1))
    r["bytes"] = float(n.group(3)) * SIZE_UNITS[n.group(4)]
    for pct in ("50", "99"):
        p = re.search(r"^\s*%s(?:\.0+)?%%\s+([0-9.]+\w+)" % pct, text, re.M)
        r["p" + pct] = seconds(p.group(1)) if p else None
    e = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    r["non2xx"] = int(e.group(1)) if e else 0
    s = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    r["sockerr"] = sum(int(x) for x in s.groups()) if s else 0
    return r


def parse_pgbench(text):
    m = re.search(r"^tps = ([0-9.]+)", text, re.M)
    n = re.search(r"^number of transactions actually processed: (\d+)", text, re.M)
    if not m or not n:
        raise ValueError("not a pgbench output")
    f = re.search(r"^number of failed transactions: (\d+)", text, re.M)
    return {"rate": float(m.group(1)), "requests": int(n.group(1)), "p50": None, "p99": None,
            "non2xx": int(f.group(1)) if f else 0, "sockerr": 0, "bytes": 0.0}


def load(w):
    runs = []
    tools = dict((n, t) for n, _, t in PATHS)
    tools["rss"] = tools["perf"] = "wrk"
    for line in open(os.path.join(w, "runs.txt")):
        name, conns, rnd, path = line.split()
        text = open(path).read()
        try:
            r = parse_wrk(text) if tools[name] == "wrk" else parse_pgbench(text)
        except (ValueError, AttributeError) as e:
            sys.exit("report.py: %s: %s" % (path, e))
        r.update(name=name, conns=int(conns), round=int(rnd))
        if name == "anchor":
            r["rate"] *= ANCHOR_ROWS
        runs.append(r)
    return runs


def facts(w):
    d = {}
    p = os.path.join(w, "facts.txt")
    if os.path.exists(p):
        for line in open(p):
            if "=" in line:
                k, v = line.rstrip("\n").split("=", 1)
                d[k] = v
    return d


def audit_sums(path):
    d = {}
    for line in open(path):
        if "|" in line:
            a, s = line.strip().split("|")
            d[a] = int(s)
    return d


def audited(runs):
    req, slack = {}, {}
    for r in runs:
        a = AUDITED.get(r["name"])
        if a:
            req[a] = req.get(a, 0) + r["requests"]
            slack[a] = slack.get(a, 0) + r["conns"]
    return req, slack


def ms(x):
    if x is None:
        return "-"
    return "%.2fms" % (x * 1e3) if x < 0.01 else "%.1fms" % (x * 1e3) if x < 1 else "%.2fs" % x


def pct(sorted_vals, p):
    """Nearest-rank percentile; None stands for a timeout (sorts last)."""
    if not sorted_vals:
        return None
    return sorted_vals[max(0, math.ceil(p / 100.0 * len(sorted_vals)) - 1)]


def report(w):
    runs, f = load(w), facts(w)
    conns = sorted({r["conns"] for r in runs if r["name"] in dict((n, 1) for n, _, _ in PATHS)})
    cell = {}
    for name, _, _ in PATHS:
        for c in conns:
            rs = [r for r in runs if r["name"] == name and r["conns"] == c]
            if not rs:
                continue
            rates = [r["rate"] for r in rs]
            med = statistics.median(rates)
            lat = lambda k: statistics.median([r[k] for r in rs]) if all(r[k] is not None for r in rs) else None
            cell[name, c] = {"rate": med, "p50": lat("p50"), "p99": lat("p99"),
                             "spread": (max(rates) - min(rates)) / med if med else 0.0,
                             "errors": sum(r["non2xx"] + r["sockerr"] for r in rs),
                             "bytes": sum(r["bytes"] for r in rs) / max(1, sum(r["requests"] for r in rs)),
                             "n": len(rs)}
    print()
    print("make bench: median of %s rounds, %s s per run, wrk -t%s; PostgreSQL fsync=%s, synchronous_commit=%s; "
          "resolved configuration %s bytes" % (f.get("rounds"), f.get("seconds"), f.get("threads"),
                                              f.get("fsync"), f.get("synchronous_commit"), f.get("size")))
    print("(req/s; pgbench: transactions/s; anchor: %d-row INSERTs by 2 clients, rows/s; range = (max-min)/median "
          "over the rounds)" % ANCHOR_ROWS)
    head = "%-28s" % "path"
    for c in conns:
        head += " | %-33s" % ("%d connections" % c)
    print(head)
    sub = "%-28s" % ""
    for c in conns:
        sub += " | %9s %8s %8s %5s" % ("req/s", "p50", "p99", "range")
    print(sub)
    print("-" * len(sub))
    notes = []
    for name, label, _ in PATHS:
        line = "%-28s" % label
        for c in conns:
            x = cell.get((name, c))
            if x is None:
                line += " | %33s" % "-"
                continue
            line += " | %9s %8s %8s %4.0f%%" % ("{:,.0f}".format(x["rate"]), ms(x["p50"]), ms(x["p99"]),
                                                100 * x["spread"])
            if x["errors"]:
                notes.append("%s at %d connections: %d error responses or socket errors over %d runs"
                             % (label, c, x["errors"], x["n"]))
            if name == "r304" and x["bytes"] > 0.5 * float(f.get("size", "1e9")):
                notes.append("%s at %d connections: %.0f bytes per response - not 304s"
                             % (label, c, x["bytes"]))
        print(line)
    print("-" * len(sub))
    for n in notes:
        print("  note: " + n)

    def ratio(a, b, c):
        if (a, c) not in cell or (b, c) not in cell or not cell[b, c]["rate"]:
            return None
        return cell[a, c]["rate"] / cell[b, c]["rate"]

    top = max(conns)
    print()
    print("ratios at %d connections (issue 11's targets)%s" % (
        top, "; at " + ", ".join(str(c) for c in conns if c != top) + " in brackets" if len(conns) > 1 else ""))
    for a, b, label, target in [
            ("r200", "anchor", "resolution 200 / audit-ingest anchor", 0.5),
            ("r304", "healthz", "resolution 304 / cmf /healthz", 0.85),
            ("secret", "pgbench", "admin GET secret / pgbench select", 0.5),
            ("r200", "nginx", "resolution 200 / nginx", None),
            ("r304", "nginx", "resolution 304 / nginx", None),
            ("healthz", "nginx", "cmf /healthz / nginx", None),
            ("secret", "nginx", "admin GET secret / nginx", None)]:
        v = ratio(a, b, top)
        if v is None:
            continue
        other = ", ".join("%.3f" % ratio(a, b, c) for c in conns if c != top and ratio(a, b, c) is not None)
        mark = ("target >= %.2f  %s" % (target, "PASS" if v >= target else "miss")) if target else "information"
        print("  %-40s %7.3f  [%s]  %s" % (label, v, other, mark))

    rss = f.get("rss_kb")
    if rss:
        mib = int(rss) / 1024.0
        print("  %-40s %7.1f MiB  target < 32 MiB  %s   (%s connections open mid-run; %s req/s on the 304 path)"
              % ("peak RSS (VmHWM) after 256 connections", mib, "PASS" if mib < 32 else "miss",
                 f.get("rss_open", "?"), "{:,.0f}".format(sum(r["rate"] for r in runs if r["name"] == "rss"))))

    before, after = os.path.join(w, "audit-before.txt"), os.path.join(w, "audit-after.txt")
    if os.path.exists(before) and os.path.exists(after):
        b, a = audit_sums(before), audit_sums(after)
        req, slack = audited(runs)
        print()
        print("audit accounting over the audited cmf runs (%s; waited %s s for the trail to settle):"
              % (f.get("audit_sum", "?"), f.get("audit_wait", "?")))
        ok_all = True
        for action in sorted(req):
            got = a.get(action, 0) - b.get(action, 0)
            ok = req[action] <= got <= req[action] + slack[action]
            ok_all &= ok
            print("  %-20s requests %9d <= sum %9d <= requests + connections %9d  %s"
                  % (action, req[action], got, req[action] + slack[action], "pass" if ok else "FAIL"))
        print("  %-20s %s" % ("audit accounting", "pass" if ok_all else "FAIL"))

    rp = os.path.join(w, "replica.json")
    if os.path.exists(rp):
        r = json.load(open(rp))
        vals = sorted(r["latencies_s"]) + [None] * r["timeouts"]
        p50, p99 = pct(vals, 50), pct(vals, 99)
        show = lambda x: ">%.0f ms (timeout)" % (r["cap_s"] * 1e3) if x is None else "%.1f ms" % (x * 1e3)
        print()
        print("two replicas, one PostgreSQL: secret PUT answered by A -> B serves the new ETag, %d writes%s"
              % (r["writes"], "" if r["writes"] == r["planned"] else
                 " (stopped early after %d timeouts; %d planned)" % (r["timeouts"], r["planned"])))
        print("  p50 %s, p99 %s, max %s; timeouts (> %.0f s) %d  target p99 < 100 ms  %s"
              % (show(p50), show(p99), show(vals[-1] if vals else None), r["cap_s"], r["timeouts"],
                 "PASS" if p99 is not None and p99 < 0.1 else "miss"))
        extra = []
        if r["unsynced"]:
            extra.append("%d writes started with B still behind A" % r["unsynced"])
        if r["etag_mismatch"]:
            extra.append("%d times B's new ETag differed from A's" % r["etag_mismatch"])
        if r["b_errors"]:
            extra.append("%d error answers from B while polling" % r["b_errors"])
        extra.append("%d polls of B in %.1f s" % (r["polls"], r["seconds"]))
        print("  " + "; ".join(extra))


if __name__ == "__main__":
    if sys.argv[1] == "requests":
        req, slack = audited(load(sys.argv[2]))
        print(sum(req.values()), sum(slack.values()))
    elif sys.argv[1] == "report":
        report(sys.argv[2])
    else:
        sys.exit(__doc__)
