"""Each layer imports only the layers below it (docs/ARCHITECTURE.md, "Layers")."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# package -> the framewire packages it may import (itself always allowed)
ALLOWED = {
    "schemas": set(),
    "foundation": {"schemas"},
    "models": {"schemas", "foundation"},
    "workers": {"schemas", "foundation", "models"},
    "producers": {"schemas", "foundation", "models"},
    "mlops": {"schemas", "foundation", "models"},
    "framewire": {"schemas", "foundation", "models", "workers", "producers", "mlops"},
}


def imported_packages(path: Path) -> set[str]:
    """Top-level names this file imports, lazily inside functions too."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names & set(ALLOWED)


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_a_package_imports_only_the_layers_below_it(package):
    wrong = {
        str(path.relative_to(ROOT)): sorted(imported_packages(path) - ALLOWED[package] - {package})
        for path in sorted((ROOT / package).rglob("*.py"))
    }
    assert {file: names for file, names in wrong.items() if names} == {}
