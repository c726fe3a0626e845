"""The sidecar's own page links for partners: opaque, authenticated, bound to one client and one canonical query.

A link carries its state sealed with Fernet (AES-CBC + HMAC from `cryptography`): the client it was issued to, the
query or operation it continues, the page size, HAPI's search id and the raw position to go on from. A partner can
neither read it (no HAPI page id ever reaches a client) nor alter it (the query is inside, authenticated), and
another client's link is the same 404 as a forged one. Links live as long as HAPI keeps the search results.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import orjson
from cryptography.fernet import Fernet, InvalidToken

PAGE_LIFETIME_SECONDS = 3600
"""HAPI keeps a search's results an hour by default (`expire_search_results_after_millis`)."""


@dataclass(frozen=True)
class PageState:
    client_id: str
    kind: str
    """`search` (of `target`, a resource type) or `everything` (of `target`, a Patient id)."""
    target: str
    pairs: tuple[tuple[str, str], ...]
    count: int
    search_id: str
    offset: int


class PageLinks:
    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    @staticmethod
    def new_key() -> str:
        return Fernet.generate_key().decode()

    def seal(self, state: PageState) -> str:
        return self._fernet.encrypt(orjson.dumps(asdict(state))).decode()

    def open(self, token: str, client_id: str) -> PageState | None:
        """The state behind a link this client was given and that has not expired; None for anything else."""
        try:
            raw = orjson.loads(self._fernet.decrypt(token.encode(), ttl=PAGE_LIFETIME_SECONDS))
            state = PageState(raw["client_id"], raw["kind"], raw["target"],
                              tuple((str(k), str(v)) for k, v in raw["pairs"]), int(raw["count"]),
                              raw["search_id"], int(raw["offset"]))
        except (InvalidToken, ValueError, KeyError, TypeError, UnicodeEncodeError, orjson.JSONDecodeError):
            return None
        return state if state.client_id == client_id else None
