"""What a conformance run is made of: checks grouped by spec section, and the result of each."""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Awaitable, Callable

if TYPE_CHECKING:
    from sidecar.conformance.context import Context


class Outcome(str, enum.Enum):
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Exchange:
    """One HTTP request and the answer to it, as shown in the report of a failed check."""

    method: str
    url: str
    request_body: str
    status: int | None
    response_headers: dict[str, str]
    response_body: str

    def text(self) -> str:
        headers = "\n".join(f"{k}: {v}" for k, v in self.response_headers.items())
        return (f"{self.method} {self.url}\n{self.request_body}\n\n--> {self.status}\n{headers}\n\n"
                f"{self.response_body}").strip()


class CheckFailed(Exception):
    """A check's assertion did not hold; carries the exchange that showed it."""

    def __init__(self, message: str, exchange: Exchange | None = None) -> None:
        super().__init__(message)
        self.exchange = exchange


class Skip(Exception):
    """The check cannot run here (no second client, no Java...): reported as skipped with this reason."""


@dataclass(frozen=True)
class Check:
    name: str
    title: str
    run: Callable[["Context"], Awaitable[None]]
    required: bool = True     # an optional check (a spec MAY) that fails is reported, but does not fail the run


@dataclass(frozen=True)
class Group:
    id: str
    title: str
    spec: str                 # the sections it checks, as the specs name them
    checks: list[Check] = field(default_factory=list)

    def check(self, name: str, title: str, required: bool = True):
        """Decorator registering an async check of this group, in definition order."""
        def register(run: Callable[["Context"], Awaitable[None]]):
            self.checks.append(Check(name, title, run, required))
            return run
        return register


@dataclass(frozen=True)
class Result:
    group: Group
    check: Check
    outcome: Outcome
    message: str
    seconds: float
    exchange: Exchange | None = None

    @property
    def fails_run(self) -> bool:
        return self.outcome is Outcome.FAILED and self.check.required
