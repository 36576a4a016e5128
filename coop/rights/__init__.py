"""Member data rights: see your pings (GDPR Art. 15/20), export everything, erase yourself (Art. 17).

Invariants: a member only ever reads their own rows (every query is filtered by their member number or
account id); long reads stream from one read-only snapshot in constant memory; erasure is idempotent.
"""
