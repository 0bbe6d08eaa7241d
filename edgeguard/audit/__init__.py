"""The audit trail: ECS JSON lines, SHA-256 hash-chained, durable, verifiable."""
