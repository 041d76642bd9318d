"""The docs cite tests by file and name (docs/security.md's table): every citation exists.

A test renamed or moved without its citation fails here, naming the citation.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.helpers import REPO_ROOT

DOCS = [REPO_ROOT / "docs" / "security.md", REPO_ROOT / "benchmarks" / "README.md"]
_CITATION = re.compile(r"\b(tests/[\w/]+\.py)(?:::(\w+))?")


def _citations() -> list[tuple[str, str, str | None]]:
    found = []
    for doc in DOCS:
        for match in _CITATION.finditer(doc.read_text()):
            found.append((doc.relative_to(REPO_ROOT).as_posix(), match.group(1), match.group(2)))
    return found


def _module_functions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}


def test_the_docs_cite_tests() -> None:
    cited = [c for c in _citations() if c[0] == "docs/security.md" and c[2] is not None]
    assert len(cited) > 50  # the table is there and the pattern still reads it


def missing_citations(citations: list[tuple[str, str, str | None]]) -> list[str]:
    missing = []
    for doc, path, name in citations:
        file = REPO_ROOT / path
        if not file.is_file():
            missing.append(f"{doc}: {path} does not exist")
        elif name is not None and name not in _module_functions(file):
            missing.append(f"{doc}: {path}::{name} is not defined there")
    return missing


def test_every_cited_test_exists() -> None:
    assert missing_citations(_citations()) == []


def test_a_stale_citation_is_found() -> None:
    stale = [
        ("docs/security.md", "tests/unit/test_layers_unpack.py", "test_hostile_layer"),
        ("docs/security.md", "tests/unit/test_unpack.py", "test_no_such_test"),
    ]
    assert missing_citations(stale) == [
        "docs/security.md: tests/unit/test_layers_unpack.py does not exist",
        "docs/security.md: tests/unit/test_unpack.py::test_no_such_test is not defined there",
    ]
