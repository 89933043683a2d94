"""Throughput/latency benchmark of the served ensemble against the in-process reference (bench/run.py)."""
