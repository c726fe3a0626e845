"""The audit trail: every token decision and every request decision, append-only and hash-chained."""
