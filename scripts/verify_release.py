#!/usr/bin/env python3
"""Verify a downloaded release against its signed manifest, trusting nothing but the co-op's JWKS.

Usage: verify_release.py [--fetch] BASE_URL RELEASE_ID TOKEN [DIRECTORY]

Checks, in order:
1. the manifest's JWS signature against the public key published at ``GET /v1/coop`` (by ``kid``), and
   that the manifest served is exactly the signed one;
2. every file the signed manifest lists (data files, ``datapackage.json``, ``preview.svg``): present in
   DIRECTORY, with the signed size and SHA-256;
3. when the release has a ``datapackage.json``: its resources are exactly the manifest's other files,
   each with the same ``bytes`` and ``hash`` (``sha256:<hex>``), and its ``privacy`` equals the
   manifest's;
4. the row counts: ``cells.csv`` / ``od.csv`` and the GeoJSON hold ``stats.rows`` rows (the Parquet
   file too, when Polars is installed to read it);
5. the CSV's rows are in the contract's order (bucket_start, resolution descending, cell, or origin then
   destination) and every ``members`` is at least the manifest's ``k`` and ``privacy.tau``.
Releases built before ``datapackage.json`` existed list fewer files; they verify by 1 and 2.

``--fetch`` downloads each listed file missing from DIRECTORY first (over the same authenticated API;
the hashes are still checked against the signed manifest, so the server is not trusted for them).
Needs PyJWT with cryptography and httpx (``pip install "pyjwt[crypto]" httpx``). Exit status 0 only
when everything verifies.
"""

from __future__ import annotations

import csv
import hashlib
import json
import sys
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import jwt

DATAPACKAGE = "datapackage.json"
PREVIEW = "preview.svg"


def fetch(url: str, token: str | None = None) -> bytes:
    response = httpx.get(url, headers={"Authorization": f"Bearer {token}"} if token else {}, timeout=60)
    response.raise_for_status()
    return response.content


def signed_manifest(base: str, release_id: str, token: str) -> dict[str, Any] | None:
    """The manifest's signed payload, or None (with the reason printed) when it does not verify."""
    jwks = json.loads(fetch(f"{base}/v1/coop"))["jwks"]
    manifest = json.loads(fetch(f"{base}/v1/releases/{release_id}", token))
    if not manifest.get("jws"):
        print(f"the release is {manifest.get('status')}: it has no signed manifest yet")
        return None
    kid = jwt.get_unverified_header(manifest["jws"])["kid"]
    keys = [key for key in jwks["keys"] if key["kid"] == kid]
    if len(keys) != 1:
        print(f"the co-op publishes no key with kid {kid}")
        return None
    signed: dict[str, Any] = json.loads(jwt.api_jws.PyJWS().decode(
        manifest["jws"], key=jwt.PyJWK(keys[0]).key, algorithms=["EdDSA"]))
    if signed != {k: v for k, v in manifest.items() if k != "jws"}:
        print("the manifest served differs from the signed manifest")
        return None
    print(f"manifest signature verified (kid {kid[:12]}...)")
    return signed


def file_url(base: str, release_id: str, name: str) -> str:
    return f"{base}/v1/releases/{release_id}/" + (name if name == PREVIEW else f"files/{name}")


def check_files(signed: dict[str, Any], directory: Path) -> set[str]:
    """The names of the listed files present with the signed size and SHA-256 (the others are reported)."""
    good: set[str] = set()
    for entry in signed["files"]:
        path = directory / entry["name"]
        if not path.is_file():
            print(f"{entry['name']}: MISSING from {directory}")
            continue
        data = path.read_bytes()
        matches = len(data) == entry["bytes"] and hashlib.sha256(data).hexdigest() == entry["sha256"]
        if matches:
            good.add(entry["name"])
        print(f"{entry['name']}: {'matches the signed manifest' if matches else 'DOES NOT MATCH'}")
    return good


