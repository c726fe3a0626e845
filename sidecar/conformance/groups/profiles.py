"""Every answer the other groups received, validated against the IG packages with the product's validation step
(HAPI's validator, offline): base R4, each resource's own meta.profile, and the PDex Member Match Group profiles.
Skipped, never passed, when Java or the packages are not there."""
from __future__ import annotations

import asyncio
import shutil

from sidecar.conformance.context import Context
from sidecar.conformance.model import CheckFailed, Group, Skip
from sidecar.validation.engine import Validator, ValidatorError, build_jar

GROUP = Group("profiles", "Profile validation",
              "FHIR R4 base definitions; PDex 2.2.0 pdex-member-match-group / pdex-member-no-match-group (§2.5); "
              "each resource's meta.profile (US Core, CARIN BB, PDex) as far as the IG packages define them")
PDEX = "http://hl7.org/fhir/us/davinci-pdex/StructureDefinition/"
GROUP_PROFILES = {"match": PDEX + "pdex-member-match-group", "nomatch": PDEX + "pdex-member-no-match-group",
                  "consentconstraint": PDEX + "pdex-member-no-match-group"}


def packages_or_skip(ctx: Context):
    """The packages folder, or Skip when this machine cannot validate (no Java, no packages)."""
    if shutil.which("java") is None:
        raise Skip("Java is not installed: profile validation needs Java 17 (and Maven to build the validator)")
    packages = ctx.target.packages_dir
    if packages is None or not packages.is_dir() or not any(packages.glob("*.tgz")):
        raise Skip(f"no FHIR IG packages folder ({packages or 'give --packages DIR'}): profile validation needs "
                   "the PDex, HRex, CARIN BB and US Core packages")
    return packages


async def validator(ctx: Context) -> Validator:
    if ctx.target.validator is not None:
        return ctx.target.validator
    packages = packages_or_skip(ctx)

    async def start() -> Validator:
        def started() -> Validator:
            return Validator(packages, build_jar()).start()
        try:
            found = await asyncio.to_thread(started)
        except ValidatorError as exc:
            raise Skip(f"the validator cannot run here: {exc}") from exc
        ctx.closers.append(found.close)
        return found
    return await ctx.once("the FHIR validator", start)


def kept(ctx: Context, *prefixes: str) -> list[tuple[str, dict]]:
    return [(what, r) for what, r in ctx.answers if what.startswith(prefixes)]


async def validate(ctx: Context, answers: list[tuple[str, dict]], profiles_of=lambda r: ()) -> None:
    if ctx.target.validator is None:
        packages_or_skip(ctx)
    if not answers:
        raise Skip("nothing of this kind was received in this run (its group did not run or failed first)")
    checker = await validator(ctx)
    failures = []
    for what, resource in answers:
        try:
            result = await asyncio.to_thread(checker.validate, resource, tuple(profiles_of(resource)))
        except ValidatorError as exc:   # a definition missing from the packages: never a silent pass
            raise CheckFailed(f"the validator could not validate {what}: {exc}") from exc
        failures += [f"{what} {resource.get('resourceType')}/{resource.get('id', '')}: {issue}"
                     for issue in result.errors]
    ctx.last = None
    ctx.expect(not failures, f"{len(failures)} error(s): " + "; ".join(failures[:10]))


@GROUP.check("capability-statement", "the CapabilityStatement is valid R4")
async def capability(ctx: Context) -> None:
    await validate(ctx, kept(ctx, "CapabilityStatement"))


@GROUP.check("member-match-answers", "$member-match answers and refusals are valid (Parameters, OperationOutcome)")
async def member_match(ctx: Context) -> None:
    await validate(ctx, kept(ctx, "$member-match"))


@GROUP.check("member-match-groups", "the Member Match Groups conform to the PDex 2.2.0 Group profiles")
async def groups(ctx: Context) -> None:
    def profile(group: dict) -> tuple[str, ...]:
        codes = [c.get("code") for c in (group.get("code") or {}).get("coding", [])]
        return (GROUP_PROFILES[codes[0]],) if codes and codes[0] in GROUP_PROFILES else ()
    await validate(ctx, kept(ctx, "$bulk-member-match Group"), profile)


@GROUP.check("exported-resources", "exported resources are valid against base R4 and the profiles they claim")
async def exported(ctx: Context) -> None:
    await validate(ctx, kept(ctx, "exported", "$bulk-member-match Parameters"))


@GROUP.check("operation-outcomes", "error answers are valid OperationOutcomes")
async def outcomes(ctx: Context) -> None:
    await validate(ctx, kept(ctx, "404 OperationOutcome"))
