"""The one gate, attacked with a partner's token: a granted member whose history holds withheld data (Part 2,
older than five years, entered in error) must leak nothing of it through query parameters, paging, counts, links,
`$everything` or Binary. Each finding of the gate's issue is one test here; the last test is generated.
"""
from __future__ import annotations

import asyncio
import random
from urllib.parse import urlencode

import pytest

from sidecar.gate.caller import PARTNER_TYPES
from tests.integration.test_disclosure import (FHIR_JSON, Loaded, history, partner_headers,  # noqa: F401 (fixture)
                                               search_all)
from tests.integration.test_partner_access import RECENT, grant
from tests.smart import bearer_headers
from tests.ten_year_member import REGULAR, SENSITIVE, WITHHELD

pytestmark = pytest.mark.hapi

ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
GENERATED = "urn:uuid:"
"""How a `$everything` page names what the sidecar made for it (its Transmitter Provenance)."""


def withheld_keys(history: Loaded, policy: str) -> set[str]:
    return {e.key for e in history.member.members if e.expected(policy) == WITHHELD}


def released_keys(history: Loaded, policy: str, resource_type: str | None = None) -> set[str]:
    return {e.key for e in history.member.members if e.expected(policy) != WITHHELD
            and (resource_type is None or e.resource["resourceType"] == resource_type)}


async def answer(http, method: str, url: str, headers: dict, data: dict | None = None) -> tuple[int, dict]:
    async with http.request(method, url, headers=headers, data=data) as resp:
        return resp.status, await resp.json(content_type=None)


def next_link(bundle: dict) -> str | None:
    return next((link["url"] for link in bundle.get("link", []) if link["relation"] == "next"), None)


@pytest.mark.parametrize("parameter, value", [
    ("_elements:exclude", "Observation.meta,Observation.code"), ("_elements", "id,status"), ("_summary", "true"),
    ("_summary:text", "x"), ("_total", "accurate"), ("_contained", "true"), ("_filter", "code eq x"),
    ("_query", "x"), ("_offset", "-1"), ("_offset", "3"), ("_has:Encounter:patient:status", "finished"),
    ("encounter.date", "lt2015"), ("not-a-parameter", "x"), ("code:below", "x|1"), ("_count", "0"),
])
@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_parameters_outside_the_allow_list_are_400_naming_them(anonymous, sidecar, token_url, history,
                                                                     parameter, value, method):
    headers = await partner_headers(anonymous, token_url, history, REGULAR)
    params = {"patient": history.patient_id, parameter: value}
    if method == "GET":
        status, outcome = await answer(anonymous, "GET", f"{sidecar.fhir_base}/Observation?{urlencode(params)}",
                                       headers)
    else:
        status, outcome = await answer(anonymous, "POST", f"{sidecar.fhir_base}/Observation/_search",
                                       {**headers, "Content-Type": "application/x-www-form-urlencoded"}, params)
    assert status == 400, outcome
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["expression"] == [parameter]


async def test_a_read_with_result_shaping_parameters_is_400(anonymous, sidecar, token_url, history):
    headers = await partner_headers(anonymous, token_url, history, REGULAR)
    status, outcome = await answer(anonymous, "GET", f"{sidecar.fhir_base}/{history.ids['observation_lab']}"
                                                     "?_elements=id", headers)
    assert status == 400 and outcome["issue"][0]["expression"] == ["_elements"]


async def test_page_links_take_no_added_parameters(anonymous, sidecar, token_url, history):
    headers = await partner_headers(anonymous, token_url, history, REGULAR)
    status, bundle = await answer(anonymous, "GET", f"{sidecar.fhir_base}/Observation?patient="
                                                    f"{history.patient_id}&_count=1", headers)
    link = next_link(bundle)
    assert status == 200 and link
    for extra in ("_elements=id", "_elements:exclude=Observation.code", "_summary=true", "_count=50"):
        status, outcome = await answer(anonymous, "GET", f"{link}&{extra}", headers)
        assert status == 400, (extra, outcome)


