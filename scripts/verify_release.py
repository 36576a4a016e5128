#!/usr/bin/env python3
"""Verify a downloaded release: the manifest's signature against the co-op's published key, and each
file's size and SHA-256 against the signed manifest.

Usage: verify_release.py BASE_URL RELEASE_ID TOKEN [DIRECTORY]
Needs PyJWT with cryptography and httpx (``pip install "pyjwt[crypto]" httpx``). Exit status 0 only when everything
verifies. This is what a modeller runs; nothing in it trusts the server beyond its published JWKS.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import httpx
import jwt


def fetch(url: str, token: str | None = None) -> bytes:
    response = httpx.get(url, headers={"Authorization": f"Bearer {token}"} if token else {}, timeout=60)
    response.raise_for_status()
    return response.content


def main(base: str, release_id: str, token: str, directory: Path) -> int:
    jwks = json.loads(fetch(f"{base}/v1/coop"))["jwks"]
    manifest = json.loads(fetch(f"{base}/v1/releases/{release_id}", token))
    kid = jwt.get_unverified_header(manifest["jws"])["kid"]
    [jwk] = [key for key in jwks["keys"] if key["kid"] == kid]
    signed = json.loads(jwt.api_jws.PyJWS().decode(manifest["jws"], key=jwt.PyJWK(jwk).key, algorithms=["EdDSA"]))
    if signed != {k: v for k, v in manifest.items() if k != "jws"}:
        print("the manifest served differs from the signed manifest")
        return 1
    print(f"manifest signature verified (kid {kid[:12]}...)")
    ok = True
    for entry in signed["files"]:
        path = directory / entry["name"]
        data = path.read_bytes()
        good = len(data) == entry["bytes"] and hashlib.sha256(data).hexdigest() == entry["sha256"]
        ok &= good
        print(f"{entry['name']}: {'matches the signed manifest' if good else 'DOES NOT MATCH'}")
    return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) not in (4, 5):
        print(__doc__)
        sys.exit(2)
    sys.exit(main(sys.argv[1].rstrip("/"), sys.argv[2], sys.argv[3],
                  Path(sys.argv[4]) if len(sys.argv) == 5 else Path()))
