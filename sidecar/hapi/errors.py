"""HAPI trouble as a typed error: what kind of trouble, and a short reason a client may be told.

Nothing here knows how a client is answered; `sidecar.fhir.hapi_trouble` maps each kind to a status and an issue
code. HAPI's own words and address never go into `reason` (they are logged where the trouble is found).
"""
from __future__ import annotations

from enum import Enum


class HapiErrorKind(Enum):
    UNAVAILABLE = "unavailable"  # no connection to HAPI could be made
    TIMEOUT = "timeout"  # HAPI took too long to connect or to answer
    MALFORMED = "malformed"  # the answer is not HTTP, or not the FHIR JSON asked for
    REFUSED = "refused"  # HAPI answered with a status the request cannot go on with (a refusal, or its own failure)


_REASONS = {
    HapiErrorKind.UNAVAILABLE: "the FHIR server is unavailable; try again later",
    HapiErrorKind.TIMEOUT: "the FHIR server did not answer in time",
    HapiErrorKind.MALFORMED: "the FHIR server gave a malformed answer",
    HapiErrorKind.REFUSED: "the FHIR server gave an unexpected answer",
}


class HapiError(Exception):
    """HAPI could not be used for what was asked."""

    def __init__(self, kind: HapiErrorKind, reason: str | None = None) -> None:
        self.kind = kind
        self.reason = reason or _REASONS[kind]
        super().__init__(self.reason)

    @property
    def transient(self) -> bool:
        """Whether the same request may well succeed later (HAPI down or slow, not HAPI saying no)."""
        return self.kind in (HapiErrorKind.UNAVAILABLE, HapiErrorKind.TIMEOUT)