@pytest.mark.parametrize("policy", [REGULAR, SENSITIVE])
async def test_pages_of_one_are_never_empty_and_count_only_released_data(anonymous, sidecar, token_url, history,
                                                                         policy):
    headers = await partner_headers(anonymous, token_url, history, policy)
    for resource_type in ("Observation", "Condition", "DocumentReference", "Encounter", "Procedure"):
        url: str | None = f"{sidecar.fhir_base}/{resource_type}?patient={history.patient_id}&_count=1"
        pages = 0
        while url:
            status, bundle = await answer(anonymous, "GET", url, headers)
            assert status == 200 and "total" not in bundle
            assert len(bundle.get("entry", [])) == 1, (resource_type, pages, bundle)
            pages += 1
            url = next_link(bundle)
        assert pages == len(released_keys(history, policy, resource_type)), resource_type


async def test_a_search_for_withheld_codes_looks_like_a_search_for_codes_nobody_has(anonymous, sidecar, token_url,
                                                                                    history):
    headers = await partner_headers(anonymous, token_url, history, REGULAR)
    answers = []
    for code in ("F10.20", "Z99.999"):
        status, bundle = await answer(anonymous, "GET", f"{sidecar.fhir_base}/Condition?" + urlencode(
            {"patient": history.patient_id, "code": f"{ICD10}|{code}", "_count": "1"}), headers)
        assert status == 200
        answers.append((bundle.get("entry"), next_link(bundle), "total" in bundle))
    assert answers[0] == answers[1] == (None, None, False)


async def test_another_clients_page_link_is_404(anonymous, sidecar, token_url, history, register):
    headers = await partner_headers(anonymous, token_url, history, REGULAR)
    status, bundle = await answer(anonymous, "GET", f"{sidecar.fhir_base}/Observation?patient="
                                                    f"{history.patient_id}&_count=1", headers)
    link = next_link(bundle)
    assert status == 200 and link and "_getpages" in link
    other = await register(scopes="system/*.read", organization=history.clients[REGULAR].organization)
    other_headers = {**FHIR_JSON, **await bearer_headers(anonymous, token_url, other)}
    status, outcome = await answer(anonymous, "GET", link, other_headers)
    assert status == 404 and outcome["resourceType"] == "OperationOutcome"
    self_link = next(lk["url"] for lk in bundle["link"] if lk["relation"] == "self")
    assert "_getpages" not in self_link, "a self link names the query, never a page id"


async def test_partner_offset_is_400_and_operator_negative_offset_is_400(anonymous, http, sidecar, token_url,
                                                                           history):
    headers = await partner_headers(anonymous, token_url, history, REGULAR)
    status, _ = await answer(anonymous, "GET", f"{sidecar.fhir_base}/Observation?_offset=-1", headers)
    assert status == 400
    async with http.get(f"{sidecar.fhir_base}/Observation?_offset=-1", headers=FHIR_JSON) as resp:
        body = await resp.text()
        assert resp.status == 400 and "Exception" not in body and "HAPI" not in body


@pytest.mark.parametrize("policy", [REGULAR, SENSITIVE])
async def test_everything_releases_exactly_the_members_released_data(anonymous, sidecar, token_url, history, seed,
                                                                      policy):
    headers = await partner_headers(anonymous, token_url, history, policy)
    entries = await search_all(anonymous, headers, f"{sidecar.fhir_base}/Patient/{history.patient_id}/$everything",
                               _count="7")
    keys = {history.key_of(e["resource"]) for e in entries if not e["fullUrl"].startswith(GENERATED)}
    by_hapi: set[str] = set()
    status, bundle = await seed.get(f"Patient/{history.patient_id}/$everything", _count="500")
    assert status == 200
    by_hapi = {history.key_of(e["resource"]) for e in bundle.get("entry", [])
               if f"{e['resource']['resourceType']}/{e['resource']['id']}" in history.ids.values()}
    members = {e.key for e in history.member.members}
    assert {k for k in keys if k in members} == released_keys(history, policy) & by_hapi
    assert not keys & withheld_keys(history, policy)
    assert {"condition_diabetes", "encounter_1y", "observation_lab"} <= keys


