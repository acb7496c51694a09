"""Hardware abstraction layer: small protocols named after the cabinet's parts, and backends."""
