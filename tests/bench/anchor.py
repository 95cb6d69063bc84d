"""The audit-ingest anchor's pgbench script: one multi-row INSERT of ROWS audit rows into bench_audit.

stdin: bench_audit's columns as psql -XAt -F'|' prints
  column_name|data_type|is_nullable|has_default
(from information_schema.columns). Every NOT NULL column without a default gets a value; so do the
columns cmf always writes (the realistic sizes below); every other column keeps its default, so the
anchor follows whatever the schema of cmf_audit_events becomes.

usage: anchor.py ROWS > anchor.sql   (prints the filled columns on stderr)
"""
import secrets
import sys

rows = int(sys.argv[1])


def lit(s):
    """A string literal pgbench leaves alone: it takes any ':name', even quoted, for a variable."""
    s = s.replace("'", "''")
    if ":" not in s:
        return "'%s'" % s
    return "E'%s'" % s.replace("\\", "\\\\").replace(":", "\\x3a")


# What cmf writes for a job's resolution, at the sizes it writes them.
known = {
    "principal": lambda i: lit("token:orders-job/0123456789abcdef"),
    "action": lambda i: lit("client-config.read"),
    "resource": lambda i: lit("client-config/prod/main/orders"),
    "outcome": lambda i: lit("success"),
    "status": lambda i: "200",
    "request_id": lambda i: lit(secrets.token_hex(16)),
    "client_address": lambda i: lit("127.0.0.1"),
}
# A NOT NULL column without a default that cmf gains later: a plausible value by type.
by_type = {
    "text": "'x'", "character varying": "'x'", "character": "'x'",
    "integer": "1", "bigint": "1", "smallint": "1", "numeric": "1", "double precision": "1", "real": "1",
    "boolean": "false", "timestamp with time zone": "clock_timestamp()",
    "timestamp without time zone": "localtimestamp", "date": "current_date",
    "uuid": "gen_random_uuid()", "jsonb": "'{}'", "json": "'{}'", "bytea": "'\\x00'", "inet": "'127.0.0.1'",
}
cols = []
for line in sys.stdin:
    line = line.strip()
    if not line:
        continue
    name, dtype, nullable, has_default = line.split("|")
    required = nullable == "NO" and has_default != "t"
    if name in known:
        cols.append((name, known[name]))
    elif required:
        if dtype not in by_type:
            sys.exit("anchor.py: bench_audit.%s is NOT NULL without a default, of type %s: no value for it"
                     % (name, dtype))
        v = by_type[dtype]
        cols.append((name, lambda i, v=v: v))
if not cols:
    sys.exit("anchor.py: no columns read")
print("audit-ingest anchor fills: %s (the rest keep their defaults)" % ", ".join(n for n, _ in cols),
      file=sys.stderr)
values = ",\n".join("(%s)" % ", ".join(f(i) for _, f in cols) for i in range(rows))
print("INSERT INTO bench_audit (%s) VALUES\n%s;" % (", ".join(n for n, _ in cols), values))
