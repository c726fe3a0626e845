"""Code systems compared by meaning (shared/DECISIONS.md 11): a system's OID and its canonical URI are one system.

Every comparison of a coding's system in the disclosure filter goes through `canonical_system`, on both sides: the
system written in the data and the systems listed in the value-set and label files.
"""
from __future__ import annotations

SNOMED_CT = "http://snomed.info/sct"
HCPCS = "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"

CANONICAL_BY_OID: dict[str, str] = {
    "2.16.840.1.113883.6.90": "http://hl7.org/fhir/sid/icd-10-cm",
    "2.16.840.1.113883.6.3": "http://hl7.org/fhir/sid/icd-10",
    "2.16.840.1.113883.6.96": SNOMED_CT,
    "2.16.840.1.113883.6.88": "http://www.nlm.nih.gov/research/umls/rxnorm",
    "2.16.840.1.113883.6.1": "http://loinc.org",
    "2.16.840.1.113883.6.12": "http://www.ama-assn.org/go/cpt",
    "2.16.840.1.113883.6.285": HCPCS,
    "2.16.840.1.113883.6.14": HCPCS,
    "2.16.840.1.113883.6.69": "http://hl7.org/fhir/sid/ndc",
    # The security labels' systems (meta.security)
    "2.16.840.1.113883.5.25": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality",
    "2.16.840.1.113883.5.4": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
}

_OID_PREFIX = "urn:oid:"


def canonical_system(system: object) -> object:
    """The canonical URI of a known OID; a URI without a trailing slash, and SNOMED CT without the edition or version
    some senders append to it (`http://snomed.info/sct/731000124108/version/20230301`); anything else unchanged."""
    if not isinstance(system, str):
        return system
    if system[:len(_OID_PREFIX)].lower() == _OID_PREFIX:
        return CANONICAL_BY_OID.get(system[len(_OID_PREFIX):], system)
    if system.startswith(SNOMED_CT + "/"):
        return SNOMED_CT
    return system.rstrip("/")
