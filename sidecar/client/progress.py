"""What a long pull shows while it runs: members matched, files downloaded, resources ingested.

On a terminal one line is redrawn in place; into a log or pipe a line is written when the phase changes and at
most every `interval` seconds otherwise.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import TextIO


@dataclass
class Progress:
    stream: TextIO = field(default_factory=lambda: sys.stderr)
    interval: float = 5.0
    phase: str = "starting"
    members: int = 0
    sent: int = 0
    matched: int = 0
    not_matched: int = 0
    files: int = 0
    files_total: int = 0
    ingested: int = 0
    unchanged: int = 0
    invalid: int = 0
    failed_members: int = 0
    phase_seconds: dict[str, float] = field(default_factory=dict)
    _phase_started: float = field(default_factory=time.perf_counter)
    _last_line: float = 0.0

    def enter(self, phase: str) -> None:
        now = time.perf_counter()
        self.phase_seconds[self.phase] = self.phase_seconds.get(self.phase, 0.0) + now - self._phase_started
        self.phase, self._phase_started = phase, now
        self.show(force=True)

    def finish(self) -> None:
        self.enter("done")
        if self.stream.isatty():
            self.stream.write("\n")

    def line(self) -> str:
        return (f"[{self.phase}] members {self.members}: sent {self.sent}, matched {self.matched}, "
                f"not matched {self.not_matched} | files {self.files}/{self.files_total} | resources ingested "
                f"{self.ingested}, unchanged {self.unchanged}, invalid {self.invalid}"
                + (f" | members failed {self.failed_members}" if self.failed_members else ""))

    def show(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.stream.isatty():
            self.stream.write("\r\x1b[2K" + self.line())
            self.stream.flush()
        elif force or now - self._last_line >= self.interval:
            self.stream.write(self.line() + "\n")
            self.stream.flush()
        else:
            return
        self._last_line = now
