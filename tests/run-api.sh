#!/bin/sh
# Black-box API tests: pytest (Debian's) drives build/cmf over HTTP against a throwaway PostgreSQL.
set -eu
cd "$(dirname "$0")/.."
exec /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/api "$@"
