"""Benchmark data sources: loaders that fetch a benchmark from the hub or read a local copy."""
