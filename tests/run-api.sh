#!/bin/sh
# Black-box tests: pytest (Debian's) drives build/cmf over HTTP against a throwaway PostgreSQL, and the
# chart through the real helm binary (tests/helm.sh installs it under .cache/).
set -eu
cd "$(dirname "$0")/.."
exec /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/api tests/chart "$@"
