#!/bin/sh
# A throwaway PostgreSQL: `pg.sh start DIR PORT` (initdb + start, unix socket in DIR) / `pg.sh stop DIR`.
# PG_FSYNC=on starts it durable (make bench: the audit promises durability, so its cost is measured).
# PostgreSQL refuses to run as root, so as root it runs as the `postgres` user.
set -eu
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$bindir" ] || { echo "pg.sh: PostgreSQL server binaries not found (apt-get install postgresql)" >&2; exit 1; }
as_pg() {
	if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
cmd=$1 dir=$2
case "$cmd" in
start)
	port=$3
	mkdir -p "$dir"
	[ "$(id -u)" = 0 ] && chown postgres "$dir"
	if [ ! -f "$dir/data/PG_VERSION" ]; then
		as_pg "$bindir/initdb" -D "$dir/data" -U postgres -A trust --no-sync >"$dir/initdb.log" 2>&1 ||
			{ cat "$dir/initdb.log" >&2; exit 1; }
	fi
	# fsync off by default: a throwaway cluster; durability is not under test, speed is welcome.
	fsync=${PG_FSYNC:-off}
	case "$fsync" in on | off) ;; *) echo "pg.sh: PG_FSYNC must be on or off" >&2; exit 64 ;; esac
	as_pg "$bindir/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
		-o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=$fsync -c max_connections=200" start >/dev/null
	;;
stop)
	[ -f "$dir/data/postmaster.pid" ] && as_pg "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null || true
	;;
bindir)
	echo "$bindir"
	;;
*)
	echo "usage: pg.sh start DIR PORT | stop DIR" >&2
	exit 64
	;;
esac
