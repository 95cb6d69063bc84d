"""make bench-rotate: N secrets of ~1 KiB sealed under data key term 1, written straight into PostgreSQL
(COPY) instead of through N API calls: sealed here with Python's cryptography package exactly as cmf
seals (ciphertext version 2, identity secret/<name>/<uid>/<version>), so cmf opens every one of them.

usage: fill.py PSQL_COMMAND_PREFIX... :: MASTER_KEY_FILE COUNT
  (the psql command up to its -c, e.g. runuser -u postgres -- psql -h DIR -p PORT -d bench -XAtq)
"""
import json
import os
import subprocess
import sys
import tempfile
import uuid

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

if len(sys.argv) < 5 or sys.argv[-3] != "::":
    sys.exit(__doc__)
psql, keyfile, count = sys.argv[1:-3], sys.argv[-2], sys.argv[-1]
count = int(count)
master = open(keyfile, "rb").read()


def q(sql, stdin=None):
    return subprocess.run(psql + ["-v", "ON_ERROR_STOP=1", "-c", sql], input=stdin, capture_output=True,
                          check=True, text=True).stdout.strip()


term, wrapped = q("SELECT term, encode(wrapped, 'hex') FROM cmf_deks ORDER BY term DESC LIMIT 1").split("|")
w = bytes.fromhex(wrapped)
dek = AESGCM(master).decrypt(w[5:17], w[17:], w[:17] + ("cmf/keyring/dek/%s" % term).encode())
gcm = AESGCM(dek)
with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False, dir="/tmp") as f:
    path = f.name
    for i in range(count):
        name, uid = "rotate-%06d" % i, str(uuid.uuid4())
        pt = json.dumps({"password": os.urandom(500).hex()}, separators=(",", ":"), sort_keys=True).encode()
        header = bytes([2]) + int(term).to_bytes(4, "big") + os.urandom(12)
        ct = header + gcm.encrypt(header[5:], pt, header + ("secret/%s/%s/1" % (name, uid)).encode())
        f.write("%s,%s,\\x%s\n" % (name, uid, ct.hex()))
os.chmod(path, 0o644)
# \copy is a psql meta-command: run it on stdin with the inserts in one session.
script = ("CREATE TEMP TABLE fill (name text, uid uuid, data bytea);\n"
          "\\copy fill FROM '%s' WITH (FORMAT csv)\n"
          "INSERT INTO cmf_secrets (name, uid, version, sealed, data, created_at, updated_at) "
          "SELECT name, uid, 1, true, data, now(), now() FROM fill;\n"
          "INSERT INTO cmf_secret_versions (name, version, uid, sealed, data, created_at, created_by) "
          "SELECT name, 1, uid, true, data, now(), 'bench' FROM fill;\n"
          "UPDATE cmf_deks SET encryptions = encryptions + %d WHERE term = %s;\n" % (path, count, term))
subprocess.run(psql + ["-v", "ON_ERROR_STOP=1"], input=script, text=True, check=True, capture_output=True)
os.unlink(path)
print("filled %d secrets (%d ciphertexts) under data key term %s" % (count, 2 * count, term))
