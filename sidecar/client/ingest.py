"""Ingesting a partner's export into our HAPI: validated, ids remapped, references kept consistent, every resource
tagged with its source, a Provenance naming the partner, one transaction per member, and idempotent.

- Ids. A partner's `Type/id` becomes `Type/p2p-<hash of partner and Type/id>`, written with PUT: the same source
  resource always lands on the same local resource, whichever pull brings it.
- References. The partner's Patient of a member becomes our member's Patient (their Patient resource is not
  copied: the member already has one here). A reference to anything else in the export, or ingested before, is
  remapped to its local id; a reference to something the partner did not send becomes a logical reference (an
  identifier naming the partner and its `Type/id`), never a dangling literal one.
- Tags. `meta.source` is the partner's FHIR base; a `meta.tag` (`urn:pdex-sidecar:payer-to-payer|<partner>`)
  marks the resource as received from a payer; the partner's security labels stay.
- Idempotency. What was ingested from each source resource is remembered with a digest of its content; a source
  resource that has not changed is not written again, so a repeated pull creates nothing, not even a Provenance.
- Provenance received. The partner's Provenances (its PDex Transmitter Provenance of the exchange, and any it
  stores) are kept next to ours, remapped like everything else, each with the member whose resources it targets (one
  that targets several members' is shared out, one share per member). One is written with the changed resources it
  targets; one whose targets were all received unchanged, or are the member's Patient (never copied), adds nothing
  and is left out, so a repeated pull still writes nothing. One that targets nothing sent (a Bundle) is kept as is.
- Atomicity. Each member's resources and their Provenance go in one HAPI transaction: a failure leaves nothing of
  that member's batch behind, and the member is marked `ingest-failed` to be retried.
"""
from __future__ import annotations

import copy
import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Mapping

import orjson
from fhir.resources.R4B import get_fhir_model_class

TAG_SYSTEM = "urn:pdex-sidecar:payer-to-payer"
SOURCE_SYSTEM = "urn:pdex-sidecar:partner-resource"
PARTNER_SYSTEM = "urn:pdex-sidecar:partner"
# The member's Patient stays ours; a partner's Groups are its own bookkeeping.
NOT_INGESTED = {"Patient", "Group"}
PARTICIPANT_TYPE = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
# `transmitter` is US Core's code (that system has none).
US_CORE_PARTICIPANT_TYPE = "http://hl7.org/fhir/us/core/CodeSystem/us-core-provenance-participant-type"
_REFERENCE = re.compile(r"^(?:(?P<base>https?://.+)/)?(?P<type>[A-Z][A-Za-z]+)/(?P<id>[A-Za-z0-9\-.]{1,64})"
                        r"(?:/_history/[^/]+)?$")


def source_of(resource: dict) -> str:
    return f"{resource.get('resourceType')}/{resource.get('id')}"


def local_id(partner: str, source: str) -> str:
    return "p2p-" + hashlib.sha256(f"{partner}|{source}".encode()).hexdigest()[:40]


def digest(resource: dict) -> str:
    """The content as the partner holds it, without the bookkeeping that changes on every read or copy."""
    content = copy.deepcopy(resource)
    meta = content.get("meta")
    if isinstance(meta, dict):
        for key in ("versionId", "lastUpdated", "source"):
            meta.pop(key, None)
    return hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).hexdigest()


def problem_of(resource: dict) -> str | None:
    """Why the resource is not valid FHIR (R4B models, R4-compatible for the types payers exchange), or None."""
    try:
        get_fhir_model_class(str(resource.get("resourceType"))).model_validate(resource)
    except (ValueError, TypeError, KeyError) as exc:
        return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
    if not isinstance(resource.get("id"), str):
        return "the resource has no id"
    return None


def _walk_references(value: object):
    """Every Reference-like dict inside a resource (contained resources included)."""
    if isinstance(value, dict):
        if isinstance(value.get("reference"), str):
            yield value
        for child in value.values():
            yield from _walk_references(child)
    elif isinstance(value, list):
        for child in value:
            yield from _walk_references(child)


