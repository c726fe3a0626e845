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
- Atomicity. Each member's resources and their Provenance go in one HAPI transaction: a failure leaves nothing of
  that member's batch behind, and the member is marked `ingest-failed` to be retried.
"""
from __future__ import annotations

import copy
import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone

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
    for resource in resources:
        source = source_of(resource)
        if source in invalid or resource.get("resourceType") in NOT_INGESTED:
            continue
        content = digest(resource)
        if previous.get(source) == content:
            unchanged += 1
            continue
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
