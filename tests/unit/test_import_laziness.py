"""Start-up cost: what a command never needs is never imported.

Each check runs in a fresh interpreter and looks at the modules its statements
newly import (whatever the interpreter had loaded before does not count), so the
checks pin sneaker's own imports, not the environment's.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import sneaker.archive


def _newly_imported(statements: str, *, env: dict[str, str] | None = None) -> set[str]:
    """The modules ``statements`` import that were not loaded before them."""
    code = "\n".join(
        [
            "import sys",
            "_before = set(sys.modules)",
            textwrap.dedent(statements),
            "print('\\n'.join(sorted(set(sys.modules) - _before)))",
        ]
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split())


def test_archive_package_loads_a_writer_without_the_reader() -> None:
    ours = {m for m in _newly_imported("import sneaker.archive") if m.startswith("sneaker")}
    assert ours == {"sneaker", "sneaker.archive"}
    loaded = _newly_imported("from sneaker.archive import write_docker_archive")
    assert "sneaker.archive.docker_archive" in loaded
    assert not loaded & {
        "sneaker.archive.reader",
        "sneaker.layers.apply",
        "sneaker.archive.oci_layout",
    }


def test_archive_package_exports_resolve() -> None:
    assert set(sneaker.archive._EXPORTS) == set(sneaker.archive.__all__)
    for name in sneaker.archive.__all__:
        assert getattr(sneaker.archive, name) is not None, name
    assert set(dir(sneaker.archive)) >= set(sneaker.archive.__all__)


def test_settings_without_files_do_not_load_a_toml_parser() -> None:
    loaded = _newly_imported(
        """
        from sneaker.settings import load_settings
        settings = load_settings(registries_conf=[], daemon_json=[], mirrors=["mirror.example"])
        assert settings.for_registry("docker.io").endpoints[0].registry == "mirror.example"
        """
    )
    assert "sneaker.settings.registries_conf" in loaded
    assert not loaded & {"tomllib", "tomli"}


def test_registry_client_does_not_load_subprocess() -> None:
    # subprocess is for docker credential helpers only, loaded when one runs
    loaded = _newly_imported("import sneaker.registry.client")
    assert "urllib3" in loaded
    assert "subprocess" not in loaded


def test_pull_command_loads_no_inventory_or_reader_code(tmp_path: Path) -> None:
    # no image: the command runs up to the verb, which refuses before any request
    env = {**os.environ, "HOME": str(tmp_path), "SNEAKER_DAEMON_JSON": ""}
    loaded = _newly_imported(
        f"""
        from sneaker.cli import main
        code = main(["pull", "-q", "-o", {str(tmp_path / "out.tar")!r}])
        assert code == 2, code
        """,
        env=env,
    )
    assert {"sneaker.cli.pull", "sneaker.verbs.pull"} <= loaded
    assert not loaded & {
        "sneaker.cli.plan",
        "sneaker.image.inventory",
        "sneaker.verbs.inventory",
        "sneaker.transfer.walk",
        "sneaker.archive.reader",
        "sneaker.layers.apply",
    }
