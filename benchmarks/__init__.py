"""Benchmarks: the psio baseline server, server launchers, the benchmark runner."""
