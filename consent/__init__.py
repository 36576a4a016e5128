"""Purposes, per-purpose consent (an append-only event log with signed receipts), privacy zones."""