def parse_reference(reference: str, partner_base: str) -> tuple[str, str] | None:
    match = _REFERENCE.match(reference)
    if match is None or (match["base"] and match["base"].rstrip("/") != partner_base):
        return None
    return match["type"], match["id"]


def member_of(resource: dict, patients: dict[str, str], partner_base: str) -> str | None:
    """Our member this resource belongs to: the first reference to a matched member's Patient at the partner."""
    if resource.get("resourceType") == "Patient":
        return patients.get(str(resource.get("id")))
    for ref in _walk_references(resource):
        parsed = parse_reference(ref["reference"], partner_base)
        if parsed and parsed[0] == "Patient" and parsed[1] in patients:
            return patients[parsed[1]]
    return None


def _source_named(target: object, partner_base: str) -> str | None:
    """The partner's `Type/id` a Provenance target names, if it names one of the partner's resources."""
    reference = target.get("reference") if isinstance(target, dict) else None
    parsed = parse_reference(reference, partner_base) if isinstance(reference, str) else None
    return f"{parsed[0]}/{parsed[1]}" if parsed else None


def provenance_shares(provenance: dict, owners: Mapping[str, str | None], patients: dict[str, str],
                      partner_base: str) -> dict[str | None, dict]:
    """A received Provenance by the member whose resources it targets (`owners`: source `Type/id` → member, None
    for resources of no member). Targeting several members, it is shared out: each share targets one member's
    resources and those of no member, under an id that follows from the original's and the member."""
    targets: dict[str | None, list[object]] = {}
    for target in provenance.get("target") or ():
        source = _source_named(target, partner_base)
        kind, _, source_id = (source or "").partition("/")
        owner = patients.get(source_id) if kind == "Patient" else owners.get(source or "")
        targets.setdefault(owner, []).append(target)
    members = [owner for owner in targets if owner is not None]
    if len(members) <= 1:
        return {members[0] if members else None: provenance}
    return {member: {**provenance, "id": f"{provenance.get('id')}-{member}",
                     "target": targets[member] + targets.get(None, [])} for member in members}


def with_their_members(by_member: dict[str | None, list[dict]], patients: dict[str, str], partner_base: str,
                       invalid: Mapping[str, str]) -> dict[str | None, list[dict]]:
    """The resources of each member with the received Provenances moved to the member they describe (an invalid
    one stays where it was, to be named there)."""
    owners = {source_of(r): owner for owner, resources in by_member.items() for r in resources}
    grouped: dict[str | None, list[dict]] = {}
    for owner, resources in by_member.items():
        for resource in resources:
            if resource.get("resourceType") != "Provenance" or source_of(resource) in invalid:
                grouped.setdefault(owner, []).append(resource)
                continue
            for member, share in provenance_shares(resource, owners, patients, partner_base).items():
                grouped.setdefault(member, []).append(share)
    return grouped


def _accompanies(provenance: dict, written: set[str], received: set[str], partner_base: str) -> bool:
    """Whether a received Provenance describes something written now, or only things not sent at all."""
    targets = {source for source in (_source_named(t, partner_base) for t in provenance.get("target") or ())
               if source}
    if targets & written:
        return True
    return not (targets & received) and not any(t.startswith("Patient/") for t in targets)


@dataclass
class Remapper:
    partner: str
    partner_base: str
    patients: dict[str, str]              # partner Patient id → our member id
    known: set[str] = field(default_factory=set)  # source `Type/id`s that are (or are being) ingested

    def remap(self, resource: dict) -> dict:
        local = copy.deepcopy(resource)
        source = source_of(resource)
        local["id"] = local_id(self.partner, source)
        meta = {k: v for k, v in (local.get("meta") or {}).items() if k in ("profile", "security", "tag")}
        meta["source"] = self.partner_base
        meta["tag"] = [t for t in meta.get("tag") or () if isinstance(t, dict) and t.get("system") != TAG_SYSTEM]
        meta["tag"].append({"system": TAG_SYSTEM, "code": self.partner,
                            "display": f"received from payer {self.partner}"})
        local["meta"] = meta
        for ref in _walk_references(local):
            if ref["reference"].startswith("#"):
                continue
            parsed = parse_reference(ref["reference"], self.partner_base)
            if parsed and parsed[0] == "Patient" and parsed[1] in self.patients:
                ref["reference"] = f"Patient/{self.patients[parsed[1]]}"
            elif parsed and f"{parsed[0]}/{parsed[1]}" in self.known:
                ref["reference"] = f"{parsed[0]}/{local_id(self.partner, f'{parsed[0]}/{parsed[1]}')}"
            else:
                original = ref.pop("reference")
                ref["identifier"] = {"system": SOURCE_SYSTEM, "value": f"{self.partner_base}/{original}"
                                     if parsed and "://" not in original else original}
        return local


