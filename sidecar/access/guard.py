"""Checking answers resource by resource before they leave, so a request that slips past the route checks still
discloses nothing; and binding search pages to the client whose search created them.
"""
from __future__ import annotations

from collections import OrderedDict
from urllib.parse import parse_qs, urlsplit

from sidecar.access.caller import Caller


def filter_bundle(caller: Caller, bundle: dict) -> dict:
    """Drop every entry the caller may not see. `total` goes too when anything was dropped, since it would count
    what was withheld."""
    entries = bundle.get("entry")
    if not isinstance(entries, list):
        return bundle
    kept = []
    for entry in entries:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        is_outcome = (isinstance(resource, dict) and resource.get("resourceType") == "OperationOutcome"
                      and (entry.get("search") or {}).get("mode") == "outcome")
        if is_outcome or caller.may_see(resource):
            kept.append(entry)
    if len(kept) != len(entries):
        bundle.pop("total", None)
    if kept:
        bundle["entry"] = kept
    else:
        bundle.pop("entry", None)
    return bundle


def page_ids(bundle: dict) -> list[str]:
    """The `_getpages` ids a search answer links to."""
    ids = []
    for link in bundle.get("link") or []:
        url = link.get("url") if isinstance(link, dict) else None
        if isinstance(url, str) and "_getpages=" in url:
            ids += parse_qs(urlsplit(url).query).get("_getpages", [])
    return ids


class PageOwners:
    """Which client a search's page id was handed to (bounded; a forgotten page is simply not available)."""

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self._owners: OrderedDict[str, str] = OrderedDict()

    def remember(self, page_id: str, client_id: str) -> None:
        self._owners[page_id] = client_id
        self._owners.move_to_end(page_id)
        while len(self._owners) > self.capacity:
            self._owners.popitem(last=False)

    def owned_by(self, page_id: str, client_id: str) -> bool:
        return self._owners.get(page_id) == client_id
