#!/usr/bin/python3
"""TLS trust: `expect-ok` calls the HTTPS daemon trusting AWS_CA_BUNDLE (the test CA); `expect-refused
CA` trusts only another CA and must fail certificate verification before any request is sent."""
import sys

from botocore.exceptions import SSLError

from e2e_lib import check, client, ok, run


def main():
    if sys.argv[1] == "expect-ok":
        check(len(client().generate_random(NumberOfBytes=16)["Plaintext"]) == 16, "HTTPS call")
        ok("HTTPS with the test CA")
        return
    try:
        client(verify=sys.argv[2]).generate_random(NumberOfBytes=16)
    except SSLError as e:
        check("CERTIFICATE_VERIFY_FAILED" in str(e), f"unexpected TLS error: {e}")
        ok("a client trusting another CA is refused")
        return
    check(False, "a client trusting another CA completed a request")


if __name__ == "__main__":
    run(main)
