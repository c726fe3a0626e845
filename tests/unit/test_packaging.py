"""What the product reads at run time besides its code ships in its wheel: the Docker image installs the package
(not a checkout), so a data file that no package-data pattern names is missing there."""
from __future__ import annotations

import tomllib
from pathlib import Path

from sidecar.devstack import REPO_ROOT


def test_every_data_file_of_the_package_is_declared_as_package_data():
    declared = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    package_root = REPO_ROOT / "sidecar"
    undeclared = []
    for path in package_root.rglob("*"):
        if not path.is_file() or path.suffix in (".py", ".pyc") or "__pycache__" in path.parts:
            continue
        owner = path.parent
        while not (owner / "__init__.py").exists():
            owner = owner.parent
        package = ".".join(owner.relative_to(REPO_ROOT).parts)
        relative = path.relative_to(owner)
        if not any(relative.match(pattern) for pattern in declared.get(package, [])):
            undeclared.append(str(path.relative_to(REPO_ROOT)))
    assert not undeclared, f"not in [tool.setuptools.package-data]: {undeclared}"
