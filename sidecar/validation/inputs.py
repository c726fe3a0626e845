"""What `pdex-sidecar validate` reads: a JSON file (one resource), an NDJSON file (one per line), or a folder of
them (every *.json and *.ndjson below it, in name order)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import orjson

SUFFIXES = (".json", ".ndjson")


@dataclass(frozen=True)
class Input:
    source: str               # file, or file:line for NDJSON
    resource: dict | None     # None when the text is no JSON object
    problem: str = ""


def _one(source: str, text: bytes) -> Input:
    try:
        resource = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        return Input(source, None, f"not JSON: {exc}")
    if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
        return Input(source, None, "not a FHIR resource (no resourceType)")
    return Input(source, resource)


def _file(path: Path) -> Iterator[Input]:
    data = path.read_bytes()
    if path.suffix == ".ndjson":
        for number, line in enumerate(data.splitlines(), start=1):
            if line.strip():
                yield _one(f"{path}:{number}", line)
    else:
        yield _one(str(path), data)


def read_inputs(paths: Iterable[Path]) -> Iterator[Input]:
    """Each resource of the files and folders given; a path that is neither is an OSError."""
    for path in paths:
        if path.is_dir():
            for found in sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in SUFFIXES):
                yield from _file(found)
        elif path.is_file():
            yield from _file(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
