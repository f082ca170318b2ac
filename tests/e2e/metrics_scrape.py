#!/usr/bin/python3
"""GET /metrics of a running kmsd: the page parses as Prometheus text format 0.0.4 (a strict
line-by-line check written here, and the Prometheus project's own parser from
python3-prometheus-client), and it counts exactly the requests this scenario makes through both
doors (AWS Encrypt/Decrypt by outcome, Vault transit encrypt, a 403), the HSM calls beneath them
(the health round trips of /health and /readyz among them), and carries none of the plaintexts it
was sent."""
import base64
import http.client
import json
import math
import re
import ssl
import urllib.parse
import uuid

from botocore.exceptions import ClientError
from prometheus_client.parser import text_string_to_metric_families

from e2e_lib import CA_BUNDLE, ENDPOINT, check, client, ok, record_error_body, run
from vault_lib import Vault, expect_data, expect_error

CANARY = "metrics-canary-" + uuid.uuid4().hex
_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
_SAMPLE = re.compile(rf"^({_NAME})(?:\{{((?:{_LABEL})(?:,{_LABEL})*)?\}})? (\S+)$")
_LABEL_PAIR = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')


def get(path, method="GET"):
    u = urllib.parse.urlsplit(ENDPOINT)
    if u.scheme == "https":
        conn = http.client.HTTPSConnection(u.hostname, u.port, timeout=30,
                                           context=ssl.create_default_context(cafile=CA_BUNDLE))
    else:
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    conn.request(method, path)
    r = conn.getresponse()
    body = r.read().decode("utf-8")
    headers = {k.lower(): v for k, v in r.getheaders()}
    conn.close()
    if r.status >= 400:
        record_error_body(f"{method} {path} HTTP {r.status}", body)
    return r.status, headers, body


def parse_strict(text):
    """Every line is a HELP, a TYPE or a sample of the family whose TYPE came last; returns
    {(name, frozenset(labels.items())): value} and {family: type}."""
    check(text.endswith("\n"), "the page ends with a line feed")
    types, samples, current = {}, {}, None
    for n, line in enumerate(text[:-1].split("\n"), 1):
        where = f"line {n}: {line!r}"
        check(line != "", f"{where}: no empty lines")
        if line.startswith("# HELP "):
            name = line.split(" ", 3)[2]
            check(re.fullmatch(_NAME, name), f"{where}: HELP names a valid metric")
            continue
        if line.startswith("# TYPE "):
            parts = line.split(" ")
            check(len(parts) == 4 and re.fullmatch(_NAME, parts[2]), where)
            check(parts[3] in ("counter", "gauge", "histogram"), f"{where}: known type")
            check(parts[2] not in types, f"{where}: one TYPE per family")
            current = parts[2]
            types[current] = parts[3]
            continue
        check(not line.startswith("#"), f"{where}: only HELP and TYPE comments")
        m = _SAMPLE.match(line)
        check(m, f"{where}: a sample line")
        name, labels, value = m.group(1), m.group(2) or "", m.group(3)
        family = name
        if types.get(current) == "histogram":
            family = re.sub(r"_(bucket|sum|count)$", "", name)
        check(family == current, f"{where}: the sample belongs to the family typed last")
        v = float(value)  # raises on anything that is not a Go-parseable float
        check(not math.isnan(v), f"{where}: a number")
        pairs = tuple(_LABEL_PAIR.findall(labels))
        check(len({k for k, _ in pairs}) == len(pairs), f"{where}: no repeated label")
        key = (name, frozenset(pairs))
        check(key not in samples, f"{where}: no repeated series")
        samples[key] = v
    # Histograms: buckets cumulative per series, ending in +Inf equal to _count.
    for family, kind in types.items():
        if kind != "histogram":
            continue
        series = {}
        for (name, labels), v in samples.items():
            if name == family + "_bucket":
                rest = frozenset((k, x) for k, x in labels if k != "le")
                le = dict(labels)["le"]
                series.setdefault(rest, []).append((math.inf if le == "+Inf" else float(le), v))
        for rest, buckets in series.items():
            buckets.sort()
            counts = [c for _, c in buckets]
            check(counts == sorted(counts), f"{family}{dict(rest)}: buckets cumulative")
            check(buckets[-1][0] == math.inf, f"{family}{dict(rest)}: ends in +Inf")
            check(samples[(family + "_count", rest)] == counts[-1], f"{family}: +Inf == _count")
    return samples, types


def scrape():
    status, headers, body = get("/metrics")
    check(status == 200, f"GET /metrics -> {status}")
    check(headers.get("content-type") == "text/plain; version=0.0.4; charset=utf-8",
          f"content type {headers.get('content-type')}")
    samples, types = parse_strict(body)
    # The Prometheus client's parser must read the same page and agree on every family's type.
    parsed = {f.name: f.type for f in text_string_to_metric_families(body)}
    for family, kind in types.items():
        name = family[:-len("_total")] if kind == "counter" and family.endswith("_total") else family
        check(parsed.get(name) == kind, f"prometheus_client reads {family} as {parsed.get(name)}")
    return samples, types, body


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