async def test_each_everything_page_carries_a_transmitter_provenance_of_that_pages_released_resources(
        anonymous, sidecar, token_url, history):
    headers = await partner_headers(anonymous, token_url, history, REGULAR)
    withheld = {history.ids[key] for key in withheld_keys(history, REGULAR)}
    url: str | None = f"{sidecar.fhir_base}/Patient/{history.patient_id}/$everything?_count=7"
    pages = 0
    while url:
        status, bundle = await answer(anonymous, "GET", url, headers)
        assert status == 200
        generated = [e for e in bundle["entry"] if e["fullUrl"].startswith(GENERATED)]
        on_page = {f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle["entry"]
                   if e not in generated and e["resource"]["resourceType"] != "Provenance"}
        assert len(generated) == 1 and generated[0]["search"]["mode"] == "include"
        provenance = generated[0]["resource"]
        assert generated[0]["fullUrl"] == f"{GENERATED}{provenance['id']}"
        assert {t["reference"] for t in provenance["target"]} == on_page
        assert not on_page & withheld
        assert [c["code"] for a in provenance["agent"] for c in a["type"]["coding"]] == ["transmitter"]
        pages += 1
        url = next_link(bundle)
    assert pages > 1


async def test_everything_whose_type_leaves_provenance_out_carries_none(anonymous, sidecar, token_url, history):
    headers = await partner_headers(anonymous, token_url, history, REGULAR)
    status, bundle = await answer(anonymous, "GET", f"{sidecar.fhir_base}/Patient/{history.patient_id}/$everything"
                                                    "?_type=Observation", headers)
    assert status == 200 and any(e["resource"]["resourceType"] == "Observation" for e in bundle["entry"])
    assert not any(e["resource"]["resourceType"] == "Provenance" for e in bundle["entry"])


async def test_everything_of_a_member_not_granted_is_404(anonymous, sidecar, token_url, history, seed, unique):
    headers = await partner_headers(anonymous, token_url, history, REGULAR)
    stranger = await seed.create({"resourceType": "Patient", "name": [{"family": f"S{unique}"}]})
    status, _ = await answer(anonymous, "GET", f"{sidecar.fhir_base}/Patient/{stranger['id']}/$everything", headers)
    assert status == 404


async def test_a_binary_leaves_with_the_released_document_that_points_to_it(anonymous, sidecar, seed, unique,
                                                                           register, token_url):
    client = await register(scopes="system/*.read")
    headers = {**FHIR_JSON, **await bearer_headers(anonymous, token_url, client)}
    patient = await seed.create({"resourceType": "Patient", "name": [{"family": f"B{unique}"}]})
    current = await seed.create({"resourceType": "Binary", "contentType": "text/plain", "data": "bm90ZQ=="})
    old = await seed.create({"resourceType": "Binary", "contentType": "text/plain", "data": "b2xk"})
    unrelated = await seed.create({"resourceType": "Binary", "contentType": "text/plain", "data": "eA=="})
    for binary, when in ((current, RECENT), (old, "2012-03-04")):
        await seed.create({"resourceType": "DocumentReference", "status": "current",
                           "subject": {"reference": f"Patient/{patient['id']}"},
                           "context": {"period": {"start": when, "end": when}},
                           "content": [{"attachment": {"contentType": "text/plain",
                                                       "url": f"Binary/{binary['id']}"}}]})
    grant(sidecar, client.organization, patient["id"])
    await asyncio.sleep(0.3)
    status, body = await answer(anonymous, "GET", f"{sidecar.fhir_base}/Binary/{current['id']}", headers)
    assert status == 200 and body["data"] == "bm90ZQ=="
    for withheld in (old, unrelated):
        status, _ = await answer(anonymous, "GET", f"{sidecar.fhir_base}/Binary/{withheld['id']}", headers)
        assert status == 404


_POOL = {
    "Observation": [("code", "http://loinc.org|4548-4"), ("date", "ge2010-01-01"), ("date", "lt2019"),
                    ("status", "final"), ("status:not", "cancelled"), ("_sort", "-date"), ("_sort", "_lastUpdated"),
                    ("_revinclude", "Provenance:target"), ("_include", "Observation:encounter"),
                    ("category", "laboratory"), ("_lastUpdated", "gt2000-01-01"), ("_security", "42CFRPart2"),
                    ("code:text", "alcohol"), ("date:missing", "true"), ("_elements", "id")],
    "Condition": [("code", f"{ICD10}|F10.20"), ("onset-date", "lt2020"), ("onset-date", "ge2015"),
                  ("_sort", "-onset-date"), ("clinical-status", "active"), ("code:not", f"{ICD10}|E11.9"),
                  ("_summary", "count"), ("_total", "accurate")],
    "Encounter": [("date", "ge2010"), ("date", "le2030"), ("_include", "Encounter:service-provider"),
                  ("_sort", "date"), ("status", "finished"), ("_revinclude", "Provenance:target"),
                  ("_include:iterate", "Encounter:diagnosis")],
    "DocumentReference": [("date", "ge2000"), ("period", "lt2018"), ("_include", "DocumentReference:custodian"),
                          ("status", "current"), ("_sort", "-date"), ("_security", "R")],
}


