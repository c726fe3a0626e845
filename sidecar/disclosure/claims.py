"""Claims leave as the CARIN Blue Button non-financial ("Basis") view (shared/DECISIONS.md 5).

Every amount goes: totals, payment, benefit balances, line prices and net amounts, and each adjudication that
carries money. Adjudications that carry no money and say something the new payer needs (a structured denial
reason, units allowed or used, in/out-of-network status) stay, without any amount. Dates, codes, diagnoses,
procedures and references are untouched. `meta.profile` names the Basis profile of the claim's kind.
"""
from __future__ import annotations

C4BB = "http://hl7.org/fhir/us/carin-bb/StructureDefinition/"
BASIS_PROFILES = {
    "inpatient": C4BB + "C4BB-ExplanationOfBenefit-Inpatient-Institutional-Basis",
    "outpatient": C4BB + "C4BB-ExplanationOfBenefit-Outpatient-Institutional-Basis",
    "professional": C4BB + "C4BB-ExplanationOfBenefit-Professional-NonClinician-Basis",
    "oral": C4BB + "C4BB-ExplanationOfBenefit-Oral-Basis",
    "pharmacy": C4BB + "C4BB-ExplanationOfBenefit-Pharmacy-Basis",
}
_PROFILE_KINDS = (("Inpatient-Institutional", "inpatient"), ("Outpatient-Institutional", "outpatient"),
                  ("Professional-NonClinician", "professional"), ("Oral", "oral"), ("Pharmacy", "pharmacy"))
KEPT_ADJUDICATIONS = frozenset({"denialreason", "allowedunits", "consumedunits", "benefitpaymentstatus",
                                "billingnetworkstatus", "renderingnetworkstatus"})
_FINANCIAL_HEADER = ("total", "payment", "benefitBalance")
_FINANCIAL_LINE = ("unitPrice", "net", "factor")


def _codes(concept: object) -> list[str]:
    if not isinstance(concept, dict):
        return []
    return [c.get("code") for c in concept.get("coding") or () if isinstance(c, dict)]


def claim_kind(eob: dict) -> str:
    """From the claim's CARIN profile if it names one, else from its type (and institutional sub-type)."""
    meta = eob.get("meta") if isinstance(eob.get("meta"), dict) else {}
    for profile in meta.get("profile") or ():
        if isinstance(profile, str) and profile.startswith(C4BB + "C4BB-ExplanationOfBenefit-"):
            for fragment, kind in _PROFILE_KINDS:
                if fragment in profile:
                    return kind
    types = _codes(eob.get("type"))
    if "institutional" in types:
        return "inpatient" if "inpatient" in _codes(eob.get("subType")) else "outpatient"
    for kind in ("pharmacy", "oral"):
        if kind in types:
            return kind
    return "professional"


def _kept_category(category: object) -> bool:
    if isinstance(category, dict):
        for coding in category.get("coding") or ():
            if isinstance(coding, dict) and coding.get("code") in KEPT_ADJUDICATIONS:
                return True
    return False


def _adjudications(entries: object) -> list[dict]:
    kept = []
    for entry in entries if isinstance(entries, list) else ():
        if isinstance(entry, dict) and _kept_category(entry.get("category")):
            kept.append({k: v for k, v in entry.items() if k != "amount"} if "amount" in entry else entry)
    return kept


def _keep_non_financial_adjudications(element: dict) -> None:
    """A claim's or a line's adjudications, cut to the kept categories without amounts (none left: none at all)."""
    if "adjudication" in element:
        adjudications = _adjudications(element["adjudication"])
        if adjudications:
            element["adjudication"] = adjudications
        else:
            del element["adjudication"]


def _line(line: object) -> object:
    if not isinstance(line, dict):
        return line
    out = {k: v for k, v in line.items() if k not in _FINANCIAL_LINE}
    _keep_non_financial_adjudications(out)
    for nested in ("detail", "subDetail"):
        if isinstance(out.get(nested), list):
            out[nested] = [_line(child) for child in out[nested]]
    return out


def non_financial(eob: dict) -> tuple[dict, str]:
    """The Basis view of a claim, and the profile it now claims."""
    out = {k: v for k, v in eob.items() if k not in _FINANCIAL_HEADER}
    for key in ("item", "addItem"):
        if isinstance(out.get(key), list):
            out[key] = [_line(line) for line in out[key]]
    _keep_non_financial_adjudications(out)
    profile = BASIS_PROFILES[claim_kind(eob)]
    meta = dict(eob["meta"]) if isinstance(eob.get("meta"), dict) else {}
    others = [p for p in meta.get("profile") or () if isinstance(p, str) and not p.startswith(C4BB)]
    meta["profile"] = others + [profile]
    out["meta"] = meta
    return out, profile
