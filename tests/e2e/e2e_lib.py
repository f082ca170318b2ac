"""Shared helpers of the end-to-end scenarios (tests/e2e/*.py).

The scenarios run under /usr/bin/python3 (Debian's boto3 and cryptography), driven by the Catch2
harness (tests/e2e/kmsd_e2e_test.cc), which starts kmsd and passes its dev.env in the environment:
KMS_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION, and AWS_CA_BUNDLE when
the daemon serves HTTPS. Every check prints one line; the first failure raises and exits non-zero.

The canary recorder (no audit record, log line or error body may hold a plaintext, data
key or secret of the suite). When KMS_E2E_CANARY_DIR is set (the harness sets it; kmsd_process.h),
every secret a script sends or receives is appended to that folder, and the harness searches kmsd's
stderr, its audit folder and the recorded error bodies for each of them once the daemon stopped
(tests/e2e/canary_search.h):
  secrets.jsonl     one JSON object a line, {"what": "<script>: <where it was seen>",
                    "value_b64": "<standard base64 of the raw bytes>"}, each value once per script.
  error_bodies.txt  every error answer a script got, length-prefixed so a body may hold any byte:
                    "<decimal byte length> <what>\n" + the body's bytes + "\n".
boto3 clients made by client() record through botocore's events (request Plaintext, response
Plaintext / PrivateKeyPlaintext, the raw body of every HTTP status >= 400); aws() records the
plaintext files it passes and the plaintexts it gets back, and the CLI's error text; the hand-made
requests of the scripts call record_fields / record_error_body themselves. Values shorter than 8
bytes are recorded too; the harness ignores them (canary_search.h says why).
"""
import base64
import http.client
import json
import os
import ssl
import subprocess
import sys
import threading
import traceback
import urllib.parse
import uuid

import boto3
import botocore.config
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

import atexit
import shutil
import tempfile

import kms_model_extension

# Older installed models lack the 2024 rotation members: see kms_model_extension.py.
_MODEL_DIR = tempfile.mkdtemp(prefix="kms-e2e-model-")
atexit.register(shutil.rmtree, _MODEL_DIR, True)
os.environ["AWS_DATA_PATH"] = kms_model_extension.write_extended(
    os.path.join(os.path.dirname(botocore.__file__), "data", "kms", "2014-11-01", "service-2.json"),
    os.path.join(_MODEL_DIR, "boto3"))
_CLI_MODEL = "/usr/lib/python3/dist-packages/awscli/botocore/data/kms/2014-11-01/service-2.json"
_CLI_DATA_PATH = kms_model_extension.write_extended(_CLI_MODEL, os.path.join(_MODEL_DIR, "cli"))

ENDPOINT = os.environ["KMS_ENDPOINT"]
REGION = os.environ["AWS_DEFAULT_REGION"]
CA_BUNDLE = os.environ.get("AWS_CA_BUNDLE")


# --- The canary recorder --------------------------------------------------------------------------
CANARY_DIR = os.environ.get("KMS_E2E_CANARY_DIR")
_SCRIPT = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python"
_RECORD_LOCK = threading.Lock()  # cli_scenarios.py calls aws() from several threads
_RECORDED = set()
# Members whose value is a secret. In KMS JSON and Vault bodies the blob ones are base64 strings;
# botocore hands them over as bytes once parsed.
_BLOB_FIELDS = {"Plaintext", "PrivateKeyPlaintext", "plaintext"}
_TEXT_FIELDS = {"SecretAccessKey", "Token", "client_token"}


def record_secret(what, value):
    """Appends `value` (bytes or str) to secrets.jsonl as something no log may hold."""
    if not CANARY_DIR or value is None:
        return
    if isinstance(value, str):
        value = value.encode()
    with _RECORD_LOCK:
        if value in _RECORDED:
            return
        _RECORDED.add(value)
        line = json.dumps({"what": f"{_SCRIPT}: {what}",
                           "value_b64": base64.b64encode(value).decode()})
        with open(os.path.join(CANARY_DIR, "secrets.jsonl"), "a") as f:
            f.write(line + "\n")


