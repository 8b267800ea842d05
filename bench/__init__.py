"""Benchmarks: every server on the same MLP, the same weights and the same load generator."""
