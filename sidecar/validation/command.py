"""`pdex-sidecar validate FILE|DIR... [--packages DIR] [--profile URL]...`: validates resources against the IG
packages of `fhir_packages_dir` and prints a report. Exit status: 0 when every resource validated without an
error-level issue against every profile it claims; 1 when some have errors; 3 when none has, but some claim a
`meta.profile` no package defines (validated against the rest, the unknown ones named); 2 when the validator cannot
run (no packages folder, no Java, a profile asked for with --profile or a definition a profile uses missing)."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence, TextIO

from sidecar.validation.engine import ValidatorError, Validator, build_jar
from sidecar.validation.inputs import Input, read_inputs

NO_PACKAGES = ("no FHIR packages folder: set SIDECAR_FHIR_PACKAGES_DIR (YAML fhir_packages_dir) or pass --packages "
               "DIR, a folder of IG packages (<id>#<version>.tgz: PDex, HRex, CARIN BB, US Core, their dependencies)")
SHOWN = ("fatal", "error", "warning")
UNKNOWN_PROFILES = 3
EXIT_STATUS = ("exit status: 0 no errors, every claimed profile checked; 1 errors; 3 no errors, but some resources "
               "claim a meta.profile no package defines (named in the report, not validated against); 2 the validator "
               "cannot run (no packages, no Java, a --profile or a definition a profile needs missing)")


def run(paths: Sequence[Path], packages_dir: str, profiles: Sequence[str], out: TextIO | None = None) -> int:
    out = out or sys.stdout
    if not packages_dir:
        print(f"pdex-sidecar: {NO_PACKAGES}", file=sys.stderr)
        return 2
    try:
        inputs = list(read_inputs(paths))
        with Validator(Path(packages_dir), build_jar(), require=profiles).start() as validator:
            print(f"validator ready in {validator.startup_ms / 1000:.1f} s with {len(validator.packages)} packages "
                  f"from {validator.packages_dir}", file=out)
            return write_report(validator, inputs, profiles, out)
    except (ValidatorError, OSError) as exc:
        print(f"pdex-sidecar: {exc}", file=sys.stderr)
        return 2


def write_report(validator: Validator, inputs: list[Input], profiles: Sequence[str], out: TextIO) -> int:
    errors = warnings = failed = 0
    total_ms = 0.0
    unknown: dict[str, int] = {}   # profile → how many resources claim it
    for item in inputs:
        if item.resource is None:
            failed += 1
            errors += 1
            print(f"\n{item.source}: ERROR {item.problem}", file=out)
            continue
        result = validator.validate(item.resource, profiles)
        total_ms += result.ms
        shown = [i for i in result.issues if i.severity in SHOWN]
        n_errors = len(result.errors)
        errors += n_errors
        warnings += len(shown) - n_errors
        failed += bool(n_errors)
        for profile in result.unknown_profiles:
            unknown[profile] = unknown.get(profile, 0) + 1
        name = f"{item.resource['resourceType']}/{item.resource.get('id', '-')}"
        verdict = f"{n_errors} error(s), {len(shown) - n_errors} warning(s)" if shown else "valid"
        print(f"\n{item.source} {name}: {verdict}", file=out)
        for issue in sorted(shown, key=lambda i: (not i.is_error, i.location)):
            print(f"  {issue}", file=out)
    validated = len(inputs)
    per_resource = f", {total_ms / validated:.0f} ms per resource" if validated else ""
    print(f"\n{validated} resource(s): {failed} with errors; {errors} error(s), {warnings} warning(s){per_resource}",
          file=out)
    if unknown:
        print("not validated against these profiles, which no package defines (resources claiming each): "
              + ", ".join(f"{profile} ({count})" for profile, count in sorted(unknown.items())), file=out)
    return 1 if errors else UNKNOWN_PROFILES if unknown else 0
