"""What a client is told when HAPI could not be used: an HTTP status and an OperationOutcome issue code per kind
of trouble. The error boundary answers requests with it and the job runner records failed jobs with it, so a
client learns the same either way, and never HAPI's words or address."""
from __future__ import annotations

from sidecar.hapi.errors import HapiError, HapiErrorKind

_TOLD = {
    HapiErrorKind.UNAVAILABLE: (503, "transient"),
    HapiErrorKind.TIMEOUT: (504, "timeout"),
    HapiErrorKind.MALFORMED: (502, "exception"),
    HapiErrorKind.REFUSED: (502, "exception"),
}


def status_and_code(error: HapiError) -> tuple[int, str]:
    return _TOLD[error.kind]
