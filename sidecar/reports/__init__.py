"""Operators' reports read from the store."""
