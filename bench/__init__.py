"""Benchmarks: tinycnn against PyTorch on the same workload (never part of the test suite)."""
