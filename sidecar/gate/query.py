"""A partner's search, parsed into a canonical form by allow-list (shared/DECISIONS.md 10).

Only the searched type's own search parameters (as HAPI's CapabilityStatement declares them), with the modifiers and
prefixes listed here, and the result parameters `_count`, `_sort`, `_include` and `_revinclude` pass. Anything else
(`_elements`, `_summary`, `_total`, `_contained`, `_filter`, `_query`, `_offset`, `_has`, chained parameters, an
unknown name, a modifier not listed) is refused with `QueryRefused` naming it: never passed to HAPI, never ignored.
Subsetting would make the disclosure filter judge a stripped resource; totals and offsets would count what it
withholds; chains and `_has` would ask about resources the partner cannot see.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Mapping

MAX_COUNT = 200
DEFAULT_COUNT = 20
MAX_VALUE_LENGTH = 512
MAX_PARAMETERS = 50

CLIENT_ONLY = frozenset({"_format", "_pretty"})
"""Formatting the sidecar does itself; dropped, never sent to HAPI."""

# Common parameters every type has; HAPI lists some of them per type, and they are taken from there when it does.
_COMMON = {"_id": "token", "_lastUpdated": "date", "_tag": "token", "_security": "token", "_profile": "uri",
           "_source": "uri"}
_REFUSED_COMMON = frozenset({"_has", "_list", "_text", "_content", "_filter", "_query"})

_MODIFIERS: dict[str, frozenset[str]] = {
    "string": frozenset({"", "exact", "contains", "missing"}),
    "token": frozenset({"", "not", "missing", "text", "of-type"}),
    "reference": frozenset({"", "missing", "identifier"}),
    "date": frozenset({"", "missing"}),
    "number": frozenset({"", "missing"}),
    "quantity": frozenset({"", "missing"}),
    "uri": frozenset({"", "missing", "below", "above"}),
    "composite": frozenset({""}),
}
_PREFIXED = frozenset({"date", "number", "quantity"})
_PREFIX = re.compile(r"^(eq|ne|gt|lt|ge|le|sa|eb|ap)?(.*)$", re.S)
_FHIR_DATE = re.compile(r"^\d{4}(-(0[1-9]|1[0-2])(-(0[1-9]|[12]\d|3[01])"
                        r"(T([01]\d|2[0-3])(:[0-5]\d(:([0-5]\d|60)(\.\d{1,9})?)?)?(Z|[+-]((0\d|1[0-3]):[0-5]\d|14:00))?)?)?)?$")
_NUMBER = re.compile(r"^-?(0|[1-9]\d{0,17})(\.\d{1,18})?([eE][+-]?\d{1,3})?$")
_RESOURCE_TYPE = re.compile(r"^[A-Z][A-Za-z]{1,63}$")
_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class QueryRefused(ValueError):
    """A search the product does not run; `parameter` names the offending element."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter


@dataclass(frozen=True)
class SearchCatalog:
    """Each resource type's search parameters and their types, from HAPI's CapabilityStatement."""

    parameters: Mapping[str, Mapping[str, str]]

    @classmethod
    def from_capability_statement(cls, statement: dict) -> "SearchCatalog":
        parameters: dict[str, dict[str, str]] = {}
        for rest in statement.get("rest") or ():
            for resource in rest.get("resource") or () if isinstance(rest, dict) else ():
                if not isinstance(resource, dict) or not isinstance(resource.get("type"), str):
                    continue
                known = dict(_COMMON)
                for parameter in resource.get("searchParam") or ():
                    name, kind = parameter.get("name"), parameter.get("type")
                    if isinstance(name, str) and kind in _MODIFIERS and name not in _REFUSED_COMMON:
                        known[name] = kind
                parameters[resource["type"]] = known
        return cls(parameters)

    def of(self, resource_type: str) -> Mapping[str, str]:
        return self.parameters.get(resource_type) or _COMMON


@dataclass(frozen=True)
class CanonicalQuery:
    """What is sent to HAPI for a partner's search: validated pairs in a fixed order, and the page size."""

    resource_type: str
    pairs: tuple[tuple[str, str], ...]
    count: int

    def as_list(self) -> list[tuple[str, str]]:
        return list(self.pairs)


def _check_text(name: str, value: str) -> None:
    if not value:
        raise QueryRefused(name, f"search parameter {name} has an empty value")
    if len(value) > MAX_VALUE_LENGTH:
        raise QueryRefused(name, f"search parameter {name} is longer than {MAX_VALUE_LENGTH} characters")
    if _CONTROL.search(value):
        raise QueryRefused(name, f"search parameter {name} contains control characters")


def _check_value(name: str, kind: str, modifier: str, value: str) -> None:
    _check_text(name, value)
    if modifier == "missing":
        if value not in ("true", "false"):
            raise QueryRefused(name, f"{name}:missing takes true or false")
        return
    for item in value.split(","):
        if not item:
            raise QueryRefused(name, f"search parameter {name} has an empty value in its list")
        if kind in _PREFIXED:
            rest = _PREFIX.match(item)[2]  # type: ignore[index]
            if kind == "date" and not _FHIR_DATE.match(rest):
                raise QueryRefused(name, f"search parameter {name} needs a FHIR date or dateTime, not {rest[:40]!r}")
            if kind == "number" and not _NUMBER.match(rest):
                raise QueryRefused(name, f"search parameter {name} needs a number, not {rest[:40]!r}")
            if kind == "quantity" and not _NUMBER.match(rest.split("|", 1)[0]):
                raise QueryRefused(name, f"search parameter {name} needs a quantity, not {rest[:40]!r}")


