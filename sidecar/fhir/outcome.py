"""OperationOutcome responses: every FHIR error the sidecar gives is one of these."""
from __future__ import annotations

from typing import Mapping

import orjson
from aiohttp import web

FHIR_JSON = "application/fhir+json"


def operation_outcome(code: str, diagnostics: str, severity: str = "error",
                      expression: list[str] | None = None) -> dict:
    issue: dict = {"severity": severity, "code": code, "diagnostics": diagnostics}
    if expression:
        issue["expression"] = expression
    return {"resourceType": "OperationOutcome", "issue": [issue]}


def fhir_json_response(body: dict, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(body), content_type=FHIR_JSON, charset="utf-8",
                        headers=headers)


def outcome_response(status: int, code: str, diagnostics: str, *, expression: list[str] | None = None,
                     headers: Mapping[str, str] | None = None) -> web.Response:
    return fhir_json_response(operation_outcome(code, diagnostics, expression=expression), status, headers)
