"""`$member-match` (HRex 1.2.0 OperationDefinition member-match and its matching logic; PDex §pdex-197..202):
a unique match, twins told apart, no match and several matches refused with 422, a consent that cannot be
honoured refused, malformed input a 400 naming the element."""
from __future__ import annotations

from sidecar.conformance.context import Context
from sidecar.conformance.fixtures import MATCH
from sidecar.conformance.groups.partner_requests import OTHER_RECIPIENT, match, matched_patient, member_match, parts
from sidecar.conformance.model import Group

GROUP = Group("member-match", "$member-match",
              "HRex 1.2.0 $member-match (parameters, matching logic: 422 on no match / multiple matches / consent "
              "not honoured); PDex 2.2.0 §pdex-197..§pdex-202 (MemberIdentifier SHALL, MemberId SHOULD); "
              "HRex Consent profile (#regular, #sensitive)")


def refused(ctx: Context, answer, code: str | None, why: str) -> None:
    body = ctx.fhir(answer, 422, "OperationOutcome")
    ctx.keep(f"$member-match refusal ({why})", body)
    issues = body.get("issue", [])
    ctx.expect(issues and issues[0].get("severity") in ("error", "fatal"), "the OperationOutcome has no error issue")
    if code:
        ctx.expect(code in {i.get("code") for i in issues}, f"the OperationOutcome's issue code is not {code}")


async def matched(ctx: Context, key: str, policy: str) -> str:
    answer = await match(ctx, key, policy)
    ctx.keep("$member-match answer", answer.json())
    reference = matched_patient(ctx, answer)
    expected = ctx.target.fixtures.member(key).member_id
    if expected and reference:
        ctx.expect(reference.endswith(expected), f"matched {reference}, not {expected}")
    return reference


@GROUP.check("match", "a member this payer covers is matched: 200 Parameters with MemberIdentifier (and MemberId "
                      "naming the member, when given)")
async def plain(ctx: Context) -> None:
    ctx.expect(ctx.target.fixtures.member("plain").expect == MATCH, "fixture 'plain' is not a match")
    await matched(ctx, "plain", "regular")


@GROUP.check("twins", "twins on one card, one surname and one birth date are each matched to themselves")
async def twins(ctx: Context) -> None:
    first = await matched(ctx, "twin_a", "regular")
    second = await matched(ctx, "twin_b", "regular")
    ctx.expect(not (first and second) or first != second, f"both twins were matched to {first}")


@GROUP.check("not-found", "a person this payer does not cover: 422 OperationOutcome, issue code not-found")
async def not_found(ctx: Context) -> None:
    refused(ctx, await match(ctx, "nobody", "regular"), "not-found", "no match")


@GROUP.check("multiple-matches", "two members it cannot tell apart: 422, issue code multiple-matches, no "
                                 "member named")
async def multiple(ctx: Context) -> None:
    answer = await match(ctx, "ambiguous", "regular")
    refused(ctx, answer, "multiple-matches", "several matches")
    ctx.expect(b"pdexconf-" not in answer.body, "the refusal names a member")


@GROUP.check("consent-regular", "a #regular Consent naming this payer and the requester is honoured (200)")
async def consent_regular(ctx: Context) -> None:
    await matched(ctx, "history_regular", "regular")


@GROUP.check("consent-sensitive", "a #sensitive Consent is honoured (200)")
async def consent_sensitive(ctx: Context) -> None:
    await matched(ctx, "history_sensitive", "sensitive")


@GROUP.check("consent-not-honourable", "a Consent whose recipient is another organization: 422, no member "
                                       "identifier returned")
async def consent_refused(ctx: Context) -> None:
    answer = await match(ctx, "plain", "regular", recipient=OTHER_RECIPIENT)
    refused(ctx, answer, None, "consent not honourable")
    ctx.expect(b"MemberIdentifier" not in answer.body, "a refused consent still returned the MemberIdentifier")


@GROUP.check("consent-unknown-policy", "a Consent with a policy other than #regular or #sensitive: 422")
async def consent_policy(ctx: Context) -> None:
    refused(ctx, await match(ctx, "plain", "everything"), None, "unknown consent policy")


@GROUP.check("malformed-birthdate", "a malformed MemberPatient.birthDate: 400 OperationOutcome whose issue names "
                                    "the element")
async def malformed(ctx: Context) -> None:
    member = ctx.target.fixtures.member("plain")
    body = {"resourceType": "Parameters", "parameter": parts(ctx, member, None)}
    body["parameter"][0]["resource"]["birthDate"] = "1990-13-45"
    answer = await member_match(ctx, body)
    outcome = ctx.fhir(answer, 400, "OperationOutcome")
    ctx.keep("$member-match refusal (malformed)", outcome)
    named = " ".join([*(e for i in outcome.get("issue", []) for e in i.get("expression", [])),
                      *(str(i.get("diagnostics", "")) for i in outcome.get("issue", []))])
    ctx.expect("birthDate" in named, "the OperationOutcome does not name birthDate")


@GROUP.check("missing-member-patient", "Parameters without MemberPatient: 400 naming it")
async def missing(ctx: Context) -> None:
    member = ctx.target.fixtures.member("plain")
    answer = await member_match(ctx, {"resourceType": "Parameters", "parameter": parts(ctx, member, None)[1:]})
    outcome = ctx.fhir(answer, 400, "OperationOutcome")
    ctx.expect("MemberPatient" in answer.body.decode(errors="replace"), "the OperationOutcome does not name "
                                                                        "MemberPatient")
    ctx.keep("$member-match refusal (missing MemberPatient)", outcome)


@GROUP.check("reference-rule", "a CoverageToMatch whose beneficiary is not the MemberPatient: refused (400 or 422)")
async def reference_rule(ctx: Context) -> None:
    member = ctx.target.fixtures.member("plain")
    body = {"resourceType": "Parameters", "parameter": parts(ctx, member, None)}
    body["parameter"][1]["resource"]["beneficiary"] = {"reference": "Patient/someone-else"}
    answer = await member_match(ctx, body)
    ctx.fhir(answer, (400, 422), "OperationOutcome")


@GROUP.check("scope-required", "a token without the $member-match scope: 403 (or 401), no match")
async def scope_required(ctx: Context) -> None:
    member = ctx.target.fixtures.member("plain")
    answer = await member_match(ctx, {"resourceType": "Parameters", "parameter": parts(ctx, member, None)},
                                scope="system/*.read")
    ctx.expect(answer.status in (401, 403), f"got {answer.status} without the operation scope")