def record_error_body(what, body):
    """Appends an error answer (bytes or str) to error_bodies.txt, to be searched for secrets."""
    if not CANARY_DIR or body is None:
        return
    if isinstance(body, str):
        body = body.encode()
    label = f"{_SCRIPT}: {what}".replace("\n", " ")
    with _RECORD_LOCK:
        with open(os.path.join(CANARY_DIR, "error_bodies.txt"), "ab") as f:
            f.write(f"{len(body)} {label}\n".encode() + body + b"\n")


def record_fields(what, obj, base64_strings=True):
    """Records every secret member found anywhere in a request or response (dicts and lists).
    A blob member given as a str is base64 (JSON bodies), or with base64_strings=False the text
    itself (boto3 sends a str Plaintext as its UTF-8 bytes)."""
    if not CANARY_DIR:
        return
    if isinstance(obj, dict):
        for name, v in obj.items():
            if name in _BLOB_FIELDS and isinstance(v, (bytes, bytearray)):
                record_secret(f"{what} {name}", bytes(v))
            elif name in _BLOB_FIELDS and isinstance(v, str) and base64_strings:
                try:
                    record_secret(f"{what} {name}", base64.b64decode(v, validate=True))
                except ValueError:  # not base64 after all: record the text
                    record_secret(f"{what} {name}", v)
            elif (name in _BLOB_FIELDS or name in _TEXT_FIELDS) and isinstance(v, str):
                record_secret(f"{what} {name}", v)
            else:
                record_fields(what, v, base64_strings)
    elif isinstance(obj, list):
        for v in obj:
            record_fields(what, v, base64_strings)


def canary(what):
    """A plaintext a raw search finds: b"canary-plaintext-<what>-<32 hex>", recorded."""
    value = f"canary-plaintext-{what}-{uuid.uuid4().hex}".encode()
    record_secret(f"canary plaintext {what}", value)
    return value


def _record_request(params, model, **_):
    record_fields(f"boto3 {model.name} request", params, base64_strings=False)


def _record_response(http_response, parsed, model, **_):
    record_fields(f"boto3 {model.name} response", parsed)
    if http_response is not None and http_response.status_code >= 400:
        record_error_body(f"boto3 {model.name} HTTP {http_response.status_code}",
                          http_response.content)


def record_client(kms):
    """Registers the recorder on a botocore client's events (no-op without KMS_E2E_CANARY_DIR)."""
    if CANARY_DIR:
        kms.meta.events.register("provide-client-params.kms.*", _record_request)
        kms.meta.events.register("after-call.kms.*", _record_response)
    return kms


# The daemon's own secrets (the harness knows them too; sealed_boot.py's come from its ceremony).
for _name in ("AWS_SECRET_ACCESS_KEY", "VAULT_TOKEN"):
    record_secret(_name, os.environ.get(_name))


class CheckFailed(Exception):
    pass


def check(cond, what):
    if not cond:
        raise CheckFailed(what)


def ok(what):
    print("ok", what, flush=True)


def client(**overrides):
    """A boto3 KMS client on the daemon; retries off so each call is one request."""
    cfg = botocore.config.Config(retries={"max_attempts": 1, "mode": "standard"},
                                 connect_timeout=10, read_timeout=30)
    kw = dict(endpoint_url=ENDPOINT, region_name=REGION, config=cfg,
              verify=CA_BUNDLE if CA_BUNDLE else True)
    kw.update(overrides)
    record_secret("client() aws_secret_access_key", overrides.get("aws_secret_access_key"))
    return record_client(boto3.client("kms", **kw))


