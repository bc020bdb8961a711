"""Benchmarks of the local pipeline against PostgreSQL COPY (see bench/run_bench.py)."""
