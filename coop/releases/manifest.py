"""The release manifest (the contract's ``GET /v1/releases/{id}`` shape) and its signature.

Invariants: a ready release's manifest is signed once, when it becomes ready, as a compact JWS over the
manifest without ``jws``; what is served afterwards is exactly that signed payload (decoded from the
JWS), so the signature always verifies over what a client receives, including the manifests of
releases built before sealed tables (their older shape is served as signed). Other states are unsigned.
The manifest carries no exact count but ``stats.rows``; ``privacy`` holds the family's public
parameters only.
"""

from __future__ import annotations

import json
from typing import Any

from coop.kit.crypto import Keyring, b64url_decode
from coop.kit.timeutil import rfc3339
from coop.licensing.models import Licence
from coop.releases.models import Release


def manifest_payload(release: Release, licence: Licence, *, privacy: dict[str, Any] | None) -> dict[str, Any]:
    """The manifest without ``jws``, from the stored release, its licence and its family's parameters."""
    return {
        "release_id": release.id,
        "licence_id": licence.id,
        "family_id": licence.family_id,
        "purpose": licence.purpose_code,
        "dataset": licence.dataset,
        "k": licence.k,
        "start": release.start.isoformat(),
        "end": release.end.isoformat(),
        "status": release.status,
        "progress": release.progress,
        "built_at": rfc3339(release.built_at) if release.built_at else None,
        "stats": release.stats,
        "privacy": privacy,
        "files": release.files or [],
        "error": release.error,
    }


def sign_manifest(release: Release, licence: Licence, keyring: Keyring, *, privacy: dict[str, Any]) -> str:
    return keyring.sign_jws(manifest_payload(release, licence, privacy=privacy))


def signed_payload(jws: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(b64url_decode(jws.split(".")[1]))
    return payload


def served_manifest(release: Release, licence: Licence, *, privacy: dict[str, Any] | None) -> dict[str, Any]:
    """The manifest as served: the signed payload plus ``jws`` once ready, else the live unsigned state."""
    if release.jws:
        return {**signed_payload(release.jws), "jws": release.jws}
    return {**manifest_payload(release, licence, privacy=privacy), "jws": None}
