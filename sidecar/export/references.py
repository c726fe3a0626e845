"""The reference data a partner's export carries: the organizations, practitioners, locations and medications its
released member data points to, as an `_include` would release them (`sidecar.disclosure.answers`).

Which types: those the kick-off's `_type` names (all of them without `_type`) that the token may read. While the
member files are filtered, only the references are kept (`Type/id` → the most permissive consent policy of the
released data pointing there), never the resources, so memory follows the number of distinct references.
"""
from __future__ import annotations

from itertools import islice
from typing import Iterable, Iterator, Mapping

from sidecar.auth.scopes import ScopeSet
from sidecar.disclosure.rules import SENSITIVE

REFERENCE_TYPES = ("Location", "Medication", "Organization", "Practitioner", "PractitionerRole")


def exported_reference_types(pairs: Iterable[tuple[str, str]], scopes: ScopeSet) -> list[str]:
    """The reference types an export adds, from the kick-off's parameters and the token's scopes."""
    named = {t.strip() for name, value in pairs if name == "_type" for t in value.split(",") if t.strip()}
    return [t for t in REFERENCE_TYPES if (not named or t in named) and scopes.allows(t, "r")]


class PointedTo:
    """References to reference data of `types` made by released data, each with the most permissive policy."""

    def __init__(self, types: Iterable[str]) -> None:
        self.types = frozenset(types)
        self._policies: dict[str, str] = {}

    def note(self, pointed: Mapping[str, str]) -> None:
        for ref, policy in pointed.items():
            if ref.partition("/")[0] in self.types and self._policies.get(ref) != SENSITIVE:
                self._policies[ref] = policy

    def batches(self, resource_type: str, size: int) -> Iterator[dict[str, str]]:
        """{`Type/id`: policy} of at most `size` references of one type, in id order."""
        refs = iter(sorted(r for r in self._policies if r.partition("/")[0] == resource_type))
        while chunk := list(islice(refs, size)):
            yield {ref: self._policies[ref] for ref in chunk}
