"""Timing-system hand-offs: the E11 CSV export (the E08 result import joins later)."""
