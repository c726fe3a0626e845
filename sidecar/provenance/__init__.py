"""The Provenance this payer sends with released data (PDex Transmitter Provenance)."""
