"""`POST /fhir/Patient/$member-match` (HRex): parse and validate, check consent, throttle, match, grant, answer.

Order matters for what a partner can learn. The request's shape and its Consent's terms (status, period, actors,
policy) do not depend on who the member is, so they are checked before any matching: a consent that cannot be
honoured is refused the same way whether or not the person exists. After matching, a refusal says only
`not-found` or `multiple-matches`; which fields were close goes to the audit log, never to the partner.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import orjson
from aiohttp import web
from fhir.resources.R4B.parameters import Parameters
from pydantic import ValidationError

from sidecar.gate.caller import CALLER_KEY, Caller
from sidecar.auth.directory import Directory
from sidecar.auth.middleware import forbidden, note_audit, note_refusal
from sidecar.config import Settings
from sidecar.fhir.body import BodyTooLarge, read_limited
from sidecar.fhir.outcome import fhir_json_response, outcome_response
from sidecar.hapi.client import HapiClient
from sidecar.matching import throttle
from sidecar.matching.candidates import CandidateSource
from sidecar.matching.consent import ConsentTerms, evaluate
from sidecar.matching.matcher import Matcher
from sidecar.matching.name_frequency import RosterNames
from sidecar.matching.person import person_of
from sidecar.matching.scoring import Scorer, Verdict
from sidecar.metrics.registry import Metrics
from sidecar.store.db import Store
from sidecar.store.grants import Grant, add_grant

log = logging.getLogger("sidecar.matching")

OPERATION = "http://hl7.org/fhir/us/davinci-hrex/OperationDefinition/member-match"
PARAMETER_TYPES = {"MemberPatient": "Patient", "CoverageToMatch": "Coverage", "CoverageToLink": "Coverage",
                   "Consent": "Consent"}
MAX_BODY = 1024 * 1024
MEMBER_TYPE = [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MB"},
               {"system": "http://hl7.org/fhir/us/davinci-hrex/CodeSystem/hrex-temp", "code": "UMB"}]


@dataclass(frozen=True)
class MatchRequest:
    patient: dict
    coverage: dict
    consent: dict | None


@dataclass(frozen=True)
class Resolution:
    outcome: str                  # "match", "not-found", "multiple-matches", "consent" or "throttled"
    patient: dict | None = None   # the matched Patient
    coverages: list[dict] = field(default_factory=list)
    reason: str | None = None     # why consent or throttling refused (audit only)
    explanation: dict | None = None  # the scores (audit only)


MEMBER_MATCH, INVALID = "member-match", "invalid"  # the metrics' operation, and outcome of a malformed request


class BadRequest(Exception):
    def __init__(self, message: str, expression: str | None = None) -> None:
        super().__init__(message)
        self.expression = expression


def _where(location: tuple[Any, ...], names: list[str]) -> str:
    parts = ["Parameters"]
    for i, part in enumerate(location):
        if isinstance(part, int) and i > 0 and location[i - 1] == "parameter" and part < len(names):
            parts[-1] += f"[{names[part]}]"
        elif isinstance(part, int):
            parts[-1] += f"[{part}]"
        else:
            parts.append(str(part))
    return ".".join(parts)


def parse(body: object) -> MatchRequest:
    """The operation's input, validated with fhir.resources (FHIR R4B models, R4-compatible for these types)."""
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise BadRequest("the body must be a Parameters resource")
    raw_parameters = body.get("parameter") if isinstance(body.get("parameter"), list) else []
    names = [p["name"] if isinstance(p, dict) and isinstance(p.get("name"), str) else "" for p in raw_parameters]
    found: dict[str, dict] = {}
    for name, parameter in zip(names, raw_parameters):
        if name not in PARAMETER_TYPES:
            raise BadRequest(f"unknown parameter {name!r}", f"Parameters.parameter[{name}]")
        if name in found:
            raise BadRequest(f"parameter {name} is given more than once", f"Parameters.parameter[{name}]")
        resource = parameter.get("resource")
        if not isinstance(resource, dict) or resource.get("resourceType") != PARAMETER_TYPES[name]:
            raise BadRequest(f"parameter {name} must carry a {PARAMETER_TYPES[name]} resource",
                             f"Parameters.parameter[{name}].resource")
        found[name] = resource
    try:
        Parameters.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise BadRequest(f"{first['msg']}", _where(tuple(first["loc"]), names)) from exc
    except (KeyError, TypeError, ValueError) as exc:  # fhir.resources on an unknown nested (contained) resource type
        raise BadRequest("the Parameters resource is not valid FHIR R4 (an unknown resource type inside?)") from exc
    for name in ("MemberPatient", "CoverageToMatch"):
        if name not in found:
            raise BadRequest(f"parameter {name} is required", f"Parameters.parameter[{name}]")
    patient, coverage = found["MemberPatient"], found["CoverageToMatch"]
    if not any(isinstance(n, dict) and (n.get("family") or n.get("given")) for n in patient.get("name") or ()):
        raise BadRequest("MemberPatient needs a name", "Parameters.parameter[MemberPatient].resource.name")
    if patient.get("id"):
        for name, element in (("CoverageToMatch", "beneficiary"), ("Consent", "patient")):
            reference = (found.get(name) or {}).get(element, {}).get("reference")
            if reference and reference != f"Patient/{patient['id']}":
                raise BadRequest(f"{name}.{element} must refer to the MemberPatient (Patient/{patient['id']})",
                                 f"Parameters.parameter[{name}].resource.{element}")
    return MatchRequest(patient, coverage, found.get("Consent"))