@pytest.mark.parametrize("policy", [REGULAR, SENSITIVE])
async def test_generated_searches_never_show_withheld_data_counts_or_short_pages(anonymous, sidecar, token_url,
                                                                                history, policy):
    """Random combinations of allowed and refused parameters, modifiers and page sizes: every answer is a 400 or
    pages holding only released data, full to `_count` but the last, with no total and never a 5xx."""
    headers = await partner_headers(anonymous, token_url, history, policy)
    withheld = {history.ids[k] for k in withheld_keys(history, policy)}
    rng = random.Random(16 + len(policy))
    answered = refused = 0
    for _ in range(30):
        resource_type = rng.choice(sorted(_POOL))
        params = rng.sample(_POOL[resource_type], rng.randint(0, 3))
        count = rng.randint(1, 4)
        url: str | None = f"{sidecar.fhir_base}/{resource_type}?" + urlencode(
            [("patient", history.patient_id), *params, ("_count", count)])
        first = True
        while url:
            status, bundle = await answer(anonymous, "GET", url, headers)
            assert status < 500, (url, bundle)
            if status == 400:
                assert first
                refused += 1
                break
            assert status == 200 and "total" not in bundle, (params, bundle)
            entries = bundle.get("entry", [])
            shown = {f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in entries}
            assert not shown & withheld, (params, shown & withheld)
            matches = [e for e in entries if e["search"]["mode"] == "match"]
            url = next_link(bundle)
            assert len(matches) == count if url else len(matches) <= count, (params, len(matches))
            first = False
        else:
            answered += 1
    assert answered and refused


_VALUES = {"token": ["x|1", "1", "http://loinc.org|"], "date": ["ge2020-01-01", "lt2019-06", "2021"],
           "reference": ["Patient/1", "Organization/x", "1"], "string": ["a", "Zz"], "quantity": ["gt1", "le5.5||mg"],
           "uri": ["http://x.example/y"], "number": ["gt1", "3"], "composite": ["x$y", "a|b$gt1"]}
_MODIFIERS = ["", ":missing", ":not", ":exact", ":contains", ":text", ":below", ":identifier", ":of-type", ":above"]


async def test_every_search_parameter_of_every_partner_type_is_answered_without_a_server_error(
        anonymous, sidecar, token_url, history, seed):
    """Each partner type's own search parameters (from HAPI's CapabilityStatement), with a value of their kind,
    a modifier and a sort, drawn at random: the gate answers 200 or 400, never a 5xx."""
    headers = await partner_headers(anonymous, token_url, history, REGULAR)
    status, statement = await seed.get("metadata", _format="json")
    assert status == 200
    rng = random.Random(1616)
    cases = []
    for resource in statement["rest"][0]["resource"]:
        if resource["type"] not in PARTNER_TYPES:
            continue
        for parameter in resource.get("searchParam", []):
            kind = parameter["type"]
            if kind not in _VALUES:
                continue
            value = rng.choice(_VALUES[kind])
            modifier = rng.choice(_MODIFIERS)
            cases.append((resource["type"], [(parameter["name"] + modifier, "true" if modifier == ":missing"
                                              else value), ("_sort", rng.choice(["", "-"]) + parameter["name"])]))
    statuses = {}
    for resource_type, params in rng.sample(cases, min(len(cases), 250)):
        status, body = await answer(anonymous, "GET", f"{sidecar.fhir_base}/{resource_type}?" + urlencode(
            [("patient" if resource_type not in ("Patient", "Organization", "Practitioner", "Location",
                                                 "Medication", "PractitionerRole") else "_id", history.patient_id),
             *params, ("_count", "2")]), headers)
        assert status in (200, 400), (resource_type, params, status, body)
        statuses[status] = statuses.get(status, 0) + 1
    assert statuses.get(200) and statuses.get(400)
