#!/bin/sh
# Install Confluent's JavaScript Schema Registry client (@confluentinc/schemaregistry, with CSFLE
# rule executors and the local-kms driver) for tests/csfle_e2e/roundtrip.mjs.
#
# The exact versions come from tests/csfle_e2e/package-lock.json; `npm ci` checks every tarball
# against the lockfile's integrity hashes. Install lifecycle scripts are not run (--ignore-scripts).
# The install goes to .cache/csfle-npm/ under the repository (git-ignored), built in a temporary
# directory first and swapped in only when complete. A later run with the same package.json and
# lockfile (sha256 recorded in .cache/csfle-npm/.lock-sha256) does nothing.
#
# stdout: last line is the absolute path of the directory holding node_modules. Use it as
#   CSFLE_NPM_DIR=<that path> node tests/csfle_e2e/roundtrip.mjs < input.json
# Progress and errors go to stderr. Needs node (>= 18) and npm.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SRC="$ROOT/tests/csfle_e2e"
DEST="$ROOT/.cache/csfle-npm"
STAMP="$DEST/.lock-sha256"
PKG_DIR="node_modules/@confluentinc/schemaregistry"

die() {
	echo "tests/csfle-npm.sh: $*" >&2
	exit 1
}

[ -f "$SRC/package.json" ] || die "missing $SRC/package.json"
[ -f "$SRC/package-lock.json" ] || die "missing $SRC/package-lock.json"
command -v node >/dev/null 2>&1 ||
	die "node is missing: install Node.js (Debian: apt-get install nodejs npm), or run tests/deps.sh"
command -v npm >/dev/null 2>&1 ||
	die "npm is missing: install Debian's nodejs and npm (apt-get install nodejs npm), or run tests/deps.sh"

if command -v sha256sum >/dev/null 2>&1; then
	want=$(cat "$SRC/package.json" "$SRC/package-lock.json" | sha256sum | cut -d' ' -f1)
else
	want=$(cat "$SRC/package.json" "$SRC/package-lock.json" |
		node -e 'const h=require("crypto").createHash("sha256");process.stdin.on("data",d=>h.update(d)).on("end",()=>console.log(h.digest("hex")))')
fi
[ -n "$want" ] || die "could not checksum the lockfile"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -f "$DEST/$PKG_DIR/package.json" ]; then
	echo "$DEST"
	exit 0
fi

mkdir -p "$ROOT/.cache"
TMP="$DEST.tmp.$$"
OLD="$DEST.old.$$"
trap 'rm -rf "$TMP" "$OLD"' EXIT
trap 'exit 130' INT TERM
rm -rf "$TMP"
mkdir -p "$TMP"
cp "$SRC/package.json" "$SRC/package-lock.json" "$TMP/"

echo "tests/csfle-npm.sh: npm ci into $DEST" >&2
# npm's own output goes to stderr so that stdout carries only the path.
(cd "$TMP" && npm ci --no-audit --no-fund --ignore-scripts --omit=dev --loglevel=error 1>&2) ||
	die "npm ci failed (see npm's messages above; is the npm registry reachable? does the lockfile match package.json?)"
[ -f "$TMP/$PKG_DIR/package.json" ] || die "npm ci did not install @confluentinc/schemaregistry"
ver=$(node -e 'console.log(require(process.argv[1]).version)' "$TMP/$PKG_DIR/package.json") ||
	die "cannot read the installed @confluentinc/schemaregistry version"
echo "$want" >"$TMP/.lock-sha256"

# Swap the finished install in.
if [ -e "$DEST" ]; then
	mv "$DEST" "$OLD" || die "cannot move the old $DEST aside"
fi
mv "$TMP" "$DEST" || die "cannot move $TMP to $DEST"
echo "tests/csfle-npm.sh: installed @confluentinc/schemaregistry $ver" >&2
echo "$DEST"