def member_identifier(patient: dict, coverages: list[dict], system: str) -> dict:
    """The member's identifier at this payer: a Patient identifier typed MB/UMB, else one in the configured
    system, else the card's subscriber id, else the Patient id."""
    identifiers = [i for i in patient.get("identifier") or () if isinstance(i, dict) and i.get("value")]
    for identifier in identifiers:
        codes = {c.get("code") for c in (identifier.get("type") or {}).get("coding") or () if isinstance(c, dict)}
        if codes & {"MB", "UMB"}:
            return {"system": identifier.get("system"), "value": identifier["value"]}
    for identifier in identifiers:
        if system and identifier.get("system") == system:
            return {"system": system, "value": identifier["value"]}
    for coverage in coverages:
        if coverage.get("subscriberId"):
            return {"value": coverage["subscriberId"]}
    return {"value": patient["id"]}


def _logical(reference: object) -> object:
    """Another payer's literal reference cannot resolve here; keep what identifies it (identifier, display)."""
    if not isinstance(reference, dict):
        return reference
    kept = {k: v for k, v in reference.items() if k in ("identifier", "display", "type")}
    if "reference" in reference and "display" not in kept:
        kept["display"] = str(reference["reference"])
    return kept


def consent_to_store(consent: dict, patient_id: str, organization: str) -> dict:
    stored = {k: v for k, v in consent.items() if k not in ("id", "meta", "contained")}
    stored["patient"] = {"reference": f"Patient/{patient_id}"}
    stored["performer"] = [{"reference": f"Patient/{patient_id}"}]
    stored["identifier"] = [{"system": "urn:pdex-sidecar:member-match-requester", "value": organization}]
    provision = dict(stored.get("provision") or {})
    provision["actor"] = [{**actor, "reference": _logical(actor.get("reference"))}
                          for actor in provision.get("actor") or () if isinstance(actor, dict)]
    stored["provision"] = provision
    stored.pop("sourceReference", None)
    if isinstance(consent.get("sourceReference"), dict):
        stored["sourceReference"] = _logical(consent["sourceReference"])
    return stored


