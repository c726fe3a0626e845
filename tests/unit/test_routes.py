import pytest

from sidecar.proxy.routes import Refusal, Route, resolve


def route(method: str, path: str, query: dict | None = None) -> Route | Refusal:
    return resolve(method, [s for s in path.split("/") if s], query or {})


def test_read_passes_with_an_upstream_path_built_from_its_parts():
    assert route("GET", "Patient/abc-1") == Route("read", "/Patient/abc-1", "Patient", "abc-1")


def test_type_search_passes():
    assert route("GET", "Observation") == Route("search-type", "/Observation", "Observation")


def test_post_search_passes():
    assert route("POST", "Observation/_search") == Route("search-type", "/Observation/_search", "Observation")


def test_paging_link_passes():
    assert route("GET", "", {"_getpages": "abc"}) == Route("page", "")


def test_metadata_passes():
    assert route("GET", "metadata").interaction == "capabilities"


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_writes_on_a_type_are_405_with_allow(method):
    decision = route(method, "Patient")
    assert isinstance(decision, Refusal) and decision.status == 405 and decision.allow == ("GET",)


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE", "POST"])
def test_writes_on_an_instance_are_405(method):
    decision = route(method, "Patient/1")
    assert isinstance(decision, Refusal) and decision.status == 405


@pytest.mark.parametrize("path", ["_history", "Patient/_history", "Patient/1/_history", "Patient/1/_history/2"])
def test_history_is_403(path):
    decision = route("GET", path)
    assert isinstance(decision, Refusal) and decision.status == 403


def test_transaction_or_batch_is_403():
    decision = route("POST", "")
    assert isinstance(decision, Refusal) and decision.status == 403


@pytest.mark.parametrize("path", ["$graphql", "Patient/$graphql", "Patient/$everything", "Group/1/$everything",
                                  "$export",
                                  "Group/1/$export", "$export-poll-status"])
def test_operations_not_yet_built_are_403(path):
    decision = route("GET", path)
    assert isinstance(decision, Refusal) and decision.status == 403


def test_system_search_is_403():
    decision = route("GET", "", {"_type": "Patient"})
    assert isinstance(decision, Refusal) and decision.status == 403


def test_unknown_type_is_404():
    decision = route("GET", "Nonsense/1")
    assert isinstance(decision, Refusal) and decision.status == 404


def test_lowercase_type_is_not_a_resource_type():
    decision = route("GET", "patient")
    assert isinstance(decision, Refusal) and decision.status == 404


@pytest.mark.parametrize("rid", ["..", "a" * 65, "a b", "x%2Fy"])
def test_invalid_ids_are_400(rid):
    decision = route("GET", f"Patient/{rid}")
    assert isinstance(decision, Refusal) and decision.status == 400


def test_deeper_paths_are_404():
    decision = route("GET", "Patient/1/Observation")
    assert isinstance(decision, Refusal) and decision.status == 404


def test_member_match_answers_only_post():
    refusal = resolve("GET", ["Patient", "$member-match"], {})
    assert refusal.status == 405 and refusal.allow == ("POST",)


def test_patient_everything_is_a_read_of_one_member():
    decision = route("GET", "Patient/m-1/$everything")
    assert isinstance(decision, Route) and decision.interaction == "everything" and decision.resource_id == "m-1"


def test_patient_everything_takes_get_only():
    decision = route("POST", "Patient/m-1/$everything")
    assert isinstance(decision, Refusal) and decision.status == 405
