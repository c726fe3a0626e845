"""Partner isolation: a second partner's client sees none of the first's members, Groups, jobs or files
(PDex §1.6 / §5: access limited to the members a partner matched with consent; Bulk Data STU2 §3.2/§3.4: status
and files belong to the requester; HRex consent)."""
from __future__ import annotations

from sidecar.conformance.context import Context
from sidecar.conformance.groups.export import one as export_of
from sidecar.conformance.groups.partner_requests import bulk_match, granted
from sidecar.conformance.model import Group

GROUP = Group("isolation", "Partner isolation",
              "PDex 2.2.0 payer-to-payer exchange (data only for members matched with the requester's consent); "
              "Bulk Data STU2 (status and files only for the client that started the job); HRex Consent")
NOT_THERE = (401, 403, 404)


async def second_token(ctx: Context) -> str:
    return await ctx.token(ctx.second_client())


@GROUP.check("member-read", "the other client reading the first's matched member gets 403/404")
async def member_read(ctx: Context) -> None:
    bearer = await second_token(ctx)
    member = await granted(ctx, "history_regular", "regular")
    ctx.expect(member, "the first client's match named no member")
    answer = await ctx.request("GET", member, bearer=bearer)
    ctx.expect(answer.status in NOT_THERE, f"the other client read {member}: {answer.status}")


@GROUP.check("member-search", "the other client's searches of the first's member find nothing")
async def member_search(ctx: Context) -> None:
    bearer = await second_token(ctx)
    member = await granted(ctx, "history_regular", "regular")
    for resource_type, params in (("Patient", {"_id": member.split("/")[-1]}),
                                  ("Observation", {"patient": member.split("/")[-1]})):
        answer = await ctx.request("GET", resource_type, bearer=bearer, params=params)
        bundle = ctx.fhir(answer, (200, 403, 404))
        ctx.expect(not bundle.get("entry"), f"the other client's {resource_type} search found the first's data")


@GROUP.check("group", "the other client gets 403/404 for the first's match Group and does not find it by search")
async def group(ctx: Context) -> None:
    bearer = await second_token(ctx)
    result = await bulk_match(ctx)
    group_id = (result.groups.get("match") or {}).get("id")
    ctx.expect(group_id, "the first client's bulk match gave no Group")
    answer = await ctx.request("GET", f"Group/{group_id}", bearer=bearer)
    ctx.expect(answer.status in NOT_THERE, f"the other client read the first's Group: {answer.status}")
    answer = await ctx.request("GET", "Group", bearer=bearer, params={"_id": group_id})
    found = ctx.fhir(answer, (200, 400, 403, 404))
    ctx.expect(not found.get("entry"), "the other client's Group search found the first's Group")


@GROUP.check("job-status", "the other client polling the first's job gets 403/404, and cannot DELETE it")
async def job_status(ctx: Context) -> None:
    bearer = await second_token(ctx)
    status_url = (await bulk_match(ctx)).status_url
    answer = await ctx.request("GET", status_url, bearer=bearer, headers={"Accept": "application/json"})
    ctx.expect(answer.status in NOT_THERE, f"the other client polled the first's job: {answer.status}")
    answer = await ctx.request("DELETE", status_url, bearer=bearer)
    ctx.expect(answer.status in NOT_THERE, f"the other client deleted the first's job: {answer.status}")
    mine = await ctx.request("GET", status_url, bearer=await ctx.token(), headers={"Accept": "application/json"})
    ctx.expect(mine.status == 200, "after the other client's DELETE the first's job is gone")


@GROUP.check("files", "the other client downloading the first's files gets 403/404")
async def files(ctx: Context) -> None:
    bearer = await second_token(ctx)
    urls = [i.get("url", "") for i in (await bulk_match(ctx)).manifest.get("output", [])]
    urls += [i.get("url", "") for i in (await export_of(ctx, "full")).manifest.get("output", [])]
    ctx.expect(urls, "no files to try")
    for url in urls:
        answer = await ctx.request("GET", url, bearer=bearer, headers={"Accept": "application/fhir+ndjson"})
        ctx.expect(answer.status in NOT_THERE, f"the other client downloaded {url}: {answer.status}")


@GROUP.check("export-of-other-group", "the other client cannot export the first's Group (403/404)")
async def export_other(ctx: Context) -> None:
    bearer = await second_token(ctx)
    group_id = ((await bulk_match(ctx)).groups.get("match") or {}).get("id")
    ctx.expect(group_id, "the first client's bulk match gave no Group")
    answer = await ctx.request("GET", f"Group/{group_id}/$davinci-data-export", bearer=bearer,
                               params={"exportType": "hl7.fhir.us.davinci-pdex#payertopayer"},
                               headers={"Prefer": "respond-async"})
    ctx.expect(answer.status in NOT_THERE, f"the other client's export of the first's Group got {answer.status}")
