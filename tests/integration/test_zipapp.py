"""The single-file zipapp runs with a stock Python and no site-packages (``python3 -I -S``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.registry import MakeRegistry
from tests.fixtures.seeding import Seeded
from tests.fixtures.tools import skopeo
from tests.helpers import REPO_ROOT, run

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pyz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("zipapp") / "sneaker.pyz"
    run(["bash", str(REPO_ROOT / "scripts" / "zipapp"), str(out)], cwd=REPO_ROOT, timeout=600)
    return out


def _isolated(pyz: Path, *args: str | Path, cwd: Path, stdin: str | None = None) -> str:
    """Run the zipapp with -I (no user site, no env) and -S (no site-packages at all)."""
    proc = subprocess.run(
        [sys.executable, "-I", "-S", str(pyz), *(str(a) for a in args)],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={"HOME": str(cwd), "PATH": "/usr/bin:/bin", "SNEAKER_CACHE_DIR": str(cwd / "c")},
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_zipapp_has_no_compiled_modules(pyz: Path) -> None:
    import zipfile

    with zipfile.ZipFile(pyz) as archive:
        names = archive.namelist()
    assert "__main__.py" in names
    assert "sneaker/cli/main.py" in names
    assert not [n for n in names if n.endswith((".so", ".pyd"))]


def test_zipapp_pulls_and_pushes_without_site_packages(
    pyz: Path, tmp_path: Path, seeded: Seeded, make_registry: MakeRegistry
) -> None:
    version = _isolated(pyz, "--version", cwd=tmp_path)
    assert version.startswith("sneaker ")
    assert "speed-ups: none (pure Python)" in version

    out = _isolated(pyz, "pull", "--json", seeded.app.ref, "-o", "app.tar", cwd=tmp_path)
    summary = json.loads(out)
    assert summary["images"][0]["digest"] == seeded.app.digest
    assert (tmp_path / "app.tar").is_file()

    target = make_registry()
    _isolated(pyz, "push", "-q", "app.tar", f"{target.host}/copied/app:1", cwd=tmp_path)
    raw = skopeo(
        "inspect", "--raw", "--tls-verify=false", f"docker://{target.host}/copied/app:1"
    ).stdout
    import hashlib

    assert "sha256:" + hashlib.sha256(raw.encode()).hexdigest() == seeded.app.digest
    listed = _isolated(pyz, "inspect", "--json", "app.tar", cwd=tmp_path)
    assert json.loads(listed)["images"][0]["digest"] == seeded.app.digest
