"""The demo co-op: a synthetic population of Liverpool City Region residents and the story that uses it."""
