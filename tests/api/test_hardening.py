"""Request limits: header size and concurrent connections, enforced by libmicrohttpd with our settings."""
import socket
import time


def exchange(port, data, timeout=5):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(data)
    out = b""
    try:
        while True:
            d = s.recv(65536)
            if not d:
                break
            out += d
    except socket.timeout:
        pass
    s.close()
    return out


def test_headers_over_limit_are_refused(cmf_factory):
    c = cmf_factory(env={"CMF_SERVER_MAX_HEADER_BYTES": "4096"}).start()
    big = b"GET /cmf/api/v1/secrets HTTP/1.1\r\nHost: x\r\nX-Filler: " + b"a" * 8192 + b"\r\nConnection: close\r\n\r\n"
    resp = exchange(c.port, big)
    assert resp.split(b" ")[1] in (b"413", b"414", b"431"), resp[:100]
    # a normal request still works
    assert c.request("GET", "/cmf/api/v1/secrets").status == 200


def test_connection_cap(cmf_factory):
    c = cmf_factory(env={"CMF_SERVER_MAX_CONNECTIONS": "2", "CMF_SERVER_THREADS": "1"}).start()
    held = [socket.create_connection(("127.0.0.1", c.port)) for _ in range(2)]
    time.sleep(0.3)
    # a third connection is accepted by the kernel, then closed by the server without an answer
    third = exchange(c.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", timeout=3)
    assert third == b"", third[:100]
    for s in held:
        s.close()
    time.sleep(0.3)
    assert c.request("GET", "/healthz").status == 200
