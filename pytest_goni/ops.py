"""Built-in benchmarkable ops (registered for op_bench)."""
