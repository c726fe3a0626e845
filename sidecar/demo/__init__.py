"""Demo members for a first run: a few people with coverage, claims, clinical data and a prior authorization."""
