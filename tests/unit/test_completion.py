"""Shell completion comes from click, for bash, zsh and fish."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from sneaker.cli.main import main


@pytest.mark.parametrize(
    ("shell", "marker"),
    [("bash", "_sneaker_completion()"), ("zsh", "#compdef sneaker"), ("fish", "complete ")],
)
def test_completion_script(shell: str, marker: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["completion", shell]) == 0
    out = capsys.readouterr().out
    assert marker in out
    assert "_SNEAKER_COMPLETE" in out


def _complete(words: str, cword: int) -> list[str]:
    env = {
        **os.environ,
        "COMP_WORDS": words,
        "COMP_CWORD": str(cword),
        "_SNEAKER_COMPLETE": "bash_complete",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "sneaker"], env=env, capture_output=True, text=True, check=False
    )
    return [line.split(",", 1)[1] for line in proc.stdout.splitlines() if "," in line]


def test_completes_verbs_and_options() -> None:
    assert _complete("sneaker pu", 1) == ["pull", "push"]
    assert "--platform" in _complete("sneaker pull --pl", 2)
    assert _complete("sneaker pull --format ", 3) == ["docker", "oci"]
