"""The zipapp's version check (scripts/zipapp_main.py, the file's ``__main__``): which
Pythons it refuses, the one line it prints, the newer interpreters it suggests."""

from __future__ import annotations

import ast
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.helpers import REPO_ROOT

MAIN = REPO_ROOT / "scripts" / "zipapp_main.py"


@pytest.fixture(scope="module")
def zipapp_main() -> ModuleType:
    spec = importlib.util.spec_from_file_location("zipapp_main", MAIN)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("version", [(3, 10, 0), (3, 11, 2), (3, 13, 0), (4, 0, 0)])
def test_supported_pythons_pass(zipapp_main: ModuleType, version: tuple[int, int, int]) -> None:
    assert zipapp_main.python_problem(version, "sneaker.pyz", []) is None


@pytest.mark.parametrize("version", [(2, 7, 18), (3, 6, 15), (3, 9, 18)])
def test_older_pythons_get_one_line(zipapp_main: ModuleType, version: tuple[int, int, int]) -> None:
    have = ".".join(map(str, version))
    line = zipapp_main.python_problem((*version, "final", 0), "dist/sneaker.pyz", [])
    assert line == (
        f"error: sneaker needs Python 3.10 or newer, this is Python {have}: install a newer "
        "one and run it with that (e.g. 'dnf install python3.11' on RHEL 9 or Amazon Linux "
        "2023, then 'python3.11 dist/sneaker.pyz')"
    )


def test_a_newer_python_on_path_is_named(zipapp_main: ModuleType) -> None:
    line = zipapp_main.python_problem((3, 9, 18), "s.pyz", ["python3.12", "python3.11"])
    assert line.endswith(": run it with 'python3.12 s.pyz'")


def test_windows_is_told_about_the_py_launcher(zipapp_main: ModuleType) -> None:
    line = zipapp_main.python_problem((3, 9, 18), "s.pyz", [], windows=True)
    assert line.endswith(": run it with 'py -3.12 s.pyz' (install Python from python.org first)")


def test_newer_pythons_are_found_on_path_newest_first(
    zipapp_main: ModuleType, tmp_path: Path
) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    for directory, names in ((first, ["python3.11", "python3.9"]), (second, ["python3.13"])):
        directory.mkdir()
        for name in names:
            (directory / name).write_text("#!/bin/sh\n")
            (directory / name).chmod(0o755)
    (second / "python3.12").write_text("not executable")
    path = os.pathsep.join([str(first), "", str(second)])
    assert zipapp_main.newer_pythons(path) == ["python3.13", "python3.11"]
    assert zipapp_main.newer_pythons("") == []


def test_main_exits_2_before_importing_sneaker(
    zipapp_main: ModuleType, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "version_info", (3, 9, 18, "final", 0))
    monkeypatch.setattr(sys, "argv", ["x.pyz"])
    monkeypatch.setenv("PATH", "")
    monkeypatch.delitem(sys.modules, "sneaker.cli", raising=False)
    with pytest.raises(SystemExit) as exited:
        zipapp_main.main()
    assert exited.value.code == 2
    assert "sneaker.cli" not in sys.modules
    assert capsys.readouterr().err.startswith("error: sneaker needs Python 3.10 or newer")


def test_the_check_uses_no_syntax_older_pythons_lack() -> None:
    """Python 2.7 and 3.0 to 3.9 must read the file to print the line: nothing newer than
    2.7's syntax (tests/integration/test_zipapp.py runs it under the old Pythons found)."""
    newer: tuple[type[ast.AST], ...] = (
        ast.JoinedStr,  # f-strings: 3.6
        ast.AnnAssign,  # 3.6
        ast.NamedExpr,  # 3.8
        ast.AsyncFunctionDef,  # 3.5
        ast.Await,
        ast.YieldFrom,  # 3.3
        ast.Nonlocal,  # 3.0
        ast.Match,  # 3.10
    )
    tree = ast.parse(MAIN.read_text())
    for node in ast.walk(tree):
        assert not isinstance(node, newer), ast.dump(node)
        if isinstance(node, ast.FunctionDef):
            assert node.returns is None
            args = node.args
            assert not args.kwonlyargs
            assert not args.posonlyargs
            assert all(a.annotation is None for a in args.args)
        if isinstance(node, ast.Call):
            assert sum(isinstance(a, ast.Starred) for a in node.args) <= 1
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)) and isinstance(node.ctx, ast.Load):
            assert not any(isinstance(e, ast.Starred) for e in node.elts)  # 3.5 unpacking
