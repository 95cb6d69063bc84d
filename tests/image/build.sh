#!/bin/sh
# make image: build the container image IMAGE (cmf:<the chart's appVersion>) from the unchanged Dockerfile
# with podman, in the project's own store (tests/image/podman.sh), on Debian base images made from
# Debian's packages when missing (tests/image/base.sh). Prints the image's size and the time taken.
# A container runtime that cannot start a container fails here, in one line saying why.
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
IMAGE=$1
PODMAN="sh $ROOT/tests/image/podman.sh"
LOG="$ROOT/build/image-build.log"
start=$(date +%s)
mkdir -p "$ROOT/build"

if ! $PODMAN info >"$LOG" 2>&1; then
	echo "make image: podman does not work here: $(grep . "$LOG" | tail -n 1)" >&2
	exit 1
fi
sh "$ROOT/tests/image/base.sh"

# The smallest container there is, on the base just made: if this fails, no build or test can run.
if ! $PODMAN run --rm --network=host --pull=never docker.io/library/debian:bookworm-slim true >"$LOG" 2>&1; then
	echo "make image: the container runtime cannot start a container (podman, runc, storage driver ${CMF_PODMAN_STORAGE_DRIVER:-overlay}): $(grep . "$LOG" | tail -n 1) (where overlayfs cannot be used, e.g. inside a container, set CMF_PODMAN_STORAGE_DRIVER=vfs)" >&2
	exit 1
fi

# --pull=never: the bases must be the ones in this store. --network=host: RUN apt-get reaches Debian.
# The build stage is built and tagged first (cmf-build:TAG), then the image reuses it from the cache: the
# prune below then removes earlier builds' untagged images but keeps this build's layers, the next cache.
build() {
	if ! $PODMAN build --pull=never --network=host "$@" -f "$ROOT/Dockerfile" "$ROOT" >>"$LOG" 2>&1; then
		tail -n 30 "$LOG" >&2
		echo "make image: podman build failed (the whole log: build/image-build.log)" >&2
		exit 1
	fi
}
: >"$LOG"
build --target build -t "cmf-build:${IMAGE#*:}"
build -t "$IMAGE"
$PODMAN image prune -f >/dev/null
size=$($PODMAN image inspect --format '{{.Size}}' "$IMAGE")
echo "make image: $IMAGE built in $(($(date +%s) - start)) s; $((size / 1000000)) MB ($size bytes)"
