"""Benchmark scripts of docs/performance.md: each prints ratios measured side by side in one run.

Run them as ``python -m superb.benchmark.perf.<name>``; they are not tests (nothing here is timed
in the test suite).
"""
