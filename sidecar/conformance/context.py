"""What every check works with: the target server, the partner clients, the fixtures, and an HTTP session that
remembers the last exchange so that a failed check can show the request and the answer that failed it."""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable

import aiohttp
import orjson

from sidecar.client.smart import ClientKey, TokenRequestFailed, request_token
from sidecar.conformance.fixtures import Fixtures
from sidecar.conformance.model import CheckFailed, Exchange, Skip

FHIR_JSON = "application/fhir+json"
PARTNER_SCOPE = "system/*.read system/Patient.$member-match system/Group.$bulk-member-match"
SHOWN_BODY = 4000           # characters of a body kept for the report


@dataclass(frozen=True)
class Client:
    client_id: str
    key: ClientKey


@dataclass
class Target:
    fhir_base: str
    client: Client
    organization: str        # the organization the client is registered for: a Consent's recipient names it
    fixtures: Fixtures
    second: Client | None = None
    packages_dir: Path | None = None
    validator: Any = None    # an already started sidecar.validation Validator to reuse (else one is started)
    timeout: float = 120.0   # longest wait for an asynchronous job


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError:
            return None

    def ndjson(self) -> list[dict]:
        return [orjson.loads(line) for line in self.body.splitlines() if line.strip()]

    def header(self, name: str) -> str:
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), "")


def _shown(data: bytes | str | None) -> str:
    text = data.decode(errors="replace") if isinstance(data, bytes) else (data or "")
    return text if len(text) <= SHOWN_BODY else text[:SHOWN_BODY] + f"\n… ({len(text)} characters)"


@dataclass
class Context:
    target: Target
    http: aiohttp.ClientSession
    last: Exchange | None = None
    answers: list[tuple[str, dict]] = field(default_factory=list)   # (what it was, resource) for the profile group
    closers: list[Callable[[], None]] = field(default_factory=list)   # run when the run ends
    _tokens: dict[tuple[str, str], tuple[float, str]] = field(default_factory=dict)
    _shared: dict[str, asyncio.Future] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return self.target.fhir_base.rstrip("/")

    async def request(self, method: str, url: str, *, bearer: str | None = None, body: Any = None,
                      form: dict[str, str] | None = None, headers: dict[str, str] | None = None,
                      params: dict[str, str] | None = None) -> Answer:
        url = url if url.startswith("http") else f"{self.base}/{url.lstrip('/')}"
        sent = {"Accept": FHIR_JSON, **({"Authorization": f"Bearer {bearer}"} if bearer else {}), **(headers or {})}
        data: bytes | dict | None = form
        if body is not None:
            data = orjson.dumps(body)
            sent.setdefault("Content-Type", FHIR_JSON)
        # The report shows the request, but never a client assertion (a credential while it lives).
        shown_body = _shown(data if isinstance(data, bytes) else "&".join(
            f"{k}={'…' if k == 'client_assertion' else v}" for k, v in (form or {}).items()))
        try:
            async with self.http.request(method, url, data=data, headers=sent, params=params,
                                         allow_redirects=False) as resp:
                answer = Answer(resp.status, dict(resp.headers), await resp.read())
                shown_url = str(resp.url)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            self.last = Exchange(method, url, shown_body, None, {}, f"no answer: {exc!r}")
            raise CheckFailed(f"{method} {url} got no answer: {exc!r}", self.last) from exc
        self.last = Exchange(method, shown_url, shown_body, answer.status, answer.headers, _shown(answer.body))
        return answer

    def expect(self, condition: Any, message: str) -> None:
        if not condition:
            raise CheckFailed(message, self.last)

    def fhir(self, answer: Answer, status: int | tuple[int, ...], resource_type: str | None = None) -> dict:
        """The answer's JSON, having checked its status (and resource type)."""
        wanted = (status,) if isinstance(status, int) else status
        body = answer.json()
        self.expect(answer.status in wanted, f"expected HTTP {' or '.join(map(str, wanted))}, got {answer.status}")
        if resource_type:
            self.expect(isinstance(body, dict) and body.get("resourceType") == resource_type,
                        f"expected a {resource_type}")
        return body if isinstance(body, dict) else {}

    def keep(self, what: str, resource: Any) -> None:
        """An answer the profile group validates at the end of the run."""
        if isinstance(resource, dict) and resource.get("resourceType"):
            self.answers.append((what, resource))

    async def once(self, name: str, make: Callable[[], Awaitable[Any]]) -> Any:
        """A set-up several checks (or groups) share, run once per run; a failure is every sharer's failure."""
        if name not in self._shared:
            self._shared[name] = asyncio.ensure_future(make())
        try:
            return await asyncio.shield(self._shared[name])
        except CheckFailed as exc:
            raise CheckFailed(f"{name}: {exc}", exc.exchange) from exc

    # --- SMART ----------------------------------------------------------------------------------------------

    async def token_url(self) -> str:
        async def discover() -> str:
            answer = await self.request("GET", ".well-known/smart-configuration", headers={"Accept": "application/json"})
            config = answer.json()
            self.expect(answer.status == 200 and isinstance(config, dict) and config.get("token_endpoint"),
                        "SMART discovery (.well-known/smart-configuration) names no token_endpoint")
            return config["token_endpoint"]
        return await self.once("SMART discovery", discover)

    async def token(self, client: Client | None = None, scope: str = PARTNER_SCOPE) -> str:
        client = client or self.target.client
        cached = self._tokens.get((client.client_id, scope))
        if cached and cached[0] > time.monotonic():
            return cached[1]
        url = await self.token_url()
        try:
            body = await request_token(self.http, url, client.client_id, client.key, scope)
        except TokenRequestFailed as exc:
            self.last = Exchange("POST", url, f"grant_type=client_credentials&scope={scope}&client_assertion=…",
                                 exc.status, {}, _shown(orjson.dumps(exc.body)))
            raise CheckFailed(f"no access token for {client.client_id}: {exc}", self.last) from exc
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise CheckFailed(f"the token endpoint {url} did not answer: {exc!r}") from exc
        lifetime = float(body.get("expires_in") or 60)
        self._tokens[(client.client_id, scope)] = (time.monotonic() + lifetime - 30, body["access_token"])
        return body["access_token"]

    def second_client(self) -> Client:
        if self.target.second is None:
            raise Skip("no second client given (--second-client-id/--second-key): partner isolation needs two "
                       "clients of different organizations")
        return self.target.second
