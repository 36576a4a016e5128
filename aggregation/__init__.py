"""H3 aggregation: the pure k-anonymous release maths, the release builder and its output writers."""
