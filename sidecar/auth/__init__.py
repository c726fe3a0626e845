"""SMART Backend Services: the token endpoint, client keys, scopes and bearer-token checks."""
