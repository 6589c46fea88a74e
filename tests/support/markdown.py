"""The tables of a Markdown page, as the docs tests read them (GitHub's pipe tables)."""

from __future__ import annotations

import re
from dataclasses import dataclass

CODE = re.compile(r"`([^`]+)`")


@dataclass(frozen=True)
class Table:
    """One pipe table: its header cells (lower case) and its rows' cells, as written."""

    line: int
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


def _cells(line: str) -> tuple[str, ...]:
    # `\|` inside a cell is a literal pipe (cli.md's `linear\|forest`), not a column break.
    parts = re.split(r"(?<!\\)\|", line.strip().strip("|"))
    return tuple(part.strip() for part in parts)


def tables(text: str) -> list[Table]:
    """Every table of ``text``: a ``| ... |`` header line, a ``|---|`` line, then its rows."""
    lines = text.splitlines()
    found: list[Table] = []
    index = 0
    while index < len(lines) - 1:
        head, rule = lines[index].strip(), lines[index + 1].strip()
        if head.startswith("|") and re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", rule):
            rows: list[tuple[str, ...]] = []
            end = index + 2
            while end < len(lines) and lines[end].strip().startswith("|"):
                rows.append(_cells(lines[end]))
                end += 1
            header = tuple(cell.lower() for cell in _cells(head))
            found.append(Table(index + 1, header, tuple(rows)))
            index = end
        else:
            index += 1
    return found


def code_spans(cell: str) -> list[str]:
    """The ``code`` spans of a cell, in order."""
    return CODE.findall(cell)
