"""The sidecar's own state (clients, replay cache, grants, signing keys, jobs, audit) in SQLite or PostgreSQL."""
