"""The route table: which FHIR requests may pass to HAPI, and as what interaction.

Default deny: a request passes only when a rule below names it. Everything else gets an answer saying why:
405 for a method the path does not allow, 403 for what the product refuses outright (writes through
batch/transaction, `_history`, GraphQL, operations that are not built), 404 for paths that are not FHIR.
Authorization plugs in on the `Route` a request resolves to (its interaction and resource type).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping

from sidecar.fhir.resource_types import R4_RESOURCE_TYPES

# FHIR id syntax; ids made only of dots are path traversal, not ids.
_FHIR_ID = re.compile(r"^(?!\.+$)[A-Za-z0-9\-.]{1,64}$")


@dataclass(frozen=True)
class Route:
    """An allowed request. `interaction` follows FHIR's names: read, search-type, capabilities, page, and
    `everything` for `Patient/[id]/$everything`.

    `upstream_path` is rebuilt from the validated parts, never copied from the client's raw path.
    """

    interaction: str
    upstream_path: str
    resource_type: str | None = None
    resource_id: str | None = None


@dataclass(frozen=True)
class Refusal:
    status: int
    code: str
    reason: str
    allow: tuple[str, ...] = ()


def _not_allowed(method: str, allow: tuple[str, ...], what: str) -> Refusal:
    return Refusal(405, "not-supported", f"{method} is not allowed on {what}", allow)


def resolve(method: str, segments: list[str], query: Mapping[str, str]) -> Route | Refusal:
    """Resolve a request below the FHIR base (`segments` are the path parts after `/fhir`)."""
    if any(s == "_history" for s in segments):
        return Refusal(403, "forbidden", "history interactions are not available")
    if segments == ["Patient", "$member-match"]:  # served by its own handler, for POST only
        return _not_allowed(method, ("POST",), "Patient/$member-match")
    if len(segments) == 3 and segments[0] == "Patient" and segments[2] == "$everything":
        if not _FHIR_ID.match(segments[1]):
            return Refusal(400, "invalid", f"not a valid resource id: {segments[1][:80]}")
        if method != "GET":
            return _not_allowed(method, ("GET",), "Patient/[id]/$everything")
        return Route("everything", f"/Patient/{segments[1]}/$everything", "Patient", segments[1])
    if any(s.startswith("$") for s in segments):
        return Refusal(403, "forbidden", f"operation {next(s for s in segments if s.startswith('$'))} "
                                         "is not available")

    if not segments:
        if method == "POST":
            return Refusal(403, "forbidden", "batch and transaction Bundles are not accepted")
        if method == "GET" and "_getpages" in query:
            return Route("page", "")
        if method == "GET":
            return Refusal(403, "forbidden", "system-level search is not available")
        return _not_allowed(method, ("GET",), "the FHIR base")

    head = segments[0]
    if head == "metadata" and len(segments) == 1:
        return Route("capabilities", "/metadata") if method == "GET" else _not_allowed(method, ("GET",), "metadata")
    if head not in R4_RESOURCE_TYPES:
        return Refusal(404, "not-found", f"unknown resource type or path: {head}")

    if len(segments) == 1:
        if method == "GET":
            return Route("search-type", f"/{head}", head)
        return _not_allowed(method, ("GET",), f"{head}: writes are not accepted")
    if len(segments) == 2 and segments[1] == "_search":
        if method in ("GET", "POST"):
            return Route("search-type", f"/{head}/_search", head)
        return _not_allowed(method, ("GET", "POST"), f"{head}/_search")
    if len(segments) == 2:
        if not _FHIR_ID.match(segments[1]):
            return Refusal(400, "invalid", f"not a valid resource id: {segments[1][:80]}")
        if method == "GET":
            return Route("read", f"/{head}/{segments[1]}", head, segments[1])
        return _not_allowed(method, ("GET",), f"{head}/{segments[1]}: writes are not accepted")
    return Refusal(404, "not-found", "unknown path below " + head)
