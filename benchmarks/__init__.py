"""Throughput benchmarks; run with ``python -m benchmarks`` (or ``make bench``)."""
