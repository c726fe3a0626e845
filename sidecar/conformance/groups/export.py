"""`$davinci-data-export` on the requester's match Group, read as Bulk Data STU2 asks (ATR 2.1.0
davinci-data-export; PDex 2.2.0 §3.2 payer-to-payer export, §pdex-176 `_since`; Bulk Data 2.0.0 §3.1 kick-off,
§3.2 status, §3.3 manifest, §3.4 files, §3.5 DELETE)."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timezone

from sidecar.conformance.context import Answer, Context
from sidecar.conformance.groups.partner_requests import await_job, bulk_match, download
from sidecar.conformance.model import Group

GROUP = Group("export", "$davinci-data-export and Bulk Data",
              "ATR 2.1.0 $davinci-data-export (exportType hl7.fhir.us.davinci-pdex#payertopayer); PDex 2.2.0 §3.2, "
              "§pdex-176 (_since on meta.lastUpdated, never rewritten); Bulk Data STU2 kick-off, status, manifest "
              "(requiresAccessToken), file request, _type, DELETE")
EXPORT_TYPE = "hl7.fhir.us.davinci-pdex#payertopayer"


@dataclass
class Export:
    kick_off: Answer
    manifest: dict
    files: dict[str, list[dict]]       # type → resources


def instant(text: str | None) -> datetime:
    """An instant as FHIR writes it ("Z" or an offset); a missing one counts as the earliest."""
    try:
        found = datetime.fromisoformat(text or "")
    except ValueError:
        return datetime.min.replace(tzinfo=timezone.utc)
    return found if found.tzinfo else found.replace(tzinfo=timezone.utc)


async def match_group_id(ctx: Context) -> str:
    result = await bulk_match(ctx)
    group = result.groups.get("match") or {}
    ctx.expect(group.get("id"), "the bulk match gave no match Group to export")
    return group["id"]


async def run_export(ctx: Context, **params: str) -> Export:
    bearer = await ctx.token()
    group = await match_group_id(ctx)
    kick_off = await ctx.request("GET", f"Group/{group}/$davinci-data-export", bearer=bearer,
                                 params={"exportType": EXPORT_TYPE, **params}, headers={"Prefer": "respond-async"})
    ctx.expect(kick_off.status == 202, f"the kick-off SHALL answer 202 Accepted, got {kick_off.status}")
    ctx.expect(kick_off.header("Content-Location"), "the kick-off SHALL give Content-Location")
    done = await await_job(ctx, kick_off.header("Content-Location"), bearer)
    manifest = ctx.fhir(done, 200)
    files: dict[str, list[dict]] = {}
    for item in manifest.get("output", []):
        got = await download(ctx, item.get("url", ""), bearer)
        ctx.expect(got.status == 200, f"the {item.get('type')} file did not download ({got.status})")
        files.setdefault(item.get("type", ""), []).extend(got.ndjson())
    return Export(kick_off, manifest, files)


async def exports(ctx: Context) -> dict:
    """The plain export, a `_type` one and a `_since` one, side by side (each is a server-side job). `_since` is
    the bulk match's transactionTime: server time, after the members' data was stored."""
    async def make() -> dict:
        since = (await bulk_match(ctx)).manifest.get("transactionTime", "")
        ctx.expect(since, "the bulk match manifest has no transactionTime to export since")
        full, typed, later = await asyncio.gather(run_export(ctx), run_export(ctx, _type="Patient,Coverage"),
                                                  run_export(ctx, _since=since), return_exceptions=True)
        for resources in ([] if isinstance(full, BaseException) else full.files.values()):
            for resource in resources[:50]:
                ctx.keep(f"exported {resource.get('resourceType')}", resource)
        return {"full": full, "_type": typed, "_since": later, "since": since}
    return await ctx.once("the exports", make)


async def one(ctx: Context, which: str) -> Export:
    found = (await exports(ctx))[which]
    if isinstance(found, BaseException):
        raise found
    return found


@GROUP.check("kick-off", "GET Group/{id}/$davinci-data-export (Prefer: respond-async): 202 with Content-Location")
async def kick_off(ctx: Context) -> None:
    await one(ctx, "full")


@GROUP.check("manifest", "the manifest: transactionTime, request, requiresAccessToken true, output entries with "
                         "type and url")
async def manifest(ctx: Context) -> None:
    found = (await one(ctx, "full")).manifest
    ctx.expect(found.get("transactionTime"), "no transactionTime")
    ctx.expect(found.get("request"), "no request")
    ctx.expect(found.get("requiresAccessToken") is True, "requiresAccessToken SHALL be true (member data)")
    ctx.expect(found.get("output") and all(i.get("type") and i.get("url") for i in found["output"]),
               "output entries SHALL have type and url")


@GROUP.check("member-data", "the files hold the matched member's Patient and data, and no other member's")
async def member_data(ctx: Context) -> None:
    files = (await one(ctx, "full")).files
    expected = ctx.target.fixtures.member("bulk_match").member_id or ""
    patients = [f"Patient/{p.get('id')}" for p in files.get("Patient", [])]
    ctx.expect(patients, "no Patient file")
    ctx.expect(not expected or patients == [expected], f"Patients exported: {patients[:5]}, expected {expected}")
    ctx.expect(files.get("Observation"), "the member's Observation was not exported")


@GROUP.check("file-content-type", "a file answers 200 as application/fhir+ndjson")
async def file_content_type(ctx: Context) -> None:
    found = (await one(ctx, "full")).manifest
    url = found.get("output", [{}])[0].get("url", "")
    answer = await download(ctx, url, await ctx.token())
    ctx.expect(answer.status == 200, f"got {answer.status}")
    ctx.expect(answer.header("Content-Type").startswith("application/fhir+ndjson"),
               f"Content-Type is {answer.header('Content-Type')}")


@GROUP.check("file-needs-token", "with requiresAccessToken, a file without a token is refused (401/403)")
async def file_needs_token(ctx: Context) -> None:
    found = (await one(ctx, "full")).manifest
    answer = await download(ctx, found.get("output", [{}])[0].get("url", ""), None)
    ctx.expect(answer.status in (401, 403), f"a file without a token got {answer.status}")


@GROUP.check("_type", "_type=Patient,Coverage exports only those types")
async def by_type(ctx: Context) -> None:
    found = await one(ctx, "_type")
    types = {i.get("type") for i in found.manifest.get("output", [])}
    ctx.expect(types and types <= {"Patient", "Coverage"}, f"output types: {sorted(t for t in types if t)}")


@GROUP.check("_since", "_since = a time after the member's data was stored: none of it is exported (_since filters "
                       "meta.lastUpdated)")
async def since(ctx: Context) -> None:
    later = await one(ctx, "_since")
    cut = (await exports(ctx))["since"]
    older = [f"{r.get('resourceType')}/{r.get('id')}" for rs in later.files.values() for r in rs
             if r.get("resourceType") != "Provenance" and instant(r.get("meta", {}).get("lastUpdated")) < instant(cut)]
    ctx.expect(not older, f"updated before _since yet exported: {older[:5]}")


@GROUP.check("delete", "DELETE on the status URL: 202, then the status URL answers 404")
async def delete(ctx: Context) -> None:
    bearer = await ctx.token()
    group = await match_group_id(ctx)
    kick = await ctx.request("GET", f"Group/{group}/$davinci-data-export", bearer=bearer,
                             params={"exportType": EXPORT_TYPE}, headers={"Prefer": "respond-async"})
    ctx.expect(kick.status == 202 and kick.header("Content-Location"), f"the kick-off got {kick.status}")
    status_url = kick.header("Content-Location")
    deleted = await ctx.request("DELETE", status_url, bearer=bearer)
    ctx.expect(deleted.status == 202, f"DELETE got {deleted.status}, not 202")
    after = await ctx.request("GET", status_url, bearer=bearer, headers={"Accept": "application/json"})
    ctx.expect(after.status == 404, f"the deleted job's status got {after.status}, not 404")


@GROUP.check("bulk-group-export", "the Bulk Data Group/{id}/$export kick-off is accepted too (202)")
async def group_export(ctx: Context) -> None:
    bearer = await ctx.token()
    group = await match_group_id(ctx)
    kick = await ctx.request("GET", f"Group/{group}/$export", bearer=bearer, params={"_type": "Patient"},
                             headers={"Prefer": "respond-async"})
    ctx.expect(kick.status == 202 and kick.header("Content-Location"), f"the kick-off got {kick.status}")
    await ctx.request("DELETE", kick.header("Content-Location"), bearer=bearer)
