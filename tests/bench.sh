#!/bin/sh
# make bench (issue 11): cmf's paths against anchors measured in the same run on the same machine, printed
# as ratios. PostgreSQL is durable (fsync=on, synchronous_commit at its default) and cmf runs at its
# default settings (log level info) except for the per-client connection cap, which is off.
#
# At 16 and 64 connections (wrk -t2), BENCH_ROUNDS interleaved rounds (default 3; each round runs every
# path at every connection count), medians reported:
#   nginx       the resolution's 200 body as a static file (two workers for two cores)
#   pgbench     prepared select of one 1 KiB row, one client per connection
#   anchor      the audit-ingest anchor: pgbench, 2 clients, each transaction one INSERT of 64 rows into
#               bench_audit (LIKE cmf_audit_events INCLUDING DEFAULTS INCLUDING INDEXES, after cmf has
#               migrated): the most durable audit rows per second PostgreSQL takes here; rows/s
#   healthz     cmf GET /healthz
#   r200        cmf resolution, 200 (an environment-reader token, as a job holds)
#   r304        cmf resolution with If-None-Match: the 200's ETag
#   secret      cmf admin GET /secrets/kafka-creds
# then: cmf's peak RSS (VmHWM) after 256 connections on the 304 path; audit accounting (requests of the
# audited runs <= sum of count in cmf_audit_events <= requests + connections); with BENCH_PERF=1 a perf
# profile of a resolution run; and two replicas on one PostgreSQL: BENCH_WRITES (200) secret writes on A,
# each timed until B serves the new ETag.
#
# It reports, it does not judge: a missed target still exits 0; a step that fails to run exits non-zero.
# Environment: BENCH_SECONDS (5 per run), BENCH_ROUNDS (3), BENCH_CONNECTIONS ("16 64"), BENCH_THREADS
# (wrk threads, 2), BENCH_CMF_THREADS (cmf's server.threads; default: cmf's own), BENCH_WRITES (200),
# BENCH_PERF=1, BENCH_KEEP=1 (keep the work directory with every raw output and log).
set -eu
cd "$(dirname "$0")/.."
DUR=${BENCH_SECONDS:-5}
ROUNDS=${BENCH_ROUNDS:-3}
CONNS=${BENCH_CONNECTIONS:-16 64}
THREADS=${BENCH_THREADS:-2}
WRITES=${BENCH_WRITES:-200}
ANCHOR_ROWS=64
RSS_CONNS=256

need=""
for p in nginx-light wrk; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need="$need $p"
done
if [ -n "$need" ] && ! command -v nginx >/dev/null 2>&1; then
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >/dev/null
fi
command -v wrk >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null