def provenance(partner: str, partner_base: str, member: str | None, targets: list[str], digests: list[str],
               transaction_time: str | None) -> dict:
    """One Provenance per ingest of a member's changed resources; its id follows from what it covers, so writing
    the same change twice writes the same Provenance."""
    key = hashlib.sha256("|".join(sorted(targets) + sorted(digests)).encode()).hexdigest()[:24]
    who = {"type": "Organization", "identifier": {"system": PARTNER_SYSTEM, "value": partner}, "display": partner}
    return {
        "resourceType": "Provenance", "id": local_id(partner, f"Provenance/{member}/{key}"),
        "meta": {"tag": [{"system": TAG_SYSTEM, "code": partner}]},
        "target": [{"reference": t} for t in sorted(targets)],
        "recorded": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "activity": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation",
                                 "code": "CREATE", "display": "create"}]},
        "agent": [{"type": {"coding": [{"system": PARTICIPANT_TYPE, "code": "author", "display": "Author"}]},
                   "who": who},
                  {"type": {"coding": [{"system": US_CORE_PARTICIPANT_TYPE, "code": "transmitter",
                                        "display": "Transmitter"}]}, "who": who}],
        "entity": [{"role": "source", "what": {
            "identifier": {"system": PARTNER_SYSTEM, "value": partner_base},
            "display": f"payer-to-payer export from {partner}"
                       + (f" (transactionTime {transaction_time})" if transaction_time else "")}}],
    }


@dataclass(frozen=True)
class MemberBatch:
    """One member's transaction: PUT entries for the changed resources and a Provenance covering them."""
    entries: list[dict]
    rows: list[dict]          # `ingested` rows to record once HAPI committed
    skipped_invalid: list[str]
    unchanged: int            # received again exactly as ingested before


def member_batch(partner: str, partner_base: str, member: str | None, resources: list[dict], remapper: Remapper,
                 previous: dict[str, str], invalid: dict[str, str], transaction_time: str | None,
                 now: float) -> MemberBatch:
    entries, rows, targets, digests = [], [], [], []
    unchanged = 0
    skipped = [f"{source}: {invalid[source]}" for source in (source_of(r) for r in resources) if source in invalid]
    received = {source_of(r) for r in resources}
    written: set[str] = set()
    # Received Provenances last: whether one is kept depends on what else is written.
    for resource in sorted(resources, key=lambda r: r.get("resourceType") == "Provenance"):
        source = source_of(resource)
        if source in invalid or resource.get("resourceType") in NOT_INGESTED:
            continue
        content = digest(resource)
        if previous.get(source) == content:
            unchanged += 1
            continue
        if resource.get("resourceType") == "Provenance" and not _accompanies(resource, written, received,
                                                                             partner_base):
            continue
        written.add(source)
        local = remapper.remap(resource)
        target = f"{local['resourceType']}/{local['id']}"
        entries.append({"resource": local, "request": {"method": "PUT", "url": target}})
        rows.append({"partner": partner, "source": source, "local": target, "member": member, "digest": content,
                     "at": now})
        targets.append(target)
        digests.append(content)
    if entries:
        record = provenance(partner, partner_base, member, targets, digests, transaction_time)
        entries.append({"resource": record, "request": {"method": "PUT", "url": f"Provenance/{record['id']}"}})
    return MemberBatch(entries, rows, skipped, unchanged)
