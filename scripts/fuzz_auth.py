"""Schemathesis hooks for scripts/fuzz-api.sh: every request goes out signed as one caller.

The node reads most routes only for a known caller, who signs each request with its ed25519
key (four `x-interpool-*` headers; docs/adr/0014-tls-and-signed-reads.md). This module signs
as the key in the localnet key file named by INTERPOOL_FUZZ_KEY (fuzz-api.sh gives it the
regulator's, who may read everything) for the chain INTERPOOL_FUZZ_CHAIN_ID. Loaded through
SCHEMATHESIS_HOOKS (Schemathesis 4.x, pinned in fuzz-api.sh).

The signature covers the bytes that go on the wire, so it is made at the last moment: a
`requests` auth object runs on the prepared request, after `requests` has built the final URL
and body. Schemathesis applies it to every generated case as a configured credential (so its
`ignored_auth` check knows the credential is real and probes the route without it), and a
`before_call` hook hands it to any case that reaches the network without one. Cases where
Schemathesis deliberately drops a declared security parameter stay unsigned, as it means.
Each prepared request gets a fresh timestamp and nonce, so a resent request is signed anew.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import string
import time
from collections.abc import Iterable

import requests.auth
import schemathesis
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

try:  # How urllib3 2.x encodes a request target before writing the request line.
    from urllib3.util.url import _encode_target
except ImportError:  # pragma: no cover - other urllib3 versions: send path_url unchanged
    _encode_target = None

KEY_ENV = "INTERPOOL_FUZZ_KEY"
CHAIN_ENV = "INTERPOOL_FUZZ_CHAIN_ID"
PREFIX = "interpool-request-v1"
HEADER_KEY = "x-interpool-key"
HEADER_TIMESTAMP = "x-interpool-timestamp"
HEADER_NONCE = "x-interpool-nonce"
HEADER_SIGNATURE = "x-interpool-signature"
KEY_FILE_FIELDS = {"label", "public_key", "secret_key"}


def _hex32(text: object, field: str, path: str) -> bytes:
    if not isinstance(text, str) or len(text) != 64 or any(c not in string.hexdigits for c in text):
        raise ValueError(f"{path}: {field} is not 64 hex characters")
    return bytes.fromhex(text)


def load_key(path: str) -> Ed25519PrivateKey:
    """The signing key of a plain key file (`interpool_contracts::keys::PlainKeyFile`):
    `{"label": ..., "public_key": HEX, "secret_key": HEX}`, the secret key being the 32-byte
    seed. Like the Rust side, refuses unknown fields and a public key that does not match."""
    with open(path, "rb") as file:
        data = json.load(file)
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a key file (not a JSON object)")
    unknown = set(data) - KEY_FILE_FIELDS
    if unknown:
        raise ValueError(f"{path} is not a plain key file (unknown fields {sorted(unknown)})")
    key = Ed25519PrivateKey.from_private_bytes(_hex32(data.get("secret_key"), "secret_key", path))
    stored = _hex32(data.get("public_key"), "public_key", path)
    if public_bytes(key) != stored:
        raise ValueError(f"{path}: public_key does not match the secret key")
    return key


def public_bytes(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def signing_message(
    chain_id: str, method: str, path_and_query: str, timestamp_ms: int, nonce: str, body: bytes
) -> bytes:
    """`interpool-request-v1\\n{chain_id}\\n{METHOD}\\n{path_and_query}\\n{timestamp}\\n{nonce}\\n{sha256_hex(body)}`,
    no trailing newline."""
    digest = hashlib.sha256(body).hexdigest()
    fields = [PREFIX, chain_id, method.upper(), path_and_query, str(timestamp_ms), nonce, digest]
    return "\n".join(fields).encode("utf-8")


def sign_headers(
    key: Ed25519PrivateKey, chain_id: str, method: str, path_and_query: str, body: bytes,
    timestamp_ms: int | None = None, nonce: str | None = None,
) -> dict[str, str]:
    """The four headers that sign one request."""
    if timestamp_ms is None:
        timestamp_ms = time.time_ns() // 1_000_000
    if nonce is None:
        nonce = secrets.token_hex(16)  # 32 hex characters, like the wallet
    signature = key.sign(signing_message(chain_id, method, path_and_query, timestamp_ms, nonce, body))
    return {
        HEADER_KEY: public_bytes(key).hex(),
        HEADER_TIMESTAMP: str(timestamp_ms),
        HEADER_NONCE: nonce,
        HEADER_SIGNATURE: signature.hex(),
    }


def wire_target(path_url: str) -> str:
    """The request target urllib3 writes on the request line for `PreparedRequest.path_url`
    (requests hands it over as is; urllib3 percent-encodes what is still invalid in it)."""
    if _encode_target is None or not path_url.startswith("/"):
        return path_url
    return _encode_target(path_url)


def _final_body(request: requests.PreparedRequest) -> bytes:
    """The body bytes that will be sent; fixes the request's body to exactly those bytes."""
    body = request.body
    if body is None:
        return b""
    if isinstance(body, (bytes, bytearray, memoryview)):
        data = bytes(body)
    elif isinstance(body, str):
        data = body.encode("utf-8")  # what urllib3 2.x sends for a str body
    elif hasattr(body, "read"):
        data = body.read()
        data = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    elif isinstance(body, Iterable):  # a streamed body: read it all so that it can be hashed
        data = b"".join(c.encode("utf-8") if isinstance(c, str) else bytes(c) for c in body)
        request.headers.pop("Transfer-Encoding", None)
    else:
        raise TypeError(f"cannot sign a request body of type {type(body).__name__}")
    if data is not body:
        # requests recomputes Content-Length from this after the auth object has run.
        request.body = data
    return data


class InterpoolRequestAuth(requests.auth.AuthBase):
    """Signs a prepared request with an ed25519 key (the node's signed-request scheme)."""

    def __init__(self, key: Ed25519PrivateKey, chain_id: str) -> None:
        self.key = key
        self.chain_id = chain_id

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        body = _final_body(request)
        target = wire_target(request.path_url)
        method = request.method or "GET"
        # Only reads are signed, and always over the empty body: the node drops a read's body
        # unread (ADR 0014). Writes are open; their signature headers are not looked at.
        signed_body = b"" if method in ("GET", "HEAD") else body
        headers = sign_headers(self.key, self.chain_id, method, target, signed_body)
        for name in list(request.headers):  # drop any generated values of these headers
            if name.lower() in headers:
                del request.headers[name]
        request.headers.update(headers)
        return request


def _from_env() -> InterpoolRequestAuth:
    path, chain_id = os.environ.get(KEY_ENV), os.environ.get(CHAIN_ENV)
    if not path or not chain_id:
        raise RuntimeError(f"fuzz_auth: set {KEY_ENV} (a key file) and {CHAIN_ENV} (the chain id)")
    return InterpoolRequestAuth(load_key(path), chain_id)


SIGNER = _from_env()
# A credential Schemathesis sets on every case it generates (`case._auth`): its requests
# transport passes it as `auth=` to `requests`, which calls it on the prepared request.
schemathesis.auth.set_from_requests(SIGNER)


@schemathesis.hook
def before_call(context, case, kwargs):  # noqa: ANN001 - `kwargs` positional: edits reach the transport
    """Signs what reaches the network without the credential (e.g. a replay of a cached request),
    except cases that deliberately lack a declared security parameter."""
    if kwargs.get("auth") is not None or getattr(case, "_auth", None) is not None:
        return
    negated = getattr(case.operation.schema, "is_security_param_negated", None)
    if negated is not None and negated(case):
        return
    kwargs["auth"] = SIGNER
