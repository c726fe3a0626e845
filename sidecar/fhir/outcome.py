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


def outcome_text(body: bytes, limit: int = 400) -> str:
    """What an OperationOutcome answer says (each issue's diagnostics, else its code); else the body's start."""
    try:
        outcome = orjson.loads(body)
    except orjson.JSONDecodeError:
        outcome = None
    if isinstance(outcome, dict) and isinstance(outcome.get("issue"), list):
        return "; ".join(str(i.get("diagnostics") or i.get("code") or "") for i in outcome["issue"]
                         if isinstance(i, dict))[:limit]
    return body[:200].decode("utf-8", "replace")


def fhir_json_response(body: dict, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(body), content_type=FHIR_JSON, charset="utf-8",
                        headers=headers)


def outcome_response(status: int, code: str, diagnostics: str, *, expression: list[str] | None = None,
                     headers: Mapping[str, str] | None = None) -> web.Response:
    return fhir_json_response(operation_outcome(code, diagnostics, expression=expression), status, headers)
