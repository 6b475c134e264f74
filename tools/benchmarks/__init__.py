"""Benchmark cases kept out of tools/benchmark.py, which registers them in its CASES."""
