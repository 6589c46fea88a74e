"""The UI is a separate deployable: it talks HTTP to the service and imports none of its code."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

from tests.support.procs import ROOT

pytestmark = pytest.mark.ui

# The UI image installs only the `ui` extra: streamlit, requests, pandas (numpy comes with it),
# and copies `contracts/` (standard library only) beside `ui/`.
ALLOWED = {"streamlit", "requests", "pandas", "ui", "contracts"}


def _imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_ui_imports_only_its_own_dependencies() -> None:
    files = sorted((ROOT / "ui").glob("*.py"))
    assert files
    for path in files:
        third_party = _imported_roots(path) - set(sys.stdlib_module_names) - {"__future__"}
        assert third_party <= ALLOWED, f"{path.name} imports {sorted(third_party - ALLOWED)}"


def test_contracts_need_only_the_standard_library() -> None:
    files = sorted((ROOT / "contracts").glob("*.py"))
    assert files
    for path in files:
        third_party = _imported_roots(path) - set(sys.stdlib_module_names) - {"__future__"}
        assert third_party <= {"contracts"}, f"contracts/{path.name} imports {sorted(third_party)}"


def test_no_feature_name_is_hard_coded(metadata: dict[str, object]) -> None:
    schema = metadata["feature_schema"]
    assert isinstance(schema, dict)
    names = [f["name"] for f in schema["features"]] + list(schema["classes"])
    for path in sorted((ROOT / "ui").glob("*.py")):
        source = path.read_text()
        found = [n for n in names if re.search(rf"(?<![\w/]){re.escape(n)}(?![\w/])", source)]
        assert not found, f"{path.name} mentions {found}: the form must come from GET /metadata"
