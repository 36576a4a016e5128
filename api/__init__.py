"""HTTP layer: one thin router per domain (parse, authorise, call one service, return)."""
