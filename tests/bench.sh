#!/bin/sh
# make bench: requests/s of cmf's resolution endpoint for a ~1 KiB configuration, against two anchors
# measured in the same run on the same machine — nginx serving the same bytes as a static file, and
# pgbench selecting one 1 KiB row — plus cmf's peak RSS. Everything runs on loopback and stops by itself.
set -eu
cd "$(dirname "$0")/.."
DUR=${BENCH_SECONDS:-10}
CONNS=${BENCH_CONNECTIONS:-16}
THREADS=${BENCH_THREADS:-2}

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
PGPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
CMFPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
NGPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
CMFPID=""
cleanup() {
	[ -n "$CMFPID" ] && kill "$CMFPID" 2>/dev/null || true
	[ -f "$W/nginx.pid" ] && kill "$(cat "$W/nginx.pid")" 2>/dev/null || true
	sh tests/pg.sh stop "$W/pg" || true
	rm -rf "$W"
}
trap cleanup EXIT INT TERM

bindir=$(sh tests/pg.sh bindir "$W/pg")
sh tests/pg.sh start "$W/pg" "$PGPORT"
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
as_pg "$bindir/psql" -h "$W/pg" -p "$PGPORT" -U postgres -Xq -c "CREATE DATABASE bench"

build/cmf keygen --bits 256 --out "$W/master.key" >/dev/null
head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n' > "$W/admin.token"
chmod 600 "$W/admin.token"
CMF_LISTEN=127.0.0.1:$CMFPORT CMF_DATABASE_URL="postgresql://postgres@127.0.0.1:$PGPORT/bench" \
CMF_ENCRYPTION_KEY_FILE="$W/master.key" CMF_AUTH_ADMIN_TOKEN_FILE="$W/admin.token" CMF_LOG_LEVEL=warn \
CMF_SERVER_THREADS=${BENCH_CMF_THREADS:-16} build/cmf serve 2>"$W/cmf.log" &
CMFPID=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$CMFPORT/healthz" >/dev/null && break; sleep 0.1; done

