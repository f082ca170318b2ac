"""A Vault-style HTTP client for the e2e scenarios of the Vault door (tests/e2e/vault_*.py).

It sends what Vault's Go client (api/, used by the transit seal) sends, byte for byte where it
matters (docs/vault-door.md, "HTTP conventions" and seal "transit"): method PUT for writes,
`X-Vault-Token`, `X-Vault-Request: true`, optional `X-Vault-Namespace`, NO Content-Type, a JSON body
as Go's json.Encoder writes it (compact, with a trailing newline), `User-Agent: Go-http-client/1.1`,
`Accept-Encoding: gzip`. http.client only, so no header is added behind our back.

Environment (dev.env through the harness): VAULT_ADDR, VAULT_TOKEN, and VAULT_CACERT (or
AWS_CA_BUNDLE) when the daemon serves HTTPS. The admin API (`KmsAppliance.CreateVaultToken`) is
called over the AWS door (e2e_lib.admin_call).

Every request records its secrets for the canary search (e2e_lib.py): the token it sends, the
plaintexts of its body (transit encrypt, batch_input), those of the answer (decrypt, datakey,
batch_results), the tokens the admin API hands out; and the body of every answer >= 400.
"""
import gzip
import http.client
import json
import os
import ssl
import urllib.parse

from e2e_lib import (CA_BUNDLE, admin_call, check, ok,
                     record_error_body, record_fields, record_secret)

VAULT_ADDR = os.environ["VAULT_ADDR"]
VAULT_TOKEN = os.environ["VAULT_TOKEN"]
VAULT_CACERT = os.environ.get("VAULT_CACERT") or CA_BUNDLE
DENIED = {"errors": ["permission denied"]}


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # lower-case name -> value
        self.body = body
        try:
            self.json = json.loads(body) if body else None
        except ValueError:
            self.json = None

    def __repr__(self):
        return f"HTTP {self.status} {self.body[:400]!r}"


def go_json(obj):
    """Go's json.NewEncoder(buf).Encode(obj): compact, HTML characters escaped, newline at the end."""
    text = json.dumps(obj, separators=(",", ":"))
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            + "\n").encode()


class Vault:
    """One keep-alive connection to the Vault door, as the Go client's pooled transport keeps."""

    def __init__(self, token=VAULT_TOKEN, namespace=None, addr=VAULT_ADDR):
        self.token = token
        self.namespace = namespace
        u = urllib.parse.urlsplit(addr)
        self._tls = u.scheme == "https"
        self._host, self._port = u.hostname, u.port or (443 if self._tls else 80)
        self._conn = None

    def _connect(self):
        if self._tls:
            ctx = ssl.create_default_context(cafile=VAULT_CACERT)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2  # as Vault's client
            return http.client.HTTPSConnection(self._host, self._port, context=ctx, timeout=60)
        return http.client.HTTPConnection(self._host, self._port, timeout=60)

    def request(self, method, path, body=None, token=..., headers=None, raw=None):
        """`path` without /v1/. body: a dict (Go-encoded), or raw bytes via `raw`."""
        token = self.token if token is ... else token
        data = raw if raw is not None else (go_json(body) if body is not None else None)
        record_secret(f"vault {method} {path} X-Vault-Token", token)
        for k, v in (headers or {}).items():
            if k.lower() == "authorization":
                record_secret(f"vault {method} {path} Authorization", v.split(" ")[-1])
        record_fields(f"vault {method} {path} request", body)
        for attempt in (0, 1):  # one reconnect if the server closed the idle connection
            if self._conn is None:
                self._conn = self._connect()
            try:
                c = self._conn
                c.putrequest(method, "/v1/" + path.lstrip("/"), skip_accept_encoding=True)
                c.putheader("User-Agent", "Go-http-client/1.1")
                if data is not None:
                    c.putheader("Content-Length", str(len(data)))
                if token is not None:
                    c.putheader("X-Vault-Token", token)
                c.putheader("X-Vault-Request", "true")
                if self.namespace:
                    c.putheader("X-Vault-Namespace", self.namespace)
                for k, v in (headers or {}).items():
                    c.putheader(k, v)
                c.putheader("Accept-Encoding", "gzip")
                c.endheaders(data)
                r = c.getresponse()
                payload = r.read()
                hdrs = {k.lower(): v for k, v in r.getheaders()}
                if hdrs.get("content-encoding") == "gzip":
                    payload = gzip.decompress(payload)
                if hdrs.get("connection", "").lower() == "close":
                    self.close()
                response = Response(r.status, hdrs, payload)
                _record_answer(f"vault {method} {path}", response)
                return response
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.close()
                if attempt:
                    raise

    def write(self, path, body=None, **kw):  # api.Logical().Write: always PUT
        return self.request("PUT", path, body if body is not None else {}, **kw)

    def read(self, path, **kw):
        return self.request("GET", path, **kw)

    def close(self):
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _record_answer(what, r):
    """The answer's secrets; its body when it is an error. A batch answer with a failed item is a
    400 that carries the good items' plaintexts, as the caller asked (docs/vault-door.md "Transit
    keys"): it is searched without those members, everything else of it (errors, references) as
    sent."""
    record_fields(f"{what} response", r.json)
    if r.status < 400:
        return
    body = r.body
    data = r.json.get("data") if isinstance(r.json, dict) else None
    if isinstance(data, dict) and isinstance(data.get("batch_results"), list):
        stripped = dict(r.json, data=dict(data, batch_results=[
            {k: v for k, v in item.items() if k != "plaintext"} if isinstance(item, dict) else item
            for item in data["batch_results"]]))
        body = json.dumps(stripped).encode()
    record_error_body(f"{what} HTTP {r.status}", body)


