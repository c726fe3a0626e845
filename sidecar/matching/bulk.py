"""`POST /fhir/Group/$bulk-member-match` (PDex): many members matched in one asynchronous job.

The kick-off checks the envelope (Parameters with `MemberBundle` parameters) and answers 202 with the sidecar's
status URL; each member is then matched and its consent judged independently, with the same code as
`$member-match` (`MemberMatch.resolve`). A member that is malformed, or whose match fails, lands in
NonMatchedMembers (with an OperationOutcome in the manifest's error file) and never fails the batch. Results are
recorded per member, so a restart resumes where the job stopped. At the end the Member Match Groups and the matched
members' Consents are stored in HAPI in one transaction with conditional creates (a resumed job never makes them
twice); only then are the Groups recorded as this organization's and the grants made, together, so a job that
fails leaves neither behind. The Groups (`sidecar.matching.match_groups`) are the result: the manifest lists them as
a Group ndjson file (PDex 2.2.0) and, for PDex 2.1.0 requesters, a Parameters ndjson file carrying the 2.1.0 envelope.
"""
from __future__ import annotations

import asyncio
import logging
from datetime import date, datetime, timezone

import orjson
from aiohttp import web

from sidecar.gate.caller import CALLER_KEY, Caller
from sidecar.auth.middleware import forbidden, note_audit, note_refusal
from sidecar.auth.scopes import ScopeSet
from sidecar.config import Settings
from sidecar.disclosure.dates import utc_now
from sidecar.fhir.body import BodyTooLarge, read_limited
from sidecar.fhir.outcome import outcome_response
from sidecar.jobs.handlers import accepted
from sidecar.jobs.runner import OPERATION_OUTCOME, JobRunner, outcome_line
from sidecar.matching.consent import ConsentTerms, evaluate
from sidecar.matching.groups import GROUP_SEARCH_PARAMETERS
from sidecar.matching.match_groups import GROUP_IDENTIFIER_SYSTEM, GROUPS, MATCH_GROUP, NO_MATCH_GROUP, build_groups
from sidecar.matching.operation import INVALID, BadRequest, MemberMatch, consent_to_store, parse
from sidecar.metrics.registry import Metrics
from sidecar.store import jobs
from sidecar.store.clients import Client
from sidecar.store.db import Store
from sidecar.store.grants import Grant, add_grants

log = logging.getLogger("sidecar.matching")

OPERATION = "http://hl7.org/fhir/us/davinci-pdex/OperationDefinition/BulkMemberMatch"
MAX_BODY = 64 * 1024 * 1024


def _objects(value: object, where: str) -> list[dict]:
    """A JSON array of objects, else BadRequest naming `where` (FHIR JSON has no other shape for repeats)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadRequest(f"{where} must be an array", where)
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise BadRequest(f"{where}[{index}] must be an object", f"{where}[{index}]")
        if not isinstance(item.get("name"), str):
            raise BadRequest(f"{where}[{index}].name must be a string", f"{where}[{index}].name")
    return value


def members_of(body: object) -> list[dict]:
    """Each MemberBundle's parts as name → resource. The envelope's shape is checked here (a 400 naming the
    element); what a member's resources say is judged per member in the job, so one bad member never fails the
    batch."""
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise BadRequest("the body must be a Parameters resource")
    members = []
    for i, bundle in enumerate(_objects(body.get("parameter"), "Parameters.parameter")):
        where = f"Parameters.parameter[{i}]"
        if bundle["name"] != "MemberBundle":
            raise BadRequest(f"unknown parameter {bundle['name'][:60]!r}", f"{where}.name")
        member: dict[str, object] = {}
        for j, part in enumerate(_objects(bundle.get("part"), f"{where}.part")):
            if part["name"] in member:
                raise BadRequest(f"part {part['name'][:60]!r} is given more than once", f"{where}.part[{j}]")
            if "resource" in part and not isinstance(part["resource"], dict):
                raise BadRequest(f"{where}.part[{j}].resource must be an object", f"{where}.part[{j}].resource")
            member[part["name"]] = part.get("resource")
        members.append(member)
    if not members:
        raise BadRequest("at least one MemberBundle parameter is required", "Parameters.parameter[MemberBundle]")
    return members


def _parameters(member: dict) -> dict:
    return {"resourceType": "Parameters", "parameter": [{"name": name, "resource": resource}
                                                        for name, resource in member.items()]}


def _problem(index: int, exc: BadRequest) -> str:
    return f"MemberBundle {index + 1}: {exc}" + (f" ({exc.expression})" if exc.expression else "")


def _input_problem(member: dict, index: int) -> str | None:
    """What is wrong with a member's input, from the input alone (so a resumed job reports it too)."""
    try:
        parse(_parameters(member))
    except BadRequest as exc:
        return _problem(index, exc)
    return None


