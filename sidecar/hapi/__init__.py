"""The one client of the HAPI FHIR server behind the sidecar, and the typed error its trouble becomes."""
