"""Load the demo data straight into HAPI: an operator action, so it bypasses the sidecar's read-only proxy."""
from __future__ import annotations

from collections import Counter

import aiohttp

from sidecar.demo.data import demo_bundle


async def load_demo_data(upstream_url: str) -> str:
    bundle = demo_bundle()
    async with aiohttp.ClientSession() as session:
        async with session.post(upstream_url.rstrip("/"), json=bundle,
                                headers={"Content-Type": "application/fhir+json",
                                         "Accept": "application/fhir+json"}) as resp:
            body = await resp.json(content_type=None)
            if resp.status >= 300:
                raise RuntimeError(f"HAPI refused the demo bundle ({resp.status}): {body}")
    counts = Counter(e["resource"]["resourceType"] for e in bundle["entry"])
    return "loaded demo data: " + ", ".join(f"{n} {t}" for t, n in sorted(counts.items()))
