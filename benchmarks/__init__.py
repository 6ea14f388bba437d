"""Benchmarks: every speed figure is a ratio against a baseline timed in the same run (median of repeats).

Run one topic with `python -m benchmarks.<topic>` or all of them with `make bench`; each prints a table and
writes `benchmarks/results/<topic>.json`, from which `python -m benchmarks.report` rebuilds RESULTS.md.
"""
