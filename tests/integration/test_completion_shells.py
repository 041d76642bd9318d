"""sneaker's completion scripts run in the real shells (bash, zsh and fish from Debian).

Each script runs ``python -m sneaker`` here (the zipapp's, which runs the file by its
path, is run by test_zipapp.py). bash: ``COMPREPLY`` after the completion function runs on
``COMP_WORDS``; fish: ``complete -C``, which completes a command line as Tab does; zsh:
the completion function with ``compadd`` and ``_describe`` standing in for the
completion system (they print what they are given), after ``zsh -n`` checked the syntax.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from sneaker.cli.completion import script
from tests.helpers import need, run

pytestmark = pytest.mark.integration

RUNNER = [sys.executable, "-m", "sneaker"]


def _script_file(tmp_path: Path, shell: str) -> Path:
    path = tmp_path / f"completion.{shell}"
    path.write_text(script(shell, RUNNER))
    return path


def bash_completions(script_path: Path, *words: str) -> list[str]:
    """What the bash script offers when the cursor is on the last of ``words``."""
    array = " ".join(f"'{w}'" for w in words)
    probe = (
        f"source '{script_path}'\n"
        f"COMP_WORDS=({array}); COMP_CWORD={len(words) - 1}\n"
        "_sneaker_completion\n"
        "printf '%s\\n' \"${COMPREPLY[@]}\"\n"
    )
    done = run([need("bash"), "--norc", "--noprofile", "-c", probe], timeout=120)
    return done.stdout.splitlines()


def test_bash(tmp_path: Path) -> None:
    path = _script_file(tmp_path, "bash")
    assert bash_completions(path, "sneaker", "pu") == ["pull", "push"]
    assert bash_completions(path, "sneaker", "pull", "--format", "") == ["docker", "oci"]
    assert "--authfile" in bash_completions(path, "sneaker", "pull", "--a")


def test_fish(tmp_path: Path) -> None:
    path = _script_file(tmp_path, "fish")

    def offered(line: str) -> list[str]:
        done = run([need("fish"), "--no-config", "-c", f"source '{path}'; complete -C '{line}'"])
        return [entry.split("\t")[0] for entry in done.stdout.splitlines()]

    assert offered("sneaker pu") == ["pull", "push"]
    assert offered("sneaker pull --format ") == ["docker", "oci"]
    assert "powershell" in offered("sneaker completion ")


def test_zsh(tmp_path: Path) -> None:
    zsh = need("zsh")
    path = _script_file(tmp_path, "zsh")
    run([zsh, "-n", str(path)])
    stubs = (
        "compdef() { :; }\n"
        'compadd() { print -rl -- "compadd ${(P)${@[-1]}}"; }\n'
        '_describe() { print -rl -- "describe ${(P)3}"; }\n'
        f"source '{path}'\n"
    )

    def offered(words: str, current: int) -> str:
        probe = f"{stubs}words=({words}); CURRENT={current}; _sneaker_completion\n"
        return run([zsh, "-f", "-c", probe]).stdout

    described = offered("sneaker pu", 2)
    assert described.startswith("describe pull:Pull IMAGES")
    assert " push:Push the images of ARCHIVE" in described
    assert offered("sneaker pull --format ''", 4) == "compadd docker oci\n"
