"""The co-op's kernel: settings, database, errors, auth, crypto, ledger and the CLI."""
