"""Marking a revoked member's Consents inactive at HAPI (from the admin command, which runs outside the server)."""
from __future__ import annotations

import json
import urllib.request

FHIR_JSON = "application/fhir+json"


def inactivate_consent(upstream_base: str, consent: str, timeout: float = 30.0) -> None:
    """`consent` is `Consent/{id}`. Raises OSError (URLError, HTTPError) when HAPI cannot be reached or refuses."""
    url = f"{upstream_base}/{consent}"
    with urllib.request.urlopen(urllib.request.Request(url, headers={"Accept": FHIR_JSON}), timeout=timeout) as resp:
        resource = json.load(resp)
    resource["status"] = "inactive"
    update = urllib.request.Request(url, data=json.dumps(resource).encode(), method="PUT",
                                    headers={"Content-Type": FHIR_JSON, "Accept": FHIR_JSON})
    with urllib.request.urlopen(update, timeout=timeout):
        pass
