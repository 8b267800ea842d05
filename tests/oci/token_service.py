"""A Docker-registry token service (the bearer flow GHCR, Docker Hub and Harbor use) for Docker Distribution's
``auth: token`` mode: ES256 JWTs whose x5c certificate the registry trusts, access only for one user."""

from __future__ import annotations

import base64
import datetime
import json
import threading
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

SERVICE, ISSUER = "bento-test-registry", "bento-test-token-issuer"


@dataclass
class TokenService:
    url: str
    certificate: Path  # the registry's rootcertbundle
    issued: list[dict]  # the access each token granted, in order
    server: ThreadingHTTPServer

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _certificate(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bento test token issuer")])
    now = datetime.datetime.now(datetime.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )


def start_token_service(root: Path, user: str, password: str) -> TokenService:
    """Serve ``GET /token?service=&scope=`` on a free loopback port: ``user``/``password`` (basic auth) gets the
    actions asked for; anyone else gets a token that grants nothing."""
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = _certificate(key)
    bundle = root / "token-issuer.pem"
    bundle.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    x5c = base64.b64encode(certificate.public_bytes(serialization.Encoding.DER)).decode()
    expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    issued: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            query = parse_qs(urlparse(self.path).query)
            access = []
            if self.headers.get("Authorization") == expected:
                for scope in query.get("scope", []):
                    kind, name, actions = scope.split(":")
                    access.append({"type": kind, "name": name, "actions": actions.split(",")})
            now = int(datetime.datetime.now(datetime.timezone.utc).timestamp())
            claims = {
                "iss": ISSUER,
                "sub": user if access else "",
                "aud": query.get("service", [""])[0],
                "exp": now + 300,
                "nbf": now - 10,
                "iat": now,
                "jti": uuid.uuid4().hex,
                "access": access,
            }
            issued.append({"access": access})
            token = jwt.encode(claims, key, algorithm="ES256", headers={"x5c": [x5c]})
            body = json.dumps({"token": token}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return TokenService(f"http://127.0.0.1:{server.server_address[1]}/token", bundle, issued, server)
