"""The HTTP front door: a request is framed, routed, authenticated and authorized from its headers alone,
so a refusal never costs a body read; the bearer token does not outlive its request in libmicrohttpd's
connection memory; header values holding NUL, any Transfer-Encoding and repeated Content-Length are
refused with CMF's JSON error and the connection closed."""
import http.client
import json
import socket
import time

from conftest import secret_body
from test_auth import create_token
from test_keywatch import scan_memory

SECRETS = "/cmf/api/v1/secrets"
MIB = 1 << 20


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def connect(c, timeout=5):
    s = socket.create_connection(("127.0.0.1", c.port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_reply(s):
    """One response from socket `s`: (status, {lower-case header: value}, body); body read by Content-Length."""
    data = b""
    while b"\r\n\r\n" not in data:
        d = s.recv(65536)
        if not d:
            raise AssertionError("connection closed before a full response: %r" % data)
        data += d
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, v = line.split(":", 1)
        headers[k.strip().lower()] = v.strip()
    n = int(headers.get("content-length", "0"))
    while len(rest) < n:
        d = s.recv(65536)
        if not d:
            break
        rest += d
    return status, headers, rest[:n]


def closed_by_server(s, timeout=3):
    """True when the server closes `s` (EOF or reset) within `timeout` seconds."""
    s.settimeout(timeout)
    try:
        while True:
            if not s.recv(65536):
                return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def raw(c, data):
    """Send `data` on a new connection; (status, headers, body, closed-by-server)."""
    s = connect(c)
    try:
        s.sendall(data)
        status, headers, body = read_reply(s)
        return status, headers, body, closed_by_server(s)
    finally:
        s.close()


def cmf_error(body):
    j = json.loads(body)
    assert list(j) == ["errors"] and len(j["errors"]) == 1, j
    return j["errors"][0]["message"]


def post_head(length, token=None, extra=b""):
    h = (b"POST " + SECRETS.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
         b"Content-Length: %d\r\n" % length)
    if token is not None:
        h += b"Authorization: Bearer " + token.encode() + b"\r\n"
    return h + extra + b"\r\n"


def test_unauthenticated_bodies_are_never_read(cmf_factory):
    """40 clients announce a 1 MiB body without a token: each gets 401 before sending a byte of it, and
    while all 40 push and hold their bodies the server's memory stays where it was."""
    c = cmf_factory(env={"CMF_SERVER_CONNECTION_TIMEOUT_SECONDS": "30"}).start()
    for _ in range(5):  # warm up: worker threads, pools, the 401 path itself
        assert c.request("POST", SECRETS, {"x": 1}, token=None).status == 401
    time.sleep(0.3)
    baseline = rss_kib(c.proc.pid)
    socks = []
    try:
        for _ in range(40):
            s = connect(c)
            s.sendall(post_head(MIB))
            # the answer comes from the headers alone: not one body byte has been sent yet
            status, headers, body = read_reply(s)
            assert status == 401, body
            assert headers.get("connection", "").lower() == "close", headers
            assert "www-authenticate" in headers
            socks.append(s)
        # now push (up to all but the last byte of) each body and hold the connection open
        pushed = 0
        for s in socks:
            s.settimeout(0.05)
            chunk = b"a" * 65536
            try:
                for _ in range(MIB // len(chunk) - 1):
                    s.send(chunk)
                    pushed += len(chunk)
            except OSError:
                pass  # the server closed the connection or reads nothing: as it should
        time.sleep(0.5)
        grown = rss_kib(c.proc.pid) - baseline
        print("RSS baseline %d KiB, +%d KiB with 40 refused uploads open (%d bytes pushed)" % (baseline, grown, pushed))
        assert grown < 4 * 1024, "RSS grew by %d KiB with 40 refused 1 MiB uploads open (%d bytes pushed)" % (
            grown, pushed)
    finally:
        for s in socks:
            s.close()
    assert c.request("GET", SECRETS).status == 200


def test_expect_100_continue_only_once_authenticated(cmf):
    body = json.dumps(secret_body("front-door", {"k": "v"})).encode()
    expect = b"Expect: 100-continue\r\n"
    for token, length in ((None, len(body)), ("cmf_0123456789abcdef_" + "A" * 43, len(body)), (None, 0)):
        s = connect(cmf)
        try:
            s.sendall(post_head(length, token, expect))
            status, headers, reply = read_reply(s)  # a "100 Continue" here would fail the check below
            assert status == 401, reply
            assert "token" in cmf_error(reply) or "authoriz" in cmf_error(reply).lower(), reply
            assert closed_by_server(s)
        finally:
            s.close()
    s = connect(cmf)
    try:
        s.sendall(post_head(len(body), cmf.admin_token, expect))
        status, _, _ = read_reply(s)
        assert status == 100
        s.sendall(body)
        status, _, reply = read_reply(s)
        assert status == 200, reply
    finally:
        s.close()
    assert cmf.get_secret("front-door").status == 200


def test_refusals_without_a_body_keep_the_connection(cmf):
    """A refusal is answered from the headers, but a keep-alive client with no body keeps its connection."""
    conn = http.client.HTTPConnection("127.0.0.1", cmf.port, timeout=5)
    try:
        for method, path, token, want in (
                ("GET", SECRETS, None, 401),
                ("GET", "/cmf/api/v1/nothing-here", cmf.admin_token, 404),
                ("DELETE", SECRETS, cmf.admin_token, 405),
                ("POST", SECRETS, None, 401),  # Content-Length: 0
                ("GET", SECRETS, cmf.admin_token, 200)):
            h = {"Authorization": "Bearer " + token} if token else {}
            conn.request(method, path, body=b"" if method == "POST" else None, headers=h)
            r = conn.getresponse()
            r.read()
            assert r.status == want, (method, path, r.status)
            assert (r.getheader("Connection") or "").lower() != "close", (method, path)
        sock = conn.sock
        conn.request("GET", "/healthz")
        assert conn.getresponse().status == 200
        assert conn.sock is sock  # still the first connection
    finally:
        conn.close()


def test_refusals_with_a_body_are_answered_before_it(cmf):
    """404 and 403 come from the headers too: no body byte is needed, and the connection closes."""
    reader = create_token(cmf, "front-door-reader", "environment-reader", ["prod"])
    for head in (post_head(MIB, reader),
                 b"POST /cmf/api/v1/nothing-here HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n"
                 b"Authorization: Bearer " + cmf.admin_token.encode() + b"\r\n\r\n"):
        s = connect(cmf)
        try:
            s.sendall(head)
            status, headers, body = read_reply(s)
            assert status in (403, 404), body
            cmf_error(body)
            assert headers.get("connection", "").lower() == "close"
            assert closed_by_server(s)
        finally:
            s.close()


def test_bearer_token_not_left_in_connection_memory(cmf):
    """A connection that closes after its request (Connection: close) has its memory freed by
    libmicrohttpd without a reset: the Authorization values were there (admin and API tokens alike)."""
    api = create_token(cmf, "front-door-admin", "admin")
    close = {"Connection": "close"}
    for i in range(10):
        assert cmf.request("GET", SECRETS, headers=close).status == 200
        assert cmf.request("POST", SECRETS, secret_body("mem-front-%d" % i, {"k": "v"}), headers=close).status == 200
        assert cmf.request("GET", SECRETS, token=api, headers=close).status == 200
    conn = http.client.HTTPConnection("127.0.0.1", cmf.port, timeout=5)
    for _ in range(3):  # and a keep-alive connection left open after its last request
        conn.request("GET", SECRETS, headers={"Authorization": "Bearer " + cmf.admin_token})
        assert conn.getresponse().read()
    try:
        needles = [t.encode() for t in (cmf.admin_token, api)]
        # The wipe runs at each request's completion: poll, so a loaded machine is given its time.
        end = time.monotonic() + 5
        while scan_memory(cmf.proc.pid, needles) and time.monotonic() < end:
            time.sleep(0.2)
        assert scan_memory(cmf.proc.pid, needles) == set()
        # the scan finds what is there: the posted names are kept (the access log's and the cache's copies)
        assert scan_memory(cmf.proc.pid, [b"mem-front-9"]) == {b"mem-front-9"}
    finally:
        conn.close()


def test_nul_in_a_header_value_is_refused(cmf):
    token = cmf.admin_token.encode()
    get = b"GET " + SECRETS.encode() + b" HTTP/1.1\r\nHost: x\r\n"
    for headers in (b"Authorization: Bearer " + token + b"\x00anything\r\nX-After: 1\r\n",
                    b"Authorization: Bearer " + token + b"\x00anything\r\n",  # the last header
                    b"Authorization: Bearer " + token + b"\r\nX-Other: a\x00b\r\n",
                    b"Authorization: Bearer " + token + b"\x00\r\nX-After: 1\r\n"):
        status, headers_, body, closed = raw(cmf, get + headers + b"\r\n")
        assert status == 400, (headers, body)
        assert "NUL" in cmf_error(body)
        assert closed and headers_.get("connection", "").lower() == "close"
    # without the NUL the same request is served, with CR LF or bare LF line ends, on a kept connection
    for eol in (b"\r\n", b"\n"):
        req = (b"GET " + SECRETS.encode() + b" HTTP/1.1" + eol + b"Host: x" + eol + b"Authorization: Bearer " +
               token + eol + b"X-Empty:" + eol + b"X-After: 1" + eol + eol)
        status, _, body, closed = raw(cmf, req)
        assert status == 200, (eol, body)
        assert not closed


def test_transfer_encoding_and_content_length_framing(cmf):
    token = cmf.admin_token.encode()
    head = b"POST " + SECRETS.encode() + b" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token + b"\r\n"
    body = json.dumps(secret_body("framed", {"k": "v"})).encode()
    chunked = b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"
    cases = [
        (b"Transfer-Encoding: chunked\r\n\r\n" + chunked, 411),
        (b"Transfer-Encoding: chunked\r\nContent-Length: %d\r\n\r\n" % len(body) + chunked, 411),
        (b"Content-Length: %d\r\nTransfer-Encoding: identity\r\n\r\n" % len(body) + body, 411),
        (b"Content-Length: %d\r\nContent-Length: %d\r\n\r\n" % (len(body), len(body)) + body, 400),
        (b"Content-Length: %d\r\nContent-Length: 1\r\n\r\n" % len(body) + body, 400),
    ]
    for rest, want in cases:
        status, headers, reply, closed = raw(cmf, head + rest)
        assert status == want, (rest[:80], reply)
        cmf_error(reply)
        assert headers.get("content-type") == "application/json"
        assert headers.get("connection", "").lower() == "close"
        assert closed
    assert cmf.get_secret("framed").status == 404
    # a malformed Content-Length is refused by libmicrohttpd itself before any callback (its own body)
    status, _, _, closed = raw(cmf, head + b"Content-Length: 5x\r\n\r\nhello")
    assert status == 400 and closed
    # and a plain Content-Length body is served
    status, _, reply, _ = raw(cmf, head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
    assert status == 200, reply


def test_a_token_revoked_while_its_body_arrives_does_not_finish_the_write(cmf):
    """Authentication is decided before the body, and checked again once it is in: a token revoked (or
    expired) while a slow body arrives cannot finish its write (here: mint a new admin token)."""
    from test_auth import token_body
    value = create_token(cmf, "slow-writer", "admin")
    token_id = value.split("_")[1]
    body = json.dumps(token_body("minted-after-revocation", "admin")).encode()
    s = connect(cmf)
    try:
        s.sendall(b"POST /cmf/api/v1/tokens HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\nAuthorization: Bearer %s\r\n\r\n" % (len(body), value.encode()))
        s.sendall(body[:10])
        time.sleep(0.2)
        assert cmf.request("DELETE", "/cmf/api/v1/tokens/slow-writer").status == 204
        s.sendall(body[10:])
        status, _, reply = read_reply(s)
    finally:
        s.close()
    assert status == 401, (status, reply)
    assert cmf.request("GET", "/cmf/api/v1/tokens/minted-after-revocation").status == 404
    events = cmf.request("GET", "/cmf/api/v1/audit-events?principal=token:slow-writer/%s" % token_id).json()
    assert [(e["action"], e["outcome"], e["status"]) for e in events["items"]] == [("authenticate", "denied", 401)]
