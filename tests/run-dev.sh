#!/bin/sh
# `make run`: a throwaway PostgreSQL and a development key under .run/, then cmf on 127.0.0.1:8080.
set -eu
cd "$(dirname "$0")/.."
RUN=$(pwd)/.run
PGPORT=${CMF_DEV_PGPORT:-55432}
mkdir -p "$RUN"
chmod 755 "$RUN"
sh tests/pg.sh start "$RUN/pg" "$PGPORT"
trap 'sh tests/pg.sh stop "$RUN/pg"' EXIT INT TERM
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
cat <<MSG

cmf (development) on http://127.0.0.1:8080 — PostgreSQL, the key and the admin token are under .run/
(keep the key: the database refuses any other one). The bootstrap admin token (.run/admin.token):

  $TOKEN

Try, in another shell:

  TOKEN=\$(cat .run/admin.token)
  curl -s -X POST http://127.0.0.1:8080/cmf/api/v1/secrets -H "Authorization: Bearer \$TOKEN" \\
    -H 'Content-Type: application/json' -d '{
    "apiVersion": "cmf.confluent.io/v1", "kind": "Secret",
    "metadata": {"name": "kafka-prod"},
    "spec": {"data": {"sasl.jaas.config": "org.apache.kafka.common.security.plain.PlainLoginModule required username=\"svc\" password=\"s3cr3t\";"}}}'
  curl -s http://127.0.0.1:8080/cmf/api/v1/secrets -H "Authorization: Bearer \$TOKEN"
  curl -s http://127.0.0.1:8080/cmf/api/v1/secrets/kafka-prod -H "Authorization: Bearer \$TOKEN"
  curl -s http://127.0.0.1:8080/cmf/api/v1/audit-events -H "Authorization: Bearer \$TOKEN"
  curl -s -X DELETE http://127.0.0.1:8080/cmf/api/v1/secrets/kafka-prod -H "Authorization: Bearer \$TOKEN" -w '%{http_code}\n'
  curl -s http://127.0.0.1:8080/readyz

Ctrl-C stops cmf and PostgreSQL.

MSG
CMF_LISTEN=127.0.0.1:8080 \
CMF_DATABASE_URL="postgresql://postgres@127.0.0.1:$PGPORT/cmf" \
CMF_ENCRYPTION_ENABLED=true \
CMF_ENCRYPTION_KEY_FILE="$RUN/master.key" \
CMF_AUTH_ADMIN_TOKEN_FILE="$RUN/admin.token" \
	build/cmf serve || true