def check_datapackage(signed: dict[str, Any], directory: Path, good: set[str]) -> bool:
    """The package's resources and privacy agree with the signed manifest (skipped for older releases,
    and for a package that already failed its hash)."""
    if DATAPACKAGE not in good:
        return True
    package = json.loads((directory / DATAPACKAGE).read_text(encoding="utf-8"))
    listed = {entry["name"]: entry for entry in signed["files"] if entry["name"] != DATAPACKAGE}
    resources = {item["path"]: item for item in package.get("resources", [])}
    ok = set(resources) == set(listed)
    for name, entry in listed.items():
        item = resources.get(name, {})
        ok &= bool(item.get("bytes") == entry["bytes"] and item.get("hash") == f"sha256:{entry['sha256']}")
    ok &= bool(package.get("privacy") == signed.get("privacy"))
    print(f"{DATAPACKAGE}: {'resources match the signed manifest' if ok else 'DOES NOT MATCH the manifest'}")
    return ok


def _csv_rows(path: Path) -> int:
    with path.open(newline="", encoding="utf-8") as handle:
        return sum(1 for _ in csv.reader(handle)) - 1


def _geojson_rows(path: Path) -> int:
    return len(json.loads(path.read_text(encoding="utf-8"))["features"])


def _parquet_rows(path: Path) -> int | None:
    try:
        import polars  # optional: only to count the Parquet file's rows
    except ImportError:
        return None
    return int(polars.scan_parquet(path).select(polars.len()).collect().item())


def check_rows(signed: dict[str, Any], directory: Path, good: set[str]) -> bool:
    """Each verified data file holds ``stats.rows`` rows."""
    expected = (signed.get("stats") or {}).get("rows")
    if expected is None:
        return True
    ok = True
    for name in sorted(good):
        path = directory / name
        counter = {".csv": _csv_rows, ".geojson": _geojson_rows, ".parquet": _parquet_rows}.get(path.suffix)
        if counter is None:
            continue
        try:
            found = counter(path)
        except Exception as exc:  # a file that hashes right but cannot be read is still not verified
            print(f"{name}: could not be read ({type(exc).__name__})")
            ok = False
            continue
        if found is None:
            print(f"{name}: row count not checked (install polars to read Parquet)")
            continue
        ok &= found == expected
        print(f"{name}: {found} rows" + ("" if found == expected else f", BUT the manifest says {expected}"))
    return ok


_ORDER_COLUMNS = {"cells.csv": ("cell",), "od.csv": ("origin", "destination")}


def check_table(signed: dict[str, Any], directory: Path, good: set[str]) -> bool:
    """The verified CSV is sorted as the contract says and no row is below ``k`` or ``tau``."""
    floor = max(int(signed.get("k") or 0), int((signed.get("privacy") or {}).get("tau") or 0))
    ok = True
    for name, cells in _ORDER_COLUMNS.items():
        if name not in good:
            continue
        with (directory / name).open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        keys = [(row["bucket_start"], -int(row["resolution"]), *(int(row[c], 16) for c in cells)) for row in rows]
        ordered = all(a < b for a, b in pairwise(keys))
        above = all(int(row["members"]) >= floor for row in rows)
        ok &= ordered and above
        print(f"{name}: " + ("sorted" if ordered else "NOT in the contract's order") + ", " +
              (f"every members >= {floor}" if above else f"SOME members below {floor}"))
    return ok


def main(base: str, release_id: str, token: str, directory: Path, *, download: bool = False) -> int:
    signed = signed_manifest(base, release_id, token)
    if signed is None:
        return 1
    if download:
        directory.mkdir(parents=True, exist_ok=True)
        for entry in signed["files"]:
            target = directory / entry["name"]
            if not target.is_file():
                target.write_bytes(fetch(file_url(base, release_id, entry["name"]), token))
    good = check_files(signed, directory)
    ok = len(good) == len(signed["files"])
    ok &= check_datapackage(signed, directory, good)
    ok &= check_rows(signed, directory, good)
    ok &= check_table(signed, directory, good)
    print("release verified" if ok else "release NOT verified")
    return 0 if ok else 1


if __name__ == "__main__":
    arguments = sys.argv[1:]
    fetch_missing = "--fetch" in arguments
    arguments = [a for a in arguments if a != "--fetch"]
    if len(arguments) not in (3, 4):
        print(__doc__)
        sys.exit(2)
    sys.exit(main(arguments[0].rstrip("/"), arguments[1], arguments[2],
                  Path(arguments[3]) if len(arguments) == 4 else Path(), download=fetch_missing))
