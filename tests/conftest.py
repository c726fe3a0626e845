"""Fixtures: one real HAPI per test run, one sidecar process in front of it, and helpers to seed HAPI directly."""
from __future__ import annotations

import uuid
from typing import AsyncIterator, Iterator

import aiohttp
import pytest

from sidecar.devstack import HapiServer, SidecarProcess, obtain_hapi


@pytest.fixture(scope="session")
def hapi() -> Iterator[HapiServer]:
    server = obtain_hapi()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def sidecar(hapi: HapiServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SidecarProcess]:
    process = SidecarProcess(hapi.base_url, tmp_path_factory.mktemp("sidecar-data")).start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


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
