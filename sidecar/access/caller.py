"""The authenticated caller of a request and the one question every route asks: may it see this resource?"""
from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from sidecar.access.compartment import REFERENCE_DATA, is_member_data, member_of
from sidecar.auth.scopes import ScopeSet
from sidecar.store.clients import Client


@dataclass(frozen=True)
class Caller:
    client: Client
    scopes: ScopeSet
    # The members this caller may see now; None for an operator's unrestricted internal client.
    patients: frozenset[str] | None

    @property
    def is_partner(self) -> bool:
        return self.patients is not None

    @property
    def needs_body_check(self) -> bool:
        """Whether answers must be inspected resource by resource (anything short of 'everything, unrestricted')."""
        return self.patients is not None or not self.scopes.reads_everything

    def may_use_type(self, resource_type: str) -> bool:
        """Partners reach member data and reference data only; Binary, Group, AuditEvent... stay internal."""
        return not self.is_partner or is_member_data(resource_type) or resource_type in REFERENCE_DATA

    def may_see(self, resource: object) -> bool:
        if not isinstance(resource, dict):
            return False
        resource_type = resource.get("resourceType")
        if not isinstance(resource_type, str) or not self.may_use_type(resource_type):
            return False
        if not (self.scopes.allows(resource_type, "r") or self.scopes.allows(resource_type, "s")):
            return False
        if self.patients is None or resource_type in REFERENCE_DATA:
            return True
        member = member_of(resource)
        return member is not None and member in self.patients


CALLER_KEY = web.RequestKey("caller", Caller)
