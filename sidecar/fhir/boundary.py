"""The one error boundary: what a client is told for each kind of exception a handler lets out.

Bad input is a 400 naming the element; HAPI trouble is a 503/504/502 without HAPI's words; an HTTP exception keeps
its status. Anything else is not known here (None): the request context answers it as a 500 naming only the
request id. The bearer middleware asks the same function, so the audit records the status the client got.
"""
from __future__ import annotations

from aiohttp import web

from sidecar.fhir.body import BadForm
from sidecar.fhir.hapi_trouble import status_and_code
from sidecar.fhir.outcome import outcome_response
from sidecar.gate.query import QueryRefused
from sidecar.hapi.errors import HapiError


def answer_for(exc: BaseException) -> web.Response | None:
    if isinstance(exc, web.HTTPException):
        return outcome_response(exc.status, "not-found" if exc.status == 404 else "processing", exc.reason)
    if isinstance(exc, QueryRefused):
        return outcome_response(400, "invalid", str(exc), expression=[exc.parameter])
    if isinstance(exc, BadForm):
        return outcome_response(exc.status, "invalid", str(exc))
    if isinstance(exc, HapiError):
        status, code = status_and_code(exc)
        return outcome_response(status, code, exc.reason)
    return None
