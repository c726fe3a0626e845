"""Package layering: `store/` is the bottom (it imports nothing of the sidecar above itself), and the generic job
machinery knows no kind of job, so bulk member match and export stay peers."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

import sidecar

PACKAGE = Path(sidecar.__file__).parent


def within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def sidecar_imports(package: str) -> dict[str, set[str]]:
    """Module file (relative to `sidecar/`) → the `sidecar…` names it imports (`module.name` for a from-import),
    relative imports resolved."""
    found: dict[str, set[str]] = {}
    for path in sorted((PACKAGE / package).rglob("*.py")):
        module = ["sidecar", *path.relative_to(PACKAGE).with_suffix("").parts]
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = module[:len(module) - node.level] if node.level else []  # relative: from its package
                origin = ".".join([*base, *([node.module] if node.module else [])])
                names.update(f"{origin}.{alias.name}" for alias in node.names)
        found[str(path.relative_to(PACKAGE))] = {n for n in names if within(n, "sidecar")}
    return found


def test_the_walk_finds_imports():  # so an empty answer below means no import, not no walk
    assert "sidecar.store.db.Store" in sidecar_imports("store")["store/clients.py"]


def test_store_imports_nothing_above_itself():
    above = {module: sorted(n for n in names if not within(n, "sidecar.store"))
             for module, names in sidecar_imports("store").items()}
    assert {module: names for module, names in above.items() if names} == {}


@pytest.mark.parametrize("package, forbidden", [
    ("jobs", ("sidecar.export", "sidecar.matching")),
    ("export", ("sidecar.matching",)),
    ("matching", ("sidecar.export",)),
])
def test_job_kinds_are_peers(package: str, forbidden: tuple[str, ...]):
    crossing = {module: sorted(n for n in names if any(within(n, f) for f in forbidden))
                for module, names in sidecar_imports(package).items()}
    assert {module: names for module, names in crossing.items() if names} == {}


# The conformance suite tests any payer's server, peers included, so it is written from the specs: of the product
# it may use only the shared SMART client and the validation step.
CONFORMANCE_MAY_IMPORT = ("sidecar.conformance", "sidecar.client.smart", "sidecar.validation")


def test_the_conformance_suite_imports_only_the_smart_client_and_the_validation_step():
    beyond = {module: sorted(n for n in names if not any(within(n, p) for p in CONFORMANCE_MAY_IMPORT))
              for module, names in sidecar_imports("conformance").items()}
    assert {module: names for module, names in beyond.items() if names} == {}


def test_the_conformance_walk_sees_its_imports():
    assert "sidecar.client.smart.ClientKey" in sidecar_imports("conformance")["conformance/context.py"]
