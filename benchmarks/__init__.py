"""Benchmark scripts; results with the machine's description go to benchmarks/results/."""
