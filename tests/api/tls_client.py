#!/usr/bin/python3
"""TLS test client for tests/api/tls_test.cc (Python's ssl module, an independent TLS stack).

Usage: tls_client.py PORT CA_FILE [--cert CERT --key KEY] [--tls13] [--ciphers LIST] [--requests N]
       [--body-size N]
Sends N keep-alive POST requests and prints, one per line: "version cipher", then "status body-length"
per response. Exit status: 0 success, 2 TLS failure, 3 other failure.
"""
import argparse
import socket
import ssl
import sys


def read_response(f):
    status = f.readline()
    if not status:
        raise ConnectionError("connection closed")
    code = int(status.split()[1])
    length = 0
    while True:
        line = f.readline().strip()
        if not line:
            break
        name, _, value = line.decode().partition(":")
        if name.lower() == "content-length":
            length = int(value)
    return code, f.read(length)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("port", type=int)
    p.add_argument("ca")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--tls13", action="store_true")
    p.add_argument("--ciphers")
    p.add_argument("--requests", type=int, default=1)
    p.add_argument("--body-size", type=int, default=5)
    a = p.parse_args()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(a.ca)
    if a.cert:
        ctx.load_cert_chain(a.cert, a.key)
    if a.tls13:
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    if a.ciphers:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers(a.ciphers)
    try:
        with socket.create_connection(("127.0.0.1", a.port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                print(s.version(), s.cipher()[0])
                f = s.makefile("rb")
                body = b"x" * a.body_size
                for _ in range(a.requests):
                    s.sendall(b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n"
                              % len(body) + body)
                    code, payload = read_response(f)
                    print(code, len(payload))
    except ssl.SSLError as e:
        print("ssl-error", e)
        return 2
    except (OSError, ConnectionError, ValueError) as e:
        print("error", e)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
