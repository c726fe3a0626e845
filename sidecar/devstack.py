"""Local servers for tests, benchmarks and the demo: a real HAPI and the sidecar as a separate process.

HAPI comes, in this order, from `HAPI_BASE_URL` (an external server), the official image through testcontainers
when a Docker engine answers, or the Maven build in `hapi-config/` through `hapi-config/run-hapi`. PostgreSQL
(the replicas' shared store) comes from `SIDECAR_TEST_POSTGRES_URL` (a server where databases may be created),
else from `scripts/postgres` on a free port with its data in a temporary directory.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

REPO_ROOT = Path(__file__).resolve().parents[1]
HAPI_CONFIG = REPO_ROOT / "hapi-config"
RUN_HAPI = HAPI_CONFIG / "run-hapi"
RUN_POSTGRES = REPO_ROOT / "scripts" / "postgres"
HAPI_IMAGE = os.environ.get("HAPI_IMAGE", "hapiproject/hapi:v8.6.0-1")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_http(url: str, timeout: float, alive: Callable[[], bool] = lambda: True) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError(f"process serving {url} exited before it answered")
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f}s")


def docker_engine_available() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        import docker

        docker.from_env(timeout=3).ping()
        return True
    except Exception:  # any failure to reach an engine means "no engine" here
        return False


@dataclass
class HapiServer:
    """A running HAPI and how to stop it (nothing to stop for an external server)."""

    base_url: str
    how: str
    stop: Callable[[], None] = field(default=lambda: None, repr=False)


def _container_hapi() -> HapiServer:
    from testcontainers.core.container import DockerContainer

    container = (DockerContainer(HAPI_IMAGE)
                 .with_exposed_ports(8080)
                 .with_volume_mapping(str(HAPI_CONFIG / "application.yaml"), "/configs/application.yaml", "ro")
                 .with_env("SPRING_CONFIG_LOCATION", "file:///configs/application.yaml"))
    container.start()
    base = f"http://{container.get_container_host_ip()}:{container.get_exposed_port(8080)}/fhir"
    wait_for_http(f"{base}/metadata", timeout=600)
    return HapiServer(base, "testcontainers", container.stop)


def _local_hapi(peer: bool) -> HapiServer:
    env = dict(os.environ)
    if peer:  # the second payer never shares the first one's port or database
        env.pop("HAPI_PORT", None)
        env.pop("HAPI_DB_URL", None)
    env.setdefault("HAPI_PORT", str(free_port()))
    # A fresh in-memory database per run: no state leaks between test runs.
    env.setdefault("HAPI_DB_URL", f"jdbc:h2:mem:pdex-{env['HAPI_PORT']};DB_CLOSE_DELAY=-1")
    return run_hapi(env)


def run_hapi(env: dict[str, str]) -> HapiServer:
    """`hapi-config/run-hapi start` with this environment (HAPI_PORT, HAPI_DB_URL, ...); stop stops that server."""
    started = subprocess.run([str(RUN_HAPI), "start"], env=env, check=True, stdout=subprocess.PIPE, text=True)
    base = started.stdout.strip().splitlines()[-1]

    def stop() -> None:
        subprocess.run([str(RUN_HAPI), "stop"], env=env, check=False)

    return HapiServer(base, "run-hapi", stop)


@dataclass
class PostgresServer:
    """A PostgreSQL server on which each caller gets databases of its own (`database`)."""

    url: str  # of its maintenance database; others share everything but the path
    stop: Callable[[], None] = field(default=lambda: None, repr=False)

    def database(self, prefix: str = "sidecar") -> str:
        """A new empty database's URL."""
        import psycopg

        name = f"{prefix}_{os.urandom(6).hex()}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"{self.url.rsplit('/', 1)[0]}/{name}"


def run_postgres(data_dir: Path | str, port: int, *args: str, check: bool = True) -> str:
    """`scripts/postgres ARGS` for the cluster in `data_dir` on `port`; what it printed."""
    env = dict(os.environ, PG_DATA_DIR=str(data_dir), PG_PORT=str(port))
    return subprocess.run([str(RUN_POSTGRES), *args], env=env, check=check, stdout=subprocess.PIPE,
                          text=True).stdout.strip()


def obtain_postgres() -> PostgresServer:
    external = os.environ.get("SIDECAR_TEST_POSTGRES_URL")
    if external:
        return PostgresServer(external)
    # Under /tmp itself: started by root, the server runs as `postgres`, which must reach its data directory.
    data_dir, port = tempfile.mkdtemp(prefix="pdex-postgres-"), free_port()
    run_postgres(data_dir, port, "start")

    def stop() -> None:
        run_postgres(data_dir, port, "stop", check=False)
        shutil.rmtree(data_dir, ignore_errors=True)

    return PostgresServer(run_postgres(data_dir, port, "url"), stop)


def obtain_hapi(external_variable: str = "HAPI_BASE_URL") -> HapiServer:
    """A HAPI: the external one `external_variable` names, else a container, else the local build. A second payer
    (tests and benchmarks of pulls between payers) asks with `HAPI_PEER_BASE_URL` and gets a second server."""
    external = os.environ.get(external_variable)
    if external:
        return HapiServer(external.rstrip("/"), "external")
    if docker_engine_available():
        return _container_hapi()
    return _local_hapi(peer=external_variable != "HAPI_BASE_URL")


@dataclass
class SidecarProcess:
    """`pdex-sidecar serve` in its own process, so its memory and latency are its own."""

    upstream_url: str
    data_dir: Path
    port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    extra_env: dict[str, str] = field(default_factory=dict)
    # What to run: the product by default; a benchmark may run a script serving the same settings.
    argv: list[str] = field(default_factory=lambda: ["-m", "sidecar", "serve"])
    # Which interpreter: this one by default; a memory benchmark runs the product's own install instead.
    python: str = sys.executable
    process: subprocess.Popen | None = None
    log_path: Path | None = None

    @property
    def public_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def fhir_base(self) -> str:
        return f"{self.public_url}/fhir"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def start(self) -> "SidecarProcess":
        env = {**os.environ, "SIDECAR_UPSTREAM_URL": self.upstream_url, "SIDECAR_PUBLIC_URL": self.public_url,
               "SIDECAR_HOST": "127.0.0.1", "SIDECAR_PORT": str(self.port),
               "SIDECAR_METRICS_HOST": "127.0.0.1", "SIDECAR_METRICS_PORT": str(self.metrics_port),
               "SIDECAR_DATA_DIR": str(self.data_dir), **self.extra_env}
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.data_dir / "sidecar.log"
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen([self.python, *self.argv], env=env, stdout=log,
                                            stderr=subprocess.STDOUT)
        wait_for_http(f"{self.public_url}/health/live", timeout=30, alive=lambda: self.process.poll() is None)
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
