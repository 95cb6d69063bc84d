#!/bin/sh
# `make run [PORT=8080]`: a throwaway PostgreSQL and a development key under .run/, then cmf on 127.0.0.1:PORT.
# The "Try, in another shell" lines are printed once cmf answers /readyz; a port in use is one line and a
# non-zero exit. CMF_DEV_DIR (default .run) and CMF_DEV_PGPORT (default 55432) move the rest.
set -eu
cd "$(dirname "$0")/.."
RUN=${CMF_DEV_DIR:-$(pwd)/.run}
SHOW=$RUN
[ "$RUN" = "$(pwd)/.run" ] && SHOW=.run
PORT=${PORT:-8080}
PGPORT=${CMF_DEV_PGPORT:-55432}
URL=http://127.0.0.1:$PORT
# How long cmf may take to answer /readyz (migrations on a fresh database take a second or two).
READY_SECONDS=60

case "$PORT" in
'' | *[!0-9]*) echo "make run: PORT must be a TCP port number, not '$PORT'" >&2; exit 64 ;;
esac
if [ "$PORT" -lt 1 ] || [ "$PORT" -gt 65535 ]; then
	echo "make run: PORT must be a TCP port number from 1 to 65535, not $PORT" >&2
	exit 64
fi

# Whether 127.0.0.1:$1 has a listener: bound as cmf binds it (SO_REUSEADDR, so TIME_WAIT does not count).
port_busy() {
	python3 -c 'import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(0)
sys.exit(1)' "$1"
}

# The one line for a port in use, suggesting the next free one.
port_taken() {
	next=$((PORT + 1))
	while [ "$next" -le 65535 ] && [ "$next" -le $((PORT + 20)) ] && port_busy "$next"; do
		next=$((next + 1))
	done
	[ "$next" -le 65535 ] || next=8081
	echo "make run: port $PORT on 127.0.0.1 is already in use (another cmf, or another program); use another one: make run PORT=$next" >&2
	exit 1
}

port_busy "$PORT" && port_taken

mkdir -p "$RUN"
chmod 755 "$RUN"
sh tests/pg.sh start "$RUN/pg" "$PGPORT"
pid=
stopping=
# Ctrl-C: cmf (started in the background, so deaf to SIGINT) is told to stop and drains; then PostgreSQL.
trap 'stopping=1; [ -n "$pid" ] || exit 130; kill -TERM "$pid" 2>/dev/null || true' INT TERM
trap 'sh tests/pg.sh stop "$RUN/pg"' EXIT
bindir=$(sh tests/pg.sh bindir "$RUN/pg")
psql() {
	if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$bindir/psql" "$@"; else "$bindir/psql" "$@"; fi
}
if [ "$(psql -h "$RUN/pg" -p "$PGPORT" -U postgres -XAtq -c "SELECT 1 FROM pg_database WHERE datname = 'cmf'")" != 1 ]; then
	psql -h "$RUN/pg" -p "$PGPORT" -U postgres -Xq -c "CREATE DATABASE cmf"
fi
[ -f "$RUN/master.key" ] || build/cmf keygen --bits 256 --out "$RUN/master.key"
if [ ! -f "$RUN/admin.token" ]; then
	# 32 random bytes as base64url: the bootstrap admin token (auth.adminTokenFile).
	(umask 077 && head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n' > "$RUN/admin.token")
fi
TOKEN=$(cat "$RUN/admin.token")

CMF_LISTEN=127.0.0.1:$PORT \
CMF_DATABASE_URL="postgresql://postgres@127.0.0.1:$PGPORT/cmf" \
CMF_ENCRYPTION_ENABLED=true \
CMF_ENCRYPTION_KEY_FILE="$RUN/master.key" \
CMF_AUTH_ADMIN_TOKEN_FILE="$RUN/admin.token" \
	build/cmf serve &
pid=$!

# cmf's status once it has exited (a wait cut short by Ctrl-C is waited again).
cmf_wait() {
	while :; do
		rc=0
		wait "$pid" || rc=$?
		kill -0 "$pid" 2>/dev/null || return "$rc"
	done
}

waited=0
until curl -sf -o /dev/null "$URL/readyz"; do
	if ! kill -0 "$pid" 2>/dev/null || [ -n "$stopping" ]; then
		rc=0
		cmf_wait || rc=$?
		[ -n "$stopping" ] && exit "$rc"
		# Taken between the check above and cmf's bind: the same line.
		port_busy "$PORT" && port_taken
		echo "make run: cmf stopped before it was ready (exit status $rc; its messages are above)" >&2
		exit "$((rc == 0 ? 1 : rc))"
	fi
	if [ "$waited" -ge $((READY_SECONDS * 10)) ]; then
		echo "make run: cmf did not become ready on $URL/readyz within $READY_SECONDS s; stopping it" >&2
		kill -TERM "$pid" 2>/dev/null || true
		cmf_wait || true
		exit 1
	fi
	sleep 0.1
	waited=$((waited + 1))
done

cat <<MSG

cmf (development) is ready on $URL — PostgreSQL, the key and the admin token are under $SHOW/
(keep the key: the database refuses any other one). The bootstrap admin token ($SHOW/admin.token):

  $TOKEN

Try, in another shell:

  TOKEN=\$(cat $SHOW/admin.token)
  curl -s -X POST $URL/cmf/api/v1/secrets -H "Authorization: Bearer \$TOKEN" \\
    -H 'Content-Type: application/json' -d '{
    "apiVersion": "cmf.confluent.io/v1", "kind": "Secret",
    "metadata": {"name": "kafka-prod"},
    "spec": {"data": {"sasl.jaas.config": "org.apache.kafka.common.security.plain.PlainLoginModule required username=\"svc\" password=\"s3cr3t\";"}}}'
  curl -s $URL/cmf/api/v1/secrets -H "Authorization: Bearer \$TOKEN"
  curl -s $URL/cmf/api/v1/secrets/kafka-prod -H "Authorization: Bearer \$TOKEN"
  curl -s $URL/cmf/api/v1/audit-events -H "Authorization: Bearer \$TOKEN"
  curl -s -X DELETE $URL/cmf/api/v1/secrets/kafka-prod -H "Authorization: Bearer \$TOKEN" -w '%{http_code}\\n'
  curl -s $URL/readyz

Ctrl-C stops cmf and PostgreSQL.

MSG
rc=0
cmf_wait || rc=$?
exit "$rc"
