"""SMART scopes, v1 (`system/Patient.read`) and v2 (`system/Patient.rs`), plus the product's operation scopes.

Granting intersects what a client asks for with what it is registered for and answers in the syntax it asked in
(shared/DECISIONS.md 7). A v2 scope with a `?` constraint is refused rather than granted wider than it reads:
the product enforces one constraint only, PDex's scope for Member Match Groups (`MATCH_GROUPS_SCOPE`). Only
`system/` scopes exist for backend services; `patient/` and `user/` scopes need a launch context this server does
not have.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Iterable

from sidecar.fhir.resource_types import R4_RESOURCE_TYPES

PERMISSIONS = "cruds"
_V1_PERMISSIONS = {"read": "rs", "write": "cud", "*": "cruds"}
_V2 = re.compile(r"^system/(?P<type>\*|[A-Z][A-Za-z]+)\.(?P<perms>[cruds]+)(?P<constraint>\?.*)?$")
_V1 = re.compile(r"^system/(?P<type>\*|[A-Z][A-Za-z]+)\.(?P<perms>read|write|\*)$")
_OPERATION = re.compile(r"^system/(?P<type>[A-Z][A-Za-z]+)\.(?P<op>\$[a-z][a-z\-]*)$")

# The operation scopes the product knows, with the operation-definition URLs PDex proposes as aliases. A token
# grants an alias in the spelling the client asked for.
OPERATION_ALIASES: dict[str, tuple[str, str]] = {
    "http://hl7.org/fhir/us/davinci-hrex/OperationDefinition/member-match": ("Patient", "$member-match"),
    # PDex 2.1.0's text (not the OperationDefinition's canonical URL)
    "http://hl7.org/fhir/us/davinci-pdex/OperationDefinition/bulk-member-match": ("Group", "$bulk-member-match"),
    # PDex 2.2.0 (FHIR-56185): the canonical URL of the BulkMemberMatch OperationDefinition
    "http://hl7.org/fhir/us/davinci-pdex/OperationDefinition/BulkMemberMatch": ("Group", "$bulk-member-match"),
}
# PDex's scope for the Groups of matched members (2.1.0 and 2.2.0 text). Not SMART syntax (a dot for the slash, a
# ValueSet URL in the system|code slot, `u` for what is read access): granted exactly as read and search of the
# client's own Groups whose code is `match`, and only with both permissions.
MATCH_GROUPS_SCOPE = ("system.Group.u?code=http://hl7.org/fhir/us/davinci-pdex/ValueSet/PDexMultiMemberMatchResultVS"
                      "|match")
KNOWN_OPERATIONS = frozenset({("Patient", "$member-match"), ("Group", "$bulk-member-match")})


class ScopeError(ValueError):
    """A scope the product cannot grant as written; the message says why."""


@dataclass(frozen=True)
class Scope:
    """One parsed scope: a resource permission (`permissions` ⊆ "cruds") or an operation scope."""

    resource_type: str  # a resource type or "*"
    permissions: str = ""
    operation: str | None = None
    syntax: str = "v2"  # "v1", "v2" or "alias" (an operation URL or MATCH_GROUPS_SCOPE), for answering in kind
    text: str = ""
    match_groups_only: bool = False
    """Group read and search limited to Member Match Groups with code `match` (MATCH_GROUPS_SCOPE)."""

    def covers_type(self, resource_type: str) -> bool:
        return self.resource_type in ("*", resource_type)

    def render(self) -> str:
        """This scope written in the syntax the client used."""
        if self.operation:
            return self.text if self.syntax == "alias" else f"system/{self.resource_type}.{self.operation}"
        if self.match_groups_only:
            return MATCH_GROUPS_SCOPE
        if self.syntax == "v1":
            v1 = next((name for name, perms in _V1_PERMISSIONS.items() if perms == self.permissions), None)
            if v1:
                return f"system/{self.resource_type}.{v1}"
        return f"system/{self.resource_type}.{self.permissions}"


def _ordered(perms: Iterable[str]) -> str:
    wanted = set(perms)
    return "".join(p for p in PERMISSIONS if p in wanted)


def parse_scope(text: str) -> Scope:
    if text in OPERATION_ALIASES:
        resource_type, operation = OPERATION_ALIASES[text]
        return Scope(resource_type, operation=operation, syntax="alias", text=text)
    if text == MATCH_GROUPS_SCOPE:
        return Scope("Group", "rs", None, "alias", text, match_groups_only=True)
    if m := _OPERATION.match(text):
        if (m["type"], m["op"]) not in KNOWN_OPERATIONS:
            raise ScopeError(f"unknown operation scope {text}")
        return Scope(m["type"], operation=m["op"], syntax="v2", text=text)
    if m := _V1.match(text):
        resource_type = m["type"]
        perms = _V1_PERMISSIONS[m["perms"]]
        syntax = "v1"
    elif m := _V2.match(text):
        if m["constraint"]:
            raise ScopeError(f"constrained scopes are not supported: {text}")
        perms = m["perms"]
        if perms != _ordered(perms) or len(set(perms)) != len(perms):
            raise ScopeError(f"permissions must be a subset of 'cruds' in that order: {text}")
        resource_type = m["type"]
        syntax = "v2"
    else:
        raise ScopeError(f"not a system scope this server grants: {text}")
    if resource_type != "*" and resource_type not in R4_RESOURCE_TYPES:
        raise ScopeError(f"unknown resource type in scope {text}")
    return Scope(resource_type, perms, None, syntax, text)


def parse_scopes(text: str) -> list[Scope]:
    return [parse_scope(part) for part in text.split()]


def _intersect(requested: Scope, allowed: Scope) -> Scope | None:
    if requested.operation or allowed.operation:
        same = (requested.operation == allowed.operation and requested.resource_type == allowed.resource_type)
        return requested if same else None
    if requested.resource_type == "*":
        resource_type = allowed.resource_type
    elif allowed.covers_type(requested.resource_type):
        resource_type = requested.resource_type
    else:
        return None
    perms = _ordered(set(requested.permissions) & set(allowed.permissions))
    if not perms:
        return None
    if requested.match_groups_only or allowed.match_groups_only:
        # Either side's constraint stays; it is granted whole or not at all (it cannot be written with fewer).
        return Scope("Group", perms, None, "alias", MATCH_GROUPS_SCOPE, match_groups_only=True) if perms == "rs" \
            else None
    return Scope(resource_type, perms, None, requested.syntax, requested.text)


def grant(requested: list[Scope], allowed: list[Scope]) -> list[Scope]:
    """What the client gets: each requested scope cut down to what a registered scope allows, duplicates dropped."""
    granted: dict[str, Scope] = {}
    for want in requested:
        for have in allowed:
            scope = _intersect(want, have)
            if scope is not None:
                granted.setdefault(scope.render(), scope)
    return list(granted.values())


@dataclass(frozen=True)
class ScopeSet:
    """The scopes of one access token, asked as questions by the enforcement code."""

    scopes: tuple[Scope, ...]

    @classmethod
    def parse(cls, text: str) -> "ScopeSet":
        return cls(tuple(parse_scopes(text)))

    def allows(self, resource_type: str, permission: str) -> bool:
        return any(s.operation is None and s.covers_type(resource_type) and permission in s.permissions
                   for s in self.scopes)

    def sees_all_groups(self) -> bool:
        """False when Group access comes only from MATCH_GROUPS_SCOPE: the client's `match` Groups alone."""
        return any(s.operation is None and s.covers_type("Group") and not s.match_groups_only for s in self.scopes)

    def allows_any_type(self, permission: str) -> bool:
        return any(s.operation is None and permission in s.permissions for s in self.scopes)

    def allows_operation(self, resource_type: str, operation: str) -> bool:
        return any(s.operation == operation and s.resource_type == resource_type for s in self.scopes)

    @functools.cached_property
    def reads_everything(self) -> bool:
        """True when any resource of any type may be read and searched (no per-type filtering needed).

        Asked on every request of a token whose parsed scopes are cached, so it is worked out once."""
        return any(s.operation is None and s.resource_type == "*" and {"r", "s"} <= set(s.permissions)
                   for s in self.scopes)