def main():
    before, types, _ = scrape()
    for family in ("kms_requests_total", "kms_request_duration_seconds", "kms_hsm_calls_total",
                   "kms_hsm_call_duration_seconds", "kms_hsm_calls_in_flight", "kms_hsm_sessions",
                   "kms_key_cache_hits_total", "kms_key_cache_misses_total",
                   "kms_http_connections"):
        check(family in types, f"{family} is on the page")
    ok(f"GET /metrics parses strictly and with prometheus_client ({len(before)} series)")

    kms = client()
    key = kms.create_key(Description="metrics scenario")["KeyMetadata"]["KeyId"]
    blobs = [kms.encrypt(KeyId=key, Plaintext=CANARY.encode())["CiphertextBlob"] for _ in range(5)]
    for blob in blobs[:3]:
        kms.decrypt(CiphertextBlob=blob)
    for _ in range(2):
        try:
            kms.decrypt(CiphertextBlob=blobs[0][:-1] + bytes([blobs[0][-1] ^ 1]))
            check(False, "a tampered blob decrypted")
        except ClientError as e:
            check(e.response["Error"]["Code"] == "InvalidCiphertextException", str(e))

    v = Vault()
    name = "metrics-" + uuid.uuid4().hex[:8]
    v.write(f"transit/keys/{name}")
    for _ in range(4):
        expect_data(v.write(f"transit/encrypt/{name}",
                            {"plaintext": base64.b64encode(CANARY.encode()).decode()}), "encrypt")
    expect_error(Vault(token="hvs.not-a-token").write(f"transit/encrypt/{name}", {"plaintext": ""}),
                 403, "a wrong token")

    status, headers, health = get("/health")
    check(status == 200 and json.loads(health) == {
        "initialized": True, "sealed": False, "standby": False, "hsm": "ok", "audit": "ok",
        "mode": "dev",
        "version": json.loads(health).get("version")}, f"/health -> {status} {health}")
    check(get("/readyz")[0::2] == (200, "ok\n"), "/readyz")
    check(get("/livez")[0::2] == (200, "ok\n"), "/livez")
    ok("/health 200 with the HSM checked, /readyz and /livez ok")

    after, _, body = scrape()
    delta = lambda n, **l: value(after, n, **l) - value(before, n, **l)  # noqa: E731
    req = "kms_requests_total"
    checks = [
        (delta(req, door="aws", operation="CreateKey", outcome="ok"), 1),
        (delta(req, door="aws", operation="Encrypt", outcome="ok"), 5),
        (delta(req, door="aws", operation="Decrypt", outcome="ok"), 3),
        (delta(req, door="aws", operation="Decrypt", outcome="InvalidCiphertextException"), 2),
        (delta(req, door="vault", operation="keys", outcome="ok"), 1),
        (delta(req, door="vault", operation="encrypt", outcome="ok"), 4),
        (delta(req, door="vault", operation="encrypt", outcome="403"), 1),
        (delta("kms_request_duration_seconds_count", door="aws", operation="Decrypt"), 5),
        (delta("kms_hsm_calls_total", operation="CheckHealth", outcome="ok"), 2),
    ]
    for got, want in checks:
        check(got == want, f"request counts: {checks}")
    ok("kms_requests_total counts this scenario's calls by door, operation and outcome exactly")
    # Beneath them: at least one AES-GCM call per encrypt; the failed decrypts never reached the
    # HSM (the blob's key id or structure is checked first) or failed there — either way they
    # are not ok decrypts.
    enc = delta("kms_hsm_calls_total", operation="EncryptAesGcm", outcome="ok")
    dec = delta("kms_hsm_calls_total", operation="DecryptAesGcm", outcome="ok")
    check(enc >= 9, f"HSM EncryptAesGcm ok +{enc}")
    check(dec >= 3, f"HSM DecryptAesGcm ok +{dec}")
    check(value(after, "kms_hsm_calls_in_flight") >= 0, "in-flight gauge")
    check(value(after, "kms_http_connections") >= 1, "this scrape's own connection is counted")
    ok(f"HSM calls beneath them: EncryptAesGcm +{enc:.0f}, DecryptAesGcm +{dec:.0f}")
    check(CANARY not in body and "not-a-token" not in body and name not in body and key not in body,
          "no plaintext, token, key name or key id on the page")
    ok("the page carries no plaintext, token, key name or key id")

    status, headers, _ = get("/metrics", "POST")
    check(status == 405 and headers.get("allow") == "GET, HEAD", f"POST /metrics -> {status}")
    ok("POST /metrics -> 405 with Allow: GET, HEAD")


if __name__ == "__main__":
    run(main)
