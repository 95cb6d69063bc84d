#!/bin/sh
# The Debian base images the Dockerfile names (debian:bookworm, debian:bookworm-slim), made from Debian's
# packages with mmdebstrap when missing, in the project's own store (tests/image/podman.sh), never in the
# machine's: where a registry is reachable, `docker build` uses the real images.
#
# One minbase rootfs, tagged under both names, laid out as the official images are (debuerreotype): merged
# /usr, no documentation, manual pages or translations installed (dpkg path-exclude, kept for later
# `apt-get install`s too), and apt set to delete downloaded packages and its caches after each install
# (the official images' /etc/apt/apt.conf.d/docker-clean). The build stage thus also lacks
# /usr/share/doc, which compiling does not need. Takes about 40 s, once: the images stay in .cache/podman.
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PODMAN="sh $ROOT/tests/image/podman.sh"
MIRROR=${CMF_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY=${CMF_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
die() {
	echo "tests/image/base.sh: $*" >&2
	exit 1
}

tags=$(sed -n 's/^FROM[[:space:]]\{1,\}\([^[:space:]]*\).*/\1/p' "$ROOT/Dockerfile" | sort -u)
[ -n "$tags" ] || die "no FROM line in the Dockerfile"
missing=""
for t in $tags; do
	case "$t" in
	debian:bookworm | debian:bookworm-slim) ;;
	*) die "the Dockerfile names $t; only debian:bookworm and debian:bookworm-slim can be made here" ;;
	esac
	$PODMAN image exists "docker.io/library/$t" || missing="$missing $t"
done
[ -z "$missing" ] && exit 0

command -v mmdebstrap >/dev/null 2>&1 || die "mmdebstrap is missing (apt-get install mmdebstrap, or run tests/deps.sh)"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/cmf-base.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
trap 'exit 130' INT TERM
CLEAN='rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true'
echo "tests/image/base.sh: making$missing from Debian's packages (mmdebstrap, $MIRROR)" >&2
# shellcheck disable=SC2016 # $1 is the hook's argument (the rootfs), expanded by mmdebstrap's shell
if ! mmdebstrap --variant=minbase --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
	--dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
	--dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
	--dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/groff/*' \
	--dpkgopt='path-exclude=/usr/share/lintian/*' --dpkgopt='path-exclude=/usr/share/linda/*' \
	--customize-hook="printf '%s\n' 'DPkg::Post-Invoke { \"$CLEAN\"; };' 'APT::Update::Post-Invoke { \"$CLEAN\"; };' \
'Dir::Cache::pkgcache \"\";' 'Dir::Cache::srcpkgcache \"\";' > \"\$1/etc/apt/apt.conf.d/docker-clean\"" \
	--customize-hook="printf '%s\n' 'Acquire::Languages \"none\";' > \"\$1/etc/apt/apt.conf.d/docker-no-languages\"" \
	--customize-hook='rm -f "$1"/var/cache/apt/*.bin' \
	bookworm "$TMP/rootfs.tar" "deb $MIRROR bookworm main" "deb $MIRROR bookworm-updates main" \
	"deb $SECURITY bookworm-security main" >"$TMP/mmdebstrap.log" 2>&1; then
	tail -n 20 "$TMP/mmdebstrap.log" >&2
	die "mmdebstrap failed (is $MIRROR reachable?)"
fi
first=""
for t in $missing; do
	if [ -z "$first" ]; then
		$PODMAN import --quiet --change 'CMD ["bash"]' \
			--change 'LABEL org.opencontainers.image.description="Debian bookworm minbase made by tests/image/base.sh (mmdebstrap)"' \
			"$TMP/rootfs.tar" "docker.io/library/$t" >/dev/null
		first="docker.io/library/$t"
	else
		$PODMAN tag "$first" "docker.io/library/$t"
	fi
	echo "tests/image/base.sh: docker.io/library/$t made in .cache/podman" >&2
done
