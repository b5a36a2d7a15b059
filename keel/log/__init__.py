"""The durable, hash-chained command log: record format and backends (SQLite, PostgreSQL)."""
