"""Member Match Groups (PDex 2.2.0 profiles) built from a `$bulk-member-match` job's per-member results.

One Group per outcome: MatchedMembers always (the requester always has a Group to export from), NonMatchedMembers
and ConsentConstrainedMembers when not empty. Each is `type` person, `actual` true, managed by this payer (an
Organization reference), with the requesting organization and the match date as its characteristic; a consent
refusal's reason is never written (§pdex-154c).

Each member's submitted Patient is contained as submitted, keeping its id (the profiles: "preserving the original
resource id ... SHALL NOT modify"), without the meta elements a contained resource may not carry. Contained ids must
be unique within one Group, and requesters often give every MemberBundle's Patient the same local id, so:
- the same Patient submitted twice (e.g. with two Coverages) is contained once and named by both members;
- a different Patient with an id the Group already contains keeps everything but its id, which gets
  `-mb<MemberBundle position>` appended (its demographics and identifiers are what the requester correlates by;
  leaving it out would lose them), and a warning in the error file says so;
- a Patient without an id is given `mb<position>` (a contained resource is found by its id).
A submitted Patient that is not valid FHIR (HAPI would refuse the whole transaction over it) or that has contained
resources of its own is not contained: its member names it by its MemberBundle's position.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import orjson
from fhir.resources.R4B.coverage import Coverage
from fhir.resources.R4B.patient import Patient
from pydantic import ValidationError

RESULT_SYSTEM = "http://hl7.org/fhir/us/davinci-pdex/CodeSystem/PdexMultiMemberMatchResultCS"
MATCH_EXTENSION = "http://hl7.org/fhir/us/davinci-pdex/StructureDefinition/base-ext-match-parameters"
COVERAGE_EXTENSION = "http://hl7.org/fhir/us/davinci-pdex/StructureDefinition/base-ext-match-coverage"
MATCH_GROUP = "http://hl7.org/fhir/us/davinci-pdex/StructureDefinition/pdex-member-match-group"
NO_MATCH_GROUP = "http://hl7.org/fhir/us/davinci-pdex/StructureDefinition/pdex-member-no-match-group"
GROUP_IDENTIFIER_SYSTEM = "urn:pdex-sidecar:bulk-member-match"
ORGANIZATION_SYSTEM = "urn:pdex-sidecar:organization"
# Outcome of a member → (Group code, Parameters name)
GROUPS = {"match": ("match", "MatchedMembers"), "nomatch": ("nomatch", "NonMatchedMembers"),
          "consent": ("consentconstraint", "ConsentConstrainedMembers")}
NOT_CONTAINED_META = ("versionId", "lastUpdated", "security")


@dataclass
class BuiltGroups:
    groups: dict[str, dict]  # Group code → Group
    warnings: list[str] = field(default_factory=list)  # for the error file: what could not be kept as submitted


def _valid(model: type[Patient] | type[Coverage], resource: dict) -> bool:
    try:
        model.model_validate(resource)
    except (ValidationError, KeyError, TypeError, ValueError):  # fhir.resources raises these on odd nested input
        return False
    return True


def _without_forbidden_meta(resource: dict) -> dict:
    contained = copy.deepcopy(resource)
    meta = {k: v for k, v in (contained.pop("meta", None) or {}).items() if k not in NOT_CONTAINED_META}
    if meta:
        contained["meta"] = meta
    return contained


def containable(patient: object) -> dict | None:
    """The submitted Patient as it may be contained: unchanged but for the meta elements a contained resource may not
    carry; None when it cannot be contained unaltered (absent, not valid FHIR, or with contained resources of its
    own)."""
    if not isinstance(patient, dict) or patient.get("resourceType") != "Patient" or "contained" in patient:
        return None
    if not _valid(Patient, patient):
        return None
    return _without_forbidden_meta(patient)


def contain_coverages(chosen: list[int], members: list[dict], names: dict[int, dict],
                      taken: set[str]) -> tuple[list[dict], dict[int, dict]]:
    """PDex 2.2.0 §pdex-153: where one submitted Patient comes in several MemberBundles of a Group with different
    CoverageToMatch, each of those Coverages contained (its beneficiary the contained Patient), and per member
    index the Reference to it. Ids are made here, never taken from `taken`."""
    by_patient: dict[str, list[int]] = {}
    for index in chosen:
        if "reference" in names[index]:
            by_patient.setdefault(names[index]["reference"], []).append(index)
    contained: list[dict] = []
    references: dict[int, dict] = {}
    for patient_ref, indexes in by_patient.items():
        coverages = {i: members[i].get("CoverageToMatch") for i in indexes}
        usable = {i: c for i, c in coverages.items()
                  if isinstance(c, dict) and c.get("resourceType") == "Coverage" and "contained" not in c
                  and _valid(Coverage, c)}
        if len({orjson.dumps(c, option=orjson.OPT_SORT_KEYS) for c in usable.values()}) < 2:
            continue
        for index, coverage in usable.items():
            given = _fresh(f"coverage-mb{index + 1}", taken)
            taken.add(given)
            contained.append({**_without_forbidden_meta(coverage), "id": given,
                              "beneficiary": {"reference": patient_ref}})
            references[index] = {"reference": f"#{given}"}
    return contained, references


def _fresh(wanted: str, taken: set[str]) -> str:
    candidate, n = wanted, 1
    while candidate in taken:
        n += 1
        candidate = f"{wanted}-{n}"
    return candidate


def contain(submitted: list[tuple[int, dict | None]]) -> tuple[list[dict], dict[int, dict], list[int]]:
    """One Group's contained Patients; for each member index, the Reference naming its submitted Patient; and the
    members whose Patient's id had to be changed because another member's different Patient has it. An id made
    here is never one a member submitted, so no submitted id is taken from the member who gave it."""
    reserved = {p["id"] for _, p in submitted if p is not None and "id" in p}
    kept: dict[str, dict] = {}
    seen: dict[bytes, str] = {}  # a submitted Patient, as submitted → its id in the Group
    names: dict[int, dict] = {}
    renamed: list[int] = []
    for index, patient in submitted:
        if patient is None:
            names[index] = {"display": f"MemberBundle {index + 1}"}
            continue
        as_submitted = orjson.dumps(patient, option=orjson.OPT_SORT_KEYS)
        if as_submitted not in seen:
            submitted_id = patient.get("id")
            if submitted_id is not None and submitted_id not in kept:
                given = submitted_id
            else:
                stem = f"{submitted_id[:40]}-mb{index + 1}" if submitted_id is not None else f"mb{index + 1}"
                given = _fresh(stem, reserved | set(kept))
                if submitted_id is not None:
                    renamed.append(index)
            kept[given] = {**patient, "id": given}
            seen[as_submitted] = given
        names[index] = {"reference": f"#{seen[as_submitted]}"}
    return list(kept.values()), names, renamed


def _positions(indexes: list[int], shown: int = 20) -> str:
    text = ", ".join(str(i + 1) for i in indexes[:shown])
    return text + (f" and {len(indexes) - shown} more" if len(indexes) > shown else "")


def build_groups(job_id: str, organization: str, managing_entity: dict, today: str, members: list[dict],
                 done: dict[int, tuple[str, str | None]]) -> BuiltGroups:
    """`done`: member index → (outcome, the matched Patient's id here)."""
    requester = {"identifier": {"system": ORGANIZATION_SYSTEM, "value": organization}, "display": organization}
    built = BuiltGroups({})
    for outcome, (code, name) in GROUPS.items():
        chosen = [i for i in range(len(members)) if done[i][0] == outcome]
        if not chosen and outcome != "match":
            continue
        contained, names, renamed = contain([(i, containable(members[i].get("MemberPatient"))) for i in chosen])
        if renamed:
            built.warnings.append(f"{len(renamed)} submitted Patients in the {name} Group have the id of another "
                                  "member's different Patient there; each is contained with -mb<MemberBundle "
                                  f"position> appended to its id (MemberBundles {_positions(renamed)})")
        coverages, coverage_of = contain_coverages(chosen, members, names, {p["id"] for p in contained})
        contained += coverages
        entries = []
        for index in chosen:
            target = {"reference": f"Patient/{done[index][1]}"} if outcome == "match" else names[index]
            extensions = [{"url": MATCH_EXTENSION, "valueReference": names[index]}]
            if index in coverage_of:
                extensions.append({"url": COVERAGE_EXTENSION, "valueReference": coverage_of[index]})
            entries.append({"entity": {**target, "extension": extensions}})
        coding = {"system": RESULT_SYSTEM, "code": code}
        group = {"resourceType": "Group", "meta": {"profile": [MATCH_GROUP if outcome == "match" else NO_MATCH_GROUP]},
                 "identifier": [{"system": GROUP_IDENTIFIER_SYSTEM, "value": f"{job_id}-{code}"}],
                 "type": "person", "actual": True, "code": {"coding": [coding]},
                 "characteristic": [{"code": {"coding": [coding]}, "valueReference": requester, "exclude": False,
                                     "period": {"start": today}}],
                 "managingEntity": managing_entity, "quantity": len(entries)}
        if contained:
            group["contained"] = contained
        if entries:
            group["member"] = entries
        built.groups[code] = group
    return built
