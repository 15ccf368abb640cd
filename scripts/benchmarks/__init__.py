"""Benchmarks: timings and operation counts (``python -m scripts.benchmarks.<name>``)."""
