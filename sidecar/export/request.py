"""A bulk export kick-off, read from a GET query or a POST Parameters body, checked, and normalised for HAPI.

Bulk Data STU2 and ATR `$davinci-data-export` parameters: `_type`, `_since`, `_until`, `_typeFilter`,
`_outputFormat`, `patient`, `exportType`. Repeated parameters are one comma list. Partners get only the
payer-to-payer types their scopes cover; types outside them are left out and named in the manifest's error file
(never silently), so Bulk Data clients that ask for every type they know still work; a `_type` with nothing
exportable is refused.
A `_typeFilter` must be `Type?query` for an exported type, a query of plain `name=value` search parameters: never
one naming the person or resource (`patient`, `subject`, `_id`…), chained or reverse-chained, since HAPI adds the
member restriction as a search parameter that such a filter could replace, nor result or server-specific
parameters HAPI does not run in an export. Whether HAPI knows the parameters and values is asked at kick-off.
`_since` is passed on as given: it filters by `meta.lastUpdated`, and the look-back by date of service is enforced on
the data by the disclosure rules, within any `_typeFilter` (PDex 2.2.0 §pdex-176, shared/DECISIONS.md 4). The PDex
2.1.0 rewrite, raising a `_since` older than the look-back to its start, is the setting `export_since_floor` (off).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, tzinfo
from typing import Iterable, Mapping
from urllib.parse import parse_qsl

from sidecar.disclosure.dates import parse_fhir_moment, years_before

PAYER_TO_PAYER = "hl7.fhir.us.davinci-pdex#payertopayer"
NDJSON_FORMATS = {"application/fhir+ndjson", "application/ndjson", "ndjson"}
KNOWN = {"_type", "_since", "_until", "_typeFilter", "_outputFormat", "patient", "exportType"}
# Parameters that name the person or the resource: HAPI's member restriction is one of these.
PERSON_PARAMETERS = frozenset({"patient", "subject", "_id", "beneficiary", "subscriber", "policy-holder", "payee",
                               "focus", "performer", "link", "member", "target", "agent", "actor", "participant"})
# Result and server-specific parameters, which an export does not run.
NOT_FILTERS = frozenset({"_include", "_revinclude", "_sort", "_count", "_elements", "_summary", "_total",
                         "_contained", "_containedType", "_maxresults", "_format", "_pretty", "_filter", "_query",
                         "_text", "_content", "_list"})
MAX_TYPE_FILTER = 1000


class BadExport(Exception):
    def __init__(self, message: str, status: int = 400, expression: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.expression = expression


@dataclass
class ExportParams:
    level: str                       # "group" or "patient"
    group_id: str | None
    types: list[str]
    since: str | None = None
    until: str | None = None
    type_filters: list[str] = field(default_factory=list)
    patients: list[str] = field(default_factory=list)   # requested `Patient/id`s (empty: all)
    since_raised: bool = False
    left_out_types: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)

    def upstream_params(self) -> list[tuple[str, str]]:
        params = [("_outputFormat", "application/fhir+ndjson")]
        if self.types:
            params.append(("_type", ",".join(self.types)))
        if self.since:
            params.append(("_since", self.since))
        params += [("_typeFilter", f) for f in self.type_filters]
        return params


def pairs_of_parameters(body: object) -> list[tuple[str, str]]:
    """A POST kick-off's Parameters as (name, value) pairs; BadExport naming the element that is not FHIR JSON's
    shape for them."""
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise BadExport("a POST kick-off carries a Parameters resource")
    parameters = body.get("parameter") or []
    if not isinstance(parameters, list):
        raise BadExport("Parameters.parameter must be an array", expression="Parameters.parameter")
    return [_pair(parameter, f"Parameters.parameter[{i}]") for i, parameter in enumerate(parameters)]


def _pair(parameter: object, where: str) -> tuple[str, str]:
    if not isinstance(parameter, dict):
        raise BadExport(f"{where} must be an object", expression=where)
    name = parameter.get("name")
    if not isinstance(name, str):
        raise BadExport(f"{where}.name must be a string", expression=f"{where}.name")
    value = next((v for k, v in parameter.items() if k.startswith("value")), None)
    if isinstance(value, dict):  # valueReference
        value = value.get("reference")
    if not isinstance(value, str):
        raise BadExport(f"parameter {name[:60]} needs a string, instant, canonical or reference value",
                        expression=where)
    return name, value


def filter_search(query: str, exported: list[str]) -> tuple[str, list[tuple[str, str]]]:
    """A `_typeFilter` as its type and search pairs; BadExport (naming `_typeFilter`) for one that is not
    `Type?query` for an exported type or whose parameters could widen or escape the export."""
    shown = query[:80]
    resource_type, mark, search = query.partition("?")
    if not mark or resource_type not in exported or len(query) > MAX_TYPE_FILTER:
        raise BadExport(f"_typeFilter {shown!r} must be Type?search for an exported type")
    try:
        pairs = parse_qsl(search, keep_blank_values=True, strict_parsing=True, errors="strict")
    except ValueError as exc:  # UnicodeDecodeError included
        raise BadExport(f"_typeFilter {shown!r} is not a search query of name=value pairs") from exc
    if not pairs:
        raise BadExport(f"_typeFilter {shown!r} has no search after its type")
    for name, value in pairs:
        base = name.partition(":")[0]
        if not value or any(ord(c) < 32 for c in name + value):
            raise BadExport(f"_typeFilter {shown!r}: {name[:40]} needs a value without control characters")
        if base in PERSON_PARAMETERS or base.startswith("_has") or "." in base:
            raise BadExport(f"_typeFilter {shown!r} cannot use {name[:40]}: an export's members are the Group's "
                            "or the request's, never a filter's")
        if base in NOT_FILTERS or base.startswith("_include") or base.startswith("_revinclude"):
            raise BadExport(f"_typeFilter {shown!r} cannot use {base[:40]} (no _include, _revinclude, _sort or "
                            "other result parameters)")
    return resource_type, pairs


def _instant(name: str, value: str, tz: tzinfo) -> datetime:
    moment = parse_fhir_moment(value, tz)
    if not isinstance(moment, datetime):
        raise BadExport(f"{name} must be a FHIR instant (e.g. 2025-01-01T00:00:00Z), not {value[:60]!r}")
    return moment


def parse_export(pairs: Iterable[tuple[str, str]], level: str, group_id: str | None, allowed_types: list[str],
                 now: datetime, tz: tzinfo, lookback_years: int, since_floor: bool,
                 operation: str = "$export", unrestricted: bool = False) -> ExportParams:
    """`allowed_types`: what the client may export. Without `_type`, a partner gets all of them; an unrestricted
    client gets whatever HAPI exports by default (an empty `types`)."""
    values: dict[str, list[str]] = {}
    for name, value in pairs:
        if name not in KNOWN:
            raise BadExport(f"{operation} does not take parameter {name}")
        values.setdefault(name, []).append(value)
    joined: Mapping[str, list[str]] = {k: [x.strip() for v in vs for x in v.split(",") if x.strip()]
                                       for k, vs in values.items() if k != "_typeFilter"}
    for output_format in joined.get("_outputFormat", []):
        if output_format not in NDJSON_FORMATS:
            raise BadExport(f"_outputFormat {output_format} is not supported; use application/fhir+ndjson")
    for export_type in joined.get("exportType", []):
        if export_type != PAYER_TO_PAYER:
            raise BadExport(f"exportType {export_type} is not supported; use {PAYER_TO_PAYER}")
    asked = joined.get("_type") or ([] if unrestricted else list(allowed_types))
    types = [t for t in asked if t in allowed_types]
    left_out = [t for t in asked if t not in allowed_types]
    if asked and not types:
        raise BadExport(f"_type {','.join(left_out)[:200]} cannot be exported to this client")
    type_filters = [q for q in values.get("_typeFilter", []) if q.partition("?")[0] not in left_out]
    for query in type_filters:
        filter_search(query, types or allowed_types)
    since = values.get("_since", [None])[-1]
    since_raised = False
    if since is not None:
        moment = _instant("_since", since, tz)
        floor = years_before(now, lookback_years)
        if since_floor and moment < floor:
            since, since_raised = floor.isoformat(timespec="seconds").replace("+00:00", "Z"), True
    until = values.get("_until", [None])[-1]
    if until is not None:
        _instant("_until", until, tz)
    patients = joined.get("patient", [])
    for reference in patients:
        if not reference.startswith("Patient/") or "/" in reference[8:] or not reference[8:]:
            raise BadExport(f"patient {reference[:80]!r} must be a Patient/id reference")
    return ExportParams(level, group_id, types, since, until, type_filters, patients, since_raised, left_out)
