"""Which member a resource belongs to, and how to restrict a search to members.

For each member-data type: the element that names its patient (from the R4 Patient CompartmentDefinition, the
primary subject only) and the search parameter that restricts a search to patients. A type that is member data
but not listed here is refused to partner clients until it is added: default deny.

Reference data that belongs to no member (organizations, practitioners, locations, medications) may be read by
partners; Provenance follows the data it targets; everything else outside this table (Binary, Group, AuditEvent,
...) may not.
"""
from __future__ import annotations

MEMBER_DATA: dict[str, tuple[str, str]] = {
    # type: (element holding the patient reference, search parameter restricting to patients)
    "AllergyIntolerance": ("patient", "patient"),
    "CarePlan": ("subject", "patient"),
    "CareTeam": ("subject", "patient"),
    "Claim": ("patient", "patient"),
    "ClaimResponse": ("patient", "patient"),
    "Condition": ("subject", "patient"),
    "Consent": ("patient", "patient"),
    "Coverage": ("beneficiary", "patient"),
    "Device": ("patient", "patient"),
    "DiagnosticReport": ("subject", "patient"),
    "DocumentReference": ("subject", "patient"),
    "Encounter": ("subject", "patient"),
    "ExplanationOfBenefit": ("patient", "patient"),
    "Goal": ("subject", "patient"),
    "Immunization": ("patient", "patient"),
    "MedicationAdministration": ("subject", "patient"),
    "MedicationDispense": ("subject", "patient"),
    "MedicationRequest": ("subject", "patient"),
    "MedicationStatement": ("subject", "patient"),
    "Observation": ("subject", "patient"),
    "Procedure": ("subject", "patient"),
    "QuestionnaireResponse": ("subject", "patient"),
    "RelatedPerson": ("patient", "patient"),
    "ServiceRequest": ("subject", "patient"),
    "Specimen": ("subject", "patient"),
}

REFERENCE_DATA = frozenset({"Organization", "Practitioner", "PractitionerRole", "Location", "Medication",
                            "HealthcareService", "Endpoint", "InsurancePlan", "Substance"})


def patient_id_of_reference(reference: object) -> str | None:
    """`Patient/123`, `https://x/fhir/Patient/123` or `Patient/123/_history/2` → "123"; anything else → None."""
    if not isinstance(reference, str):
        return None
    if reference.startswith("Patient/") and reference.count("/") == 1:
        return reference[8:] or None
    parts = reference.split("/")
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "Patient" and parts[i + 1] and parts[i + 1] != "_history":
            return parts[i + 1]
    return None


def member_of(resource: dict) -> str | None:
    """The patient id a member-data resource belongs to (a Patient belongs to itself); None if unknown."""
    resource_type = resource.get("resourceType")
    if resource_type == "Patient":
        value = resource.get("id")
        return value if isinstance(value, str) else None
    element = MEMBER_DATA.get(resource_type)
    if element is None:
        return None
    value = resource.get(element[0])
    if isinstance(value, dict):
        return patient_id_of_reference(value.get("reference"))
    return None


def is_member_data(resource_type: str) -> bool:
    return resource_type == "Patient" or resource_type in MEMBER_DATA


def restricting_parameter(resource_type: str) -> str | None:
    """The search parameter that limits a search of this type to a set of patients."""
    if resource_type == "Patient":
        return "_id"
    if resource_type == "Provenance":
        return "patient"  # Provenance.target where it is a Patient (R4 patient compartment)
    entry = MEMBER_DATA.get(resource_type)
    return entry[1] if entry else None
