"""Member Match Groups as a partner finds them again (PDex §3.3: Group read, search by identifier and
characteristic; PDex 2.2.0 §2.5 Member Match Group profiles)."""
from __future__ import annotations

from sidecar.conformance.context import Context
from sidecar.conformance.groups.partner_requests import bulk_match
from sidecar.conformance.model import Group

GROUP = Group("group-search", "Group read and search",
              "PDex §3.3 Payer Access CapabilityStatement (Group SHALL: read, search identifier/characteristic); "
              "PDex 2.2.0 §2.5 Member Match Groups")


async def match_group(ctx: Context) -> dict:
    result = await bulk_match(ctx)
    ctx.expect("match" in result.groups and result.groups["match"].get("id"), "the bulk match gave no match Group "
                                                                             "with an id")
    return result.groups["match"]


@GROUP.check("read", "GET Group/{id} of the requester's match Group: 200, the same members")
async def read(ctx: Context) -> None:
    group = await match_group(ctx)
    answer = await ctx.request("GET", f"Group/{group['id']}", bearer=await ctx.token())
    found = ctx.fhir(answer, 200, "Group")
    ctx.expect(found.get("member") == group.get("member"), "the Group read differs from the Group file")


@GROUP.check("search-by-identifier", "GET Group?identifier= finds the match Group")
async def by_identifier(ctx: Context) -> None:
    group = await match_group(ctx)
    identifier = (group.get("identifier") or [{}])[0]
    ctx.expect(identifier.get("value"), "the match Group has no identifier to search by")
    token = f"{identifier.get('system')}|{identifier['value']}" if identifier.get("system") else identifier["value"]
    answer = await ctx.request("GET", "Group", bearer=await ctx.token(), params={"identifier": token})
    bundle = ctx.fhir(answer, 200, "Bundle")
    ids = {e.get("resource", {}).get("id") for e in bundle.get("entry", [])}
    ctx.expect(group["id"] in ids, "the search did not find the match Group")


@GROUP.check("search-by-code", "GET Group?code=match lists the requester's match Groups, this one among them",
             required=False)
async def by_code(ctx: Context) -> None:
    group = await match_group(ctx)
    coding = group.get("code", {}).get("coding", [{}])[0]
    answer = await ctx.request("GET", "Group", bearer=await ctx.token(),
                               params={"code": f"{coding.get('system')}|{coding.get('code')}", "_count": "200"})
    bundle = ctx.fhir(answer, 200, "Bundle")
    ids = {e.get("resource", {}).get("id") for e in bundle.get("entry", [])}
    ctx.expect(group["id"] in ids, "the search did not find the match Group")
