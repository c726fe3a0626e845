"""A local PostgreSQL (the project's `scripts/postgres`) and HAPIs whose databases live in it, for benchmarks."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import psutil

from sidecar.devstack import REPO_ROOT, HapiServer, free_port, run_hapi, run_postgres


@dataclass
class LocalPostgres:
    data_dir: Path
    port: int

    def _run(self, *args: str) -> str:
        return run_postgres(self.data_dir, self.port, *args)

    def start(self) -> "LocalPostgres":
        self._run("start")
        return self

    def stop(self) -> None:
        self._run("stop")

    def createdb(self, name: str) -> None:
        self._run("createdb", name)

    def size(self, name: str) -> int:
        """pg_database_size in bytes."""
        return int(self._run("size", name))

    def jdbc_url(self, name: str) -> str:
        return f"jdbc:postgresql://127.0.0.1:{self.port}/{name}"

    def processes(self) -> list[psutil.Process]:
        """The postmaster and its children (one backend per connection, the background workers)."""
        postmaster = psutil.Process(int((self.data_dir / "postmaster.pid").read_text().split()[0]))
        return [postmaster, *postmaster.children()]


def hapi_on_postgres(pg: LocalPostgres, database: str) -> tuple[HapiServer, psutil.Process]:
    """A HAPI (hapi-config's build) on a free port, storing into `database` (created if absent); its JVM."""
    pg.createdb(database)
    port = free_port()
    env = dict(os.environ, HAPI_PORT=str(port), HAPI_DB_URL=pg.jdbc_url(database), HAPI_DB_USER="postgres")
    server = run_hapi(env)
    pid_file = REPO_ROOT / "hapi-config" / ".run" / f"hapi-{port}.pid"
    return server, psutil.Process(int(pid_file.read_text()))
