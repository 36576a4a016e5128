"""Double-entry, hash-chained ledger in integer pence; dividends and payouts."""