# --- What Vault's Go client can decode (api/secret.go): a type mismatch fails json.Unmarshal ------
_SECRET = {"request_id": str, "lease_id": str, "lease_duration": int, "renewable": bool,
           "data": dict, "warnings": list, "auth": dict, "wrap_info": dict, "mount_type": str}
_AUTH = {"client_token": str, "accessor": str, "policies": list, "token_policies": list,
         "identity_policies": list, "metadata": dict, "orphan": bool, "entity_id": str,
         "lease_duration": int, "renewable": bool, "mfa_requirement": dict}


def _typed(obj, schema, where):
    for name, t in schema.items():
        if name not in obj or obj[name] is None:  # Go leaves a null or absent field at zero
            continue
        v = obj[name]
        good = isinstance(v, t) and not (t is int and isinstance(v, bool))
        check(good, f"{where}.{name} = {v!r}: Go's api.Secret needs {t.__name__}")
    for name in ("policies", "token_policies", "identity_policies", "warnings"):
        if isinstance(obj.get(name), list):
            check(all(isinstance(x, str) for x in obj[name]), f"{where}.{name}: not []string")


def expect_secret(r, what, status=200):
    """A success envelope Vault's client parses: JSON, Content-Type application/json, Go types."""
    check(r.status == status, f"{what}: expected HTTP {status}, got {r}")
    check(isinstance(r.json, dict), f"{what}: body is not a JSON object: {r}")
    check(r.headers.get("content-type", "").startswith("application/json"),
          f"{what}: Content-Type {r.headers.get('content-type')!r}")
    _typed(r.json, _SECRET, what)
    if isinstance(r.json.get("auth"), dict):
        _typed(r.json["auth"], _AUTH, what + ".auth")
    return r.json


def expect_data(r, what):
    """200 with Vault's envelope; returns `data`."""
    s = expect_secret(r, what)
    check(isinstance(s.get("request_id"), str) and s["request_id"], f"{what}: no request_id: {s}")
    check(s.get("lease_id") == "" and s.get("renewable") is False and s.get("lease_duration") == 0,
          f"{what}: lease fields of a non-lease response: {s}")
    check(s.get("wrap_info") is None and s.get("auth") is None, f"{what}: wrap_info/auth: {s}")
    check(isinstance(s.get("data"), dict), f"{what}: no data object: {s}")
    return s["data"]


def expect_error(r, status, what, errors=None):
    """A Vault error: `status` and {"errors": [...]} (exactly `errors` when given)."""
    check(r.status == status, f"{what}: expected HTTP {status}, got {r}")
    check(isinstance(r.json, dict) and isinstance(r.json.get("errors"), list),
          f"{what}: not Vault's error envelope: {r}")
    if errors is not None:
        check(r.json == {"errors": errors}, f"{what}: expected {{'errors': {errors}}}, got {r.json}")
    return r.json["errors"]


def ok_200_or_204(r, what):
    """Vault answers key writes with 200 and the key (recent) or 204 (older); clients take both."""
    if r.status == 204:
        check(not r.body, f"{what}: 204 with a body")
        return None
    return expect_data(r, what)


def create_vault_token(display_name, key_patterns, operations, ttl_seconds=None, renewable=None):
    body = {"DisplayName": display_name, "KeyPatterns": key_patterns, "Operations": operations}
    if ttl_seconds is not None:
        body["TtlSeconds"] = ttl_seconds
    if renewable is not None:
        body["Renewable"] = renewable
    out = admin_call("CreateVaultToken", body)
    tok = out.get("VaultToken", {})
    check(isinstance(tok.get("Token"), str) and tok["Token"].startswith("hvs."),
          f"CreateVaultToken: no hvs. token in {list(tok)}")
    check(isinstance(tok.get("Accessor"), str) and tok["Accessor"], "CreateVaultToken: no Accessor")
    ok(f"KmsAppliance.CreateVaultToken {display_name}: keys {key_patterns}, ops {operations}"
       + (f", ttl {ttl_seconds}s" if ttl_seconds else ""))
    return tok["Token"]
