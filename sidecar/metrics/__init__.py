"""Prometheus metrics: one registry per app, served on the operator's own listener (README "Metrics")."""
