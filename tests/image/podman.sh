#!/bin/sh
# podman with the project's own image store: `tests/image/podman.sh ARGS...` runs `podman ARGS...`.
#
# - The store is .cache/podman under the repository (git-ignored), so the Debian base images that
#   tests/image/base.sh makes from Debian's packages never shadow real ones in the machine's own store.
# - runc with cgroupfs: the default crun refuses hybrid cgroup hierarchies (the development machines').
# - The run root (locks, container state) is one directory per store under $TMPDIR: podman refuses a
#   store whose run root changed since the last call.
# - Rootful podman gives containers RLIMIT_NOFILE 1048576 unless told otherwise, which fails (EPERM)
#   where the caller's hard limit is lower and CAP_SYS_RESOURCE is missing (inside a container): the
#   containers get the caller's hard limit (at most 1048576), and RLIMIT_NPROC 4096 (cmf runs a few
#   dozen threads; conmon's own limit can be lower than the caller's, so not the caller's).
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
command -v podman >/dev/null 2>&1 ||
	{ echo "tests/image/podman.sh: podman is missing (apt-get install podman runc, or run tests/deps.sh)" >&2; exit 1; }
mkdir -p "$ROOT/.cache/podman"
STORE=$(cd "$ROOT/.cache/podman" && pwd -P)
RUN="${TMPDIR:-/tmp}/cmf-podman-$(id -u)-$(printf '%s' "$STORE" | cksum | cut -d' ' -f1)"
mkdir -p "$RUN"
# shellcheck disable=SC3045 # dash, bash and busybox sh all know ulimit -H
nofile=$(ulimit -Hn)
case "$nofile" in unlimited) nofile=1048576 ;; esac
[ "$nofile" -gt 1048576 ] && nofile=1048576
# Written at every call (cheap): CONTAINERS_CONF replaces the machine's containers.conf.
cat >"$RUN/containers.conf.$$" <<CONF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=4096:4096"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
mv -f "$RUN/containers.conf.$$" "$RUN/containers.conf"
export CONTAINERS_CONF="$RUN/containers.conf"
# One store per storage driver (podman cannot switch a store's driver): overlay by default, vfs where
# the kernel's overlayfs cannot be used (CMF_PODMAN_STORAGE_DRIVER=vfs: slower, every layer a full copy).
DRIVER=${CMF_PODMAN_STORAGE_DRIVER:-overlay}
exec podman --root "$STORE/$DRIVER" --runroot "$RUN/$DRIVER" --tmpdir "$RUN/libpod-$DRIVER" \
	--storage-driver "$DRIVER" "$@"
