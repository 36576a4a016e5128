"""Consent-gated ingest of location pings (native, OwnTracks, Overland) into encrypted storage."""
