#!/usr/bin/python3
"""kmsd's HTTP server seen through raw sockets (api/http/server.h): the faults the server answers
itself speak the format of the door the request was for (the Vault door's {"errors":[...]} under
/v1/, the AWS door's JSON elsewhere: a body over max_body_bytes, a malformed header, no Host, a
Transfer-Encoding other than chunked), HEAD gets no body on either door nor on the health pages,
and Expect: 100-continue is answered before the client sends the body."""
import base64
import json
import socket
import ssl
import urllib.parse
import uuid

from e2e_lib import CA_BUNDLE, ENDPOINT, CheckFailed, canary, check, ok, record_error_body, \
    record_secret, run
from vault_lib import VAULT_TOKEN, Vault, ok_200_or_204

U = urllib.parse.urlsplit(ENDPOINT)
HOST = f"{U.hostname}:{U.port}".encode()
MAX_BODY = 1048576  # kmsd's default server.max_body_bytes


class Conn:
    """One connection, raw bytes out, responses parsed by hand (no client library adds headers or
    answers 100 for us)."""

    def __init__(self):
        s = socket.create_connection((U.hostname, U.port), timeout=30)
        if U.scheme == "https":
            s = ssl.create_default_context(cafile=CA_BUNDLE).wrap_socket(
                s, server_hostname=U.hostname)
        self.s = s
        self.buf = b""

    def send(self, data):
        self.s.sendall(data)

    def _fill(self):
        try:
            chunk = self.s.recv(65536)
        except (ConnectionResetError, ssl.SSLError):
            return False
        self.buf += chunk
        return bool(chunk)

    def head(self):
        """The status line and headers of the next response, nothing after them."""
        while b"\r\n\r\n" not in self.buf:
            if not self._fill():
                raise CheckFailed(f"connection closed before a response: {self.buf[:200]!r}")
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
        return int(lines[0].split(" ")[1]), headers

    def response(self, what):
        status, headers = self.head()
        length = int(headers.get("content-length", "0"))
        while len(self.buf) < length:
            if not self._fill():
                raise CheckFailed(f"{what}: body cut short")
        body, self.buf = self.buf[:length], self.buf[length:]
        if status >= 400:
            record_error_body(f"http_framing {what} HTTP {status}", body)
        return status, headers, body

    def closed(self):
        """True when the server closed the connection and sent nothing more."""
        return not self._fill() and not self.buf


def expect_fault(request, status, body, what):
    c = Conn()
    c.send(request)
    got_status, headers, got = c.response(what)
    check(got_status == status, f"{what}: HTTP {got_status}, expected {status}: {got!r}")
    check(headers.get("connection") == "close", f"{what}: no Connection: close")
    check(body(json.loads(got)), f"{what}: body {got!r}")
    check(c.closed(), f"{what}: connection left open")
    ok(f"{what} -> {status} {got.decode()}")


def vault_errors(*errors):
    return lambda b: b == {"errors": list(errors)}


def aws_error(type_, message=None):
    return lambda b: b.get("__type") == type_ and (message is None or b.get("message") == message)


def faults_by_door():
    big = f"Content-Length: {2 * MAX_BODY}\r\n".encode()
    expect_fault(b"PUT /v1/transit/encrypt/k HTTP/1.1\r\nHost: " + HOST + b"\r\n" + big + b"\r\n",
                 413, vault_errors("http: request body too large"), "Vault: body over the limit")
    expect_fault(b"POST / HTTP/1.1\r\nHost: " + HOST + b"\r\n" + big + b"\r\n", 413,
                 aws_error("RequestEntityTooLargeException",
                           f"Request body exceeds {MAX_BODY} bytes."), "AWS: body over the limit")
    expect_fault(b"GET /v1/sys/health HTTP/1.1\r\nHost: " + HOST + b"\r\nBad Header\r\n\r\n", 400,
                 vault_errors("malformed HTTP request"), "Vault: malformed header")
    expect_fault(b"GET /v1/sys/health HTTP/1.1\r\n\r\n", 400,
                 vault_errors("malformed HTTP request"), "Vault: no Host")
    expect_fault(b"POST / HTTP/1.1\r\n\r\n", 400,
                 aws_error("SerializationException", "Exactly one Host header is required."),
                 "AWS: no Host")
    smuggled = b"GET /v1/sys/seal-status HTTP/1.1\r\nHost: " + HOST + b"\r\n\r\n"
    expect_fault(b"PUT /v1/transit/encrypt/k HTTP/1.1\r\nHost: " + HOST +
                 b"\r\nTransfer-Encoding: gzip\r\n\r\n" + smuggled, 400,
                 vault_errors("malformed HTTP request"), "Vault: Transfer-Encoding: gzip")
    expect_fault(b"POST / HTTP/1.1\r\nHost: " + HOST +
                 b"\r\nTransfer-Encoding: gzip\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 400,
                 aws_error("SerializationException",
                           "Content-Length and Transfer-Encoding together."),
                 "AWS: Content-Length with Transfer-Encoding")


def head_has_no_body():
    c = Conn()
    c.send(b"".join(b"HEAD " + p + b" HTTP/1.1\r\nHost: " + HOST + b"\r\n\r\n"
                    for p in (b"/v1/sys/health", b"/livez", b"/health", b"/"))
           + b"GET /livez HTTP/1.1\r\nHost: " + HOST + b"\r\n\r\n")
    for path, status in (("/v1/sys/health", 200), ("/livez", 200), ("/health", 200), ("/", None)):
        got, headers = c.head()
        check(status is None or got == status, f"HEAD {path}: HTTP {got}")
        ok(f"HEAD {path} -> {got}, Content-Length {headers.get('content-length', 'absent')}, "
           f"no body")
    # A body left behind by any of them would be read here as the next status line.
    status, _, body = c.response("GET /livez after the HEADs")
    check(status == 200 and body == b"ok\n", f"GET /livez after the HEADs: {status} {body!r}")
    ok("GET /livez after four HEADs on the same connection -> 200 ok")


def expect_continue():
    v = Vault()
    key = f"framing-{uuid.uuid4().hex[:8]}"
    ok_200_or_204(v.write(f"transit/keys/{key}", {"type": "aes256-gcm96"}), "create key")
    record_secret("http_framing X-Vault-Token", VAULT_TOKEN)
    body = json.dumps({"plaintext": base64.b64encode(canary("http-framing")).decode()}).encode()
    c = Conn()
    c.send(b"PUT /v1/transit/encrypt/" + key.encode() + b" HTTP/1.1\r\nHost: " + HOST +
           b"\r\nX-Vault-Token: " + VAULT_TOKEN.encode() + b"\r\nExpect: 100-continue\r\n"
           b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n")
    status, _ = c.head()  # nothing of the body has been sent: only the server can move on
    check(status == 100, f"Expect: 100-continue: first answer HTTP {status}")
    ok("Expect: 100-continue -> 100 Continue before the body")
    c.send(body)
    status, _, answer = c.response("encrypt after 100")
    check(status == 200, f"encrypt after 100: HTTP {status} {answer!r}")
    check(json.loads(answer)["data"]["ciphertext"].startswith("vault:v1:"), f"{answer!r}")
    ok("the body sent after 100 is encrypted -> 200")


def main():
    faults_by_door()
    head_has_no_body()
    expect_continue()


if __name__ == "__main__":
    run(main)
