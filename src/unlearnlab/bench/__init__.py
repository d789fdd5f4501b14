"""Benchmark machinery: the results store, reports and the grid runner."""
