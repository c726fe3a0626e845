"""The CapabilityStatement: open, R4, SMART security, and the payer-to-payer operations and profiles advertised
(PDex §3.3 Payer Access CapabilityStatement; HRex $member-match; Bulk Data STU2 export operations)."""
from __future__ import annotations

from sidecar.conformance.context import Context
from sidecar.conformance.model import Group

GROUP = Group("capability", "CapabilityStatement",
              "FHIR R4 CapabilityStatement; PDex §3.3 Payer Access CapabilityStatement (Group with "
              "pdex-member-match-group, bulk-member-match, davinci-data-export); HRex member-match; "
              "SMART App Launch (security service); Bulk Data STU2 (export operations)")
MEMBER_MATCH_GROUP = "http://hl7.org/fhir/us/davinci-pdex/StructureDefinition/pdex-member-match-group"


async def statement(ctx: Context) -> dict:
    async def fetch() -> dict:
        answer = await ctx.request("GET", "metadata")
        found = ctx.fhir(answer, 200, "CapabilityStatement")
        ctx.keep("CapabilityStatement", found)
        return found
    return await ctx.once("GET metadata", fetch)


def resource(found: dict, resource_type: str) -> dict:
    return next((r for rest in found.get("rest", []) for r in rest.get("resource", [])
                 if r.get("type") == resource_type), {})


def operations(found: dict, resource_type: str | None) -> set[str]:
    names = set()
    for rest in found.get("rest", []):
        places = [rest] if resource_type is None else [r for r in rest.get("resource", [])
                                                       if r.get("type") == resource_type]
        names |= {str(op.get("name", "")).lstrip("$") for place in places for op in place.get("operation", [])}
    return names


@GROUP.check("open", "GET metadata answers without a token: an R4 (4.0.1) CapabilityStatement in JSON")
async def open_statement(ctx: Context) -> None:
    found = await statement(ctx)
    ctx.expect(found.get("fhirVersion") == "4.0.1", f"fhirVersion is {found.get('fhirVersion')}, not 4.0.1")
    ctx.expect(any("json" in f for f in found.get("format", [])), "format SHALL include json")


@GROUP.check("smart-security", "rest.security names the SMART-on-FHIR service")
async def security(ctx: Context) -> None:
    found = await statement(ctx)
    codes = {c.get("code") for rest in found.get("rest", [])
             for s in (rest.get("security") or {}).get("service", []) for c in s.get("coding", [])}
    ctx.expect("SMART-on-FHIR" in codes, "no rest.security.service SMART-on-FHIR")


@GROUP.check("member-match", "Patient advertises $member-match")
async def member_match(ctx: Context) -> None:
    found = await statement(ctx)
    ctx.expect("member-match" in operations(found, "Patient") | operations(found, None),
               "$member-match is not advertised")


@GROUP.check("bulk-operations", "Group advertises $bulk-member-match and $davinci-data-export")
async def bulk_operations(ctx: Context) -> None:
    found = await statement(ctx)
    missing = {"bulk-member-match", "davinci-data-export"} - operations(found, "Group")
    ctx.expect(not missing, f"Group does not advertise {', '.join(sorted(missing))}")


@GROUP.check("export-operations", "Group and Patient advertise the Bulk Data $export")
async def export_operations(ctx: Context) -> None:
    found = await statement(ctx)
    ctx.expect("export" in operations(found, "Group"), "Group does not advertise $export")
    ctx.expect("export" in operations(found, "Patient"), "Patient does not advertise $export")


@GROUP.check("group-profile", "Group names the PDex Member Match Group profile and its searches (identifier, "
                              "characteristic)")
async def group_profile(ctx: Context) -> None:
    group = resource(await statement(ctx), "Group")
    ctx.expect(group, "the CapabilityStatement has no Group resource")
    profiles = {str(p).split("|")[0] for p in [group.get("profile"), *group.get("supportedProfile", [])] if p}
    ctx.expect(MEMBER_MATCH_GROUP in profiles, f"Group names neither profile nor supportedProfile "
                                               f"{MEMBER_MATCH_GROUP}")
    searches = {s.get("name") for s in group.get("searchParam", [])}
    ctx.expect({"identifier", "characteristic"} <= searches, "Group does not advertise the identifier and "
                                                             "characteristic searches")
    ctx.expect({"read", "search-type"} <= {i.get("code") for i in group.get("interaction", [])},
               "Group does not advertise read and search-type")


@GROUP.check("cors", "metadata is open to any origin (Access-Control-Allow-Origin), as SMART's discovery "
                     "endpoints are", required=False)
async def cors(ctx: Context) -> None:
    answer = await ctx.request("GET", "metadata", headers={"Origin": "https://qa.example"})
    ctx.expect(answer.header("Access-Control-Allow-Origin") in ("*", "https://qa.example"),
               "no Access-Control-Allow-Origin for another origin")


@GROUP.check("no-writes", "no write interaction is advertised to partners (the Payer Access server is read-only)",
             required=False)
async def no_writes(ctx: Context) -> None:
    found = await statement(ctx)
    writes = {f"{r.get('type')}.{i.get('code')}" for rest in found.get("rest", []) for r in rest.get("resource", [])
              for i in r.get("interaction", []) if i.get("code") in ("create", "update", "delete", "patch")}
    ctx.expect(not writes, f"writes advertised: {', '.join(sorted(writes)[:8])}")
