"""The requests a partner payer sends, built from the fixtures: HRex $member-match Parameters with a Consent, PDex
MemberBundles, and the shared set-ups several groups build on (a granted member, a bulk match)."""
from __future__ import annotations

import asyncio
import copy
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sidecar.conformance.context import Answer, Context
from sidecar.conformance.fixtures import Member

HREX_CONSENT = "http://hl7.org/fhir/us/davinci-hrex/StructureDefinition-hrex-consent.html#"
OTHER_RECIPIENT = "Organization/pdex-conformance-someone-else"


def _reference(who: str) -> dict:
    """`Organization/x` as a reference, `system|value` as an identifier."""
    if "|" in who:
        system, _, value = who.partition("|")
        return {"identifier": {"system": system, "value": value}}
    return {"reference": who}


def consent(ctx: Context, policy: str = "regular", recipient: str | None = None) -> dict:
    """An HRex Consent: this payer (source, performer) may disclose to the requesting organization (IRCP)."""
    today = datetime.now(timezone.utc).date()
    return {
        "resourceType": "Consent", "id": "1", "status": "active",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope",
                              "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IDSCL"}]}],
        "patient": {"reference": "Patient/1"}, "performer": [{"reference": "Patient/1"}],
        "sourceReference": {"reference": "http://new-payer.example/DocumentReference/signed-consent"},
        "policy": [{"uri": HREX_CONSENT + policy}],
        "provision": {"type": "permit",
                      "period": {"start": (today - timedelta(days=1)).isoformat(),
                                 "end": (today + timedelta(days=365)).isoformat()},
                      "actor": [
                          {"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                                          "provenance-participant-type", "code": "performer"}]},
                           "reference": _reference(ctx.target.fixtures.payer_identifier)},
                          {"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                                "code": "IRCP"}]},
                           "reference": _reference(recipient or ctx.target.organization)}],
                      "action": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentaction",
                                              "code": "disclose"}]}]}}


def coverage_to_link(ctx: Context) -> dict:
    """The member's coverage at the requesting payer (HRex: a payer client SHALL send CoverageToLink)."""
    return {"resourceType": "Coverage", "id": "2", "status": "active", "beneficiary": {"reference": "Patient/1"},
            "subscriberId": f"new-plan-{ctx.target.fixtures.run}", "payor": [_reference(ctx.target.organization)]}


def parts(ctx: Context, member: Member, consent_resource: dict | None) -> list[dict]:
    found = [{"name": "MemberPatient", "resource": copy.deepcopy(member.patient)},
             {"name": "CoverageToMatch", "resource": copy.deepcopy(member.coverage)},
             {"name": "CoverageToLink", "resource": coverage_to_link(ctx)}]
    if consent_resource:
        found.append({"name": "Consent", "resource": consent_resource})
    return found


async def member_match(ctx: Context, body: dict, scope: str | None = None) -> Answer:
    bearer = await (ctx.token(scope=scope) if scope else ctx.token())
    return await ctx.request("POST", "Patient/$member-match", bearer=bearer, body=body)


async def match(ctx: Context, key: str, policy: str | None = "regular", recipient: str | None = None) -> Answer:
    member = ctx.target.fixtures.member(key)
    body = {"resourceType": "Parameters",
            "parameter": parts(ctx, member, consent(ctx, policy, recipient) if policy else None)}
    return await member_match(ctx, body)


def matched_patient(ctx: Context, answer: Answer) -> str:
    """`Patient/<id>` the server says the member is: MemberId when given (HRex 1.1.0+), else found by the
    MemberIdentifier it must return."""
    body = ctx.fhir(answer, 200, "Parameters")
    found = {p.get("name"): p for p in body.get("parameter", []) if isinstance(p, dict)}
    ctx.expect("MemberIdentifier" in found, "a match answer SHALL carry MemberIdentifier")
    reference = (found.get("MemberId") or {}).get("valueReference", {}).get("reference", "")
    return reference.split("/_history")[0] if reference else ""


