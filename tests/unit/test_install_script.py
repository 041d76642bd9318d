"""scripts/install's choices, without installing anything: where root's and a user's
sneaker go, and what it says about PATH."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
from pathlib import Path
from types import ModuleType

import pytest

from tests.helpers import REPO_ROOT


@pytest.fixture(scope="module")
def install() -> ModuleType:
    path = REPO_ROOT / "scripts" / "install"
    loader = importlib.machinery.SourceFileLoader("sneaker_install_script", str(path))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def test_root_installs_for_everyone(install: ModuleType) -> None:
    assert install.default_places(True, {"HOME": "/root"}) == (
        Path("/opt/sneaker"),
        Path("/usr/local/bin"),
    )


def test_a_user_installs_under_home(install: ModuleType) -> None:
    assert install.default_places(False, {"HOME": "/home/ann"}) == (
        Path("/home/ann/.local/share/sneaker"),
        Path("/home/ann/.local/bin"),
    )
    assert install.default_places(False, {"HOME": "/home/ann", "XDG_DATA_HOME": "/d"}) == (
        Path("/d/sneaker"),
        Path("/home/ann/.local/bin"),
    )


def test_on_path(install: ModuleType, tmp_path: Path) -> None:
    assert install.on_path(tmp_path, os.pathsep.join(["/usr/bin", str(tmp_path)]))
    assert install.on_path(tmp_path, f"{tmp_path}/")  # the same directory, spelled otherwise
    assert not install.on_path(tmp_path, "/usr/bin")
    assert not install.on_path(tmp_path, "")


def test_advice_for_a_user_whose_bin_is_not_on_path_yet(install: ModuleType) -> None:
    env = {"HOME": "/home/ann", "PATH": "/usr/local/bin:/usr/bin:/bin"}
    command = Path("/home/ann/.local/bin/sneaker")
    assert install.path_advice(command, env) == (
        "run it as: /home/ann/.local/bin/sneaker (/home/ann/.local/bin is not on this "
        "shell's PATH: Debian's and Ubuntu's ~/.profile put it on PATH at login now that it "
        'exists, so from the next login; in this shell: export PATH="/home/ann/.local/bin:$PATH")'
    )


def test_advice_when_on_path(install: ModuleType) -> None:
    env = {"HOME": "/root", "PATH": "/usr/local/bin:/usr/bin"}
    command = Path("/usr/local/bin/sneaker")
    assert install.path_advice(command, env) == "run it as: sneaker (it is /usr/local/bin/sneaker)"


def test_advice_for_another_directory(install: ModuleType) -> None:
    env = {"HOME": "/home/ann", "PATH": "/usr/bin"}
    assert install.path_advice(Path("/srv/tools/sneaker"), env).endswith(
        "(/srv/tools is not on this shell's PATH: add /srv/tools to PATH "
        '(export PATH="/srv/tools:$PATH"))'
    )
