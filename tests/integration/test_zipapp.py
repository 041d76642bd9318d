"""The single-file zipapp runs with a stock Python and no site-packages (``python3 -I -S``),
on every Python 3.10+ found here, and on an older one says in one line what it needs.

Older Pythons are looked for on PATH and in pyenv's versions directory; where there are
none (Debian 12 has no Python below 3.11), the refusal is still proven by running the
built file's ``__main__`` under this Python with ``sys.version_info`` set to 3.9.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.registry import MakeRegistry, RegistryInfo
from tests.fixtures.seeding import Seeded
from tests.fixtures.tools import skopeo
from tests.helpers import REPO_ROOT, run

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pyz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("zipapp") / "sneaker.pyz"
    run(
        [sys.executable, str(REPO_ROOT / "scripts" / "zipapp"), str(out)],
        cwd=REPO_ROOT,
        timeout=600,
    )
    return out


def other_pythons() -> dict[tuple[int, int], str]:
    """Other CPython interpreters on this machine, by (major, minor): on PATH and pyenv's."""
    candidates = [shutil.which(f"python{v}") for v in ("2.7", *(f"3.{m}" for m in range(6, 15)))]
    pyenv = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    if pyenv.is_dir():
        candidates += [str(p / "bin" / "python") for p in sorted(pyenv.iterdir())]
    found: dict[tuple[int, int], str] = {}
    for candidate in filter(None, candidates):
        if not os.access(candidate, os.X_OK):
            continue
        probe = subprocess.run(
            [candidate, "-c", "import sys; print('%d %d' % sys.version_info[:2])"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        if probe.returncode == 0:
            major, minor = map(int, probe.stdout.split())
            found.setdefault((major, minor), candidate)
    return found


REFUSAL = re.compile(
    r"error: sneaker needs Python 3\.10 or newer, this is Python (\d+\.\d+\.\d+): .+"
)


def _isolated(
    pyz: Path, *args: str | Path, cwd: Path, stdin: str | None = None, python: str = sys.executable
) -> str:
    """Run the zipapp with -I (no user site, no env) and -S (no site-packages at all)."""
    proc = subprocess.run(
        [python, "-I", "-S", str(pyz), *(str(a) for a in args)],
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
    # rich's syntax highlighting and markdown dependencies: never imported by its progress bars
    unused = ("pygments", "markdown_it", "mdurl")
    assert not [n for n in names if n.split("/")[0].split("-")[0] in unused]
    assert "rich/progress.py" in names
    assert "truststore/_api.py" in names  # the OS trust store, pure Python


def test_zipapp_pulls_over_tls_with_the_os_trust_store_and_a_ca(
    pyz: Path, tmp_path: Path, seeded: Seeded, tls_registry: RegistryInfo
) -> None:
    """truststore, inside the file, verifies the registry: refused without its CA, pulled
    with --ca-cert (and with a login from an auth.json, as podman writes it)."""
    assert tls_registry.ca_cert is not None
    assert tls_registry.username
    assert tls_registry.password
    auth = base64.b64encode(f"{tls_registry.username}:{tls_registry.password}".encode())
    authfile = tmp_path / "auth.json"
    authfile.write_text(json.dumps({"auths": {tls_registry.host: {"auth": auth.decode()}}}))
    args = ["pull", "-q", "--retries", "0", "--authfile", str(authfile), seeded.tls.ref]
    refused = subprocess.run(
        [sys.executable, "-I", "-S", str(pyz), *args, "-o", "refused.tar"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False,
        env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert refused.returncode == 6, refused.stderr
    assert "certificate verify failed" in refused.stderr
    _isolated(pyz, *args, "--ca-cert", tls_registry.ca_cert, "-o", "tls.tar", cwd=tmp_path)
    assert (tmp_path / "tls.tar").is_file()


def test_zipapp_draws_rich_progress_on_a_terminal(
    pyz: Path, tmp_path: Path, seeded: Seeded
) -> None:
    """On a terminal the pull draws rich's bars: nothing rich needs was left out."""
    import pty

    leader, follower = pty.openpty()
    drawn = b""
    try:
        proc = subprocess.Popen(
            [sys.executable, "-I", "-S", str(pyz), "pull", seeded.app.ref, "-o", "app.tar"],
            cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=follower,
            env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "TERM": "xterm",
                 "SNEAKER_CACHE_DIR": str(tmp_path / "c")},
        )  # fmt: skip
        os.close(follower)
        follower = -1
        while True:  # read as it draws: a full terminal buffer would stop the child
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the child exited and everything was read
                break
            if not chunk:
                break
            drawn += chunk
        returncode = proc.wait(timeout=600)
    finally:
        os.close(leader)
        if follower >= 0:
            os.close(follower)
    text = drawn.decode("utf-8", "replace")
    assert returncode == 0, text
    assert "Traceback" not in text
    assert "total" in text  # the total bar
    assert "\x1b[" in text  # drawn with terminal control sequences, not plain lines
    assert (tmp_path / "app.tar").is_file()


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


def test_zipapp_on_an_older_python_says_what_it_needs_in_one_line(
    pyz: Path, tmp_path: Path
) -> None:
    faked = subprocess.run(
        [
            sys.executable, "-I", "-S", "-c",
            "import runpy, sys; sys.version_info = (3, 9, 18, 'final', 0); "
            f"sys.argv = [{str(pyz)!r}]; runpy.run_path({str(pyz)!r}, run_name='__main__')",
        ],
        capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert faked.returncode == 2
    assert faked.stdout == ""
    [line] = faked.stderr.splitlines()
    match = REFUSAL.fullmatch(line)
    assert match is not None, line
    assert match.group(1) == "3.9.18"
    assert str(pyz) in line  # how to run it: with another python, on this file

    older = {v: p for v, p in other_pythons().items() if v < (3, 10)}
    for version, python in sorted(older.items()):
        done = subprocess.run(
            [python, str(pyz), "pull", "busybox"],
            capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path,
            env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        )  # fmt: skip
        assert done.returncode == 2, (python, done.stderr)
        assert done.stdout == ""
        [line] = done.stderr.splitlines()
        match = REFUSAL.fullmatch(line)
        assert match is not None, (python, line)
        assert match.group(1).startswith(f"{version[0]}.{version[1]}.")


def test_zipapp_runs_on_every_python_from_3_10_found(pyz: Path, tmp_path: Path) -> None:
    supported = {v: p for v, p in other_pythons().items() if v >= (3, 10)}
    supported.setdefault(sys.version_info[:2], sys.executable)
    for version, python in sorted(supported.items()):
        out = _isolated(pyz, "--version", cwd=tmp_path, python=python)
        assert out.startswith("sneaker "), (version, out)
        assert f"(Python {version[0]}.{version[1]}." in out


def _zstd_archive(root: Path) -> Path:
    """An OCI layout tar whose two layers are zstd (compressed with backports.zstd)."""
    from backports import zstd

    from sneaker.image import mediatypes as mt
    from tests.unit.test_verify import REF, Layout, tar_of

    layout = Layout(root / "zstd-layout")
    desc = layout.image(
        [{"etc/os-release": b"ID=zstd\n"}, {"app/run.sh": b"echo zstd\n" * 50}],
        compress=zstd.compress,
        layer_type=mt.OCI_LAYER_ZSTD,
    )
    layout.name(desc, REF)
    return tar_of(layout.root)


def test_zipapp_reads_zstd_layers_where_python_has_compression_zstd(
    pyz: Path, tmp_path: Path
) -> None:
    """Python 3.14's compression.zstd is what the zipapp reads zstd with. This machine's
    Python is older, so backports.zstd (PEP 784's backport, the same module) stands in
    under that name, on a path of its own: nothing else of site-packages is visible."""
    import backports.zstd

    archive = _zstd_archive(tmp_path)
    standin = tmp_path / "standin"
    (standin / "compression" / "zstd").mkdir(parents=True)
    (standin / "backports").symlink_to(Path(backports.zstd.__file__).parent.parent)
    (standin / "compression" / "__init__.py").write_text("")
    (standin / "compression" / "zstd" / "__init__.py").write_text("from backports.zstd import *\n")

    def with_stdlib_zstd(*args: str) -> subprocess.CompletedProcess[str]:
        code = (
            f"import runpy, sys; sys.path.insert(0, {str(standin)!r}); "
            f"sys.argv = [{str(pyz)!r}, *{list(args)!r}]; "
            f"runpy.run_path({str(pyz)!r}, run_name='__main__')"
        )
        return subprocess.run(
            [sys.executable, "-I", "-S", "-c", code],
            capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path,
            env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
        )  # fmt: skip

    version = with_stdlib_zstd("--version")
    assert version.returncode == 0, version.stderr
    assert "; zstd: compression.zstd)" in version.stdout
    checked = with_stdlib_zstd("verify", "--deep", str(archive))
    assert checked.returncode == 0, checked.stderr
    unpacked = with_stdlib_zstd("unpack", str(archive), str(tmp_path / "root"))
    assert unpacked.returncode == 0, unpacked.stderr
    assert (tmp_path / "root" / "app" / "run.sh").read_bytes() == b"echo zstd\n" * 50

    # the same file on the same Python without it: one line saying what to install
    done = subprocess.run(
        [sys.executable, "-I", "-S", str(pyz), "unpack", str(archive), str(tmp_path / "r2")],
        capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path,
        env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert done.returncode != 0
    assert "is zstd-compressed and this Python has no zstd module" in done.stderr
    assert "Traceback" not in done.stderr


def test_completion_through_the_zipapp(pyz: Path, tmp_path: Path) -> None:
    """Printed by 'python3 sneaker.pyz completion bash', the script defines a sneaker
    function running that Python on that file, and completes by asking the file."""
    from tests.integration.test_completion_shells import bash_completions

    text = _isolated(pyz, "completion", "bash", cwd=tmp_path)
    assert f'sneaker() {{ {sys.executable} {pyz} "$@"; }}' in text
    path = tmp_path / "completion.bash"
    path.write_text(text)
    assert bash_completions(path, "sneaker", "pu") == ["pull", "push"]
    assert bash_completions(path, "sneaker", "completion", "p") == ["powershell"]
    version = run(
        ["bash", "--norc", "--noprofile", "-c", f"source '{path}'; sneaker --version"],
        cwd=tmp_path,
    )
    assert version.stdout.startswith("sneaker ")

    powershell = _isolated(pyz, "completion", "powershell", cwd=tmp_path)
    assert "-CommandName @('py', 'python', 'python3')" in powershell
    assert f"if ($program -ne '{pyz.name}') {{ return }}" in powershell
    assert f"& '{sys.executable}' '{pyz}'" in powershell