def _check_count(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= MAX_COUNT:
        raise QueryRefused("_count", f"_count must be a whole number from 1 to {MAX_COUNT}")
    return int(value)


def _check_sort(value: str, known: Mapping[str, str]) -> None:
    _check_text("_sort", value)
    for key in value.split(","):
        name = key[1:] if key.startswith("-") else key
        if known.get(name) in (None, "composite"):
            raise QueryRefused("_sort", f"_sort cannot sort by {name[:60]!r}")


def _check_include(name: str, modifier: str, value: str, resource_type: str, catalog: SearchCatalog,
                   partner_types: frozenset[str]) -> None:
    if modifier not in ("", "iterate", "recurse"):
        raise QueryRefused(f"{name}:{modifier}", f"{name} takes no :{modifier[:40]} modifier")
    _check_text(name, value)
    parts = value.split(":")
    if len(parts) not in (2, 3) or not _RESOURCE_TYPE.match(parts[0]):
        raise QueryRefused(name, f"{name} takes Type:parameter or Type:parameter:TargetType, not {value[:60]!r}")
    source = parts[0]
    if source not in partner_types:
        raise QueryRefused(name, f"{name} cannot name {source}")
    if name == "_include" and not modifier and source != resource_type:
        raise QueryRefused(name, f"_include must start with the searched type {resource_type}")
    if catalog.of(source).get(parts[1]) != "reference":
        raise QueryRefused(name, f"{parts[1][:60]!r} is not a reference search parameter of {source}")
    if len(parts) == 3 and parts[2] not in partner_types:
        raise QueryRefused(name, f"{name} cannot target {parts[2][:60]}")


def canonical_search(resource_type: str, pairs: Iterable[tuple[str, str]], catalog: SearchCatalog,
                     partner_types: frozenset[str]) -> CanonicalQuery:
    """The partner's search as HAPI will run it, or QueryRefused for the first thing it does not allow."""
    known = catalog.of(resource_type)
    kept: list[tuple[str, str]] = []
    count = DEFAULT_COUNT
    counted = False
    pairs = list(pairs)
    if len(pairs) > MAX_PARAMETERS:
        raise QueryRefused("query", f"a search takes at most {MAX_PARAMETERS} parameters")
    for raw_name, value in pairs:
        if raw_name in CLIENT_ONLY:
            continue
        if _CONTROL.search(raw_name) or len(raw_name) > 100:
            raise QueryRefused("query", "a search parameter name contains control characters or is too long")
        if "." in raw_name:
            raise QueryRefused(raw_name[:100], f"chained search parameters ({raw_name[:100]}) are not supported")
        name, _, modifier = raw_name.partition(":")
        if name == "_count":
            if modifier or counted:
                raise QueryRefused(raw_name, "_count is given once, without a modifier")
            count, counted = _check_count(value), True
        elif name == "_sort":
            if modifier:
                raise QueryRefused(raw_name, "_sort takes no modifier")
            _check_sort(value, known)
            kept.append((name, value))
        elif name in ("_include", "_revinclude"):
            _check_include(name, modifier, value, resource_type, catalog, partner_types)
            kept.append((raw_name, value))
        elif name in known:
            kind = known[name]
            if kind == "reference" and modifier and _RESOURCE_TYPE.match(modifier):
                if modifier not in partner_types:
                    raise QueryRefused(raw_name, f"{raw_name} names a type partners cannot search")
                if _ID.match(value) is None and "/" not in value:
                    raise QueryRefused(raw_name, f"{raw_name} needs a resource id")
                _check_text(raw_name, value)
            elif modifier not in _MODIFIERS[kind]:
                raise QueryRefused(raw_name, f"search parameter {name} does not take the :{modifier[:40]} modifier")
            else:
                _check_value(raw_name, kind, modifier, value)
            kept.append((raw_name, value))
        else:
            raise QueryRefused(raw_name[:100], f"{resource_type} search does not take {raw_name[:100]}")
    kept.sort(key=lambda pair: pair[0])
    return CanonicalQuery(resource_type, tuple(kept), count)


def check_plain_read(pairs: Iterable[tuple[str, str]]) -> None:
    """A partner's read takes no parameters but formatting: `_elements`, `_summary` and the like are refused."""
    for name, _ in pairs:
        if name not in CLIENT_ONLY:
            raise QueryRefused(name[:100], f"a read does not take {name[:100]}")


def canonical_everything(pairs: Iterable[tuple[str, str]]) -> CanonicalQuery:
    """`Patient/{id}/$everything`'s parameters for a partner: `_count`, `_since`, `start`, `end` and `_type`."""
    kept: list[tuple[str, str]] = []
    count = DEFAULT_COUNT
    for name, value in pairs:
        if name in CLIENT_ONLY:
            continue
        if name == "_count":
            count = _check_count(value)
        elif name in ("_since", "start", "end"):
            _check_text(name, value)
            if not _FHIR_DATE.match(value):
                raise QueryRefused(name, f"{name} needs a FHIR date or instant")
            kept.append((name, value))
        elif name == "_type":
            _check_text(name, value)
            if not all(_RESOURCE_TYPE.match(t) for t in value.split(",")):
                raise QueryRefused(name, "_type takes a comma-separated list of resource types")
            kept.append((name, value))
        else:
            raise QueryRefused(name[:100], f"$everything does not take {name[:100]}")
    kept.sort()
    return CanonicalQuery("Patient", tuple(kept), count)
