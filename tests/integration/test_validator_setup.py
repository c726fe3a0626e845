"""The validator's setup fails loudly: a profile, or a definition a profile uses, that no package holds is never a
silent pass (it would hide the resource's real errors)."""
from __future__ import annotations

from pathlib import Path

import pytest

from sidecar.validation.engine import MissingDefinitions, Validator

PDEX_MATCH_GROUP = "http://hl7.org/fhir/us/davinci-pdex/StructureDefinition/pdex-member-match-group"
C4BB_PATIENT = "http://hl7.org/fhir/us/carin-bb/StructureDefinition/C4BB-Patient"


@pytest.mark.parametrize("packages, profile, named", [
    (["hl7.fhir.us.davinci-hrex#1.0.0.tgz"], PDEX_MATCH_GROUP, "pdex-member-match-group"),
    (["hl7.fhir.us.carin-bb#2.0.0.tgz"], C4BB_PATIENT, "us-core-race (needed by " + C4BB_PATIENT),
], ids=["profile-missing", "dependency-missing"])
def test_a_required_profile_the_packages_cannot_define_fails_the_start(validator: Validator, tmp_path: Path,
                                                                      packages: list[str], profile: str, named: str):
    for name in packages:
        (tmp_path / name).symlink_to(validator.packages_dir / name)
    with pytest.raises(MissingDefinitions, match="Failed to retrieve profile") as failed:
        Validator(tmp_path, validator.jar, require=[profile]).start()
    assert named in str(failed.value)


def test_a_meta_profile_no_package_defines_is_a_warning_naming_it_and_the_rest_is_still_validated(
        validator: Validator):
    result = validator.validate({"resourceType": "Basic",
                                 "meta": {"profile": ["http://example.org/no-such-profile"]}})
    assert result.unknown_profiles == ["http://example.org/no-such-profile"]
    assert ["Basic.code" in i.message for i in result.errors] == [True], "base R4 still checked (code is 1..1)"


def test_a_profile_asked_for_that_no_package_defines_is_a_missing_definition_not_a_finding(validator: Validator):
    with pytest.raises(MissingDefinitions, match="no-such-profile"):
        validator.validate({"resourceType": "Basic", "code": {"text": "x"}}, ["http://example.org/no-such-profile"])


def test_a_resource_that_is_no_fhir_is_a_fatal_issue(validator: Validator):
    result = validator.validate({"resourceType": "NoSuchType"})
    assert [i.severity for i in result.errors] == ["fatal"]
