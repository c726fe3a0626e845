"""Code systems are compared by meaning: an OID and its canonical URI are one system (shared/DECISIONS.md 11)."""
from __future__ import annotations

import pytest

from sidecar.disclosure.code_systems import canonical_system


@pytest.mark.parametrize("oid, uri", [
    ("2.16.840.1.113883.6.90", "http://hl7.org/fhir/sid/icd-10-cm"),
    ("2.16.840.1.113883.6.3", "http://hl7.org/fhir/sid/icd-10"),
    ("2.16.840.1.113883.6.96", "http://snomed.info/sct"),
    ("2.16.840.1.113883.6.88", "http://www.nlm.nih.gov/research/umls/rxnorm"),
    ("2.16.840.1.113883.6.1", "http://loinc.org"),
    ("2.16.840.1.113883.6.12", "http://www.ama-assn.org/go/cpt"),
    ("2.16.840.1.113883.6.285", "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"),
    ("2.16.840.1.113883.6.14", "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"),
    ("2.16.840.1.113883.6.69", "http://hl7.org/fhir/sid/ndc"),
    ("2.16.840.1.113883.5.25", "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"),
    ("2.16.840.1.113883.5.4", "http://terminology.hl7.org/CodeSystem/v3-ActCode"),
])
def test_a_known_oid_is_its_canonical_uri(oid, uri):
    assert canonical_system(f"urn:oid:{oid}") == uri


def test_the_oid_prefix_is_read_in_any_case():
    assert canonical_system("URN:OID:2.16.840.1.113883.6.90") == "http://hl7.org/fhir/sid/icd-10-cm"


def test_a_canonical_uri_is_unchanged():
    assert canonical_system("http://loinc.org") == "http://loinc.org"


def test_a_trailing_slash_is_dropped():
    assert canonical_system("http://hl7.org/fhir/sid/icd-10-cm/") == "http://hl7.org/fhir/sid/icd-10-cm"


@pytest.mark.parametrize("system", ["http://snomed.info/sct/731000124108",
                                    "http://snomed.info/sct/731000124108/version/20230301"])
def test_a_snomed_edition_or_version_in_the_system_is_dropped(system):
    assert canonical_system(system) == "http://snomed.info/sct"


def test_an_unknown_oid_stays_as_written():
    assert canonical_system("urn:oid:1.2.3.4") == "urn:oid:1.2.3.4"


def test_a_missing_system_stays_missing():
    assert canonical_system(None) is None