def expect_error(kms, exc_name, fn, status=400, **kw):
    """Calls fn(**kw) and requires the modelled exception class `exc_name` (the one a boto3 user
    catches as kms.exceptions.<name>), the same code in the parsed error, the HTTP status and a
    request id. Returns the ClientError."""
    try:
        fn(**kw)
    except ClientError as e:
        code = e.response["Error"]["Code"]
        http = e.response["ResponseMetadata"]["HTTPStatusCode"]
        check(code == exc_name, f"{fn.__name__}: expected {exc_name}, got {code}: {e}")
        cls = getattr(kms.exceptions, exc_name, None)
        if cls is not None:  # modelled exceptions have a class; generic ones only a code
            check(isinstance(e, cls), f"{fn.__name__}: {type(e)} is not kms.exceptions.{exc_name}")
        check(http == status, f"{fn.__name__}: {exc_name} with HTTP {http}, expected {status}")
        check(e.response["ResponseMetadata"].get("RequestId"), "error without x-amzn-RequestId")
        ok(f"{fn.__name__} -> {exc_name} ({http})")
        return e
    raise CheckFailed(f"{fn.__name__}: expected {exc_name}, the call succeeded")


def aws(*args, expect_code=None):
    """Runs aws-cli v2 (/usr/bin/aws; the `aws` on PATH may be a v1 shim) against the daemon.
    Returns the parsed JSON output, or with expect_code the error text after checking that the
    CLI failed with that error code."""
    cmd = ["/usr/bin/aws", "kms", *args, "--endpoint-url", ENDPOINT, "--region", REGION,
           "--output", "json", "--cli-read-timeout", "30", "--cli-connect-timeout", "10"]
    if CA_BUNDLE:
        cmd += ["--ca-bundle", CA_BUNDLE]
    env = dict(os.environ, AWS_PAGER="", AWS_DATA_PATH=_CLI_DATA_PATH, AWS_MAX_ATTEMPTS="1", AWS_RETRY_MODE="standard",
               AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)
    for flag, value in zip(args, args[1:]):  # what it sends: --plaintext fileb://<file>
        if flag == "--plaintext" and value.startswith("fileb://"):
            with open(value[len("fileb://"):], "rb") as f:
                record_secret(f"aws-cli {args[0]} --plaintext", f.read())
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:  # the CLI shows the error body's code and message on stderr
        record_error_body(f"aws-cli {args[0]} stderr", proc.stderr)
    if expect_code is not None:
        check(proc.returncode != 0, f"aws {args[0]}: expected {expect_code}, it succeeded")
        check(f"({expect_code})" in proc.stderr,
              f"aws {args[0]}: expected {expect_code}, got: {proc.stderr.strip()}")
        ok(f"aws {args[0]} -> {expect_code}")
        return proc.stderr
    if proc.returncode != 0:
        raise CheckFailed(f"aws {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    ok(f"aws {args[0]}")
    out = json.loads(proc.stdout) if proc.stdout.strip() else {}
    record_fields(f"aws-cli {args[0]} output", out)
    return out


# --- The admin API (KmsAppliance.*) over the AWS door --------------------------------------------
def signed_call(target, body, access_key_id=None, secret=None, raw_body=None):
    """POST / with X-Amz-Target `target` ("TrentService.Encrypt", "KmsAppliance.ListUsers"),
    signed with SigV4 (service kms) by the given access key (the dev admin's by default). The body
    is `body` as JSON, or `raw_body` bytes as given (for members boto3 would refuse to send).
    Returns (HTTP status, parsed JSON body)."""
    payload = raw_body if raw_body is not None else json.dumps(body).encode()
    u = urllib.parse.urlsplit(ENDPOINT)
    host = u.netloc
    req = AWSRequest(method="POST", url=ENDPOINT.rstrip("/") + "/", data=payload,
                     headers={"Host": host, "Content-Type": "application/x-amz-json-1.1",
                              "X-Amz-Target": target})
    creds = Credentials(access_key_id or os.environ["AWS_ACCESS_KEY_ID"],
                        secret or os.environ["AWS_SECRET_ACCESS_KEY"])
    SigV4Auth(creds, "kms", REGION).add_auth(req)
    if u.scheme == "https":
        conn = http.client.HTTPSConnection(u.hostname, u.port, timeout=60,
                                           context=ssl.create_default_context(cafile=CA_BUNDLE))
    else:
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    try:
        conn.request("POST", "/", body=payload, headers=dict(req.headers.items()))
        r = conn.getresponse()
        text = r.read()
    finally:
        conn.close()
    parsed = json.loads(text) if text else {}
    record_fields(f"{target} response", parsed)
    if r.status >= 400:
        record_error_body(f"{target} HTTP {r.status}", text)
    return r.status, parsed


def admin_call(op, body):
    """KmsAppliance.<op> signed with SigV4 (service kms) by the dev admin access key."""
    status, parsed = signed_call("KmsAppliance." + op, body)
    if status != 200:
        raise CheckFailed(f"KmsAppliance.{op}: HTTP {status} {parsed}")
    return parsed


def run(main):
    try:
        main()
    except CheckFailed as e:
        print("FAIL", e, flush=True)
        sys.exit(1)
    except Exception:  # an unexpected ClientError or a bug in the scenario: show it whole
        traceback.print_exc()
        print("FAIL unexpected exception", flush=True)
        sys.exit(1)
    print("PASS", flush=True)


# --- Independent checks with `cryptography` -------------------------------------------------------
import hashlib

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, utils

_HASHES = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}
_HASHLIB = {"256": hashlib.sha256, "384": hashlib.sha384, "512": hashlib.sha512}

