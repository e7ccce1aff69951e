"""Benchmarks: our stack against the reference design, measured side by side (issue 6)."""
