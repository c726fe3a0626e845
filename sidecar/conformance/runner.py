"""Runs the groups' checks in order against one target, one line of progress per check."""
from __future__ import annotations

import time
from typing import Callable, Sequence

import aiohttp

from sidecar.conformance.context import Context, Target
from sidecar.conformance.model import CheckFailed, Group, Outcome, Result, Skip

REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=60, sock_connect=10)
MARK = {Outcome.PASSED: "PASS", Outcome.FAILED: "FAIL", Outcome.SKIPPED: "SKIP"}


def progress_line(result: Result) -> str:
    mark = MARK[result.outcome] if result.check.required or result.outcome is not Outcome.FAILED else "fail"
    why = f": {result.message}" if result.message else ""
    return f"  {mark} {result.group.id} / {result.check.name} ({result.seconds:.2f} s){why}"


async def run(target: Target, groups: Sequence[Group], say: Callable[[str], None] = print) -> list[Result]:
    results: list[Result] = []
    async with aiohttp.ClientSession(timeout=REQUEST_TIMEOUT) as http:
        ctx = Context(target, http)
        try:
            for group in groups:
                say(f"{group.id}: {group.title} [{group.spec}]")
                for check in group.checks:
                    ctx.last = None
                    started = time.monotonic()
                    try:
                        await check.run(ctx)
                        outcome, message, exchange = Outcome.PASSED, "", None
                    except Skip as skip:
                        outcome, message, exchange = Outcome.SKIPPED, str(skip), None
                    except CheckFailed as failed:
                        outcome, message, exchange = Outcome.FAILED, str(failed), failed.exchange
                    except Exception as exc:  # noqa: BLE001 - an answer the check could not read fails the check
                        outcome, message, exchange = Outcome.FAILED, f"unexpected {exc!r}", ctx.last
                    result = Result(group, check, outcome, message, time.monotonic() - started, exchange)
                    results.append(result)
                    say(progress_line(result))
        finally:
            for close in ctx.closers:
                close()
    return results


def summary(results: Sequence[Result]) -> list[str]:
    lines = []
    for group_id in dict.fromkeys(r.group.id for r in results):
        mine = [r for r in results if r.group.id == group_id]
        counts = {o: sum(r.outcome is o for r in mine) for o in Outcome}
        lines.append(f"{group_id}: {counts[Outcome.PASSED]} passed, {counts[Outcome.FAILED]} failed, "
                     f"{counts[Outcome.SKIPPED]} skipped" + (" (FAILED)" if any(r.fails_run for r in mine) else ""))
    return lines


def failing_groups(results: Sequence[Result]) -> list[str]:
    return list(dict.fromkeys(r.group.id for r in results if r.fails_run))


def skipping_groups(results: Sequence[Result]) -> list[str]:
    """Groups with a required check skipped: nothing there failed, but nothing there was proven either."""
    return list(dict.fromkeys(r.group.id for r in results if r.check.required and r.outcome is Outcome.SKIPPED))
