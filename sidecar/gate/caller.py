"""The authenticated caller of a request and the one question every route asks: may it see this resource?"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from aiohttp import web

from sidecar.gate.compartment import REFERENCE_DATA, member_of
from sidecar.disclosure.service_dates import DISCLOSED_MEMBER_TYPES
from sidecar.auth.scopes import ScopeSet
from sidecar.store.clients import Client


UNOWNED_TYPES = REFERENCE_DATA | {"Provenance"}
PARTNER_TYPES = DISCLOSED_MEMBER_TYPES | UNOWNED_TYPES


@dataclass(frozen=True)
class Caller:
    client: Client
    scopes: ScopeSet
    # The members this caller may see now, with each one's consent policy; None for an operator's unrestricted
    # internal client.
    patients: Mapping[str, str] | None

    @property
    def is_partner(self) -> bool:
        return self.patients is not None

    @property
    def needs_body_check(self) -> bool:
        """Whether answers must be inspected resource by resource (anything short of 'everything, unrestricted')."""
        return self.patients is not None or not self.scopes.reads_everything

    def may_use_type(self, resource_type: str) -> bool:
        """Partners reach payer-to-payer data, its provenance and reference data only; Claim, Consent, Binary, Group,
        AuditEvent... stay internal."""
        return not self.is_partner or resource_type in PARTNER_TYPES

    def may_see(self, resource: object) -> bool:
        if not isinstance(resource, dict):
            return False
        resource_type = resource.get("resourceType")
        if not isinstance(resource_type, str) or not self.may_use_type(resource_type):
            return False
        if not (self.scopes.allows(resource_type, "r") or self.scopes.allows(resource_type, "s")):
            return False
        if self.patients is None or resource_type in UNOWNED_TYPES:
            return True  # partners: the disclosure filter decides these by the member data they go with
        member = member_of(resource)
        return member is not None and member in self.patients


CALLER_KEY = web.RequestKey("caller", Caller)
