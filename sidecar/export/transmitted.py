"""A partner export's Transmitter Provenance file (`sidecar.provenance.transmitter`).

It is written as the export's files are: each batch of released resources gets one Provenance per member in it
(reference data one of its own), so memory stays that of one batch, every released resource is the target of
exactly one Provenance, and nothing withheld ever is. Ids follow from the job and the Provenance's position, so a
resumed job writes the same file again.
"""
from __future__ import annotations

from pathlib import Path

import orjson

from sidecar.provenance.transmitter import provenance_id, targets_by_member, transmitter_provenance
from sidecar.store import jobs
from sidecar.store.jobs import JobFile

NAME = "provenance.ndjson"


class TransmittedFile:
    def __init__(self, directory: Path, job_id: str, who: dict, recorded: str) -> None:
        self.path = directory / NAME
        self.job_id = job_id
        self.who = who
        self.recorded = recorded
        self.count = 0
        self.path.write_bytes(b"")

    def add(self, released: list[dict]) -> None:
        """One batch of resources just written to the export's files (opened per batch: no handle outlives a
        failed job)."""
        records = []
        for targets in targets_by_member(released).values():
            self.count += 1
            records.append(transmitter_provenance(provenance_id(self.job_id, str(self.count)), self.who, targets,
                                                  self.recorded))
        with self.path.open("ab") as out:
            out.writelines(orjson.dumps(record) + b"\n" for record in records)

    def listed(self) -> JobFile | None:
        """The file for the manifest; an empty one (nothing released) is deleted instead."""
        if self.count == 0:
            self.path.unlink()
            return None
        return JobFile(jobs.new_id(), self.job_id, "output", "Provenance", NAME, self.count)
