"""One typed record per FHIR request: filled in as the request goes through the pipeline, written to the audit once.

The bearer middleware opens it (who, what was asked), `authorize` adds the route and interaction the table
resolved, handlers and the gate add refusals and what was withheld, and the bearer middleware closes it with the
status the client got: one audit record, whatever path the request took.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from sidecar.audit.chain import AuditRecord

# An audit record names at most this many withheld resources (a page of a search); the count is always exact.
WITHHELD_LISTED = 200


@dataclass
class RequestRecord:
    request: str
    """`METHOD path?query`, as asked."""
    client_id: str | None = None
    organization: str | None = None
    route: str | None = None
    interaction: str | None = None
    refusal: str = ""
    detail: dict = field(default_factory=dict)

    def refuse(self, reason: str) -> None:
        self.refusal = reason

    def note(self, **detail: object) -> None:
        self.detail.update(detail)

    def withheld(self, withheld: list[dict], transformed: int) -> None:
        listed = self.detail.setdefault("withheld", [])
        listed += withheld[:max(WITHHELD_LISTED - len(listed), 0)]
        self.detail["withheld_count"] = self.detail.get("withheld_count", 0) + len(withheld)
        self.detail["transformed"] = self.detail.get("transformed", 0) + transformed

    def audit(self, status: int) -> AuditRecord:
        refused = status >= 400
        detail = {"status": status, **self.detail}
        if self.route:
            detail["route"] = self.route
        if self.interaction:
            detail["interaction"] = self.interaction
        return AuditRecord("request", "refused" if refused else "allowed", self.client_id, self.organization,
                           self.request, f"{status} {self.refusal}".strip() if refused else None, detail)


RECORD_KEY = web.RequestKey("request_record", RequestRecord)


def record_of(request: web.Request) -> RequestRecord:
    """The request's record (opened here for a request the bearer middleware did not see, e.g. in unit tests)."""
    record = request.get(RECORD_KEY)
    if record is None:
        record = request[RECORD_KEY] = RequestRecord(f"{request.method} {request.path_qs[:2000]}")
    return record
