"""Shell completion: sneaker's scripts for bash, zsh, fish and PowerShell, and click's
answers to them (the real shells run the scripts in tests/integration/test_completion_shells.py
and, from the zipapp, in test_zipapp.py).

PowerShell cannot be installed here (no Debian package; Microsoft's repository is out of
reach), so its script is parsed with tree-sitter's PowerShell grammar (the ``test``
extra) and its answers are checked from the Python side.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from sneaker.cli.completion import script
from sneaker.cli.main import main

PYZ_RUNNER = ["/opt/py 3/bin/python3", "/home/me/tools/sneaker.pyz"]


@pytest.mark.parametrize(
    ("shell", "markers"),
    [
        ("bash", ["_sneaker_completion()", "complete -o nosort -F _sneaker_completion sneaker"]),
        ("zsh", ["#compdef sneaker", "compdef _sneaker_completion sneaker"]),
        ("fish", ["complete --no-files --command sneaker"]),
        ("powershell", ["Register-ArgumentCompleter -Native -CommandName sneaker -ScriptBlock"]),
    ],
)
def test_completion_script(
    shell: str, markers: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["completion", shell]) == 0
    out = capsys.readouterr().out
    for marker in markers:
        assert marker in out
    assert f"_SNEAKER_COMPLETE={shell}_complete" in out or "'powershell_complete'" in out
    assert "sneaker.pyz" not in out  # an installed sneaker runs itself


def _complete(words: str, cword: int, shell: str = "bash") -> list[str]:
    env = {
        **os.environ,
        "COMP_WORDS": words,
        "COMP_CWORD": str(cword),
        "_SNEAKER_COMPLETE": f"{shell}_complete",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "sneaker"], env=env, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def test_completes_verbs_and_options() -> None:
    def values(words: str, cword: int) -> list[str]:
        return [line.split(",", 1)[1] for line in _complete(words, cword) if "," in line]

    assert values("sneaker pu", 1) == ["pull", "push"]
    assert "--platform" in values("sneaker pull --pl", 2)
    assert values("sneaker pull --format ", 3) == ["docker", "oci"]
    assert "completion" in values("sneaker comp", 1)


def test_powershell_answers_one_line_per_completion() -> None:
    lines = _complete("sneaker pu", 1, "powershell")
    assert [line.split("\t")[:2] for line in lines] == [["plain", "pull"], ["plain", "push"]]
    assert all(len(line.split("\t")) == 3 for line in lines)
    assert lines[0].split("\t")[2].startswith("Pull")  # the help, on one line
    formats = _complete("sneaker pull --format ''", 3, "powershell")
    assert [line.split("\t")[1] for line in formats] == ["docker", "oci"]
    assert _complete("sneaker completion p", 2, "powershell")[0].startswith("plain\tpowershell")


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_from_a_zipapp_a_function_runs_it(shell: str) -> None:
    text = script(shell, PYZ_RUNNER)
    run = "'/opt/py 3/bin/python3' /home/me/tools/sneaker.pyz"
    assert run in text  # the completion asks the zipapp, by full paths, quoted
    if shell == "fish":
        assert f"function sneaker\n    {run} $argv\nend\n" in text
    else:
        assert f'sneaker() {{ {run} "$@"; }}\n' in text


def _powershell_errors(text: str) -> list[str]:
    """Nodes tree-sitter's PowerShell grammar could not parse (empty: it parses)."""
    import tree_sitter
    import tree_sitter_powershell

    parser = tree_sitter.Parser(tree_sitter.Language(tree_sitter_powershell.language()))
    source = text.encode()
    found: list[str] = []
    pending = [parser.parse(source).root_node]
    while pending:
        node = pending.pop()
        if node.type == "ERROR" or node.is_missing:
            found.append(f"{node.start_point}: {source[node.start_byte : node.end_byte][:60]!r}")
        pending.extend(node.children)
    return found


@pytest.mark.parametrize("runner", [None, PYZ_RUNNER, ["C:\\Py 3\\python.exe", "D:\\it's\\s.pyz"]])
def test_powershell_script_parses(runner: list[str] | None) -> None:
    text = script("powershell", runner)
    assert _powershell_errors(text) == []
    assert text.count("{") == text.count("}")
    assert "$env:_SNEAKER_COMPLETE = 'powershell_complete'" in text


def test_the_grammar_finds_a_broken_script() -> None:
    broken = script("powershell").replace("if ($wordToComplete) {", "if ($wordToComplete {")
    assert _powershell_errors(broken)


def test_powershell_from_a_zipapp_completes_the_python_launchers() -> None:
    text = script("powershell", ["C:\\Py 3\\python.exe", "D:\\it's\\s.pyz"])
    assert "-CommandName @('py', 'python', 'python3')" in text
    assert "if ($program -ne 's.pyz') { return }" in text  # only for that file
    assert "& 'C:\\Py 3\\python.exe' 'D:\\it''s\\s.pyz'" in text  # PowerShell's quoting
    assert "$first = 1" in text
