"""What leaves for a member matched under each consent (PDex 2.2.0 §4.5 date of service and the five-year window
§pdex-130/§pdex-169; sensitive data and 42 CFR Part 2 §7 under #regular vs #sensitive; CARIN BB non-financial
claims §4.3; prior authorizations §pdex-131/§pdex-132; a withheld resource looks exactly like a missing one)."""
from __future__ import annotations

from sidecar.conformance.context import Context
from sidecar.conformance.fixtures import NON_FINANCIAL, REGULAR, RELEASED, SENSITIVE, WITHHELD, Datum
from sidecar.conformance.groups.partner_requests import granted
from sidecar.conformance.model import Group

GROUP = Group("disclosure", "Disclosure rules",
              "PDex 2.2.0 §4.5 date of service, five years (§pdex-130, §pdex-169); 42 CFR Part 2 / sensitive "
              "data under HRex Consent #regular vs #sensitive (§7); CARIN BB non-financial EOB (§4.3); prior "
              "authorizations (§pdex-131, §pdex-132)")
MEMBERS = {REGULAR: "history_regular", SENSITIVE: "history_sensitive"}
FINANCIAL = ("total", "payment", "benefitBalance")


async def released(ctx: Context, policy: str) -> dict[str, dict]:
    """What the partner finds of the member's history by search, per datum key."""
    async def make() -> dict[str, dict]:
        member = await granted(ctx, MEMBERS[policy], policy)
        ctx.expect(member, "the match named no member")
        data = ctx.target.fixtures.data.get(MEMBERS[policy], {})
        by_reference = {d.reference: key for key, d in data.items()}
        found: dict[str, dict] = {}
        for resource_type in sorted({d.reference.split("/")[0] for d in data.values()}):
            answer = await ctx.request("GET", resource_type, bearer=await ctx.token(),
                                       params={"patient": member.split("/")[-1], "_count": "100"})
            bundle = ctx.fhir(answer, 200, "Bundle")
            ctx.expect("total" not in bundle or bundle.get("total") == len(bundle.get("entry", [])),
                       "a search total counts more than it shows")
            for entry in bundle.get("entry", []):
                resource = entry.get("resource", {})
                key = by_reference.get(f"{resource.get('resourceType')}/{resource.get('id')}")
                if key:
                    found[key] = resource
        return found
    return await ctx.once(f"the #{policy} member's history", make)


def data(ctx: Context, policy: str, expectation: str, why: str) -> list[tuple[str, Datum]]:
    chosen = [(k, d) for k, d in ctx.target.fixtures.data.get(MEMBERS[policy], {}).items()
              if d.expect.get(policy) == expectation and why in d.why]
    ctx.expect(chosen, f"the fixtures hold no datum for this check ({why})")
    return chosen


def _check(name: str, title: str, policy: str, expectation: str, why: str) -> None:
    async def run(ctx: Context) -> None:
        found = await released(ctx, policy)
        for key, datum in data(ctx, policy, expectation, why):
            if expectation == WITHHELD:
                ctx.expect(key not in found, f"{datum.reference} ({datum.why}) was released under #{policy}")
            else:
                ctx.expect(key in found, f"{datum.reference} ({datum.why}) was withheld under #{policy}")
    GROUP.check(name, title)(run)


_check("recent-released", "recent clinical data is released (#regular)", REGULAR, RELEASED, "a month old")
_check("five-years", "data older than five years by date of service is withheld (#regular)", REGULAR, WITHHELD,
       "five-year")
_check("five-years-sensitive", "data older than five years is withheld under #sensitive too", SENSITIVE, WITHHELD,
       "five-year")
_check("sensitive-under-regular", "42 CFR Part 2 data is withheld under #regular", REGULAR, WITHHELD,
       "42 CFR Part 2")
_check("sensitive-under-sensitive", "42 CFR Part 2 data is released under #sensitive", SENSITIVE, RELEASED,
       "42 CFR Part 2")
_check("prior-authorization", "a pending prior authorization is released", REGULAR, RELEASED, "prior authorization")


@GROUP.check("non-financial-claims", "a claim leaves in its non-financial form: no totals, payment, benefit "
                                     "balances or amounts")
async def non_financial(ctx: Context) -> None:
    found = await released(ctx, REGULAR)
    for key, datum in data(ctx, REGULAR, NON_FINANCIAL, "claim"):
        ctx.expect(key in found, f"{datum.reference} (a claim) was not released")
        claim = found[key]
        ctx.expect(not [f for f in FINANCIAL if f in claim], f"{datum.reference} carries "
                                                             f"{[f for f in FINANCIAL if f in claim]}")
        amounts = [a for item in claim.get("item", []) for a in item.get("adjudication", []) if "amount" in a]
        ctx.expect(not amounts and not any("net" in i for i in claim.get("item", [])),
                   f"{datum.reference} still carries item amounts")


@GROUP.check("withheld-looks-missing", "reading a withheld resource answers exactly as reading one that does not "
                                       "exist")
async def looks_missing(ctx: Context) -> None:
    await released(ctx, REGULAR)
    (_, datum), = data(ctx, REGULAR, WITHHELD, "42 CFR Part 2")
    bearer = await ctx.token()
    withheld = await ctx.request("GET", datum.reference, bearer=bearer)
    resource_type = datum.reference.split("/")[0]
    missing = await ctx.request("GET", f"{resource_type}/pdexconf-does-not-exist", bearer=bearer)
    ctx.expect(withheld.status == missing.status and withheld.status in (403, 404),
               f"withheld: {withheld.status}, missing: {missing.status}")
    shape = lambda a: [(i.get("severity"), i.get("code")) for i in (a.json() or {}).get("issue", [])]  # noqa: E731
    ctx.expect(shape(withheld) == shape(missing), "the withheld and the missing resource's OperationOutcomes differ")
    ctx.expect(b"F10" not in withheld.body and b"Alcohol" not in withheld.body, "the refusal shows the data")
    ctx.keep("404 OperationOutcome", withheld.json())
