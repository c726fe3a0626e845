"""The suite's groups, one module each, in the order they run (profile validation last: it checks the answers the
others received)."""
from __future__ import annotations

from sidecar.conformance.groups import (bulk_match, capability, disclosure, export, group_search, isolation,
                                        member_match, profiles, smart)
from sidecar.conformance.model import Group

GROUPS: list[Group] = [smart.GROUP, capability.GROUP, member_match.GROUP, bulk_match.GROUP, group_search.GROUP,
                       export.GROUP, isolation.GROUP, disclosure.GROUP, profiles.GROUP]
BY_ID = {group.id: group for group in GROUPS}
