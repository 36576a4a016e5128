"""The kernel: settings, database, errors, crypto, time, limits, pagination, audit, idempotency.

It imports no domain package and no web framework (an import-linter contract in `make lint` checks it).
"""
