"""`pdex-sidecar validate` without a JVM: what it reads, what it reports, and its exit status."""
from __future__ import annotations

import io
from pathlib import Path

import pytest

from sidecar.cli import main
from sidecar.validation.command import write_report
from sidecar.validation.engine import UNKNOWN_PROFILE, Issue, Result, claimed_but_unknown
from sidecar.validation.inputs import read_inputs


def test_an_ndjson_file_gives_each_line_named_by_its_number(tmp_path: Path):
    (tmp_path / "Group.ndjson").write_text('{"resourceType":"Group","id":"a"}\n\n{"resourceType":"Group","id":"b"}\n')
    found = list(read_inputs([tmp_path / "Group.ndjson"]))
    assert [(i.source.rsplit("/", 1)[1], i.resource["id"]) for i in found] == [("Group.ndjson:1", "a"),
                                                                             ("Group.ndjson:3", "b")]


def test_a_folder_gives_its_json_and_ndjson_files_in_name_order(tmp_path: Path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "one.json").write_text('{"resourceType":"Patient","id":"1"}')
    (tmp_path / "a.ndjson").write_text('{"resourceType":"Patient","id":"0"}')
    (tmp_path / "README.md").write_text("not a resource")
    assert [i.resource["id"] for i in read_inputs([tmp_path])] == ["0", "1"]


@pytest.mark.parametrize("text, problem", [("{not json", "not JSON"), ('["a"]', "no resourceType")])
def test_text_that_is_no_resource_is_reported_not_skipped(tmp_path: Path, text: str, problem: str):
    (tmp_path / "bad.json").write_text(text)
    [found] = read_inputs([tmp_path / "bad.json"])
    assert found.resource is None and problem in found.problem


def test_a_path_that_does_not_exist_is_an_error(tmp_path: Path):
    with pytest.raises(FileNotFoundError):
        list(read_inputs([tmp_path / "missing.json"]))


