"""The layers of sneaker's packages, checked: no module imports a layer above its own.

In the spirit of go-containerregistry's depcheck. Every module under
``src/sneaker`` is parsed (never imported) and every import it makes is
checked, wherever it stands: at module level, inside a function, or under
``if TYPE_CHECKING:``, relative or absolute. Each import maps to a package
(``sneaker.archive.reader`` -> ``archive``) and must be one that package may
import according to :data:`ALLOWED`. Sources and sinks never import each other:
``archive`` knows nothing of ``registry``, ``settings`` or ``transfer``, and
``registry`` nothing of ``archive``, ``layers`` or ``transfer``. Nothing below
``verbs`` imports ``verbs`` or ``cli``. See docs/architecture.md.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"

#: the package at the root of the tree; its own modules (``__init__``, ``__main__``) are "api"
ROOT = "sneaker"

#: package -> the packages it may import (besides itself), lowest layers first
ALLOWED: dict[str, frozenset[str]] = {
    "errors": frozenset(),
    "util": frozenset({"errors"}),
    "image": frozenset({"errors", "util"}),
    "settings": frozenset({"errors", "util", "image"}),
    "registry": frozenset({"errors", "util", "image", "settings"}),
    "layers": frozenset({"errors", "util", "image"}),
    "archive": frozenset({"errors", "util", "image", "layers"}),
    "transfer": frozenset({"errors", "util", "image", "settings", "registry"}),
    "verbs": frozenset(
        {"errors", "util", "image", "settings", "registry", "layers", "archive", "transfer"}
    ),
    "cli": frozenset(
        {"errors", "util", "image", "settings", "registry", "layers", "archive", "transfer"}
        | {"verbs"}
    ),
    "api": frozenset(
        {"errors", "util", "image", "settings", "registry", "layers", "archive", "transfer"}
        | {"verbs", "cli"}
    ),
}

#: names of the root package any module may import: the version is a constant, not a layer
ROOT_CONSTANTS = frozenset({"__version__"})


def module_name(path: Path, src: Path) -> str:
    """``src/sneaker/archive/reader.py`` -> ``sneaker.archive.reader``."""
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_of(module: str) -> str:
    """The layer a module of the tree belongs to: ``sneaker.archive.reader`` -> ``archive``."""
    parts = module.split(".")
    if len(parts) == 1 or parts[1] == "__main__":
        return "api"
    return parts[1]


def _is_module(name: str, src: Path) -> bool:
    path = src.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imports_of(path: Path, src: Path) -> Iterator[tuple[int, str]]:
    """(line, module imported) for every import of ``ROOT``'s modules in ``path``, anywhere.

    ``from .x import name`` counts as importing ``x.name`` when that is a module,
    else ``x``; a constant of the root package (:data:`ROOT_CONSTANTS`) is no import.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    name = module_name(path, src)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    nodes = sorted(
        (n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))),
        key=lambda n: n.lineno,
    )
    for node in nodes:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == ROOT or alias.name.startswith(ROOT + "."):
                    yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if target != ROOT and not target.startswith(ROOT + "."):
                continue
            for alias in node.names:
                if target == ROOT and alias.name in ROOT_CONSTANTS:
                    continue
                full = f"{target}.{alias.name}"
                yield node.lineno, full if _is_module(full, src) else target


def violations(src: Path) -> list[str]:
    """``file:line: PACKAGE imports MODULE (a layer PACKAGE may not import)``, for each."""
    found: list[str] = []
    for path in sorted((src / ROOT).rglob("*.py")):
        importer = package_of(module_name(path, src))
        where = path.relative_to(src)
        if importer not in ALLOWED:
            found.append(f"{where}:1: module of no known layer ({importer}); add it to ALLOWED")
            continue
        for line, module in imports_of(path, src):
            imported = package_of(module)
            if imported != importer and imported not in ALLOWED[importer]:
                found.append(
                    f"{where}:{line}: {importer} imports {module} "
                    f"(a layer {importer} may not import: {imported})"
                )
    return found


def test_no_module_imports_a_layer_above_its_own() -> None:
    found = violations(SRC)
    assert not found, "imports across the layers:\n" + "\n".join(found)


def test_sources_and_sinks_never_import_each_other() -> None:
    assert not ALLOWED["archive"] & {"registry", "settings", "transfer"}
    assert not ALLOWED["registry"] & {"archive", "layers", "transfer"}
    below_verbs = set(ALLOWED) - {"verbs", "cli", "api"}
    assert all(not ALLOWED[p] & {"verbs", "cli", "api"} for p in below_verbs)


def test_the_table_has_no_circle() -> None:
    # lower layers first: each may import only what comes before it
    order = list(ALLOWED)
    for position, package in enumerate(order):
        assert ALLOWED[package] <= set(order[:position]), package


def test_the_check_finds_an_upward_import_wherever_it_stands(tmp_path: Path) -> None:
    root = tmp_path / ROOT
    for package in ("image", "verbs", "archive"):
        (root / package).mkdir(parents=True)
        (root / package / "__init__.py").write_text("")
    (root / "__init__.py").write_text("__version__ = '0'\n")
    (root / "verbs" / "pull.py").write_text("from .. import __version__\n")
    (root / "image" / "model.py").write_text(
        "from __future__ import annotations\n"
        "from typing import TYPE_CHECKING\n"
        "from ..errors import X\n"
        "if TYPE_CHECKING:\n"
        "    from ..archive import reader\n"
        "def f() -> None:\n"
        "    import sneaker.verbs.pull\n"
        "    from .. import verbs\n"
    )
    (root / "stray.py").write_text("")
    assert violations(tmp_path) == [
        "sneaker/image/model.py:5: image imports sneaker.archive (a layer image may not "
        "import: archive)",
        "sneaker/image/model.py:7: image imports sneaker.verbs.pull (a layer image may not "
        "import: verbs)",
        "sneaker/image/model.py:8: image imports sneaker.verbs (a layer image may not "
        "import: verbs)",
        "sneaker/stray.py:1: module of no known layer (stray); add it to ALLOWED",
    ]