class MemberMatch:
    def __init__(self, settings: Settings, upstream: HapiClient, store: Store, directory: Directory,
                 scorer: Scorer, metrics: Metrics, roster_names: RosterNames | None = None) -> None:
        self.settings = settings
        self.metrics = metrics
        self.upstream = upstream
        self.store = store
        self.directory = directory
        self.matcher = Matcher(settings, scorer, CandidateSource(upstream))
        self.roster_names = roster_names
        self.candidates = self.matcher.candidates
        self.payer = frozenset(p.strip() for p in settings.payer_identifiers.split(",") if p.strip())
        self.limits = throttle.ThrottleSettings(settings.match_window_seconds, settings.match_card_variants,
                                                settings.match_failure_floor, settings.match_failure_rate)

    async def handle(self, request: web.Request) -> web.Response:
        caller: Caller = request[CALLER_KEY]
        if not caller.scopes.allows_operation("Patient", "$member-match"):
            return forbidden(request, "the access token's scopes do not allow $member-match")
        try:
            match_request = parse(await self._body(request))
            resolution = await self.resolve(caller, match_request)
        except BadRequest as exc:
            self.metrics.matches.labels(MEMBER_MATCH, INVALID).inc()
            note_refusal(request, str(exc))
            return outcome_response(400, "invalid", str(exc), expression=[exc.expression] if exc.expression else None)
        self.metrics.matches.labels(MEMBER_MATCH, resolution.outcome).inc()
        if resolution.explanation is not None:
            note_audit(request, match=resolution.explanation)
        if resolution.outcome == "consent":
            note_refusal(request, resolution.reason or "consent")
            return outcome_response(422, "business-rule", "the consent cannot be honoured")
        if resolution.outcome == "throttled":
            note_refusal(request, f"throttled: {resolution.reason}")
            return outcome_response(429, "throttled", "too many member-match attempts; try again later",
                                    headers={"Retry-After": str(int(self.limits.window_seconds))})
        if resolution.outcome != "match" or resolution.patient is None:
            note_refusal(request, resolution.outcome)
            diagnostics = ("no member matches the request" if resolution.outcome == "not-found"
                           else "the request matches more than one member")
            return outcome_response(422, resolution.outcome, diagnostics)
        patient, found = resolution.patient, resolution.coverages
        if not found and member_identifier(patient, [], self.settings.member_identifier_system) == {"value": patient["id"]}:
            found = (await self.candidates.coverages([patient["id"]]))[patient["id"]]  # the subscriber id, as a last resort
        return fhir_json_response(self._answer(patient, found))

    async def resolve(self, caller: Caller, match_request: MatchRequest, consent_required: bool = False,
                      grant: bool = True) -> Resolution:
        """One member's match, as `$member-match` and each member of `$bulk-member-match` need it: consent terms,
        throttling, matching, and on a match with a Consent (unless `grant` is False: a bulk match grants only once
        its Groups are stored) the stored Consent and the grant."""
        terms = self._consent_terms(match_request, caller, consent_required)
        if isinstance(terms, str):
            return Resolution("consent", reason=terms)
        if self.roster_names is not None:
            self.roster_names.start()  # the roster's names are read once matching is asked for, not at every start
        person = person_of(match_request.patient, [match_request.coverage], False)
        card = "|".join(sorted(person.card_ids))
        client_id = caller.client.client_id
        too_many = await self.store.run(throttle.refusal, self.store, self.limits, client_id,
                                        person.demographics_key, card)
        if too_many:
            return Resolution("throttled", reason=too_many)
        found = await self.matcher.match(person, match_request.coverage)
        verdict, patients, coverages = found.verdict, found.patients, found.coverages
        await self.store.run(throttle.record, self.store, client_id, person.demographics_key, card, verdict.outcome)
        explanation = _explain(verdict)
        if verdict.outcome != "match" or verdict.best is None:
            return Resolution(verdict.outcome, explanation=explanation)
        patient_id = verdict.best[0]
        if grant and terms is not None and match_request.consent is not None:
            await self._grant(caller, patient_id, match_request.consent, terms)
        return Resolution("match", patients[patient_id], coverages[patient_id], explanation=explanation)

    async def _body(self, request: web.Request) -> object:
        try:
            data = await read_limited(request, MAX_BODY)
        except BodyTooLarge as exc:
            raise BadRequest("the request body is too large") from exc
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise BadRequest("the request body is not JSON") from exc

    def _consent_terms(self, match_request: MatchRequest, caller: Caller,
                       consent_required: bool = False) -> ConsentTerms | str | None:
        if match_request.consent is None:
            if consent_required or self.settings.member_match_consent_required:
                return "a Consent is required"
            return None
        return evaluate(match_request.consent, datetime.now(timezone.utc), self.payer, caller.client.organization,
                        self.settings.timezone)

    async def _grant(self, caller: Caller, patient_id: str, consent: dict, terms: ConsentTerms) -> None:
        organization = caller.client.organization
        stored = await self.upstream.create(consent_to_store(consent, patient_id, organization))
        grant = Grant(organization, patient_id, terms.policy_uri, f"Consent/{stored.get('id')}",
                      terms.valid_from.timestamp(), terms.valid_until.timestamp())
        await self.store.run(add_grant, self.store, grant)
        self.directory.forget_grants(organization)

    def _answer(self, patient: dict, coverages: list[dict]) -> dict:
        identifier = {"type": {"coding": MEMBER_TYPE},
                      **member_identifier(patient, coverages, self.settings.member_identifier_system)}
        parameters = [{"name": "MemberIdentifier", "valueIdentifier": identifier}]
        if self.settings.member_match_member_id:
            parameters.append({"name": "MemberId", "valueReference": {"reference": f"Patient/{patient['id']}"}})
        return {"resourceType": "Parameters", "parameter": parameters}


def _explain(verdict: Verdict) -> dict:
    def one(item):
        if item is None:
            return None
        patient_id, score = item
        return {"patient": patient_id, "total": score.total, "individual": score.individual,
                "fields": {field: {"level": level, "weight": weight}
                           for field, (level, weight) in score.contributions.items()}}
    return {"outcome": verdict.outcome, "best": one(verdict.best), "runner_up": one(verdict.runner_up)}


def advertise_member_match(statement: dict, settings: Settings) -> None:
    """CapabilityStatement: the operation on Patient, as PDex and Inferno look for it."""
    for rest in statement.get("rest", []):
        for resource in rest.get("resource", []):
            if resource.get("type") == "Patient":
                resource["operation"] = [{"name": "member-match", "definition": OPERATION}]