async def granted(ctx: Context, key: str, policy: str) -> str:
    """The member matched under a consent of this policy: `Patient/<id>` as the server names it (once per run)."""
    async def make() -> str:
        answer = await match(ctx, key, policy)
        ctx.keep("$member-match answer", answer.json())
        reference = matched_patient(ctx, answer)
        expected = ctx.target.fixtures.member(key).member_id
        ctx.expect(not expected or not reference or reference.endswith(expected),
                   f"matched {reference}, the fixtures say {expected}")
        return reference or expected or ""
    return await ctx.once(f"$member-match of {key} under #{policy}", make)


def member_bundle(ctx: Context, key: str, recipient: str | None = None) -> dict:
    return {"name": "MemberBundle",
            "part": parts(ctx, ctx.target.fixtures.member(key), consent(ctx, "regular", recipient))}


@dataclass
class BulkMatch:
    status_url: str
    manifest: dict
    groups: dict[str, dict]           # Group code (match, nomatch, consentconstraint) → Group
    parameters: list[dict]            # the 2.1.0 Parameters ndjson, when the server gives it


async def await_job(ctx: Context, status_url: str, bearer: str) -> Answer:
    """Polls a Bulk Data status URL until it stops answering 202 (at most the target's timeout)."""
    deadline = time.monotonic() + ctx.target.timeout
    while True:
        answer = await ctx.request("GET", status_url, bearer=bearer, headers={"Accept": "application/json"})
        if answer.status != 202:
            return answer
        ctx.expect(time.monotonic() < deadline, f"the job was still running after {ctx.target.timeout:.0f} s")
        await asyncio.sleep(0.5)


async def download(ctx: Context, url: str, bearer: str | None) -> Answer:
    return await ctx.request("GET", url, bearer=bearer, headers={"Accept": "application/fhir+ndjson"})


async def bulk_match(ctx: Context) -> BulkMatch:
    """One $bulk-member-match of three members (a match, one this payer does not cover, one whose consent names
    another recipient), run once per run; what the bulk, Group, export and isolation groups build on."""
    async def make() -> BulkMatch:
        bearer = await ctx.token()
        body = {"resourceType": "Parameters", "parameter": [
            member_bundle(ctx, "bulk_match"), member_bundle(ctx, "bulk_nobody"),
            member_bundle(ctx, "bulk_constrained", recipient=OTHER_RECIPIENT)]}
        answer = await ctx.request("POST", "Group/$bulk-member-match", bearer=bearer, body=body,
                                   headers={"Prefer": "respond-async"})
        ctx.expect(answer.status == 202, f"the kick-off SHALL answer 202 Accepted, got {answer.status}")
        status_url = answer.header("Content-Location")
        ctx.expect(status_url, "the kick-off SHALL give the status URL in Content-Location")
        done = await await_job(ctx, status_url, bearer)
        manifest = ctx.fhir(done, 200)
        ctx.expect(isinstance(manifest.get("output"), list), "the completion manifest has no output list")
        groups: dict[str, dict] = {}
        parameters: list[dict] = []
        for item in manifest["output"]:
            if item.get("type") not in ("Group", "Parameters"):
                continue
            got = await download(ctx, item.get("url", ""), bearer)
            ctx.expect(got.status == 200, f"the {item.get('type')} file did not download")
            for resource in got.ndjson():
                ctx.keep(f"$bulk-member-match {resource.get('resourceType')}", resource)
                if resource.get("resourceType") == "Group":
                    codes = [c.get("code") for c in (resource.get("code") or {}).get("coding", [])]
                    groups[codes[0] if codes else ""] = resource
                elif resource.get("resourceType") == "Parameters":
                    parameters.append(resource)
        return BulkMatch(status_url, manifest, groups, parameters)
    return await ctx.once("$bulk-member-match", make)


def members_of(group: dict) -> list[str]:
    return [m.get("entity", {}).get("reference", "") for m in group.get("member", [])]
