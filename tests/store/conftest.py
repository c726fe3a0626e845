"""The store contract runs on each dialect: every test gets a fresh store, and `other` opens a second connection to the
same one, as another replica (or an admin command) would."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import pytest

from sidecar.devstack import PostgresServer
from sidecar.store.db import Store
from sidecar.store.postgres import PostgresStore
from sidecar.store.sqlite import SqliteStore


@pytest.fixture(params=["sqlite", "postgresql"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Store]]:
    """Opens another connection to this test's store each time it is called."""
    if request.param == "sqlite":
        def open_one() -> Store:
            return SqliteStore(tmp_path)
    else:
        postgres: PostgresServer = request.getfixturevalue("postgres")
        url = postgres.database("contract")

        def open_one() -> Store:
            return PostgresStore(url)
    opened: list[Store] = []

    def tracked() -> Store:
        opened.append(open_one())
        return opened[-1]

    yield tracked
    for store in opened:
        store.close()


@pytest.fixture
def store(opener: Callable[[], Store]) -> Store:
    return opener()


@pytest.fixture
def other(opener: Callable[[], Store], store: Store) -> Store:
    return opener()
