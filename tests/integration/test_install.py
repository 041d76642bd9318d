"""scripts/install for real: a virtual environment, pip installing this checkout into it,
the command linked; the full path on standard output; again is an update; a file that is
not its link is left alone; --uninstall removes both.

pip fetches the dependencies from the package index, as scripts/test's own install does.
The places are given (--venv, --bin-dir): root's defaults (/opt/sneaker, /usr/local/bin)
are the machine's, not a test's; tests/unit/test_install_script.py checks those choices.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT

pytestmark = pytest.mark.integration

SCRIPT = REPO_ROOT / "scripts" / "install"


def install(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--venv", str(tmp_path / "venv"),
         "--bin-dir", str(tmp_path / "bin"), *args],
        capture_output=True, text=True, timeout=900, check=False,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path)},
    )  # fmt: skip


def test_install_update_refuse_uninstall(tmp_path: Path) -> None:
    first = install(tmp_path)
    assert first.returncode == 0, first.stderr
    command = tmp_path / "bin" / "sneaker"
    assert first.stdout == f"{command}\n"
    assert command.is_symlink()
    assert f"making the environment {tmp_path / 'venv'}" in first.stderr
    assert f"run it as: {command} ({tmp_path / 'bin'} is not on this shell's PATH" in first.stderr

    version = subprocess.run(
        [str(command), "--version"], capture_output=True, text=True, check=True, timeout=60
    )
    assert version.stdout.startswith("sneaker ")
    venv_python = tmp_path / "venv" / "bin" / "python"
    where = subprocess.run(
        [str(venv_python), "-c", "import sneaker; print(sneaker.__file__)"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    assert where.startswith(str(tmp_path / "venv"))  # a copy, not the checkout

    again = install(tmp_path)
    assert again.returncode == 0, again.stderr
    assert f"updating {tmp_path / 'venv'}" in again.stderr

    command.unlink()
    command.write_text("#!/bin/sh\necho someone else's\n")
    refused = install(tmp_path)
    assert refused.returncode == 1
    assert refused.stdout == ""
    assert f"error: {command} exists and is not sneaker's link" in refused.stderr
    assert command.read_text() == "#!/bin/sh\necho someone else's\n"
    assert install(tmp_path, "--force").returncode == 0
    assert command.is_symlink()

    removed = install(tmp_path, "--uninstall")
    assert removed.returncode == 0, removed.stderr
    assert not command.exists()
    assert not command.is_symlink()
    assert not (tmp_path / "venv").exists()
