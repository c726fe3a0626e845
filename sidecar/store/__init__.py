"""The sidecar's own state (clients, replay cache, grants, signing keys, audit) in SQLite via sqlite-utils."""
