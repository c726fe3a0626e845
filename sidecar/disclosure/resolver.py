"""Which resources an answer points to are sensitive: looked up at HAPI, a few hops deep, and kept briefly.

An Encounter whose diagnosis is a Part 2 Condition, an Observation made in such an Encounter, a DocumentReference
whose custodian is a Part 2 program, a MedicationDispense of a Medication that is a SUD drug: none of them carries
the sensitive code itself. So before deciding an answer, its outgoing references are fetched (in batches, `_id`
searches per type), judged by `SensitiveData.direct`, and followed up to `MAX_HOPS` further; sensitivity then flows
back along the references. Results are cached for `ttl` seconds: a resource that becomes sensitive later is seen
as such by answers that point to it within that time at most.
"""
from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Awaitable, Callable, Iterable

import orjson

from sidecar.disclosure.rules import references_of
from sidecar.disclosure.sensitivity import Reason, SensitiveData, references_in
from sidecar.fhir.resource_types import R4_RESOURCE_TYPES

MAX_HOPS = 3

Fetch = Callable[[str, list[str]], Awaitable[list[dict]]]
"""(resource type, ids) → the resources HAPI has of them."""


@dataclass(frozen=True)
class _Node:
    direct: Reason | None
    references: tuple[str, ...]
    at: float


@dataclass(frozen=True)
class Judged:
    sensitive: dict[str, Reason]
    """`Type/id` of every resource reachable from the answer (its own included) that is sensitive, with why."""
    nodes: list[_Node]
    """Per answer resource: its own sensitivity and its references, so deciding it need not work them out again."""


def _node_of(sensitive: SensitiveData, resource: dict, raw: bytes | None, at: float) -> _Node:
    raw = orjson.dumps(resource) if raw is None else raw
    return _Node(sensitive.direct(resource, raw), tuple(references_of(references_in(raw))), at)


def reference_of(resource: dict) -> str | None:
    resource_type, resource_id = resource.get("resourceType"), resource.get("id")
    return f"{resource_type}/{resource_id}" if isinstance(resource_type, str) and isinstance(resource_id, str) else None


class ReferenceSensitivity:
    def __init__(self, sensitive: SensitiveData, fetch: Fetch, ttl: float, capacity: int = 200_000) -> None:
        self.sensitive = sensitive
        self.fetch = fetch
        self.ttl = ttl
        self.capacity = capacity
        self._nodes: OrderedDict[str, _Node] = OrderedDict()

    def _fresh(self, ref: str, now: float) -> _Node | None:
        node = self._nodes.get(ref)
        if node is None or now - node.at > self.ttl:
            return None
        self._nodes.move_to_end(ref)
        return node

    def _keep(self, ref: str, node: _Node) -> None:
        self._nodes[ref] = node
        self._nodes.move_to_end(ref)
        while len(self._nodes) > self.capacity:
            self._nodes.popitem(last=False)

    async def _load(self, refs: Iterable[str], now: float) -> None:
        by_type: dict[str, list[str]] = {}
        for ref in refs:
            resource_type, _, resource_id = ref.partition("/")
            if resource_type in R4_RESOURCE_TYPES:
                by_type.setdefault(resource_type, []).append(resource_id)
        results = await asyncio.gather(*(self.fetch(t, ids) for t, ids in by_type.items()))
        for resources in results:
            for resource in resources:
                ref = reference_of(resource)
                if ref is not None:
                    self._keep(ref, _node_of(self.sensitive, resource, None, now))
        for resource_type, ids in by_type.items():
            for resource_id in ids:  # gone or never existed: nothing to learn from it
                self._nodes.setdefault(f"{resource_type}/{resource_id}", _Node(None, (), now))

    async def judge(self, resources: list[dict], raws: list[bytes]) -> Judged:
        """For every resource reachable from `resources` (themselves included), those that are sensitive."""
        now = time.monotonic()
        graph: dict[str, _Node] = {}
        frontier: set[str] = set()
        nodes = [_node_of(self.sensitive, resource, raw, now) for resource, raw in zip(resources, raws)]
        for resource, node in zip(resources, nodes):
            ref = reference_of(resource)
            if ref is not None:
                graph[ref] = node
                self._keep(ref, node)
            frontier.update(node.references)
        for _ in range(MAX_HOPS + 1):
            frontier -= graph.keys()
            if not frontier:
                break
            missing = [ref for ref in frontier if self._fresh(ref, now) is None]
            if missing:
                await self._load(missing, now)
            next_frontier: set[str] = set()
            for ref in frontier:
                node = self._nodes.get(ref) or _Node(None, (), now)
                graph[ref] = node
                next_frontier.update(node.references)
            frontier = next_frontier
        return Judged(_propagate(graph), nodes)


def _propagate(graph: dict[str, _Node]) -> dict[str, Reason]:
    """Direct findings, then anything pointing at a sensitive resource, until nothing changes."""
    found = {ref: node.direct for ref, node in graph.items() if node.direct is not None}
    changed = True
    while changed:
        changed = False
        for ref, node in graph.items():
            if ref in found:
                continue
            target = next((r for r in node.references if r in found), None)
            if target is not None:
                found[ref] = Reason("sensitive-reference", "reference", f"{target} ({found[target].rule})")
                changed = True
    return found
