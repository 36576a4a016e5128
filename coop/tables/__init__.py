"""Sealed tables: table families, sealing each bucket once, the co-op-wide privacy budget."""
