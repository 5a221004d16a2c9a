"""A local stand-in for Google's token signing keys: an RSA key, its x509 certificate
served as Google serves https://www.googleapis.com/oauth2/v1/certs (`{kid: PEM}`, with a
Cache-Control max-age), and RS256 ID tokens minted with it.

Pointing OIDC_CERTS_URL at `CertsServer.url` lets the real google-auth verification run
end to end without patching any Google client.
"""

from __future__ import annotations

import datetime
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

PUSH_ACCOUNT = "billing-pubsub-push@dataface-test.iam.gserviceaccount.com"
SCHEDULER_ACCOUNT = "billing-scheduler@dataface-test.iam.gserviceaccount.com"


class SigningKey:
    def __init__(self) -> None:
        self.kid = uuid.uuid4().hex
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "local-oidc-test")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.private.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .sign(self.private, hashes.SHA256())
        )
        self.cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()

    def token(
        self,
        *,
        audience: str,
        email: str = PUSH_ACCOUNT,
        issuer: str = "https://accounts.google.com",
        ttl: int = 3600,
        issued: int | None = None,
        **extra: Any,
    ) -> str:
        iat = int(time.time()) if issued is None else issued
        claims = {
            "aud": audience,
            "iss": issuer,
            "email": email,
            "email_verified": True,
            "sub": "1234567890",
            "iat": iat,
            "exp": iat + ttl,
            **extra,
        }
        return jwt.encode(claims, self.private, algorithm="RS256", headers={"kid": self.kid})


def unsigned_token(audience: str, email: str = PUSH_ACCOUNT) -> str:
    """alg=none: what a forger without the key sends."""
    now = int(time.time())
    claims = {"aud": audience, "iss": "https://accounts.google.com", "email": email}
    claims |= {"email_verified": True, "iat": now, "exp": now + 3600}
    return jwt.encode(claims, key=None, algorithm="none")


class CertsServer:
    """Serves the certificates of `keys`; counts the fetches (the verifier should cache)."""

    def __init__(self, *keys: SigningKey, max_age: int = 300) -> None:
        self.keys = list(keys)
        self.fetches = 0
        payload = lambda: json.dumps({k.kid: k.cert_pem for k in self.keys}).encode()  # noqa: E731
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.fetches += 1
                body = payload()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Cache-Control", f"public, max-age={max_age}")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/oauth2/v1/certs"

    def __enter__(self) -> CertsServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
