"""`s2s-bench`: speed benchmarks that print a table and write JSON."""
