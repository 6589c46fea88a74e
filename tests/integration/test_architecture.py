"""docs/architecture.md's "Where things live" map matches the tree, and the code's import
direction is the one it states (no circle)."""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

from tests.support.procs import ROOT

MAP_HEADING = "## Where things live"
FOLDER = re.compile(r"`([\w.\-/]+/)`")
# Top-level Python packages, in the order imports may flow (a package imports only later ones).
LAYERS = ("cli", "stack", "train", "bento", "modelfile", "ui", "contracts")


def map_rows() -> list[str]:
    text = (ROOT / "docs" / "architecture.md").read_text()
    section = text.split(MAP_HEADING, 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("| `")]


def tracked_top_level_folders() -> set[str]:
    files = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    return {f.split("/", 1)[0] + "/" for f in files if "/" in f}


def test_every_folder_the_map_names_exists() -> None:
    rows = map_rows()
    assert len(rows) >= 10, "the map has lost its rows"
    named = {folder for row in rows for folder in FOLDER.findall(row)}
    missing = sorted(f for f in named if not (ROOT / f).is_dir())
    assert missing == [], f"docs/architecture.md names folders that do not exist: {missing}"


def test_every_top_level_folder_is_on_the_map() -> None:
    described = {FOLDER.findall(row)[0] for row in map_rows()}
    unmapped = sorted(tracked_top_level_folders() - described)
    assert unmapped == [], f"top-level folders missing from docs/architecture.md: {unmapped}"


def imported_packages(path: Path) -> set[str]:
    """Top-level packages of the project that ``path`` imports (at any depth of the module)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names & set(LAYERS)


def test_imports_flow_one_way() -> None:
    # bento/ may be imported by the local stack (to look at the store), never the reverse; the
    # deployables never import the CLI or the local stack; train/ and bento/ share how a model
    # file is read through modelfile/, never each other; contracts imports nothing of ours.
    allowed = {
        "cli": {"cli", "stack", "train", "contracts"},
        "stack": {"stack", "train", "bento", "contracts"},
        "train": {"train", "modelfile", "contracts"},
        "bento": {"bento", "modelfile", "contracts"},
        "modelfile": {"modelfile", "contracts"},
        "ui": {"ui", "contracts"},
        "contracts": {"contracts"},
    }
    wrong = []
    for package, may in allowed.items():
        for module in sorted((ROOT / package).rglob("*.py")):
            extra = imported_packages(module) - may
            if extra:
                wrong.append(f"{module.relative_to(ROOT)} imports {sorted(extra)}")
    assert wrong == [], "\n".join(wrong)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """Project modules ``path`` imports anywhere in it (function-level imports count too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            targets = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        found.update(t for t in targets if t in known)
    return found


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import circle of ``graph`` ([] when there is none)."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return []

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return []


def test_no_import_circle() -> None:
    paths = {module_name(p): p for pkg in LAYERS for p in (ROOT / pkg).rglob("*.py")}
    known = set(paths)
    graph = {
        name: {m for m in imported_modules(path, known) if m != name and not name.startswith(m)}
        for name, path in paths.items()
    }
    assert find_cycle(graph) == [], f"import circle: {' -> '.join(find_cycle(graph))}"
    # The check can fail: a made-up circle is found.
    assert find_cycle({"a": {"b"}, "b": {"a"}}) == ["a", "b", "a"]
