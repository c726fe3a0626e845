"""One self-contained HTML page: per group what passed, what failed (with the request and the answer that failed
it) and what was skipped and why. No scripts, no external resources."""
from __future__ import annotations

from datetime import datetime, timezone
from html import escape
from pathlib import Path
from typing import Sequence

from sidecar.conformance.model import Outcome, Result

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:2em;max-width:75em}
h1{font-size:1.4em} h2{font-size:1.15em;margin-top:1.6em} .spec{color:#555;font-size:.9em}
table{border-collapse:collapse;width:100%} td{border-top:1px solid #ddd;padding:.3em .5em;vertical-align:top}
.passed{color:#1a7f37} .failed{color:#cf222e;font-weight:bold} .skipped{color:#9a6700} .optional{color:#8250df}
pre{background:#f6f8fa;padding:.6em;overflow:auto;max-height:30em;white-space:pre-wrap}
"""


def _row(result: Result) -> str:
    outcome = result.outcome.value + ("" if result.check.required else " (optional)")
    detail = f"<div>{escape(result.message)}</div>" if result.message else ""
    if result.exchange:
        detail += (f"<details><summary>request and answer</summary><pre>{escape(result.exchange.text())}</pre>"
                   "</details>")
    return (f"<tr><td class='{result.outcome.value}'>{escape(outcome)}</td><td><b>{escape(result.check.name)}</b>"
            f"<br>{escape(result.check.title)}{detail}</td><td>{result.seconds:.2f} s</td></tr>")


def write(results: Sequence[Result], path: Path, target: str) -> None:
    counts = {o: sum(r.outcome is o for r in results) for o in Outcome}
    verdict = ("FAILED" if any(r.fails_run for r in results) else
               "INCOMPLETE" if any(r.outcome is Outcome.SKIPPED and r.check.required for r in results) else "PASSED")
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Conformance: {escape(target)}"
             f"</title><style>{STYLE}</style></head><body>",
             f"<h1>pdex-sidecar conformance: {escape(target)} — {verdict}</h1>",
             f"<p>{datetime.now(timezone.utc).isoformat(timespec='seconds')} · {counts[Outcome.PASSED]} passed, "
             f"{counts[Outcome.FAILED]} failed, {counts[Outcome.SKIPPED]} skipped</p>"]
    for group_id in dict.fromkeys(r.group.id for r in results):
        mine = [r for r in results if r.group.id == group_id]
        group = mine[0].group
        state = "failed" if any(r.fails_run for r in mine) else "passed"
        parts.append(f"<h2 id='{escape(group_id)}'><span class='{state}'>{escape(group_id)}</span>: "
                     f"{escape(group.title)}</h2><div class='spec'>{escape(group.spec)}</div>")
        parts.append("<table>" + "".join(_row(r) for r in mine) + "</table>")
    parts.append("</body></html>")
    path.write_text("\n".join(parts), encoding="utf-8")