W=$(mktemp -d /tmp/cmf-bench-XXXXXX)
chmod 755 "$W"
mkdir "$W/runs"
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PGPORT=$(freeport)
CMFPORT=$(freeport)
CMFBPORT=$(freeport)
NGPORT=$(freeport)
CMFPID="" CMFBPID="" PERFPID=""
cleanup() {
	rc=$?
	for p in $PERFPID $CMFBPID $CMFPID; do kill "$p" 2>/dev/null || true; done
	for p in $CMFBPID $CMFPID; do wait "$p" 2>/dev/null || true; done
	[ -f "$W/nginx.pid" ] && kill "$(cat "$W/nginx.pid")" 2>/dev/null || true
	sh tests/pg.sh stop "$W/pg" || true
	if [ "${BENCH_KEEP:-0}" = 1 ] || [ "$rc" != 0 ]; then
		[ "$rc" != 0 ] && [ -f "$W/cmf.log" ] && { echo "--- last lines of cmf's log"; tail -n 5 "$W/cmf.log"; } >&2
		echo "bench: work directory kept: $W" >&2
	else
		rm -rf "$W"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
fail() { echo "bench: $*" >&2; exit 1; }
died() { # PORT LOG: cmf exited on its own, or was stopped from outside this script
	grep -q 'received SIG' "$2" 2>/dev/null &&
		fail "cmf on port $1 was stopped by a signal from outside this script ($(grep -o 'received SIG[A-Z]*' "$2" | tail -n 1))"
	fail "cmf on port $1 exited"
}
fact() { echo "$1=$2" >> "$W/facts.txt"; }
# A child that exited stays a zombie until waited for, and kill -0 still finds it.
alive() { [ -r "/proc/$1/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status"; }

bindir=$(sh tests/pg.sh bindir "$W/pg")
PG_FSYNC=on sh tests/pg.sh start "$W/pg" "$PGPORT"
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
sql() { # QUERY [psql options]
	q=$1
	shift
	as_pg "$bindir/psql" -h "$W/pg" -p "$PGPORT" -U postgres -d bench -XAtq -v ON_ERROR_STOP=1 "$@" -c "$q"
}
as_pg "$bindir/psql" -h "$W/pg" -p "$PGPORT" -U postgres -Xq -c "CREATE DATABASE bench"
fact fsync "$(sql 'SHOW fsync')"
fact synchronous_commit "$(sql 'SHOW synchronous_commit')"
[ "$(sql 'SHOW fsync')" = on ] || fail "PostgreSQL did not start with fsync=on"

build/cmf keygen --bits 256 --out "$W/master.key" >/dev/null
head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n' > "$W/admin.token"
chmod 600 "$W/admin.token"
ADMIN=$(cat "$W/admin.token")
# cmf as in production: default settings (log level info), but no per-client cap: every load generator
# connection comes from 127.0.0.1.
start_cmf() { # PORT LOG: starts one replica in the background (its pid in $!)
	threads=""
	[ -n "${BENCH_CMF_THREADS:-}" ] && threads="CMF_SERVER_THREADS=$BENCH_CMF_THREADS"
	env -u CMF_LOG_LEVEL -u CMF_SERVER_THREADS $threads CMF_LISTEN="127.0.0.1:$1" \
		CMF_DATABASE_URL="postgresql://postgres@127.0.0.1:$PGPORT/bench" CMF_ENCRYPTION_KEY_FILE="$W/master.key" \
		CMF_AUTH_ADMIN_TOKEN_FILE="$W/admin.token" CMF_SERVER_MAX_CONNECTIONS_PER_CLIENT=0 \
		build/cmf serve 2>"$2" &
}
wait_up() { # PORT PID LOG
	for _ in $(seq 1 150); do
		curl -sf "http://127.0.0.1:$1/healthz" >/dev/null && return 0
		alive "$2" || died "$1" "$3"
		sleep 0.1
	done
	fail "cmf on port $1 did not answer /healthz within 15 s"
}
start_cmf "$CMFPORT" "$W/cmf.log"
CMFPID=$!
wait_up "$CMFPORT" "$CMFPID" "$W/cmf.log"

python3 tests/bench/world.py "$CMFPORT" "$W/admin.token" "$W/reader.token" || fail "cannot create the bench's world"
READER=$(cat "$W/reader.token")
BASE="http://127.0.0.1:$CMFPORT"
URL="$BASE/cmf/api/v1/environments/prod/client-configs/main/orders"
SECRET_URL="$BASE/cmf/api/v1/secrets/kafka-creds"
curl -sf -D "$W/config.headers" -H "Authorization: Bearer $READER" "$URL" > "$W/config.json" ||
	fail "the resolution does not answer 200"
ETAG=$(awk 'tolower($1) == "etag:" {sub(/\r$/, ""); print $2}' "$W/config.headers")
[ -n "$ETAG" ] || fail "the resolution's 200 carries no ETag"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $READER" -H "If-None-Match: $ETAG" "$URL")
[ "$code" = 304 ] || fail "the resolution with If-None-Match: $ETAG answers $code, not 304"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $ADMIN" "$SECRET_URL")
[ "$code" = 200 ] || fail "admin GET $SECRET_URL answers $code"
SIZE=$(wc -c < "$W/config.json")
fact size "$SIZE"
fact seconds "$DUR"
fact rounds "$ROUNDS"
fact threads "$THREADS"

# nginx: the same bytes as a static file, two workers for two cores.
mkdir -p "$W/www"
cp "$W/config.json" "$W/www/config.json"
chmod 644 "$W/www/config.json"
cat > "$W/nginx.conf" <<NGX
worker_processes 2;
pid $W/nginx.pid;
error_log $W/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log off;
  server { listen 127.0.0.1:$NGPORT; root $W/www; location / { default_type application/json; } }
}
NGX
nginx -c "$W/nginx.conf"
curl -sf "http://127.0.0.1:$NGPORT/config.json" | cmp -s - "$W/config.json" || fail "nginx does not serve the same bytes"

# pgbench: one 1 KiB row, selected by primary key with prepared statements.
sql "CREATE TABLE bench_row (id int PRIMARY KEY, data text); INSERT INTO bench_row VALUES (1, repeat('x', 1024));"
echo 'SELECT data FROM bench_row WHERE id = 1;' > "$W/select.sql"
# The audit-ingest anchor: a copy of the audit table as cmf has migrated it (indexes included), filled by
# multi-row INSERTs; the columns come from the catalogue, so new NOT NULL columns with defaults keep them.
sql "CREATE TABLE bench_audit (LIKE cmf_audit_events INCLUDING DEFAULTS INCLUDING INDEXES)"
sql "SELECT column_name, data_type, is_nullable, column_default IS NOT NULL FROM information_schema.columns
     WHERE table_schema = current_schema() AND table_name = 'bench_audit' ORDER BY ordinal_position" -F'|' |
	python3 tests/bench/anchor.py "$ANCHOR_ROWS" > "$W/anchor.sql" 2>"$W/anchor.txt" ||
	{ cat "$W/anchor.txt" >&2; fail "cannot write the anchor's INSERT"; }
chmod 644 "$W/select.sql" "$W/anchor.sql"
sql "BEGIN; $(cat "$W/anchor.sql") ROLLBACK;" || fail "the anchor's INSERT does not run"

# Audit accounting: Σcount (merged rows) or one per row, for the actions of the audited runs.
if [ "$(sql "SELECT count(*) FROM information_schema.columns WHERE table_schema = current_schema()
             AND table_name = 'cmf_audit_events' AND column_name = 'count'")" = 1 ]; then
	SUM="coalesce(sum(count), 0)"
else
	SUM="count(*)"
fi
fact audit_sum "$SUM"
audit_sums() {
	sql "SELECT a, (SELECT $SUM FROM cmf_audit_events WHERE action = a) FROM
	     (VALUES ('client-config.read'), ('secret.read')) v(a)" -F'|'
}
# The trail may still be committing merged rows: poll (up to 5 s) until it holds at least $1 events
# and stopped growing; the sums go to file $2, the seconds waited to fact audit_wait.
audit_settle() {
	prev=-1 t0=$(date +%s.%N)
	for _ in $(seq 1 10); do
		audit_sums > "$2"
		total=$(awk -F'|' '{s += $2} END {print s + 0}' "$2")
		[ "$total" -ge "$1" ] && [ "$total" = "$prev" ] && break
		prev=$total
		sleep 0.5
	done
	fact audit_wait "$(python3 -c "import sys, time; print('%.1f' % (time.time() - float(sys.argv[1])))" "$t0")"
}

run() { # NAME CONNECTIONS ROUND: one timed run, its raw output saved for report.py
	out="$W/runs/$1-$2-$3.txt"
	sql CHECKPOINT # a checkpoint of the previous run's writes does not land in this one
	case $1 in
	nginx) wrk --latency -t"$THREADS" -c"$2" -d"${DUR}s" "http://127.0.0.1:$NGPORT/config.json" ;;
	pgbench)
		as_pg "$bindir/pgbench" -h "$W/pg" -p "$PGPORT" -U postgres -n -M prepared -c "$2" -j "$THREADS" \
			-T "$DUR" -f "$W/select.sql" bench ;;
	anchor)
		as_pg "$bindir/pgbench" -h "$W/pg" -p "$PGPORT" -U postgres -n -M prepared -c 2 -j 2 \
			-T "$DUR" -f "$W/anchor.sql" bench ;;
	healthz) wrk --latency -t"$THREADS" -c"$2" -d"${DUR}s" "$BASE/healthz" ;;
	r200 | perf) wrk --latency -t"$THREADS" -c"$2" -d"${DUR}s" -H "Authorization: Bearer $READER" "$URL" ;;
	r304 | rss)
		wrk --latency -t"$THREADS" -c"$2" -d"${DUR}s" -H "Authorization: Bearer $READER" \
			-H "If-None-Match: $ETAG" "$URL" ;;
	secret) wrk --latency -t"$THREADS" -c"$2" -d"${DUR}s" -H "Authorization: Bearer $ADMIN" "$SECRET_URL" ;;
	esac > "$out" 2> "$out.err" || { cat "$out" "$out.err" >&2; fail "$1 at $2 connections failed to run"; }
	alive "$CMFPID" || { echo "bench: during $1 at $2 connections" >&2; died "$CMFPORT" "$W/cmf.log"; }
	echo "$1 $2 $3 $out" >> "$W/runs.txt"
}