# Key spec -> (signing algorithms to exercise)
SIGN_SPECS = {
    "ECC_NIST_P256": ["ECDSA_SHA_256"],
    "ECC_NIST_P384": ["ECDSA_SHA_384"],
    "ECC_NIST_P521": ["ECDSA_SHA_512"],
    "ECC_SECG_P256K1": ["ECDSA_SHA_256"],
    "RSA_2048": ["RSASSA_PSS_SHA_256", "RSASSA_PSS_SHA_384", "RSASSA_PSS_SHA_512",
                 "RSASSA_PKCS1_V1_5_SHA_256", "RSASSA_PKCS1_V1_5_SHA_384",
                 "RSASSA_PKCS1_V1_5_SHA_512"],
}
CURVES = {"ECC_NIST_P256": ec.SECP256R1, "ECC_NIST_P384": ec.SECP384R1,
          "ECC_NIST_P521": ec.SECP521R1, "ECC_SECG_P256K1": ec.SECP256K1}


def digest(alg, message):
    return _HASHLIB[alg[-3:]](message).digest()


def verify_locally(public_der, alg, message, message_type, signature):
    """Checks a KMS signature with `cryptography` alone; raises InvalidSignature on mismatch.
    ECDSA: DER (r,s) (RFC 3279). RSA-PSS: MGF1 with the same hash, salt length = digest length, as
    AWS KMS documents. DIGEST messages are the prehashed digest."""
    pub = serialization.load_der_public_key(public_der)
    h = _HASHES[alg[-3:]]()
    algo = utils.Prehashed(h) if message_type == "DIGEST" else h
    if alg.startswith("ECDSA"):
        check(isinstance(pub, ec.EllipticCurvePublicKey), "ECDSA key is not EC")
        pub.verify(signature, message, ec.ECDSA(algo))
    elif alg.startswith("RSASSA_PSS"):
        pub.verify(signature, message, padding.PSS(padding.MGF1(h), h.digest_size), algo)
    else:
        pub.verify(signature, message, padding.PKCS1v15(), algo)


def check_key_pair(private_der, public_der, what):
    """The PKCS#8 private key belongs to the SubjectPublicKeyInfo public key."""
    priv = serialization.load_der_private_key(private_der, password=None)
    derived = priv.public_key().public_bytes(serialization.Encoding.DER,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)
    check(derived == public_der, f"{what}: private key does not match the public key")
    return priv
