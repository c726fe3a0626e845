"""`$bulk-member-match` (PDex 2.2.0 §2.1-2.5: BulkMemberMatch, async per Bulk Data, the three Member Match Groups
as Group ndjson §pdex-137/§pdex-138b, the 2.1.0 Parameters ndjson §pdex-138a, contained submitted Patients
§pdex-150..152, consent judged per member §pdex-154)."""
from __future__ import annotations

from sidecar.conformance.context import Context
from sidecar.conformance.groups.partner_requests import bulk_match, member_bundle, members_of
from sidecar.conformance.model import Group

GROUP = Group("bulk-member-match", "$bulk-member-match",
              "PDex 2.2.0 BulkMemberMatch: async kick-off/poll/manifest (§pdex-137, §pdex-397), Member Match Group "
              "profiles (match, nomatch, consentconstraint; §2.5), Group ndjson §pdex-138b, Parameters ndjson "
              "§pdex-138a, contained submitted Patient §pdex-150..152, per-member consent §pdex-154")
CONTAINED = "http://hl7.org/fhir/us/davinci-pdex/StructureDefinition/base-ext-match-parameters"


@GROUP.check("kick-off-and-poll", "POST Group/$bulk-member-match (Prefer: respond-async): 202 with "
                                  "Content-Location; polling ends in 200 with a manifest")
async def kick_off(ctx: Context) -> None:
    result = await bulk_match(ctx)
    ctx.expect(result.manifest.get("transactionTime"), "the manifest has no transactionTime")
    ctx.expect(result.manifest.get("requiresAccessToken") is True, "the manifest SHALL say requiresAccessToken")


@GROUP.check("three-groups", "the Group file holds the matched, not-matched and consent-constrained Groups, each "
                             "member where it belongs")
async def three_groups(ctx: Context) -> None:
    result = await bulk_match(ctx)
    ctx.expect({"match", "nomatch", "consentconstraint"} <= set(result.groups),
               f"Groups by code: {sorted(result.groups)}; expected match, nomatch and consentconstraint")
    expected = ctx.target.fixtures.member("bulk_match").member_id
    matched = members_of(result.groups["match"])
    ctx.expect(len(matched) == 1, f"the match Group has {len(matched)} members, expected 1")
    ctx.expect(not expected or matched[0].endswith(expected), f"matched {matched[0]}, not {expected}")
    ctx.expect(len(result.groups["nomatch"].get("member", [])) == 1, "the nomatch Group should hold one member")
    constrained = result.groups["consentconstraint"].get("member", [])
    ctx.expect(len(constrained) == 1, "the consentconstraint Group should hold one member")
    ctx.expect("pdexconf-" not in str(result.groups["consentconstraint"].get("text", "")),
               "the consent-constrained Group says why")


@GROUP.check("group-shape", "each Group: type person, actual true, managingEntity, the requester as "
                            "characteristic; each member's submitted Patient contained, without server meta")
async def group_shape(ctx: Context) -> None:
    result = await bulk_match(ctx)
    ctx.expect(result.groups, "no Group to look at")
    for code, group in result.groups.items():
        ctx.expect(group.get("type") == "person" and group.get("actual") is True,
                   f"the {code} Group is not type person, actual true")
        ctx.expect(group.get("managingEntity"), f"the {code} Group has no managingEntity")
        ctx.expect(group.get("characteristic"), f"the {code} Group has no characteristic")
        contained = {f"#{c.get('id')}": c for c in group.get("contained", [])}
        for member in group.get("member", []):
            links = [e.get("valueReference", {}).get("reference") for e in member.get("entity", {}).get(
                "extension", []) if e.get("url") == CONTAINED]
            ctx.expect(links and links[0] in contained, f"a member of the {code} Group does not point to its "
                                                        "contained submitted Patient")
            meta = contained[links[0]].get("meta", {})
            ctx.expect(not {"versionId", "lastUpdated", "security"} & set(meta),
                       f"a contained Patient in the {code} Group keeps server meta (§pdex-151a)")


@GROUP.check("parameters-file", "the manifest also lists the PDex 2.1.0 Parameters ndjson (MatchedMembers, "
                                "NonMatchedMembers, ConsentConstrainedMembers)", required=False)
async def parameters_file(ctx: Context) -> None:
    result = await bulk_match(ctx)
    ctx.expect(result.parameters, "no Parameters file in the manifest (PDex 2.2.0 §pdex-138a: MAY)")
    names = {p.get("name") for envelope in result.parameters for p in envelope.get("parameter", [])}
    ctx.expect({"MatchedMembers", "NonMatchedMembers", "ConsentConstrainedMembers"} <= names,
               f"the Parameters file holds {sorted(n for n in names if n)}")


@GROUP.check("files-need-token", "the Group file is refused without a token (requiresAccessToken)")
async def files_need_token(ctx: Context) -> None:
    result = await bulk_match(ctx)
    url = next((i.get("url") for i in result.manifest.get("output", []) if i.get("type") == "Group"), None)
    ctx.expect(url, "no Group file in the manifest")
    answer = await ctx.request("GET", url, headers={"Accept": "application/fhir+ndjson"})
    ctx.expect(answer.status in (401, 403), f"the file without a token got {answer.status}")


@GROUP.check("sync-refused-or-async", "a kick-off without Prefer: respond-async is refused (400) or still "
                                      "answered asynchronously (202)", required=False)
async def sync_kick_off(ctx: Context) -> None:
    body = {"resourceType": "Parameters", "parameter": [member_bundle(ctx, "bulk_nobody")]}
    answer = await ctx.request("POST", "Group/$bulk-member-match", bearer=await ctx.token(), body=body)
    ctx.expect(answer.status in (202, 400), f"got {answer.status}")
    if answer.status == 202 and answer.header("Content-Location"):
        await ctx.request("DELETE", answer.header("Content-Location"), bearer=await ctx.token())


@GROUP.check("scope-required", "a token without the $bulk-member-match scope: 403 (or 401)")
async def scope_required(ctx: Context) -> None:
    body = {"resourceType": "Parameters", "parameter": [member_bundle(ctx, "bulk_nobody")]}
    answer = await ctx.request("POST", "Group/$bulk-member-match", bearer=await ctx.token(scope="system/*.read"),
                               body=body, headers={"Prefer": "respond-async"})
    ctx.expect(answer.status in (401, 403), f"got {answer.status} without the operation scope")
