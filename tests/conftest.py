"""Fixtures: one real HAPI per test run, one sidecar process in front of it, and helpers to seed HAPI directly."""
from __future__ import annotations

import asyncio
import shutil
import uuid
from pathlib import Path
from typing import AsyncIterator, Awaitable, Callable, Iterator

import aiohttp
import pytest

from sidecar.config import load_settings
from sidecar.devstack import REPO_ROOT, HapiServer, PostgresServer, SidecarProcess, obtain_hapi, obtain_postgres
from sidecar.validation.engine import Validator, build_jar
from tests.smart import Registered, bearer_headers, register_client

# How often the test sidecar looks for clients registered from outside (the tests register them).
STATE_REFRESH_SECONDS = 0.05


@pytest.fixture(scope="session")
def hapi() -> Iterator[HapiServer]:
    server = obtain_hapi()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def peer_hapi() -> Iterator[HapiServer]:
    """A second payer's HAPI (HAPI_PEER_BASE_URL, else started like the first), shared by the tests that pull."""
    server = obtain_hapi("HAPI_PEER_BASE_URL")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One PostgreSQL server per test run; each test takes a database of its own from it."""
    server = obtain_postgres()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def validator() -> Iterator[Validator]:
    """HAPI's FHIR validator (validator/, built if needed) with the IG packages of fhir_packages_dir, else of
    ../shared/fhir-packages beside the project (as in CI); one JVM for the whole run."""
    if shutil.which("java") is None:
        pytest.skip("Java is not installed: the FHIR validator (validator/) needs Java 17 and Maven")
    configured = load_settings().fhir_packages_dir
    packages = Path(configured) if configured else REPO_ROOT.parent / "shared" / "fhir-packages"
    with Validator(packages, build_jar()).start() as started:
        yield started


@pytest.fixture(scope="session")
def sidecar_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sidecar-data")


@pytest.fixture(scope="session")
def operator(sidecar_data: Path) -> Registered:
    """The payer's own unrestricted internal client (registered before the sidecar starts)."""
    return register_client(sidecar_data, scopes="system/*.read", unrestricted=True,
                           organization="Organization/this-payer")


THIS_PAYER = "http://hl7.org/fhir/sid/us-npi|1234567893"
"""How the test sidecar's payer is named in the source actor of member consents."""


@pytest.fixture(scope="session")
def sidecar(hapi: HapiServer, sidecar_data: Path, operator: Registered) -> Iterator[SidecarProcess]:
    process = SidecarProcess(hapi.base_url, sidecar_data,
                             extra_env={"SIDECAR_STATE_REFRESH_SECONDS": str(STATE_REFRESH_SECONDS),
                                        "SIDECAR_PAYER_IDENTIFIERS": THIS_PAYER}).start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def token_url(sidecar: SidecarProcess) -> str:
    return f"{sidecar.public_url}/auth/token"


@pytest.fixture
async def anonymous() -> AsyncIterator[aiohttp.ClientSession]:
    """A session that sends no token."""
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def http(request: pytest.FixtureRequest, anonymous: aiohttp.ClientSession) -> AsyncIterator[
        aiohttp.ClientSession]:
    """A session that carries the operator's token when the test uses the sidecar."""
    headers = {}
    if "sidecar" in request.fixturenames:
        sidecar = request.getfixturevalue("sidecar")
        operator = request.getfixturevalue("operator")
        headers = await bearer_headers(anonymous, f"{sidecar.public_url}/auth/token", operator)
    async with aiohttp.ClientSession(headers=headers) as session:
        yield session


@pytest.fixture
def register(sidecar: SidecarProcess) -> Callable[..., Awaitable[Registered]]:
    """Register a client in the running sidecar's store and wait until the sidecar has seen it."""
    async def register_one(**kwargs) -> Registered:
        registered = register_client(sidecar.data_dir, **kwargs)
        await asyncio.sleep(STATE_REFRESH_SECONDS * 4)
        return registered

    return register_one


@pytest.fixture
def unique() -> str:
    """A value no other test uses: tests isolate their data by it instead of restarting HAPI."""
    return uuid.uuid4().hex


class HapiSeeder:
    """Writes test data straight into HAPI, as an operator's load would (the sidecar accepts no writes)."""

    def __init__(self, base_url: str, session: aiohttp.ClientSession) -> None:
        self.base_url = base_url
        self.session = session

    async def create(self, resource: dict) -> dict:
        async with self.session.post(f"{self.base_url}/{resource['resourceType']}", json=resource,
                                     headers={"Content-Type": "application/fhir+json"}) as resp:
            assert resp.status == 201, await resp.text()
            return await resp.json(content_type=None)

    async def get(self, path: str, **params: str) -> tuple[int, dict]:
        async with self.session.get(f"{self.base_url}/{path}", params=params,
                                    headers={"Accept": "application/fhir+json"}) as resp:
            return resp.status, await resp.json(content_type=None)


@pytest.fixture
def seed(hapi: HapiServer, http: aiohttp.ClientSession) -> HapiSeeder:
    return HapiSeeder(hapi.base_url, http)
