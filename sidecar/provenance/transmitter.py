"""The Transmitter Provenance this payer sends with the data it releases (PDex 2.2 §pdex-127: at least one per
exchange), conforming to PDex Provenance (`pdex-provenance`): agent `transmitter` (US Core provenance participant
type, the code the profile's ProvenanceTransmitter slice fixes), `who` = this payer's Organization, `recorded` =
when the exchange happened, targets = released resources only.

Targets are grouped per member, so a receiver can keep each member's Provenance with that member's data; what
belongs to no member (reference data) has its own. A stored Provenance that leaves is itself provenance, never a
target.
"""
from __future__ import annotations

import uuid
from typing import Iterable, Sequence

from sidecar.gate.compartment import is_member_data, member_of
from sidecar.config import Settings

PDEX_PROVENANCE = "http://hl7.org/fhir/us/davinci-pdex/StructureDefinition/pdex-provenance"
TRANSMITTER = {"system": "http://hl7.org/fhir/us/core/CodeSystem/us-core-provenance-participant-type",
               "code": "transmitter", "display": "Transmitter"}
# Without a configured identifier, the payer's public address names it (RFC 3986 URI as identifier).
URI_SYSTEM = "urn:ietf:rfc:3986"
_IDS = uuid.UUID("5c7d0a8e-0f2b-4f3e-9a51-7f1de2c0b1a4")


def payer_reference(settings: Settings) -> dict:
    """How this payer names itself as the transmitter: `payer_organization`, else the first of
    `payer_identifiers` (how Consents name it), else its public address; `Organization/x` or `system|value`."""
    named = settings.payer_organization.strip() or next(
        (p.strip() for p in settings.payer_identifiers.split(",") if p.strip()), "")
    if named.startswith("Organization/"):
        return {"reference": named}
    system, _, value = named.partition("|")
    if not (system and value):
        system, value = URI_SYSTEM, settings.public_base
    return {"type": "Organization", "identifier": {"system": system, "value": value}}


def provenance_id(*parts: str) -> str:
    """A FHIR id that follows from what it names (the same exchange and part give the same id)."""
    return str(uuid.uuid5(_IDS, "|".join(parts)))


def transmitter_provenance(provenance_id: str, who: dict, targets: Sequence[str], recorded: str) -> dict:
    return {
        "resourceType": "Provenance", "id": provenance_id, "meta": {"profile": [PDEX_PROVENANCE]},
        "target": [{"reference": target} for target in targets],
        "recorded": recorded,
        "agent": [{"type": {"coding": [TRANSMITTER]}, "who": who}],
    }


def targets_by_member(released: Iterable[dict]) -> dict[str | None, list[str]]:
    """`Type/id` of released resources per member (None: reference data, which belongs to no member)."""
    grouped: dict[str | None, list[str]] = {}
    for resource in released:
        resource_type, resource_id = resource.get("resourceType"), resource.get("id")
        if resource_type == "Provenance" or not isinstance(resource_type, str) or not isinstance(resource_id, str):
            continue
        owner = member_of(resource) if is_member_data(resource_type) else None
        grouped.setdefault(owner, []).append(f"{resource_type}/{resource_id}")
    return grouped