audit_settle 0 "$W/audit-before.txt"
npaths=7
echo "bench: $ROUNDS rounds x $npaths paths x connections {$CONNS} x $DUR s, PostgreSQL fsync=on" >&2
r=1
while [ "$r" -le "$ROUNDS" ]; do
	echo "bench: round $r/$ROUNDS" >&2
	for c in $CONNS; do
		for p in nginx pgbench anchor healthz r200 r304 secret; do run "$p" "$c" "$r"; done
	done
	r=$((r + 1))
done

# Peak RSS with 256 open connections: a fleet of pollers on the 304 path, per-client cap off.
run rss "$RSS_CONNS" 1 &
RUNPID=$!
sleep $((DUR / 2 + 1))
fact rss_open "$(ss -Htn state established "( sport = :$CMFPORT )" | wc -l)"
wait "$RUNPID" || fail "the $RSS_CONNS-connection run failed"
fact rss_kb "$(awk '/VmHWM/ {print $2}' "/proc/$CMFPID/status")"

REQS=$(python3 tests/bench/report.py requests "$W")
audit_settle "${REQS%% *}" "$W/audit-after.txt"

if [ "${BENCH_PERF:-0}" = 1 ]; then
	if command -v perf >/dev/null && perf record -a -o "$W/perf-probe.data" -- true >/dev/null 2>&1; then
		# Where the time goes during a resolution run: every process on the machine, by command and by symbol.
		perf record -a -g -o "$W/perf.data" -- sleep "$DUR" >/dev/null 2>&1 &
		PERFPID=$!
		for c in $CONNS; do :; done # the largest (last)
		run perf "$c" 1
		wait "$PERFPID" || true
		PERFPID=""
		echo "--- CPU by process during a cmf resolution (200) run at $c connections (perf, all CPUs)"
		perf report -i "$W/perf.data" --no-children -g none --sort comm --stdio 2>/dev/null |
			grep -E '^ +[0-9.]+%' | head -8
		echo "--- top symbols"
		perf report -i "$W/perf.data" --no-children -g none --sort comm,dso,sym --stdio 2>/dev/null |
			grep -E '^ +[0-9.]+%' | head -25
	else
		echo "--- BENCH_PERF=1: perf is missing or not permitted here (perf_event_paranoid?); no profile"
	fi
fi

# Two replicas on one PostgreSQL: writes answered by A, the time until B serves the new ETag.
start_cmf "$CMFBPORT" "$W/cmf-b.log"
CMFBPID=$!
wait_up "$CMFBPORT" "$CMFBPID" "$W/cmf-b.log"
echo "bench: replicas, $WRITES writes" >&2
python3 tests/bench/replica.py "$CMFPORT" "$CMFBPORT" "$W/reader.token" "$W/admin.token" "$WRITES" \
	"$W/replica.json" || fail "the two-replica measurement failed to run"

python3 tests/bench/report.py report "$W"