def _record(store: Store, organization: str, job_id: str, groups: dict[str, str], grants: list[Grant]) -> None:
    """The job's Groups and grants, together or not at all; a resumed job whose Groups are recorded adds none (the
    lock makes that check hold when a replica that lost the job's lease records them at the same moment)."""
    with store.transaction(lock="member-groups"):
        if set(groups.values()) <= set(jobs.groups_of(store, organization)):
            return
        jobs.record_groups(store, organization, job_id, groups)
        add_grants(store, grants)


class BulkMemberMatch:
    def __init__(self, settings: Settings, store: Store, runner: JobRunner, single: MemberMatch,
                 metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.store = store
        self.runner = runner
        self.single = single
        runner.register(jobs.BULK_MATCH, self.run)
        payer = next((p for p in single.payer if "|" in p), None)
        named = ({"identifier": dict(zip(("system", "value"), payer.split("|", 1)))} if payer
                 else {"display": "this payer"})
        # The 2.2.0 profiles limit managingEntity to an Organization: the type says so without a literal reference.
        self.managing_entity = {"type": "Organization", **named}

    async def kickoff(self, request: web.Request) -> web.Response:
        caller: Caller = request[CALLER_KEY]
        if not caller.scopes.allows_operation("Group", "$bulk-member-match"):
            return forbidden(request, "the access token's scopes do not allow $bulk-member-match")
        try:
            try:
                members = members_of(orjson.loads(await read_limited(request, MAX_BODY)))
            except BodyTooLarge as exc:
                raise BadRequest("the request body is too large") from exc
            except orjson.JSONDecodeError as exc:
                raise BadRequest("the request body is not JSON") from exc
        except BadRequest as exc:
            note_refusal(request, str(exc))
            return outcome_response(400, "invalid", str(exc), expression=[exc.expression] if exc.expression else None)
        job = await self.store.run(self.runner.create, jobs.BULK_MATCH, caller.client.client_id,
                                   caller.client.organization, f"{self.settings.public_fhir_base}/Group/$bulk-member-match",
                                   {"members": members})
        self.runner.submit(job)
        note_audit(request, job=job.id, members=len(members))
        return accepted(self.settings, job)

    async def run(self, job: jobs.Job) -> None:
        members: list[dict] = job.params["members"]
        caller = await self._caller(job)
        done = await self.store.run(jobs.match_results, self.store, job.id)
        pending = [i for i in range(len(members)) if i not in done]
        errors: dict[int, str] = {}
        queue = asyncio.Queue()
        for index in pending:
            queue.put_nowait(index)

        async def worker() -> None:
            while not queue.empty():
                index = queue.get_nowait()
                outcome, patient_id = await self._one(caller, members[index], index, errors)
                await self.store.run(jobs.record_match_result, self.store, job.id, index, outcome, patient_id)
                done[index] = (outcome, patient_id)
                if len(done) % 25 == 0:
                    await self.runner.progress(job, f"matched {len(done)} of {len(members)} members")

        await asyncio.gather(*(worker() for _ in range(self.settings.bulk_match_concurrency)))
        for index, member in enumerate(members):
            if done[index][0] == "nomatch" and index not in errors:
                problem = _input_problem(member, index)
                if problem is not None:
                    errors[index] = problem
        await self.runner.progress(job, "storing the Member Match Groups")
        built = build_groups(job.id, job.organization, self.managing_entity, date.today().isoformat(), members, done)
        groups = built.groups
        consents = self._consents(job, caller, members, done)
        ids = await self.single.upstream.transaction([
            *({"resource": group, "request": {"method": "POST", "url": "Group", "ifNoneExist":
                                              f"identifier={GROUP_IDENTIFIER_SYSTEM}|{job.id}-{code}"}}
              for code, group in groups.items()),
            *({"resource": consent, "request": {"method": "POST", "url": "Consent", "ifNoneExist":
                                                f"identifier={GROUP_IDENTIFIER_SYSTEM}|{job.id}-consent-{index}"}}
              for index, (_, consent, _) in consents.items())])
        by_code = dict(zip(groups, (location.split("/")[1] for location in ids)))
        grants = [Grant(job.organization, patient_id, terms.policy_uri, location, terms.valid_from.timestamp(),
                        terms.valid_until.timestamp())
                  for (patient_id, _, terms), location in zip(consents.values(), ids[len(groups):])]
        await self.store.run(_record, self.store, job.organization, job.id, by_code, grants)
        self.single.directory.forget_grants(job.organization)
        stored = await self.single.upstream.by_ids("Group", list(by_code.values()))
        await self._write(job, stored, errors, built.warnings)

    def _consents(self, job: jobs.Job, caller: Caller, members: list[dict],
                  done: dict[int, tuple[str, str | None]]) -> dict[int, tuple[str, dict, ConsentTerms]]:
        """Member index → its Patient id here, the Consent to store and its terms, for each matched member whose consent can still be
        honoured (judged now: a resumed job may store long after the match)."""
        consents = {}
        now = datetime.now(timezone.utc)
        for index, (outcome, patient_id) in sorted(done.items()):
            consent = members[index].get("Consent")
            if outcome != "match" or patient_id is None or not isinstance(consent, dict):
                continue
            terms = evaluate(consent, now, self.single.payer, caller.client.organization, self.settings.timezone)
            if isinstance(terms, str):
                continue
            stored = consent_to_store(consent, patient_id, job.organization)
            stored["identifier"].append({"system": GROUP_IDENTIFIER_SYSTEM, "value": f"{job.id}-consent-{index}"})
            consents[index] = (patient_id, stored, terms)
        return consents

    async def _caller(self, job: jobs.Job) -> Caller:
        """The job's client as it is now (a client disabled since the kick-off matches nobody)."""
        client: Client | None = self.single.directory.clients.get(job.client_id)
        if client is None or not client.enabled:
            raise RuntimeError("the client that started this job is disabled")
        return Caller(client, ScopeSet.parse(client.scopes), {})

    async def _one(self, caller: Caller, member: dict, index: int, errors: dict[int, str]) -> tuple[str, str | None]:
        try:
            resolution = await self.single.resolve(caller, parse(_parameters(member)), consent_required=True,
                                                   grant=False)
        except BadRequest as exc:
            self.metrics.matches.labels(jobs.BULK_MATCH, INVALID).inc()
            errors[index] = _problem(index, exc)
            return "nomatch", None
        except Exception:  # one member's failure (HAPI trouble included) never fails the batch
            self.metrics.matches.labels(jobs.BULK_MATCH, "error").inc()
            log.exception("a bulk member could not be matched", extra={"member": index + 1})
            errors[index] = f"MemberBundle {index + 1}: could not be matched; it may be sent again later"
            return "nomatch", None
        self.metrics.matches.labels(jobs.BULK_MATCH, resolution.outcome).inc()
        if resolution.outcome == "match" and resolution.patient is not None:
            return "match", resolution.patient["id"]
        return ("consent", None) if resolution.outcome == "consent" else ("nomatch", None)

    async def _write(self, job: jobs.Job, groups: list[dict], errors: dict[int, str], warnings: list[str]) -> None:
        names = {code: name for code, name in GROUPS.values()}
        envelope = {"resourceType": "Parameters", "parameter": [
            {"name": names[c["code"]], "resource": g} for g in groups for c in g["code"]["coding"]]}
        files = [self.runner.write_file(job, "output", "Group", "groups.ndjson", [orjson.dumps(g) for g in groups]),
                 self.runner.write_file(job, "output", "Parameters", "parameters.ndjson", [orjson.dumps(envelope)])]
        lines = [outcome_line("error", "invalid", errors[i]) for i in sorted(errors)]
        lines += [outcome_line("warning", "duplicate", warning) for warning in warnings]
        if lines:
            files.append(self.runner.write_file(job, "error", OPERATION_OUTCOME, "errors.ndjson", lines))
        await self.runner.finish(job, files, utc_now().isoformat())


def advertise_bulk_member_match(statement: dict, settings: Settings) -> None:
    """CapabilityStatement: `$bulk-member-match` and `$davinci-data-export` on Group, plus the Bulk exports; Group
    names the Member Match Group profiles (PDex §3.3 Payer Access server: Group SHALL, pdex-member-match-group)."""
    for rest in statement.get("rest", []):
        for resource in rest.get("resource", []):
            if resource.get("type") == "Group":
                resource["supportedProfile"] = [MATCH_GROUP, NO_MATCH_GROUP]
                resource["searchParam"] = GROUP_SEARCH_PARAMETERS
                resource["operation"] = [
                    {"name": "bulk-member-match", "definition": OPERATION},
                    {"name": "davinci-data-export",
                     "definition": "http://hl7.org/fhir/us/davinci-atr/OperationDefinition/davinci-data-export"},
                    {"name": "export", "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export"}]
            if resource.get("type") == "Patient":
                resource.setdefault("operation", []).append(
                    {"name": "export", "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export"})
