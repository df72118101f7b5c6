"""Benchmarks that print tables: models and backends, the 4D converter, the node core."""
