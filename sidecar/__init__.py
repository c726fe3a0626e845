"""pdex-sidecar: a CMS-0057-F Payer-to-Payer compliance sidecar in front of a stock HAPI FHIR JPA server."""

__version__ = "0.1.0"