# The world: one secret whose JAAS line makes the resolved configuration ~1 KiB, one environment,
# its mapping, a catalog and a database; and an environment-reader token, as a job would hold.
python3 - "$CMFPORT" "$W/admin.token" "$W" <<'PY'
import json, sys, urllib.request
port, tokfile, w = sys.argv[1], sys.argv[2], sys.argv[3]
tok = open(tokfile).read().strip()
def call(method, path, body):
    req = urllib.request.Request("http://127.0.0.1:%s/cmf/api/v1%s" % (port, path), method=method,
                                 data=json.dumps(body).encode(), headers={"Authorization": "Bearer " + tok,
                                                                          "Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(req))
meta = lambda kind, name, spec: {"apiVersion": "cmf.confluent.io/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}
jaas = ('org.apache.kafka.common.security.plain.PlainLoginModule required username="orders-svc" password="%s";'
        % ("p" * 640))
call("POST", "/secrets", meta("Secret", "kafka-creds", {"data": {"sasl.jaas.config": jaas, "sasl.mechanism": "PLAIN",
                                                                  "security.protocol": "SASL_SSL"}}))
call("POST", "/secrets", meta("Secret", "sr-creds", {"data": {"basic.auth.credentials.source": "USER_INFO",
                                                              "basic.auth.user.info": "sr-user:" + "s" * 40}}))
call("POST", "/environments", {"name": "prod", "kubernetesNamespace": "flink"})
call("POST", "/environments/prod/secret-mappings", meta("EnvironmentSecretMapping", "kafka-conn", {"secretName": "kafka-creds"}))
call("POST", "/environments/prod/secret-mappings", meta("EnvironmentSecretMapping", "sr-conn", {"secretName": "sr-creds"}))
call("POST", "/catalogs/kafka", meta("KafkaCatalog", "main", {"srInstance": {"connectionConfig": {"schema.registry.url": "https://sr.example:8081"}, "connectionSecretId": "sr-conn"}}))
call("POST", "/catalogs/kafka/main/databases", meta("KafkaDatabase", "orders", {"kafkaCluster": {"connectionConfig": {"bootstrap.servers": "b1.example:9092,b2.example:9092,b3.example:9092", "client.dns.lookup": "use_all_dns_ips"}, "connectionSecretId": "kafka-conn"}}))
r = call("POST", "/tokens", meta("ApiToken", "orders-job", {"role": "environment-reader", "environments": ["prod"]}))
open(w + "/reader.token", "w").write(r["status"]["token"])
PY
READER=$(cat "$W/reader.token")
URL="http://127.0.0.1:$CMFPORT/cmf/api/v1/environments/prod/client-configs/main/orders"
curl -sf -H "Authorization: Bearer $READER" "$URL" > "$W/config.json"
mkdir -p "$W/www"
cp "$W/config.json" "$W/www/config.json"
SIZE=$(wc -c < "$W/config.json")

# nginx: the same bytes as a static file, two workers for two cores.
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

# pgbench: one 1 KiB row, selected by primary key with prepared statements.
as_pg "$bindir/psql" -h "$W/pg" -p "$PGPORT" -U postgres -d bench -Xq -c \
	"CREATE TABLE bench_row (id int PRIMARY KEY, data text); INSERT INTO bench_row VALUES (1, repeat('x', 1024));"
echo 'SELECT data FROM bench_row WHERE id = 1;' > "$W/select.sql"
chmod 644 "$W/select.sql"

rps() { awk '/Requests\/sec/ {print $2}'; }
echo "resolved configuration: $SIZE bytes; $DUR s per run, $CONNS connections, $THREADS wrk threads"
NGINX=$(wrk -t"$THREADS" -c"$CONNS" -d"${DUR}s" "http://127.0.0.1:$NGPORT/config.json" | rps)
PGB=$(as_pg "$bindir/pgbench" -h "$W/pg" -p "$PGPORT" -U postgres -n -M prepared -c "$CONNS" -j "$THREADS" \
	-T "$DUR" -f "$W/select.sql" bench 2>/dev/null | awk '/^tps/ {print $3; exit}')
if [ "${BENCH_PERF:-0}" = 1 ] && command -v perf >/dev/null; then
	# Where the time goes during cmf's run: every process on the machine, by command and by symbol.
	perf record -a -g -o "$W/perf.data" -- sleep "$DUR" >/dev/null 2>&1 &
	PERFPID=$!
fi
CMF=$(wrk -t"$THREADS" -c"$CONNS" -d"${DUR}s" -H "Authorization: Bearer $READER" "$URL" | rps)
if [ -n "${PERFPID:-}" ]; then
	wait "$PERFPID" || true
	echo "--- CPU by process during cmf's run (perf, all CPUs)"
	perf report -i "$W/perf.data" --no-children --sort comm --stdio 2>/dev/null | grep -E '^ +[0-9]' | head -8
	echo "--- top symbols"
	perf report -i "$W/perf.data" --no-children --sort comm,dso,sym --stdio 2>/dev/null | grep -E '^ +[0-9]' | head -25
fi
RSS=$(awk '/VmHWM/ {print $2}' "/proc/$CMFPID/status")
AUDITED=$(as_pg "$bindir/psql" -h "$W/pg" -p "$PGPORT" -U postgres -d bench -XAtq -c \
	"SELECT count(*) FROM cmf_audit_events WHERE action = 'client-config.read'")
python3 - "$CMF" "$NGINX" "$PGB" "$RSS" "$AUDITED" <<'PY'
import sys
cmf, ngx, pgb, rss, audited = float(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
print("cmf resolution      %10.0f req/s  (every call decrypted and audited: %s audit rows)" % (cmf, audited))
print("nginx static file   %10.0f req/s  -> cmf/nginx   = %.2f (target >= 0.60)" % (ngx, cmf / ngx))
print("pgbench 1-row select%10.0f tps    -> cmf/pgbench = %.2f (target >= 0.50)" % (pgb, cmf / pgb))
print("cmf peak RSS        %10.1f MiB" % (rss / 1024.0))
PY