def test_without_a_packages_folder_the_command_says_where_to_point_it(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.delenv("SIDECAR_FHIR_PACKAGES_DIR", raising=False)
    monkeypatch.delenv("SIDECAR_CONFIG", raising=False)
    (tmp_path / "p.json").write_text('{"resourceType":"Patient"}')
    assert main(["validate", str(tmp_path / "p.json")]) == 2
    assert "SIDECAR_FHIR_PACKAGES_DIR" in capsys.readouterr().err


class FakeValidator:
    """Answers each resource with the issues its id names."""

    def __init__(self, issues: dict[str, list[Issue]]) -> None:
        self.issues = issues

    def validate(self, resource: dict, profiles) -> Result:
        return Result(self.issues.get(resource["id"], []), 10.0)


def issue(severity: str, location: str = "Group.type") -> Issue:
    return Issue(severity, location, f"a {severity}", "http://example.org/profile")


def report(issues: dict[str, list[Issue]], ids: list[str], tmp_path: Path) -> tuple[int, str]:
    (tmp_path / "r.ndjson").write_text("\n".join(f'{{"resourceType":"Group","id":"{i}"}}' for i in ids))
    out = io.StringIO()
    status = write_report(FakeValidator(issues), list(read_inputs([tmp_path / "r.ndjson"])), [], out)
    return status, out.getvalue()


def test_warnings_alone_exit_zero(tmp_path: Path):
    status, text = report({"a": [issue("warning"), issue("information")]}, ["a", "b"], tmp_path)
    assert status == 0
    assert "Group/a: 0 error(s), 1 warning(s)" in text and "Group/b: valid" in text
    assert "a information" not in text
    assert "2 resource(s): 0 with errors; 0 error(s), 1 warning(s), 10 ms per resource" in text


def test_any_error_exits_one_and_names_the_element_and_profile(tmp_path: Path):
    status, text = report({"b": [issue("warning"), issue("error", "Group.member[0]")]}, ["a", "b"], tmp_path)
    assert status == 1
    assert "  error: Group.member[0]: a error [http://example.org/profile]" in text
    assert text.index("error: Group.member[0]") < text.index("warning: Group.type"), "errors first"
    assert "2 resource(s): 1 with errors; 1 error(s), 1 warning(s)" in text


def test_a_line_that_is_no_resource_counts_as_an_error(tmp_path: Path):
    (tmp_path / "r.ndjson").write_text('{"resourceType":"Group","id":"a"}\n{oops\n')
    out = io.StringIO()
    assert write_report(FakeValidator({}), list(read_inputs([tmp_path / "r.ndjson"])), [], out) == 1
    assert "r.ndjson:2: ERROR not JSON" in out.getvalue()


BASIS = "http://hl7.org/fhir/us/carin-bb/StructureDefinition/C4BB-ExplanationOfBenefit-Oral-Basis"


def hapi_unknown(url: str) -> list[Issue]:
    """What HAPI's validator says of a profile it cannot find: once at meta.profile, once as a profile to use."""
    return [Issue("error", "ExplanationOfBenefit.meta.profile[0]",
                  f"Profile reference '{url}' has not been checked because it could not be found", "",
                  "Validation_VAL_Profile_Unknown"),
            Issue("error", "", f"Invalid profile. Failed to retrieve profile with url={url}", "",
                  "Validation_VAL_Profile_Unknown")]


def test_a_claimed_profile_no_package_defines_becomes_one_warning_naming_it():
    eob = {"resourceType": "ExplanationOfBenefit", "meta": {"profile": [BASIS]}}
    real = Issue("error", "ExplanationOfBenefit.status", "missing", "")
    issues = claimed_but_unknown(eob, [], [real, *hapi_unknown(BASIS)])
    result = Result(issues, 1.0)
    assert result.errors == [real]
    assert result.unknown_profiles == [BASIS]
    assert [(i.severity, i.location, i.message_id) for i in issues[1:]] == [
        ("warning", "ExplanationOfBenefit.meta.profile", UNKNOWN_PROFILE)]


def test_a_profile_asked_for_that_no_package_defines_stays_an_error():
    eob = {"resourceType": "ExplanationOfBenefit", "meta": {"profile": [BASIS]}}
    issues = claimed_but_unknown(eob, [BASIS], hapi_unknown(BASIS))
    assert len(Result(issues, 1.0).errors) == 2 and Result(issues, 1.0).unknown_profiles == []
    unclaimed = claimed_but_unknown({"resourceType": "ExplanationOfBenefit"}, [], hapi_unknown(BASIS))
    assert len(Result(unclaimed, 1.0).errors) == 2


def unknown(url: str) -> Issue:
    return Issue("warning", "ExplanationOfBenefit.meta.profile", f"profile {url} is defined by no package", url,
                 UNKNOWN_PROFILE)


def test_profiles_no_package_defines_alone_exit_three_and_are_named_with_how_many_claim_them(tmp_path: Path):
    status, text = report({"a": [unknown(BASIS)], "b": [unknown(BASIS)]}, ["a", "b", "c"], tmp_path)
    assert status == 3
    assert "Group/a: 0 error(s), 1 warning(s)" in text and "warning: ExplanationOfBenefit.meta.profile" in text
    assert text.rstrip().endswith(f"which no package defines (resources claiming each): {BASIS} (2)")


def test_errors_outrank_unknown_profiles_in_the_exit_status(tmp_path: Path):
    status, text = report({"a": [unknown(BASIS)], "b": [issue("error")]}, ["a", "b"], tmp_path)
    assert status == 1
    assert f"{BASIS} (1)" in text


def test_the_command_help_gives_the_exit_statuses(capsys):
    with pytest.raises(SystemExit):
        main(["validate", "--help"])
    assert "3 no errors, but some resources claim a meta.profile no package defines" in " ".join(
        capsys.readouterr().out.split())
