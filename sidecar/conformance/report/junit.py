"""JUnit XML: one testsuite per group, one testcase per check (classname = group, so CI tools group them)."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Sequence

from sidecar.conformance.model import Outcome, Result


def write(results: Sequence[Result], path: Path, target: str) -> None:
    suites = ET.Element("testsuites", name=f"pdex-sidecar conformance: {target}")
    for group_id in dict.fromkeys(r.group.id for r in results):
        mine = [r for r in results if r.group.id == group_id]
        suite = ET.SubElement(suites, "testsuite", name=group_id, tests=str(len(mine)),
                              failures=str(sum(r.outcome is Outcome.FAILED for r in mine)),
                              skipped=str(sum(r.outcome is Outcome.SKIPPED for r in mine)), errors="0",
                              time=f"{sum(r.seconds for r in mine):.3f}")
        properties = ET.SubElement(suite, "properties")
        ET.SubElement(properties, "property", name="spec", value=mine[0].group.spec)
        for result in mine:
            case = ET.SubElement(suite, "testcase", classname=group_id, name=result.check.name,
                                 time=f"{result.seconds:.3f}")
            if result.outcome is Outcome.FAILED:
                failure = ET.SubElement(case, "failure", message=result.message,
                                        type="required" if result.check.required else "optional")
                failure.text = result.exchange.text() if result.exchange else result.message
            elif result.outcome is Outcome.SKIPPED:
                ET.SubElement(case, "skipped", message=result.message)
            ET.SubElement(case, "system-out").text = result.check.title
    ET.indent(suites)
    ET.ElementTree(suites).write(path, encoding="utf-8", xml_declaration=True)
