"""The sidecar's metric families, in one registry per app (tests build several apps in one process).

Labels stay bounded so that replicas aggregate: a route is the route table's name (never the raw path), a status
is the HTTP code, a rule is a disclosure rule's name, a kind or outcome comes from a fixed set in the code. Nothing
per request, per client or per member is a label.
"""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

PREFIX = "pdex_sidecar"
# Seconds: from a cached read (a few ms) to a slow search or a large $member-match (tens of seconds).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

# `*_created` series (a timestamp per label set) would double the series and say nothing a restart's reset does not.
disable_created_metrics()


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(f"{PREFIX}_requests", "Requests answered, by route and HTTP status",
                                ["route", "status"], registry=r)
        self.latency = Histogram(f"{PREFIX}_request_duration_seconds", "Time to answer a request, by route",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=r)
        self.tokens_issued = Counter(f"{PREFIX}_tokens_issued", "Access tokens issued", registry=r)
        self.token_refusals = Counter(f"{PREFIX}_token_refusals", "Token requests refused, by OAuth error code",
                                      ["error"], registry=r)
        self.matches = Counter(f"{PREFIX}_member_matches", "Members matched or not, by operation and outcome",
                               ["operation", "outcome"], registry=r)
        self.export_released = Counter(f"{PREFIX}_export_resources_released",
                                       "Resources a partner's export released, by resource type",
                                       ["resource_type"], registry=r)
        self.export_withheld = Counter(f"{PREFIX}_export_resources_withheld",
                                       "Resources a partner's export withheld, by disclosure rule", ["rule"],
                                       registry=r)
        self.hapi_errors = Counter(f"{PREFIX}_hapi_errors",
                                   "HAPI calls that failed: no connection, timeout, malformed answer, or a 5xx",
                                   ["kind"], registry=r)
        # Until the first read of the roster's names completes, no common name weighs less (name_frequency.py).
        self.roster_names = Gauge(f"{PREFIX}_match_roster_names",
                                  "Members whose names the matcher's name frequencies count", registry=r)
        # The request path is benchmarked: each (route, status) pair's children are looked up once, then reused.
        self._request_children: dict[tuple[str, int], tuple[Counter, Histogram]] = {}

    def observe_request(self, route: str, status: int, seconds: float) -> None:
        children = self._request_children.get((route, status))
        if children is None:
            children = self._request_children[(route, status)] = (
                self.requests.labels(route, str(status)), self.latency.labels(route))
        children[0].inc()
        children[1].observe(seconds)
