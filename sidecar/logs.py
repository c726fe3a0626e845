"""Structured JSON logs, one object per line, each carrying the current request id."""
from __future__ import annotations

import asyncio
import atexit
import contextvars
import logging
import sys
import time
from typing import Any

import orjson

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        rid = request_id.get()
        if rid:
            entry["request_id"] = rid
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class BatchedStreamHandler(logging.StreamHandler):
    """A server's log lines go to a block-buffered stream, written out by `flush_every` (and at once from WARNING
    up): a write system call per request line costs more than the rest of the line, and syscalls are dear in
    sandboxed containers. At most one interval of INFO lines is in memory."""

    def __init__(self) -> None:
        super().__init__(open(sys.stderr.fileno(), "w", buffering=1 << 16, encoding="utf-8", closefd=False))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.stream.write(self.format(record) + self.terminator)
        except Exception:
            self.handleError(record)
        if record.levelno >= logging.WARNING:
            self.flush()


async def flush_every(interval: float) -> None:
    """Write out buffered log lines every `interval` seconds (the server runs this for its lifetime)."""
    while True:
        await asyncio.sleep(interval)
        for handler in logging.getLogger().handlers:
            handler.flush()


def configure(level: str = "INFO", batched: bool = False) -> None:
    # Every proxied request logs a line; skip what the JSON never shows (the caller's frame, thread and process
    # names), as the logging HOWTO's "Optimization" section advises: about a quarter of each line's cost.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = BatchedStreamHandler() if batched else logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    atexit.register(handler.flush)
    root.setLevel(level.upper())
    # aiohttp's own access log would duplicate ours, in plain text.
    logging.getLogger("aiohttp.access").disabled = True
